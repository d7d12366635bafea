import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '@kyrodb/log';
import type { LogEvent } from '@kyrodb/log';
import { MAX_FILTER_IN_VALUES, MAX_FILTER_KEYS, TopK, applyEvent, compareHits, compileFilter, emptyState, exactSearch, filterKey, matchesFilter, score, validateFilter } from '@kyrodb/projections';

describe('filters', () => {
  it('validateFilter accepts the documented shapes and rejects the rest with PROJ_INVALID_FILTER', () => {
    for (const ok of [{}, { a: 1 }, { a: 'x', b: true, c: null }, { a: { $in: [1, 'x', null] } }, { n: { $gte: 1, $lt: 5 } }, { n: { $gt: 0, $lte: 2 } }]) expect(validateFilter(ok)).toBe(ok);
    for (const bad of [null, [], 'x', { a: [1] }, { a: {} }, { a: { $in: 3 } }, { a: { $in: [[1]] } }, { a: { $gte: 'x' } }, { a: { $foo: 1 } }, { a: { $lt: Infinity } }, { a: { nested: 1 } }]) {
      expect(() => validateFilter(bad)).toThrow(expect.objectContaining({ code: 'PROJ_INVALID_FILTER' }));
    }
  });
  it('matchesFilter: equality, $in, ranges (numbers only), AND', () => {
    const m = { g: 1, s: 'x', b: false, n: null };
    expect(matchesFilter(m, {})).toBe(true);
    expect(matchesFilter(undefined, {})).toBe(true);
    expect(matchesFilter(undefined, { g: 1 })).toBe(false);
    expect(matchesFilter(m, { g: 1, s: 'x' })).toBe(true);
    expect(matchesFilter(m, { g: 1, s: 'y' })).toBe(false);
    expect(matchesFilter(m, { b: false, n: null })).toBe(true);
    expect(matchesFilter(m, { s: { $in: ['a', 'x'] } })).toBe(true);
    expect(matchesFilter(m, { s: { $in: ['a'] } })).toBe(false);
    expect(matchesFilter(m, { g: { $gte: 1, $lt: 2 } })).toBe(true);
    expect(matchesFilter(m, { g: { $gt: 1 } })).toBe(false);
    expect(matchesFilter(m, { s: { $gte: 0 } })).toBe(false);
    expect(matchesFilter(m, { missing: { $lte: 10 } })).toBe(false);
  });
  it(`a filter names at most ${MAX_FILTER_KEYS} keys and its $in lists hold at most ${MAX_FILTER_IN_VALUES} values together (a 100 000-key filter held a search for seconds)`, () => {
    const keys = (n: number): Record<string, number> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));
    expect(validateFilter(keys(MAX_FILTER_KEYS))).toEqual(keys(MAX_FILTER_KEYS));
    expect(() => validateFilter(keys(MAX_FILTER_KEYS + 1))).toThrow(expect.objectContaining({ code: 'PROJ_INVALID_FILTER', message: expect.stringMatching(/65 keys; at most 64/) as unknown }));
    const values = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
    expect(() => validateFilter({ a: { $in: values(MAX_FILTER_IN_VALUES / 2) }, b: { $in: values(MAX_FILTER_IN_VALUES / 2) } })).not.toThrow();
    expect(() => validateFilter({ a: { $in: values(MAX_FILTER_IN_VALUES / 2) }, b: { $in: values(MAX_FILTER_IN_VALUES / 2 + 1) } })).toThrow(expect.objectContaining({ code: 'PROJ_INVALID_FILTER' }));
  });
  it('compileFilter answers as the condition-by-condition reading of the filter does (random filters and metadata)', () => {
    const scalar = fc.oneof(fc.constantFrom(0, -0, 1, 2, 'x', 'y', '', true, false, null), fc.integer({ min: -3, max: 3 }));
    const cond = fc.oneof(
      scalar,
      fc.record({ $in: fc.array(scalar, { maxLength: 5 }) }),
      fc.record({ $gt: fc.integer({ min: -3, max: 3 }), $lte: fc.integer({ min: -3, max: 3 }) }, { requiredKeys: [] }).filter((o) => Object.keys(o).length > 0),
    );
    const keys = fc.constantFrom('a', 'b', 'c');
    const meta = fc.option(fc.dictionary(keys, fc.oneof(scalar, fc.constant([1]), fc.constant({ a: 1 }))), { nil: undefined });
    fc.assert(
      fc.property(fc.dictionary(keys, cond), meta, (f, m) => {
        const filter = validateFilter(f);
        // The reference: each key's condition read as DESIGN §4 states it.
        const expected = Object.entries(filter).every(([k, c]) => {
          const v = m?.[k];
          if (c === null || typeof c !== 'object') return v === c;
          if (c.$in !== undefined && !c.$in.some((x) => x === v)) return false;
          if (c.$gt !== undefined || c.$lte !== undefined) {
            if (typeof v !== 'number') return false;
            if (c.$gt !== undefined && !(v > c.$gt)) return false;
            if (c.$lte !== undefined && !(v <= c.$lte)) return false;
          }
          return true;
        });
        expect(compileFilter(filter)(m)).toBe(expected);
        expect(matchesFilter(m, filter)).toBe(expected);
      }),
      { numRuns: 2000 },
    );
  });
  it('filterKey is canonical (key order does not matter)', () => {
    expect(filterKey({ a: 1, b: { $lt: 2, $gt: 0 } })).toBe(filterKey({ b: { $gt: 0, $lt: 2 }, a: 1 }));
    expect(filterKey(undefined)).toBe('');
    expect(filterKey({})).toBe('');
    expect(filterKey({ a: 1 })).not.toBe(filterKey({ a: '1' }));
  });
});

describe('scoring and exact search', () => {
  it('higher is better for every metric', () => {
    const q = new Float32Array([1, 0]);
    expect(score('cosine', q, new Float32Array([2, 0]))).toBeCloseTo(1);
    expect(score('cosine', q, new Float32Array([0, 0]))).toBe(0);
    expect(score('ip', q, new Float32Array([3, 1]))).toBe(3);
    expect(score('l2', q, new Float32Array([1, 2]))).toBe(-4);
    expect(score('l2', q, q)).toBe(0);
  });
  it('TopK keeps the best k, ties by id', () => {
    const t = new TopK<{ id: string; score: number }>(3);
    for (const [id, s] of [['d', 1], ['a', 1], ['c', 3], ['b', 2], ['e', 0]] as const) t.push({ id, score: s });
    expect(t.result().map((h) => h.id)).toEqual(['c', 'b', 'a']);
    expect(compareHits({ id: 'a', score: 1 }, { id: 'b', score: 1 })).toBeLessThan(0);
  });
  it('applyEvent ignores what does not apply; exactSearch checks the query', () => {
    const clock = new FakeClock();
    let seq = 0;
    const ev = (e: Omit<LogEvent, 'seq' | 'ts' | 'prevHash' | 'hash'>): LogEvent => ({ ...e, seq: ++seq, ts: clock.nowMicros(), prevHash: new Uint8Array(32), hash: new Uint8Array(32) }) as LogEvent;
    const s = emptyState();
    expect(applyEvent(s, ev({ type: 'vector.upserted', collection: 'c', body: { id: 'a', vector: new Float32Array([1, 2]) } })).kind).toBe('none');
    expect(applyEvent(s, ev({ type: 'collection.created', collection: 'c', body: { dimension: 2, metric: 'l2', hnsw: { M: 16, efConstruction: 100, efSearch: 50 } } })).kind).toBe('created');
    expect(applyEvent(s, ev({ type: 'collection.created', collection: 'c', body: { dimension: 3, metric: 'l2', hnsw: { M: 16, efConstruction: 100, efSearch: 50 } } })).kind).toBe('none');
    expect(applyEvent(s, ev({ type: 'vector.upserted', collection: 'c', body: { id: 'a', vector: new Float32Array([1, 2, 3]) } })).kind).toBe('none');
    expect(applyEvent(s, ev({ type: 'vector.upserted', collection: 'c', body: { id: 'a', vector: new Float32Array([1, 2]) } })).kind).toBe('upserted');
    expect(applyEvent(s, ev({ type: 'vector.deleted', collection: 'c', body: { id: 'zz' } })).kind).toBe('none');
    expect(s.seq).toBe(6);
    expect(s.collections.get('c')?.info).toMatchObject({ count: 1, dimension: 2, createdSeq: 2, version: 5 });
    expect(exactSearch(s, 'c', { vector: new Float32Array([1, 2]), k: 1 })).toEqual([{ id: 'a', score: 0 }]);
    expect(() => exactSearch(s, 'x', { vector: new Float32Array([1, 2]), k: 1 })).toThrow(expect.objectContaining({ code: 'PROJ_UNKNOWN_COLLECTION' }));
    expect(() => exactSearch(s, 'c', { vector: new Float32Array([1]), k: 1 })).toThrow(expect.objectContaining({ code: 'PROJ_DIMENSION_MISMATCH' }));
    expect(() => exactSearch(s, 'c', { vector: new Float32Array([1, NaN]), k: 1 })).toThrow(expect.objectContaining({ code: 'PROJ_INVALID_QUERY' }));
    expect(() => exactSearch(s, 'c', { vector: new Float32Array([1, 2]), k: 0 })).toThrow(expect.objectContaining({ code: 'PROJ_INVALID_QUERY' }));
  });
});
