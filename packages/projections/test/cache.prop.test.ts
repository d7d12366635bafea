import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LearnedPredictor, SemanticCache, trainPredictor } from '../src/cache/index.js';
import type { CacheQuery, PredictorWeights, SearchHit } from '../src/cache/index.js';
import { randomVector, rng, zipfWorkload } from './cacheWorkload.js';

const DIM = 8;
const r = rng(42);
const docPool = Array.from({ length: 12 }, () => randomVector(r, DIM));
// Query directions far apart (pairwise cosine < 0.9), so only true duplicates (up to scale) can share an answer.
const queryPool: Float32Array[] = [];
while (queryPool.length < 6) {
  const c = randomVector(r, DIM);
  if (queryPool.every((p) => cosine(p, c) < 0.9)) queryPool.push(c);
}

function cosine(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return d / Math.sqrt(na * nb);
}

/** The in-test exact search: cosine, score desc, ties by id asc, optional "even ids only" filter. */
function exact(docs: Map<string, Float32Array>, q: Float32Array, k: number, evenOnly: boolean): SearchHit[] {
  const hits: SearchHit[] = [];
  for (const [id, v] of docs) if (!evenOnly || Number(id.slice(1)) % 2 === 0) hits.push({ id, score: cosine(q, v) });
  hits.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return hits.slice(0, k);
}

const cmd = fc.oneof(
  { weight: 3, arbitrary: fc.record({ t: fc.constant('upsert' as const), coll: fc.integer({ min: 0, max: 1 }), id: fc.integer({ min: 0, max: 7 }), vec: fc.integer({ min: 0, max: docPool.length - 1 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('delete' as const), coll: fc.integer({ min: 0, max: 1 }), id: fc.integer({ min: 0, max: 7 }) }) },
  {
    weight: 16,
    arbitrary: fc.record({
      t: fc.constant('query' as const),
      coll: fc.integer({ min: 0, max: 1 }),
      pool: fc.integer({ min: 0, max: queryPool.length - 1 }),
      scale: fc.constantFrom(1, 0.5, 3),
      k: fc.constantFrom(1, 3),
      evenOnly: fc.boolean(),
      dt: fc.integer({ min: 0, max: 5000 }),
    }),
  },
);

let trained: PredictorWeights | undefined;
function weights(): PredictorWeights {
  const wl = zipfWorkload({ seed: 9, dim: 2, topics: 300, s: 1, queries: 5000, noise: 0 });
  trained ??= trainPredictor({ fingerprints: Float64Array.from(wl.map((x) => x.topic)) }, { horizon: 50 })!;
  return trained;
}

describe('SemanticCache properties', () => {
  for (const policy of ['lru', 'learned'] as const) {
    it(`served-from-cache = exact search at that moment, for any interleaving of writes and queries (staleness off, ${policy})`, () => {
      let served = 0;
      fc.assert(
        fc.property(fc.array(cmd, { minLength: 20, maxLength: 150 }), fc.integer({ min: 1, max: 6 }), (cmds, capacity) => {
          const predictor = new LearnedPredictor();
          if (policy === 'learned') predictor.load(weights());
          const cache = new SemanticCache({ predictor, options: { capacity, similarityThreshold: 0.99 } });
          const colls = [
            { name: 'a', docs: new Map<string, Float32Array>(), version: 1 },
            { name: 'b', docs: new Map<string, Float32Array>(), version: 1 },
          ];
          let now = 1_700_000_000_000;
          for (const c of cmds) {
            const coll = colls[c.coll]!;
            if (c.t === 'upsert') {
              coll.docs.set(`d${c.id}`, docPool[c.vec]!);
              coll.version++;
            } else if (c.t === 'delete') {
              if (coll.docs.delete(`d${c.id}`)) coll.version++;
            } else {
              now += c.dt;
              const vector = queryPool[c.pool]!.map((x) => x * c.scale);
              const q: CacheQuery = { collection: coll.name, vector, k: c.k, filterKey: c.evenOnly ? '{"even":true}' : '', version: coll.version, nowMs: now };
              const want = exact(coll.docs, vector, c.k, c.evenOnly);
              const got = cache.lookup(q);
              if (got !== undefined) {
                served++;
                // The entry may have been made by the same direction at another scale: same exact answer,
                // scores equal up to Float32 rounding of the scaled query.
                expect(got.map((h) => h.id)).toEqual(want.map((h) => h.id));
                got.forEach((h, i) => expect(h.score).toBeCloseTo(want[i]!.score, 6));
              } else cache.offer(q, want);
            }
          }
        }),
        { seed: 20261126, numRuns: 300 },
      );
      expect(served).toBeGreaterThan(100); // the law was exercised, not vacuously true
    });
  }

  it('with opt-in staleness S, a served answer is the exact answer of some moment in the last S ms', () => {
    let served = 0;
    let stale = 0;
    fc.assert(
      fc.property(fc.array(cmd, { minLength: 20, maxLength: 150 }), fc.integer({ min: 1, max: 20_000 }), (cmds, S) => {
        const cache = new SemanticCache({ options: { capacity: 4, maxStalenessMs: S } });
        // Per collection: the doc snapshots by version and the time each version began.
        const colls = [0, 1].map((n) => ({ name: `c${n}`, docs: new Map<string, Float32Array>(), version: 1, history: [{ from: 0, docs: new Map<string, Float32Array>() }] }));
        let now = 1_700_000_000_000;
        for (const c of cmds) {
          const coll = colls[c.coll]!;
          if (c.t === 'upsert' || c.t === 'delete') {
            if (c.t === 'upsert') coll.docs.set(`d${c.id}`, docPool[c.vec]!);
            else if (!coll.docs.delete(`d${c.id}`)) continue;
            coll.version++;
            coll.history.push({ from: now, docs: new Map(coll.docs) });
            continue;
          }
          now += c.dt;
          const vector = queryPool[c.pool]!;
          const q: CacheQuery = { collection: coll.name, vector, k: c.k, filterKey: c.evenOnly ? 'even' : '', version: coll.version, nowMs: now };
          const got = cache.lookup(q);
          if (got === undefined) {
            cache.offer(q, exact(coll.docs, vector, c.k, c.evenOnly));
            continue;
          }
          served++;
          // Versions whose lifetime [from, next.from) overlaps [now - S, now].
          const candidates = coll.history.filter((h, i) => (coll.history[i + 1]?.from ?? Infinity) >= now - S && h.from <= now);
          const ok = candidates.some((h) => JSON.stringify(exact(h.docs, vector, c.k, c.evenOnly)) === JSON.stringify(got));
          expect(ok).toBe(true);
          if (JSON.stringify(exact(coll.docs, vector, c.k, c.evenOnly)) !== JSON.stringify(got)) stale++;
        }
      }),
      { seed: 99, numRuns: 200 },
    );
    expect(served).toBeGreaterThan(100);
    expect(stale).toBeGreaterThan(0); // staleness was actually used
  });

  it('learned admission/eviction has a hit rate ≥ LRU of the same capacity on a Zipf workload with near-duplicates', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), fc.constantFrom(0.8, 1.0, 1.2), (seed, s) => {
        const capacity = 150;
        const warm = 15_000;
        const wl = zipfWorkload({ seed, dim: 16, topics: 4000, s, queries: warm + 30_000, noise: 0.01 });
        const rate = (learned: boolean): number => {
          const predictor = new LearnedPredictor();
          const cache = new SemanticCache({ predictor, options: { capacity } });
          let hits = 0;
          for (let i = 0; i < wl.length; i++) {
            if (learned && i === warm) predictor.load(trainPredictor(cache.accessLog.snapshot(), { horizon: capacity }));
            const x = wl[i]!;
            const q: CacheQuery = { collection: 'c', vector: x.vector, k: 10, filterKey: '', version: 1, nowMs: i };
            const got = cache.lookup(q);
            if (got === undefined) cache.offer(q, [{ id: `t${x.topic}`, score: 1 }]);
            else if (i >= warm) hits++;
          }
          return hits / (wl.length - warm);
        };
        const lru = rate(false);
        const learned = rate(true);
        expect(learned).toBeGreaterThanOrEqual(lru);
      }),
      { seed: 7, numRuns: 4 },
    );
  });
});
