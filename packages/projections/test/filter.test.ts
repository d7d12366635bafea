import { describe, expect, it } from 'vitest';
import { FakeClock } from '@kyrodb/log';
import type { LogEvent } from '@kyrodb/log';
import { TopK, applyEvent, compareHits, emptyState, exactSearch, filterKey, matchesFilter, score, validateFilter } from '@kyrodb/projections';

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
