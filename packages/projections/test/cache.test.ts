import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { AccessLog, CacheError, HybridCache, LearnedPredictor, MAX_SCOPE_KEY_CHARS, SemanticCache, cacheOptionsFromConfig, newAccessStats, resolveCacheOptions, resolveSupervisorOptions, supervisorOptionsFromConfig, touchAccessStats, trainPredictor, validateWeights } from '../src/cache/index.js';
import type { CacheQuery, SearchHit } from '../src/cache/index.js';
import { randomVector, rng, zipfWorkload } from './cacheWorkload.js';

const v = (...xs: number[]): Float32Array => new Float32Array(xs);
const q = (vector: Float32Array, over: Partial<CacheQuery> = {}): CacheQuery => ({ collection: 'c', vector, k: 3, filterKey: '', version: 1, nowMs: 1000, ...over });
const hits = (...ids: string[]): SearchHit[] => ids.map((id, i) => ({ id, score: 1 - i / 10 }));

async function metric(reg: Registry, name: string): Promise<number> {
  const m = reg.getSingleMetric(name);
  return (await m!.get()).values[0]?.value ?? 0;
}

describe('AccessLog', () => {
  it('is a bounded ring: keeps the newest records in order, seq counts every record', () => {
    const log = new AccessLog(3);
    for (let i = 0; i < 5; i++) log.record(100 + i, 'c', i * 10, [`d${i}`]);
    expect(log.seq).toBe(5);
    expect(log.size).toBe(3);
    expect([...log.entries()].map((e) => [e.seq, e.fingerprint, e.timeMs, e.ids?.[0]])).toEqual([
      [2, 20, 102, 'd2'],
      [3, 30, 103, 'd3'],
      [4, 40, 104, 'd4'],
    ]);
    const snap = log.snapshot();
    expect(snap.firstSeq).toBe(2);
    expect([...snap.fingerprints]).toEqual([20, 30, 40]);
    log.setIds(1, ['gone']); // already overwritten: ignored
    log.setIds(4, ['x']);
    expect([...log.entries()].at(-1)?.ids).toEqual(['x']);
  });

  it('rejects a non-positive capacity', () => {
    expect(() => new AccessLog(0)).toThrow(RangeError);
  });
});

describe('options', () => {
  it('defaults are the DESIGN.md values and bad fields are named', () => {
    const o = resolveCacheOptions();
    expect(o).toMatchObject({ enabled: true, similarityThreshold: 0.99, capacity: 10000, maxStalenessMs: 0, training: { intervalSecs: 60, minSamples: 100 } });
    expect(resolveSupervisorOptions()).toMatchObject({ maxRestarts: 10, restartBackoffSeconds: [1, 2, 4, 8, 16] });
    expect(() => resolveCacheOptions({ similarityThreshold: 1.5 })).toThrow(/similarityThreshold/);
    expect(() => resolveCacheOptions({ training: { intervalSecs: 0 } })).toThrow(CacheError);
    expect(() => resolveSupervisorOptions({ restartBackoffSeconds: [] })).toThrow(/restartBackoffSeconds/);
  });
});

describe('SemanticCache', () => {
  it('serves a near-duplicate (cosine ≥ threshold) in the same scope, and nothing else', async () => {
    const reg = new Registry();
    const c = new SemanticCache({ registry: reg });
    const a = v(1, 0, 0, 0);
    expect(c.lookup(q(a))).toBeUndefined();
    c.offer(q(a), hits('x', 'y', 'z'));
    expect(c.lookup(q(v(2, 0.01, 0, 0)))?.map((h) => h.id)).toEqual(['x', 'y', 'z']); // scaled + tiny turn: cos > 0.99
    expect(c.lookup(q(v(1, 0.2, 0, 0)))).toBeUndefined(); // cos ≈ 0.98
    expect(c.lookup(q(a, { k: 4 }))).toBeUndefined();
    expect(c.lookup(q(a, { filterKey: '{"t":1}' }))).toBeUndefined();
    expect(c.lookup(q(a, { collection: 'other' }))).toBeUndefined();
    expect(c.lookup(q(v(0, 0, 0, 0)))).toBeUndefined();
    expect(await metric(reg, 'cache_hits_total')).toBe(1);
    expect(await metric(reg, 'cache_misses_total')).toBe(6);
    expect(c.accessLog.seq).toBe(6); // the zero vector is not logged
  });

  it('never serves an answer from before a collection change unless staleness is opted in', () => {
    const c = new SemanticCache();
    const a = v(0, 1, 0);
    c.offer(q(a, { version: 5 }), hits('old'));
    expect(c.lookup(q(a, { version: 5 }))?.[0]?.id).toBe('old');
    expect(c.lookup(q(a, { version: 6 }))).toBeUndefined();
    expect(c.stats().entries).toBe(0); // dropped, not kept around
    c.offer(q(a, { version: 5 }), hits('older')); // an answer already superseded is not admitted
    expect(c.stats().entries).toBe(0);

    const s = new SemanticCache({ options: { maxStalenessMs: 500 } });
    s.offer(q(a, { version: 5, nowMs: 1000 }), hits('old'));
    expect(s.lookup(q(a, { version: 6, nowMs: 1400 }))?.[0]?.id).toBe('old');
    expect(s.lookup(q(a, { version: 6, nowMs: 1600 }))).toBeUndefined();
  });

  it('an answer of a dropped collection never serves the one created after it under the same name, within maxStalenessMs too', () => {
    const a = v(1, 0);
    const s = new SemanticCache({ options: { maxStalenessMs: 60_000 } });
    s.offer(q(a, { version: 3, createdSeq: 1, nowMs: 1000 }), hits('old'));
    expect(s.lookup(q(a, { version: 4, createdSeq: 1, nowMs: 1100 }))?.[0]?.id).toBe('old'); // the same collection, within the bound
    expect(s.lookup(q(a, { version: 9, createdSeq: 6, nowMs: 1100 }))).toBeUndefined(); // created again at seq 6
  });

  it('remembers queries within its bytes whatever their filters weigh, and neither caches nor remembers a scope over MAX_SCOPE_KEY_CHARS', () => {
    const maxBytes = 1 << 20;
    const c = new SemanticCache({ options: { capacity: 100, maxBytes } });
    const r = rng(3);
    // 300 distinct filters of 10 000 characters each (~20 KB of key each): 300 remembered would be ~6 MB.
    for (let i = 0; i < 300; i++) {
      const x = randomVector(r, 4);
      const filterKey = `{"tag":{"$in":[${i},"${'v'.repeat(10_000)}"]}}`;
      expect(c.lookup(q(x, { filterKey }))).toBeUndefined();
      c.offer(q(x, { filterKey }), hits(`d${i}`));
    }
    const st = c.stats();
    // Every remembered query holds its key: all of them together stay within maxBytes and the
    // ghosts' quarter of it on top.
    expect(st.tracked * 20_000).toBeLessThanOrEqual(maxBytes * 1.25);
    expect(st.bytes).toBeLessThanOrEqual(maxBytes);
    expect(st.entries).toBeGreaterThan(0);

    const big = `{"tag":{"$in":["${'v'.repeat(MAX_SCOPE_KEY_CHARS)}"]}}`;
    const c2 = new SemanticCache();
    const x = v(1, 2);
    expect(c2.lookup(q(x, { filterKey: big }))).toBeUndefined();
    c2.offer(q(x, { filterKey: big }), hits('a'));
    expect(c2.lookup(q(x, { filterKey: big }))).toBeUndefined();
    expect(c2.stats()).toMatchObject({ entries: 0, tracked: 0, bytes: 0 });
  });

  it('returns copies: callers cannot corrupt an entry', () => {
    const c = new SemanticCache();
    c.offer(q(v(1, 1)), hits('a', 'b'));
    c.lookup(q(v(1, 1)))!.pop();
    expect(c.lookup(q(v(1, 1)))?.length).toBe(2);
  });

  it('is bounded in entries and in bytes, evicting LRU without a model', async () => {
    const reg = new Registry();
    const c = new SemanticCache({ registry: reg, options: { capacity: 3 } });
    const r = rng(7);
    const vs = Array.from({ length: 5 }, () => randomVector(r, 8));
    for (const [i, x] of vs.entries()) c.offer(q(x), hits(`d${i}`));
    expect(c.stats().entries).toBe(3);
    expect(await metric(reg, 'cache_evictions_total')).toBe(2);
    expect(c.lookup(q(vs[0]!))).toBeUndefined();
    expect(c.lookup(q(vs[4]!))?.[0]?.id).toBe('d4');

    const b = new SemanticCache({ options: { maxBytes: 1000 } });
    for (const [i, x] of vs.entries()) b.offer(q(x), hits(`d${i}`, 'e', 'f', 'g', 'h', 'i'));
    expect(b.stats().bytes).toBeLessThanOrEqual(1000);
    expect(b.stats().entries).toBeGreaterThan(0);
    expect(b.stats().entries).toBeLessThan(5);
    b.offer(q(vs[0]!), hits(...Array.from({ length: 100 }, (_, i) => `too-big-${i}`)));
    expect(b.stats().bytes).toBeLessThanOrEqual(1000);
  });

  it('remembers uncached queries within historyCapacity and a quarter of maxBytes', () => {
    const r = rng(3);
    const byCount = new SemanticCache({ options: { capacity: 2, historyCapacity: 5 } });
    const byBytes = new SemanticCache({ options: { capacity: 2, maxBytes: 4400 } }); // ghosts: ≤ 1100 bytes = 5 of 204 (160, a vector of dim 8, the scope's 6 characters)
    for (let i = 0; i < 100; i++) {
      const x = randomVector(r, 8);
      byCount.lookup(q(x));
      byBytes.lookup(q(x));
    }
    expect(byCount.stats().tracked).toBe(5);
    expect(byBytes.stats().tracked).toBe(5);
  });

  it('disabled: never serves, never stores', () => {
    const c = new SemanticCache({ options: { enabled: false } });
    c.offer(q(v(1, 0)), hits('a'));
    expect(c.lookup(q(v(1, 0)))).toBeUndefined();
    expect(c.stats().entries).toBe(0);
  });

  it('invalidateCollection drops only that collection', () => {
    const c = new SemanticCache();
    c.offer(q(v(1, 0)), hits('a'));
    c.offer(q(v(1, 0), { collection: 'd' }), hits('b'));
    expect(c.invalidateCollection('c')).toBe(1);
    expect(c.lookup(q(v(1, 0)))).toBeUndefined();
    expect(c.lookup(q(v(1, 0), { collection: 'd' }))?.[0]?.id).toBe('b');
  });
});

describe('LearnedPredictor', () => {
  it('learns that frequently asked fingerprints come back; weights survive JSON', () => {
    const wl = zipfWorkload({ seed: 3, dim: 4, topics: 2000, s: 1, queries: 20000, noise: 0 });
    const fps = Float64Array.from(wl.map((x) => x.topic));
    const w = trainPredictor({ fingerprints: fps }, { horizon: 200 })!;
    expect(w.samples).toBeGreaterThan(1000);
    const p = new LearnedPredictor();
    expect(p.trained).toBe(false);
    p.load(JSON.parse(JSON.stringify(w)));
    expect(p.trained).toBe(true);
    const hot = newAccessStats();
    const cold = newAccessStats();
    for (let t = 0; t < 1000; t += 10) touchAccessStats(hot, t);
    touchAccessStats(cold, 990);
    expect(p.predict(hot, 1000)).toBeGreaterThan(p.predict(cold, 1000));
    p.clear();
    expect(p.trained).toBe(false);
    expect(() => p.load({ ...w, w: [1, 2] })).toThrow(CacheError);
    expect(() => validateWeights(null)).toThrow(/format/);
  });

  it('returns undefined with too few examples', () => {
    expect(trainPredictor({ fingerprints: new Float64Array([1, 2, 1]) }, { horizon: 1 })).toBeUndefined();
  });
});

describe('config mapping', () => {
  it('maps the YAML keys of cache: and error_recovery.training:', () => {
    const o = resolveCacheOptions(cacheOptionsFromConfig({ similarity_threshold: 0.95, capacity: 5, max_staleness_ms: 100, training: { interval_secs: 30, min_samples: 7 } }));
    expect(o).toMatchObject({ similarityThreshold: 0.95, capacity: 5, maxStalenessMs: 100, training: { intervalSecs: 30, minSamples: 7 } });
    expect(resolveSupervisorOptions(supervisorOptionsFromConfig({ max_restarts: 3, restart_backoff_seconds: [1, 3] }))).toMatchObject({ maxRestarts: 3, restartBackoffSeconds: [1, 3] });
    expect(() => resolveCacheOptions(cacheOptionsFromConfig({ capacity: 0 }))).toThrow(/capacity/);
  });

  it('a disabled HybridCache caches nothing and starts no worker', async () => {
    let spawned = 0;
    const hc = new HybridCache({
      options: { enabled: false },
      spawn: () => {
        spawned++;
        return { post: () => {}, terminate: () => Promise.resolve() };
      },
    });
    hc.start();
    hc.offer(q(v(1, 0)), hits('a'));
    expect(hc.lookup(q(v(1, 0)))).toBeUndefined();
    expect(spawned).toBe(0);
    expect(hc.status()).toMatchObject({ enabled: false, policy: 'lru', training: { state: 'idle' } });
    await hc.stop();
  });
});
