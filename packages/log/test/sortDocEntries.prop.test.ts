import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { docsInKeyOrder, sortDocEntries, type DocEntry, type IndexRow } from '@kyrodb/log';
import { fcParams } from './helpers.js';

// Deferred by-doc entries are sorted by numbers made of their ids' leading UTF-16 units (or, for
// ids with units above 0xFE, bucketed by the first two): the result must be exactly the by-doc
// key order (collection, id by UTF-16 units, seq), whatever the ids — empty, prefixes of each
// other, sharing their first ten units or more, surrogates, units above them.

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

/** `n` entries with ids drawn from `ids`, seqs distinct, in a scrambled order. */
function scrambled(ids: string[], n: number, seed: number, collection: (x: number) => string = () => 'c'): DocEntry[] {
  const entries: DocEntry[] = [];
  let x = seed;
  for (let seq = 1; seq <= n; seq++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    entries.push({ collection: collection(x), docId: ids[x % ids.length]!, seq: (x % 100_000) * 10_000_000 + seq });
  }
  return entries;
}

describe('sortDocEntries by leading units', () => {
  // Units ≤ 0xFE only (the number sort), ids long enough to tie on the first four units and on
  // the first ten, and to differ only after them.
  const low = fc.constantFrom('\u0000', 'a', 'b', '-', '0', '9', '\u00fe', 'Z');
  const long = fc.array(low, { maxLength: 14 }).map((u) => u.join(''));
  const stem = fc.array(low, { minLength: 10, maxLength: 10 }).map((u) => u.join(''));
  it('sorts ids of units up to 0xFE into the by-doc key order', () => {
    fc.assert(
      fc.property(fc.array(long, { minLength: 1, maxLength: 40 }), stem, fc.array(long, { maxLength: 6 }), fc.integer({ min: 1, max: 2 ** 31 }), (ids, s, tails, seed) => {
        const all = [...ids, s, ...tails.map((t) => s + t), s.slice(0, 4), s.slice(0, 4) + 'a'];
        const entries = scrambled(all, 5000, seed);
        const want = [...entries].sort(byDoc);
        sortDocEntries(entries);
        expect(entries).toEqual(want);
      }),
      fcParams(40),
    );
  });

  it('more than 2^21 entries (three leading units in the first number) sort the same', () => {
    // Leading units up to 0xFE, so the first number uses its top bits (four units and a 22-bit index would not fit).
    const ids = Array.from({ length: 5000 }, (_, i) => ['\u00fe', '\u00c0', 'z', ''][i % 4]! + ((i * 2654435761) >>> 0).toString(36).padStart(i % 9, '0'));
    const entries = scrambled(ids, 2 ** 21 + 3, 7);
    const seqs = new Set(entries.map((e) => e.seq));
    sortDocEntries(entries);
    // In order, and the same entries (seqs are distinct).
    let inOrder = true;
    for (let i = 1; i < entries.length && inOrder; i++) inOrder = byDoc(entries[i - 1]!, entries[i]!) < 0;
    expect(inOrder).toBe(true);
    expect(entries.length === seqs.size && entries.every((e) => seqs.has(e.seq))).toBe(true);
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
