import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { docsInKeyOrder, sortDocEntries, type DocEntry, type IndexRow } from '@kyrodb/log';
import { fcParams } from './helpers.js';

// Deferred by-doc entries are bucketed by their ids' first two UTF-16 units before sorting: the
// result must be exactly the by-doc key order (collection, id by UTF-16 units, seq), whatever the
// ids — empty, prefixes of each other, surrogates, units above them.

const byDoc = (a: DocEntry, b: DocEntry): number => (a.collection !== b.collection ? (a.collection < b.collection ? -1 : 1) : a.docId !== b.docId ? (a.docId < b.docId ? -1 : 1) : a.seq - b.seq);

const unit = fc.constantFrom('', 'a', 'b', 'z', '0', '\u0000', '\u00e9', '\ud83d\ude00', '\ud7ff', '\ue000', '\uffff', '-');
const id = fc.array(unit, { maxLength: 4 }).map((u) => u.join(''));

describe('sortDocEntries', () => {
  it('sorts into the by-doc key order, bucketed (one collection, ≥ 4096 entries) or not', () => {
    fc.assert(
      fc.property(fc.array(id, { minLength: 1, maxLength: 60 }), fc.boolean(), fc.integer({ min: 1, max: 2 ** 31 }), (ids, mixed, seed) => {
        // Enough entries for the bucketed path; seqs distinct, ids repeated, in a scrambled order.
        const entries: DocEntry[] = [];
        let x = seed;
        for (let seq = 1; seq <= 5000; seq++) {
          x = (Math.imul(x, 1103515245) + 12345) >>> 0;
          entries.push({ collection: mixed && x % 7 === 0 ? 'd' : 'c', docId: ids[x % ids.length]!, seq: (x % 100_000) * 10_000 + seq });
        }
        const want = [...entries].sort(byDoc);
        sortDocEntries(entries);
        expect(entries).toEqual(want);
      }),
      fcParams(40),
    );
  });
});

describe('docsInKeyOrder', () => {
  const rows = (ids: string[], collections: (i: number) => string = () => 'c'): IndexRow[] => ids.map((docId, i) => ({ seq: i + 1, ts: 0, collection: collections(i), docId, record: new Uint8Array(0) }));
  const seq = Array.from({ length: 5000 }, (_, i) => `d${i + 1}`);
  it('tells ids written in about key order (d<i>, counters, repeats) from random ones', () => {
    expect(docsInKeyOrder(rows(seq), 0.8)).toBe(true);
    expect(docsInKeyOrder(rows(seq.map((_, i) => `same-${Math.floor(i / 100)}`)), 0.8)).toBe(true);
    let x = 7;
    const random = seq.map(() => (x = (Math.imul(x, 1103515245) + 12345) >>> 0).toString(16));
    expect(docsInKeyOrder(rows(random), 0.8)).toBe(false);
  });
  it('says nothing when too few neighbours share a collection', () => {
    expect(docsInKeyOrder(rows(seq, (i) => (i % 2 === 0 ? 'a' : 'b')), 0.8)).toBeUndefined();
  });
});
