/*
 * Semantic-cache benchmark (issue 6). A Zipf query workload with near-duplicate queries over 100k
 * vectors, served three ways in the same run over the same HNSW index (hnswlib-node, standing in for
 * the tiers): no cache, an LRU semantic cache, and the learned cache (same capacity) whose model is
 * trained by the real TrainingSupervisor in a worker thread after a warm-up. Reports hit rate,
 * mean/p50/p99 latency per query, how well served answers agree with a fresh search, and the cost of
 * the access logger on the query path.
 *
 *   pnpm exec tsx bench/src/cache.ts [--vectors 100000] [--dim 32] [--topics 20000] [--zipf 1.0]
 *        [--capacity 1000] [--warm 20000] [--queries 60000] [--noise 0.01] [--seed 1]
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { AccessLog, LearnedPredictor, SemanticCache, TrainingSupervisor } from '../../packages/projections/src/cache/index.js';
import type { CacheQuery, SearchHit } from '../../packages/projections/src/cache/index.js';

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
const cfg = {
  vectors: arg('vectors', 100_000),
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

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const r = rng(cfg.seed);
const gauss = (): number => Math.sqrt(-2 * Math.log(r() || 1e-12)) * Math.cos(2 * Math.PI * r());

console.log(`building HNSW over ${cfg.vectors} × ${cfg.dim} vectors …`);
const index = new HierarchicalNSW('cosine', cfg.dim);
index.initIndex(cfg.vectors, 16, 100, cfg.seed);
const tmp = new Array<number>(cfg.dim);
let t0 = performance.now();
for (let i = 0; i < cfg.vectors; i++) {
  for (let j = 0; j < cfg.dim; j++) tmp[j] = gauss();
  index.addPoint(tmp, i);
}
const buildMs = performance.now() - t0;
index.setEf(64);

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

function search(arr: number[]): SearchHit[] {
  const res = index.searchKnn(arr, cfg.k);
  return res.neighbors.map((l, i) => ({ id: `v${l}`, score: 1 - res.distances[i]! }));
}
for (let i = 0; i < 2000; i++) search(workload[i % workload.length]!.arr); // JIT/cache warm-up of the tier

interface PolicyResult {
  policy: string;
  hitRate: number;
  meanUs: number;
  p50Us: number;
  p99Us: number;
  hitMeanUs: number | null;
  missMeanUs: number;
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
    return { policy, cache, sup, lat: new Float64Array(cfg.queries), hits: 0, hitNs: 0, missNs: 0, overlap: 0, trainMs: null };
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
      let served: SearchHit[] | undefined;
      if (lane.cache === undefined) search(w.arr);
      else {
        const q: CacheQuery = { collection: 'bench', vector: w.f32, k: cfg.k, filterKey: '', version: 1, nowMs: i };
        served = lane.cache.lookup(q);
        if (served === undefined) lane.cache.offer(q, search(w.arr));
      }
      const ns = Number(process.hrtime.bigint() - s);
      if (i < cfg.warm) continue;
      lane.lat[i - cfg.warm] = ns / 1000;
      if (served !== undefined) {
        lane.hits++;
        lane.hitNs += ns;
        const fresh = new Set(search(w.arr).map((h) => h.id)); // untimed: does the served answer match a fresh one?
        lane.overlap += served.filter((h) => fresh.has(h.id)).length / cfg.k;
      } else lane.missNs += ns;
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

// Access logger cost: AccessLog.record alone, per call.
const log = new AccessLog(100_000);
const ids = ['a', 'b'];
const N = 2_000_000;
for (let i = 0; i < 100_000; i++) log.record(i, 'bench', i & 1023, ids);
t0 = performance.now();
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
console.log(`\nHNSW build: ${(buildMs / 1000).toFixed(1)} s; ${cfg.vectors} vectors, dim ${cfg.dim}, ${cfg.topics} query topics, Zipf s=${cfg.zipf}, noise ${cfg.noise}, capacity ${cfg.capacity}, warm-up ${cfg.warm}, measured ${cfg.queries}`);
console.log('policy   hit rate  mean µs  p50 µs  p99 µs  hit µs  miss µs  served overlap@10  entries  evictions  train ms');
for (const x of results)
  console.log(
    `${x.policy.padEnd(8)} ${(100 * x.hitRate).toFixed(2).padStart(7)}%  ${fmt(x.meanUs).padStart(7)}  ${fmt(x.p50Us).padStart(6)}  ${fmt(x.p99Us).padStart(6)}  ${fmt(x.hitMeanUs).padStart(6)}  ${fmt(x.missMeanUs).padStart(7)}  ${fmt(x.servedOverlapAt10, 3).padStart(17)}  ${String(x.entries).padStart(7)}  ${String(x.evictions).padStart(9)}  ${fmt(x.trainMs, 0).padStart(8)}`,
  );
const gainPts = 100 * (learned.hitRate - lru.hitRate);
const gainRel = lru.hitRate > 0 ? (100 * (learned.hitRate - lru.hitRate)) / lru.hitRate : 0;
console.log(`\nlearned vs LRU: ${gainPts >= 0 ? '+' : ''}${gainPts.toFixed(2)} points of hit rate (${gainRel >= 0 ? '+' : ''}${gainRel.toFixed(1)}% relative); mean latency ${fmt(learned.meanUs)} vs ${fmt(lru.meanUs)} µs (no cache ${fmt(none.meanUs)} µs)`);
console.log(`access logger: ${recordNs.toFixed(1)} ns per record (empty loop ${loopNs.toFixed(1)} ns) = ${((100 * recordNs) / 1000 / learned.meanUs).toFixed(3)}% of a learned-cache query's mean latency`);

const out = { config: cfg, buildMs, results, learnedVsLru: { hitRatePoints: gainPts, hitRateRelativePct: gainRel }, accessLogger: { recordNs, emptyLoopNs: loopNs, sink } };
fs.mkdirSync(path.join(import.meta.dirname, '..', 'results'), { recursive: true });
fs.writeFileSync(path.join(import.meta.dirname, '..', 'results', 'cache.json'), JSON.stringify(out, null, 2));
console.log('wrote bench/results/cache.json');
