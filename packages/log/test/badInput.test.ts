import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import type { EventInput, EventLog, LogErrorCode } from '@kyrodb/log';
import { created, openTestLog, upsert } from './helpers.js';

let log: EventLog;
let dir: string;
beforeAll(async () => {
  ({ log, dir } = await openTestLog({ maxBatchEvents: 10 }));
  await log.append([created('c', 3)]);
  await log.append([upsert('a', [1, 2, 3])]);
});
afterAll(async () => {
  await log.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const good = upsert('ok', [1, 2, 3]);
const hnsw = { M: 16, efConstruction: 100, efSearch: 50 };

const cases: [string, unknown[], LogErrorCode][] = [
  ['empty batch', [], 'LOG_EMPTY_BATCH'],
  ['oversized batch (11 > maxBatchEvents 10)', Array.from({ length: 11 }, (_, i) => upsert(`x${i}`, [1, 2, 3])), 'LOG_BATCH_TOO_LARGE'],
  ['not an object', [42], 'LOG_INVALID_EVENT'],
  ['null event', [null], 'LOG_INVALID_EVENT'],
  ['unknown type', [{ type: 'vector.moved', collection: 'c', body: {} }], 'LOG_INVALID_EVENT'],
  ['unknown top-level field', [{ ...good, extra: 1 }], 'LOG_INVALID_EVENT'],
  ['unknown body field', [{ type: 'vector.upserted', collection: 'c', body: { id: 'a', vector: new Float32Array([1]), colour: 'red' } }], 'LOG_INVALID_EVENT'],
  ['unknown hnsw field', [{ type: 'collection.created', collection: 'c', body: { dimension: 3, metric: 'l2', hnsw: { ...hnsw, ef: 3 } } }], 'LOG_INVALID_EVENT'],
  ['bad collection name', [upsert('a', [1], 'has space')], 'LOG_INVALID_EVENT'],
  ['bad id', [upsert('a/b', [1])], 'LOG_INVALID_EVENT'],
  ['vector as a plain array', [{ type: 'vector.upserted', collection: 'c', body: { id: 'a', vector: [1, 2, 3] } }], 'LOG_INVALID_EVENT'],
  ['vector as Float64Array', [{ type: 'vector.upserted', collection: 'c', body: { id: 'a', vector: new Float64Array([1, 2, 3]) } }], 'LOG_INVALID_EVENT'],
  ['empty vector', [upsert('a', [])], 'LOG_INVALID_EVENT'],
  ['NaN in a vector', [upsert('a', [1, NaN, 3])], 'LOG_NON_FINITE_VECTOR'],
  ['Infinity in a vector', [upsert('a', [1, Infinity, 3])], 'LOG_NON_FINITE_VECTOR'],
  ['-Infinity in a vector', [upsert('a', [-Infinity])], 'LOG_NON_FINITE_VECTOR'],
  ['non-finite number in metadata', [upsert('a', [1], 'c', { x: NaN })], 'LOG_INVALID_EVENT'],
  ['metadata not an object', [{ type: 'vector.upserted', collection: 'c', body: { id: 'a', vector: new Float32Array([1]), metadata: [1] } }], 'LOG_INVALID_EVENT'],
  ['metadata nested too deep', [upsert('a', [1], 'c', JSON.parse('{"a":'.repeat(20) + '1' + '}'.repeat(20)) as Record<string, never>)], 'LOG_INVALID_EVENT'],
  ['metadata 17 levels deep (16 at most, itself included)', [upsert('a', [1], 'c', JSON.parse('{"a":'.repeat(16) + '[]' + '}'.repeat(16)) as Record<string, never>)], 'LOG_INVALID_EVENT'],
  ['dimension 0', [{ type: 'collection.created', collection: 'c', body: { dimension: 0, metric: 'l2', hnsw } }], 'LOG_INVALID_EVENT'],
  ['unknown metric', [{ type: 'collection.created', collection: 'c', body: { dimension: 3, metric: 'hamming', hnsw } }], 'LOG_INVALID_EVENT'],
  ['dropped with a body field', [{ type: 'collection.dropped', collection: 'c', body: { now: true } }], 'LOG_INVALID_EVENT'],
  ['delete without id', [{ type: 'vector.deleted', collection: 'c', body: {} }], 'LOG_INVALID_EVENT'],
  ['bad actor', [{ ...good, actor: '' }], 'LOG_INVALID_EVENT'],
  // one bad event spoils the whole batch: nothing of it is written
  ['a good event followed by a bad one', [good, upsert('b', [1, NaN, 3])], 'LOG_NON_FINITE_VECTOR'],
  ['a batch that is not an array', 'nope' as unknown as unknown[], 'LOG_EMPTY_BATCH'],
];

describe('bad input', () => {
  it.each(cases)('%s → %s, nothing written', async (_name, batch, code) => {
    const before = log.head();
    await expect(log.append(batch as EventInput[])).rejects.toMatchObject({ name: 'LogError', code });
    const after = log.head();
    expect(after.seq).toBe(before.seq);
    expect(Buffer.from(after.hash).equals(Buffer.from(before.hash))).toBe(true);
    expect([...log.read()].length).toBe(before.seq);
    // the next good append gets the next seq
    const r = await log.append([good]);
    expect(r.firstSeq).toBe(before.seq + 1);
    expect(log.verify().ok).toBe(true);
  });

  it('the error names the offending event index', async () => {
    await expect(log.append([good, good, upsert('b', [Infinity])])).rejects.toMatchObject({ code: 'LOG_NON_FINITE_VECTOR', details: { index: 2 } });
  });

  it('a caller mutating its vector after append does not change what is stored', async () => {
    const v = new Float32Array([1, 2, 3]);
    const p = log.append([upsert('m', v)]);
    v[0] = 99;
    const r = await p;
    const e = log.get(r.firstSeq);
    expect(e?.type === 'vector.upserted' ? Array.from(e.body.vector) : []).toEqual([1, 2, 3]);
  });
});
