import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EventLog, sealEvent, toHex } from '@kyrodb/log';
import { BackupManager, LocalDirStore, restore } from '@kyrodb/backup';
import { created, del, fill, openLog, quietLogger, tempDir, upsert } from './helpers.js';

// The restore's codec reads each record's index fields (collection, document id) where it checks
// the record's hash, and the import builds the by-time and by-doc indexes from them: the restored
// indexes must be the source's, inline and through the worker.

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('a restored log has the source log\'s indexes', () => {
  it.each([
    ['inline', true],
    ['worker', true],
    ['worker', 'always'],
  ] as const)('by-doc histories, collection-level events and by-time lookups match (codec %s, by-doc deferred: %s), an id holding a newline included', async (codecThread, deferDocIndex) => {
    const { log, dir } = await openLog();
    dirs.push(dir);
    await log.append([created('c', 8), created('e', 8)]);
    await fill(log, 300, { ids: 90, batch: 37 });
    await fill(log, 200, { ids: 50, batch: 41, collection: 'e', seed: 7 });
    await log.append([del('d3'), del('d4', 'e'), { type: 'collection.dropped', collection: 'e', body: {} }, created('e', 8), upsert('d4', 1, 'e')]);
    // An id no append would accept (ids are printable ASCII), imported as a sealed record: the
    // codec's compact hand-over of ids must not split it.
    const h = log.head();
    const odd = 'a\nb';
    await log.importRecords([sealEvent(upsert(odd, 2), h.seq + 1, h.ts, h.hash).record]);
    await fill(log, 50, { ids: 20, seed: 900 });
    const storeDir = tempDir();
    dirs.push(storeDir);
    const store = new LocalDirStore(storeDir);
    const full = await new BackupManager({ log, dataDir: dir, store, eventsPerFile: 128, logger: quietLogger() }).createFull();
    const target = path.join(tempDir(), 'data');
    dirs.push(path.dirname(target));
    const r = await restore({ store, dataDir: target, codecThread, deferDocIndex });
    expect(r.seq).toBe(log.head().seq);
    expect(r.headHash).toBe(toHex(log.head().hash));
    expect(r.vectorCount).toBe(full.vector_count);
    const back = await EventLog.open({ dir: target, readOnly: true, logger: () => undefined });
    try {
      const ids = new Set<string>([odd]);
      for (const e of log.read()) if (e.type === 'vector.upserted' || e.type === 'vector.deleted') ids.add(e.body.id);
      for (const c of ['c', 'e']) {
        expect(back.history(c, '').map((e) => e.seq)).toEqual(log.history(c, '').map((e) => e.seq));
        for (const id of ids) expect(back.history(c, id).map((e) => e.seq)).toEqual(log.history(c, id).map((e) => e.seq));
      }
      expect(back.history('c', odd)).toHaveLength(1);
      for (const id of ['d1', 'd4', 'd50', odd]) for (const c of ['c', 'e']) expect(back.docAsOf(c, id)?.seq).toBe(log.docAsOf(c, id)?.seq);
      for (const s of [1, 100, 333, log.head().seq]) expect(back.seqAtTime(log.get(s)!.ts)).toBe(log.seqAtTime(log.get(s)!.ts));
      expect(back.verify()).toMatchObject({ ok: true, checked: log.head().seq });
    } finally {
      await back.close();
      await log.close();
    }
  });
});
