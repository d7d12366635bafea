import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventLog } from '@kyrodb/log';

describe('smoke', () => {
  it('appends and reads', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kyro-'));
    const log = await EventLog.open({ dir });
    await log.append([{ type: 'collection.created', collection: 'c', body: { dimension: 3, metric: 'l2', hnsw: { M: 16, efConstruction: 100, efSearch: 50 } } }]);
    const r = await log.append([{ type: 'vector.upserted', collection: 'c', body: { id: 'a', vector: new Float32Array([1, 2, 3.5]), metadata: { x: 1 } } }]);
    expect(r.firstSeq).toBe(2);
    const evs = [...log.read()];
    expect(evs.length).toBe(2);
    expect(log.verify().ok).toBe(true);
    expect(log.seqAtTime(r.ts)).toBe(2);
    expect(log.seqAtTime(r.ts - 1)).toBeLessThan(2);
    expect(log.docAsOf('c', 'a')?.body.id).toBe('a');
    expect(log.history('c', 'a').length).toBe(1);
    await log.close();
  });
});
