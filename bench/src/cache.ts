/*
 * Semantic-cache benchmark (issue 6). A Zipf query workload with near-duplicate queries over 100k
 * vectors, served three ways in the same run over the same HNSW index (hnswlib-node, standing in for
 * the tiers): no cache, an LRU semantic cache, and the learned cache (same capacity) whose model is
 * trained by the real TrainingSupervisor in a worker thread after a warm-up. Reports hit rate,
 * mean/p50/p99 latency per query, how well served answers agree with a fresh search, and the cost of
 * the access logger on the query path.
 *
 * `--tiers projections` serves the same workload through the real engine instead: an EventLog in a
 * temp dir, Projections (hot tier + HNSW cold tier in its worker) with the cache plugged in as its
 * cache layer, so latencies include the tiered executor and the worker hop.
 *
 * Run `npx tsc -b` first (the bench imports the built packages).
 *
 *   pnpm exec tsx bench/src/cache.ts [--tiers hnsw|projections] [--n 100000] [--dim 32]
 *        [--topics 20000] [--zipf 1.0] [--capacity 1000] [--warm 20000] [--queries 60000]
 *        [--noise 0.01] [--seed 1]
 */
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { createRequire } from 'node:module';
import { EventLog, seededRandom } from '@kyrodb/log';
import { AccessLog, LearnedPredictor, Projections, SemanticCache, TrainingSupervisor } from '@kyrodb/projections';
import type { CacheQuery, QueryCacheLayer, SearchHit } from '@kyrodb/projections';

// hnswlib-node is a dependency of @kyrodb/projections, not of the bench package: resolve it from there.
const requireFromProjections = createRequire(new URL('../../packages/projections/package.json', import.meta.url));
interface HnswIndex {
  initIndex(maxElements: number, m: number, efConstruction: number, seed: number): void;
  addPoint(point: number[], label: number): void;
  setEf(ef: number): void;
  searchKnn(point: number[], k: number): { distances: number[]; neighbors: number[] };
}
const { HierarchicalNSW } = requireFromProjections('hnswlib-node') as { HierarchicalNSW: new (space: 'cosine', dim: number) => HnswIndex };

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? Number(process.argv[i + 1]) : def;
}
const tiersIdx = process.argv.indexOf('--tiers');
const tiers = tiersIdx >= 0 ? process.argv[tiersIdx + 1] : 'hnsw';
if (tiers !== 'hnsw' && tiers !== 'projections') throw new Error('--tiers must be hnsw or projections');
// `--vectors` names the kind of vectors in the other benches (vectors.ts); the count is `--n` everywhere.
if (process.argv.includes('--vectors')) throw new Error('cache bench: give the number of vectors with --n (--vectors names their kind in the other benches)');
const cfg = {
  tiers,
  vectors: arg('n', 100_000),
  dim: arg('dim', 32),
  topics: arg('topics', 20_000),
  zipf: arg('zipf', 1.0),
  capacity: arg('capacity', 1000),
  warm: arg('warm', 20_000),
  queries: arg('queries', 60_000),
  noise: arg('noise', 0.01),
  seed: arg('seed', 1),
  k: 10,
};

const rng = seededRandom;
const r = rng(cfg.seed);
const gauss = (): number => Math.sqrt(-2 * Math.log(r() || 1e-12)) * Math.cos(2 * Math.PI * r());

// Topics are random directions; a query is its topic plus Gaussian noise (near-duplicates).
const topics: number[][] = [];
for (let t = 0; t < cfg.topics; t++) {
  const v = Array.from({ length: cfg.dim }, gauss);
  const n = Math.hypot(...v);
  topics.push(v.map((x) => x / n));
}
const cdf: number[] = [];
let tot = 0;
for (let i = 1; i <= cfg.topics; i++) cdf.push((tot += 1 / Math.pow(i, cfg.zipf)));
const total = cfg.warm + cfg.queries;
const workload: { arr: number[]; f32: Float32Array; topic: number }[] = [];
for (let i = 0; i < total; i++) {
  const u = r() * tot;
  let lo = 0;
  let hi = cfg.topics - 1;
  while (lo < hi) {
    const m = (lo + hi) >> 1;
    if (cdf[m]! < u) lo = m + 1;
    else hi = m;
  }
  const arr = topics[lo]!.map((x) => x + cfg.noise * gauss());
  workload.push({ arr, f32: Float32Array.from(arr), topic: lo });
}

/** The "tiers" behind the cache: a search, and a way to route one query through a given cache. */
interface Backend {
  buildMs: number;
  /** Runs one query with `cache` as the cache layer (undefined = none); `hit` = answered by the cache. */
  query(cache: QueryCacheLayer | undefined, w: { arr: number[]; f32: Float32Array }, nowMs: number): Promise<{ hit: boolean; results: SearchHit[]; cacheNs?: number }>;
  /** A fresh, uncached answer (for the overlap figure; untimed). */
  fresh(w: { arr: number[]; f32: Float32Array }): Promise<SearchHit[]>;
  close(): Promise<void>;
}

function randomDoc(): number[] {
  const out = new Array<number>(cfg.dim);
  for (let j = 0; j < cfg.dim; j++) out[j] = gauss();
  return out;
}

function hnswBackend(): Backend {
  console.log(`building HNSW over ${cfg.vectors} × ${cfg.dim} vectors …`);
  const index = new HierarchicalNSW('cosine', cfg.dim);
  index.initIndex(cfg.vectors, 16, 100, cfg.seed);
  const t0 = performance.now();
  for (let i = 0; i < cfg.vectors; i++) index.addPoint(randomDoc(), i);
  const buildMs = performance.now() - t0;
  index.setEf(64);
  const search = (arr: number[]): SearchHit[] => {
    const res = index.searchKnn(arr, cfg.k);
    return res.neighbors.map((l, i) => ({ id: `v${l}`, score: 1 - res.distances[i]! }));
  };
  return {
    buildMs,
    query: (cache, w, nowMs) => {
      if (cache === undefined) return Promise.resolve({ hit: false, results: search(w.arr) });
      const q: CacheQuery = { collection: 'bench', vector: w.f32, k: cfg.k, filterKey: '', version: 1, nowMs };
      const a = process.hrtime.bigint();
      const served = cache.lookup(q);
      const b = process.hrtime.bigint();
      if (served !== undefined) return Promise.resolve({ hit: true, results: served, cacheNs: Number(b - a) });
      const results = search(w.arr);
      const c = process.hrtime.bigint();
      cache.offer(q, results);
      return Promise.resolve({ hit: false, results, cacheNs: Number(b - a + process.hrtime.bigint() - c) });
    },
    fresh: (w) => Promise.resolve(search(w.arr)),
    close: () => Promise.resolve(),
  };
}

async function projectionsBackend(): Promise<Backend> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kyro-bench-cache-'));
  const log = await EventLog.open({ dir, logger: () => {} });
  // One engine; the cache layer it calls is switched per query between the three policies.
  let current: QueryCacheLayer | undefined;
  const switcher: QueryCacheLayer = { lookup: (q) => current?.lookup(q), offer: (q, r) => current?.offer(q, r) };
  const proj = await Projections.open({ log, dataDir: dir, cache: switcher, logger: () => {}, checkpoint: { everyEvents: 0, everySecs: 0 }, hotTier: { maxVectors: 2 * cfg.vectors } });
  console.log(`ingesting ${cfg.vectors} × ${cfg.dim} vectors through the log and waiting for the cold tier …`);
  const t0 = performance.now();
  await log.append([{ type: 'collection.created', collection: 'bench', body: { dimension: cfg.dim, metric: 'cosine', hnsw: { M: 16, efConstruction: 100, efSearch: 64 } } }]);
  for (let i = 0; i < cfg.vectors; i += 1000) {
    const batch = [];
    for (let j = i; j < Math.min(cfg.vectors, i + 1000); j++) batch.push({ type: 'vector.upserted' as const, collection: 'bench', body: { id: `v${j}`, vector: Float32Array.from(randomDoc()) } });
    const res = await log.append(batch);
    await proj.waitForApplied(res.lastSeq);
  }
  while (proj.health().lagEvents > 0) await new Promise((resolve) => setTimeout(resolve, 200));
  const buildMs = performance.now() - t0;
  return {
    buildMs,
    query: async (cache, w) => {
      current = cache;
      const res = await proj.search('bench', { vector: w.f32, k: cfg.k });
      return { hit: res.layers.includes('cache'), results: res.results };
    },
    fresh: async (w) => {
      current = undefined;
      return (await proj.search('bench', { vector: w.f32, k: cfg.k })).results;
    },
    close: async () => {
      await proj.close();
      await log.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

const backend = cfg.tiers === 'projections' ? await projectionsBackend() : hnswBackend();
const buildMs = backend.buildMs;
for (let i = 0; i < 2000; i++) await backend.fresh(workload[i % workload.length]!); // warm-up of the tier

interface PolicyResult {
  policy: string;
  hitRate: number;
  meanUs: number;
  p50Us: number;
  p99Us: number;
  hitMeanUs: number | null;
  missMeanUs: number;
  /** Mean time of lookup + offer alone on a miss (hnsw tiers only; null otherwise). */
  missCacheOpsUs: number | null;
  /** Median of the same. */
  missCacheOpsP50Us: number | null;
  servedOverlapAt10: number | null;
  entries: number;
  bytes: number;
  evictions: number;
  trainMs: number | null;
}

function pct(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

type Policy = 'none' | 'lru' | 'learned';
interface Lane {
  policy: Policy;
  cache: SemanticCache | undefined;
  sup: TrainingSupervisor | undefined;
  lat: Float64Array;
  hits: number;
  hitNs: number;
  missNs: number;
  missCacheNs: number;
  missCacheSamples: number[];
  overlap: number;
  trainMs: number | null;
}

// The three policies run in lockstep, query by query, in a rotating order, so that load from other
// processes on the machine hits all of them alike.
async function runAll(): Promise<PolicyResult[]> {
  const lanes: Lane[] = (['none', 'lru', 'learned'] as const).map((policy) => {
    const predictor = new LearnedPredictor();
    const cache = policy === 'none' ? undefined : new SemanticCache({ options: { capacity: cfg.capacity }, ...(policy === 'learned' ? { predictor } : {}) });
    const sup = policy === 'learned' ? new TrainingSupervisor({ accessLog: cache!.accessLog, predictor, training: { intervalSecs: 3600, minSamples: 100 }, predictorTraining: { horizon: cfg.capacity } }) : undefined;
    sup?.start();
    return { policy, cache, sup, lat: new Float64Array(cfg.queries), hits: 0, hitNs: 0, missNs: 0, missCacheNs: 0, missCacheSamples: [], overlap: 0, trainMs: null };
  });
  for (let i = 0; i < total; i++) {
    if (i === cfg.warm) {
      for (const lane of lanes) {
        if (lane.sup === undefined) continue;
        const t = performance.now();
        if (!(await lane.sup.runNow())) throw new Error('training did not produce a model');
        lane.trainMs = performance.now() - t;
      }
    }
    const w = workload[i]!;
    for (let j = 0; j < lanes.length; j++) {
      const lane = lanes[(i + j) % lanes.length]!;
      const s = process.hrtime.bigint();
      const { hit, results, cacheNs } = await backend.query(lane.cache, w, i);
      const ns = Number(process.hrtime.bigint() - s);
      if (i < cfg.warm) continue;
      lane.lat[i - cfg.warm] = ns / 1000;
      if (hit) {
        lane.hits++;
        lane.hitNs += ns;
        const fresh = new Set((await backend.fresh(w)).map((h) => h.id)); // untimed: does the served answer match a fresh one?
        lane.overlap += results.filter((h) => fresh.has(h.id)).length / cfg.k;
      } else {
        lane.missNs += ns;
        lane.missCacheNs += cacheNs ?? 0;
        lane.missCacheSamples.push((cacheNs ?? 0) / 1000);
      }
    }
  }
  const out: PolicyResult[] = [];
  for (const lane of lanes) {
    await lane.sup?.stop();
    const sorted = Float64Array.from(lane.lat).sort();
    const st = lane.cache?.stats();
    out.push({
      policy: lane.policy,
      hitRate: lane.hits / cfg.queries,
      meanUs: lane.lat.reduce((a, b) => a + b, 0) / cfg.queries,
      p50Us: pct(sorted, 0.5),
      p99Us: pct(sorted, 0.99),
      hitMeanUs: lane.hits > 0 ? lane.hitNs / lane.hits / 1000 : null,
      missMeanUs: lane.missNs / Math.max(1, cfg.queries - lane.hits) / 1000,
      missCacheOpsUs: lane.cache !== undefined && cfg.tiers === 'hnsw' ? lane.missCacheNs / Math.max(1, cfg.queries - lane.hits) / 1000 : null,
      missCacheOpsP50Us: lane.cache !== undefined && cfg.tiers === 'hnsw' && lane.missCacheSamples.length > 0 ? pct(Float64Array.from(lane.missCacheSamples).sort(), 0.5) : null,
      servedOverlapAt10: lane.hits > 0 ? lane.overlap / lane.hits : null,
      entries: st?.entries ?? 0,
      bytes: st?.bytes ?? 0,
      evictions: st?.evictions ?? 0,
      trainMs: lane.trainMs,
    });
  }
  return out;
}

console.log('running none, lru and learned in lockstep …');
const results = await runAll();
await backend.close();

// Access logger cost: AccessLog.record alone, per call.
const log = new AccessLog(100_000);
const ids = ['a', 'b'];
const N = 2_000_000;
for (let i = 0; i < 100_000; i++) log.record(i, 'bench', i & 1023, ids);
let t0 = performance.now();
for (let i = 0; i < N; i++) log.record(i, 'bench', i & 1023, ids);
const recordNs = ((performance.now() - t0) * 1e6) / N;
t0 = performance.now();
let sink = 0;
for (let i = 0; i < N; i++) sink += (i & 1023) * 0.5; // the same loop without the record, as a floor
const loopNs = ((performance.now() - t0) * 1e6) / N;

const byPolicy = Object.fromEntries(results.map((x) => [x.policy, x]));
const lru = byPolicy['lru']!;
const learned = byPolicy['learned']!;
const none = byPolicy['none']!;
const fmt = (x: number | null, d = 1): string => (x === null ? '-' : x.toFixed(d));
console.log(`\ntiers: ${cfg.tiers}; index build: ${(buildMs / 1000).toFixed(1)} s; ${cfg.vectors} vectors, dim ${cfg.dim}, ${cfg.topics} query topics, Zipf s=${cfg.zipf}, noise ${cfg.noise}, capacity ${cfg.capacity}, warm-up ${cfg.warm}, measured ${cfg.queries}`);
console.log('policy   hit rate  mean µs  p50 µs  p99 µs  hit µs  miss µs  cache ops mean/p50  served overlap@10  entries  evictions  train ms');
for (const x of results)
  console.log(
    `${x.policy.padEnd(8)} ${(100 * x.hitRate).toFixed(2).padStart(7)}%  ${fmt(x.meanUs).padStart(7)}  ${fmt(x.p50Us).padStart(6)}  ${fmt(x.p99Us).padStart(6)}  ${fmt(x.hitMeanUs).padStart(6)}  ${fmt(x.missMeanUs).padStart(7)}  ${`${fmt(x.missCacheOpsUs)}/${fmt(x.missCacheOpsP50Us)}`.padStart(18)}  ${fmt(x.servedOverlapAt10, 3).padStart(17)}  ${String(x.entries).padStart(7)}  ${String(x.evictions).padStart(9)}  ${fmt(x.trainMs, 0).padStart(8)}`,
  );
const gainPts = 100 * (learned.hitRate - lru.hitRate);
const gainRel = lru.hitRate > 0 ? (100 * (learned.hitRate - lru.hitRate)) / lru.hitRate : 0;
console.log(`\nlearned vs LRU: ${gainPts >= 0 ? '+' : ''}${gainPts.toFixed(2)} points of hit rate (${gainRel >= 0 ? '+' : ''}${gainRel.toFixed(1)}% relative); mean latency ${fmt(learned.meanUs)} vs ${fmt(lru.meanUs)} µs (no cache ${fmt(none.meanUs)} µs)`);
console.log(`access logger: ${recordNs.toFixed(1)} ns per record (empty loop ${loopNs.toFixed(1)} ns) = ${((100 * recordNs) / 1000 / learned.meanUs).toFixed(3)}% of a learned-cache query's mean latency`);

const out = { config: cfg, buildMs, results, learnedVsLru: { hitRatePoints: gainPts, hitRateRelativePct: gainRel }, accessLogger: { recordNs, emptyLoopNs: loopNs, sink } };
fs.mkdirSync(path.join(import.meta.dirname, '..', 'results'), { recursive: true });
fs.writeFileSync(path.join(import.meta.dirname, '..', 'results', cfg.tiers === 'hnsw' ? 'cache.json' : 'cache-projections.json'), JSON.stringify(out, null, 2));
console.log(`wrote bench/results/${cfg.tiers === 'hnsw' ? 'cache.json' : 'cache-projections.json'}`);
