import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { applyRows, openStores, writeDocEntries, type DocEntry, type IndexRow } from '../src/store.js';
import { fcParams } from './helpers.js';

// By-doc keys go in with MDB_APPEND while a sorted run stays past the index's last key, and the
// usual way from the first key LMDB refuses: whatever the order of the batches (ascending ids,
// random ids, ids already in the index, ids whose UTF-16 order is not LMDB's byte order), the
// index holds exactly one key per (collection, id, seq) put.

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const unit = fc.constantFrom('a', 'b', 'z', '0', '\u00e9', '\ud83d\ude00', '\ue000', '\uffff');
const id = fc.array(unit, { minLength: 1, maxLength: 3 }).map((u) => u.join(''));
/** A batch: its ids, and whether they come in ascending order (as counters and time-ordered ids do). */
const batch = fc.record({ ids: fc.array(id, { minLength: 1, maxLength: 400 }), ascending: fc.boolean(), deferred: fc.boolean() });

describe('by-doc keys put as appends where they can be', () => {
  it('the index holds exactly the keys put, batch after batch, in any order', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(batch, { minLength: 1, maxLength: 5 }), async (batches) => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kyro-bydoc-'));
        dirs.push(dir);
        const s = openStores(dir, false);
        try {
          const want: string[] = [];
          let seq = 0;
          for (const b of batches) {
            const ids = b.ascending ? [...b.ids].sort() : b.ids;
            const rows: IndexRow[] = ids.map((docId, i) => {
              const record = Buffer.alloc(80, i);
              seq += 1;
              return { seq, ts: seq, collection: seq % 5 === 0 ? 'k' : 'c', docId, record, at: 0, end: record.byteLength };
            });
            for (const r of rows) want.push(JSON.stringify([r.collection, r.docId, r.seq]));
            const head = { seq, ts: seq, hash: new Uint8Array(32) };
            if (b.deferred) {
              const docs: DocEntry[] = [];
              applyRows(s, rows, head, docs);
              writeDocEntries(s, docs);
            } else {
              applyRows(s, rows, head);
            }
          }
          const keys = [...s.byDoc.getKeys()].map((k) => JSON.stringify(k));
          expect(keys.length).toBe(want.length);
          expect([...keys].sort()).toEqual([...want].sort());
        } finally {
          await s.env.close();
        }
      }),
      fcParams(25),
    );
  });
});
