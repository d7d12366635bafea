// The HTTP layer's overhead: write throughput (batches of 100 × 128-d vectors) and search latency
// p50/p99 with 32 concurrent clients through a real `kyrodb serve` child process (load by
// autocannon), beside the same operations called in-process on the same machine in the same run.
// Prints a table and writes bench/results/api.json.
//   pnpm exec tsx bench/src/api.ts            (BENCH_SECONDS=10 for longer runs)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EventInput } from '@kyrodb/log';
import { loadConfig, startNode } from '@kyrodb/api';
import { seededRandom } from '@kyrodb/log';

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number; average: number };
  non2xx: number;
  errors: number;
  duration: number;
}
type Autocannon = (o: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 5);
const CONNECTIONS = 32;
const DIM = 128;
const BATCH = 100;
const PRELOAD = Number(process.env['BENCH_PRELOAD'] ?? 20_000);
const POOL = 64;
// The semantic cache would answer the repeated query pool from memory; off by default so the
// search figures measure the tiers (BENCH_CACHE=1 to include it).
const CACHE = process.env['BENCH_CACHE'] === '1';

const rand = seededRandom(42);
const vec = (): number[] => Array.from({ length: DIM }, () => rand() * 2 - 1);
const batches = Array.from({ length: POOL }, (_, b) => Array.from({ length: BATCH }, (_, i) => ({ id: `w${b}-${i}`, vector: vec() })));
const queries = Array.from({ length: POOL }, () => vec());

/** What each side measures. `degradedShare`: searches answered without the cold tier (timeout/breaker). */
type Figures = { writeBatchesPerSec: number; searchP50Ms: number; searchP99Ms: number; searchesPerSec: number; degradedShare: number };

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

async function inProcess(): Promise<Figures> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kyro-bench-api-inproc-'));
  const cfg = loadConfig({ env: {}, overrides: { 'storage.data_dir': path.join(dir, 'data'), 'backup.local_dir': path.join(dir, 'backups'), 'backup.enabled': false, 'cache.enabled': CACHE } });
  const node = await startNode(cfg, { listen: false, logger: () => undefined });
  try {
    await node.log.append([{ type: 'collection.created', collection: 'bench', body: { dimension: DIM, metric: 'cosine', hnsw: { M: 16, efConstruction: 200, efSearch: 64 } } }]);
    await preloadInProcess(node);
    // searches first (32 concurrent callers), on the preloaded index both sides share
    const lat: number[] = [];
    let degraded = 0;
    let stop = false;
    const t1 = performance.now();
    await Promise.all(
      Array.from({ length: CONNECTIONS }, async (_, c) => {
        let i = c;
        while (!stop) {
          const s = performance.now();
          const res = await node.projections.search('bench', { vector: new Float32Array(queries[i++ % POOL]!), k: 10 });
          lat.push(performance.now() - s);
          if (res.degraded) degraded++;
          if (performance.now() - t1 > SECONDS * 1000) stop = true;
        }
      }),
    );
    const searchSecs = (performance.now() - t1) / 1000;
    const toEvents = (b: { id: string; vector: number[] }[]): EventInput[] => b.map((v) => ({ type: 'vector.upserted', collection: 'bench', body: { id: v.id, vector: new Float32Array(v.vector) } }));
    const eventBatches = batches.map(toEvents);
    // writes: 32 concurrent callers, each append + read-your-writes wait (what the route does)
    let n = 0;
    stop = false;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CONNECTIONS }, async (_, c) => {
        let i = c;
        while (!stop) {
          const r = await node.log.append(eventBatches[i++ % POOL]!);
          await node.projections.waitForApplied(r.lastSeq);
          n++;
          if (performance.now() - t0 > SECONDS * 1000) stop = true;
        }
      }),
    );
    const writeBatchesPerSec = n / ((performance.now() - t0) / 1000);
    return { writeBatchesPerSec, searchP50Ms: pct(lat, 50), searchP99Ms: pct(lat, 99), searchesPerSec: lat.length / searchSecs, degradedShare: degraded / Math.max(1, lat.length) };
  } finally {
    await node.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function preloadInProcess(node: Awaited<ReturnType<typeof startNode>>): Promise<void> {
  for (let i = 0; i < PRELOAD; i += 1000) {
    const evs: EventInput[] = Array.from({ length: Math.min(1000, PRELOAD - i) }, (_, j) => ({ type: 'vector.upserted', collection: 'bench', body: { id: `p${i + j}`, vector: new Float32Array(vec()) } }));
    await node.log.append(evs);
  }
  await waitCold(() => node.projections.health().lagEvents);
}

async function waitCold(lag: () => number | Promise<number>): Promise<void> {
  for (let i = 0; i < 1800 && (await lag()) > 0; i++) await new Promise((r) => setTimeout(r, 100));
}

async function overHttp(): Promise<Figures & { non2xx: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kyro-bench-api-http-'));
  const proc = spawn(process.execPath, [path.join(ROOT, 'packages/api/dist/cli.js'), 'serve', '--port', '0', '--json', '--data-dir', path.join(dir, 'data')], {
    env: { ...process.env, KYRODB_BACKUP_ENABLED: 'false', KYRODB_BACKUP_LOCAL_DIR: path.join(dir, 'backups'), KYRODB_CACHE_ENABLED: String(CACHE) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.includes('"listening"'));
      if (line !== undefined) resolve((JSON.parse(line) as { url: string }).url);
    });
    proc.on('exit', (c) => reject(new Error(`server exited ${c}`)));
  });
  const post = (p: string, body: unknown): Promise<Response> => fetch(url + p, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  try {
    await fetch(url + '/v1/collections/bench', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ dimension: DIM, metric: 'cosine' }) });
    for (let i = 0; i < PRELOAD; i += 1000) {
      const r = await post('/v1/collections/bench/vectors', { vectors: Array.from({ length: Math.min(1000, PRELOAD - i) }, (_, j) => ({ id: `p${i + j}`, vector: vec() })) });
      if (r.status !== 200) throw new Error(`preload: ${r.status} ${await r.text()}`);
    }
    const lag = async (): Promise<number> => ((await (await fetch(url + '/v1/admin/health')).json()) as { projections: { lagEvents: number } }).projections.lagEvents;
    await waitCold(lag);
    const degradedTotal = async (): Promise<number> => {
      const text = await (await fetch(url + '/metrics')).text();
      return [...text.matchAll(/^query_degradation_total\{[^}]*\} (\S+)$/gm)].reduce((a, m) => a + Number(m[1]), 0);
    };
    const d0 = await degradedTotal();
    const searchBodies = queries.map((q) => JSON.stringify({ vector: q, k: 10 }));
    const s = await autocannon({
      url: url + '/v1/collections/bench/search',
      connections: CONNECTIONS,
      duration: SECONDS,
      requests: searchBodies.map((body) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body })),
    });
    const degradedShare = ((await degradedTotal()) - d0) / Math.max(1, s.requests.total);
    const writeBodies = batches.map((b) => JSON.stringify({ vectors: b }));
    const w = await autocannon({
      url: url + '/v1/collections/bench/vectors',
      connections: CONNECTIONS,
      duration: SECONDS,
      requests: writeBodies.map((body) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body })),
    });
    return { writeBatchesPerSec: w.requests.total / w.duration, searchP50Ms: s.latency.p50, searchP99Ms: s.latency.p99, searchesPerSec: s.requests.total / s.duration, degradedShare, non2xx: w.non2xx + s.non2xx + w.errors + s.errors };
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.on('exit', r));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const fmt = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : String(x));

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 2);
const locals: Figures[] = [];
const remotes: (Figures & { non2xx: number })[] = [];
// interleaved (in-process, HTTP, in-process, HTTP, …) so drift on a shared machine hits both sides
for (let r = 0; r < ROUNDS; r++) {
  locals.push(await inProcess());
  remotes.push(await overHttp());
}
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const agg = <T extends Figures>(xs: T[]): Figures => ({
  writeBatchesPerSec: median(xs.map((x) => x.writeBatchesPerSec)),
  searchP50Ms: median(xs.map((x) => x.searchP50Ms)),
  searchP99Ms: median(xs.map((x) => x.searchP99Ms)),
  searchesPerSec: median(xs.map((x) => x.searchesPerSec)),
  degradedShare: median(xs.map((x) => x.degradedShare)),
});
const local = agg(locals);
const remote = { ...agg(remotes), non2xx: remotes.reduce((a, x) => a + x.non2xx, 0) };
console.log(`\nAPI benchmark: ${CONNECTIONS} concurrent clients, ${SECONDS} s per phase, ${ROUNDS} interleaved rounds (median shown), batches of ${BATCH} × ${DIM}-d, ${PRELOAD} vectors preloaded, semantic cache ${CACHE ? 'on' : 'off'}, ${os.cpus().length} CPUs (the load generator shares them with the server)`);
console.table({
  'write batches/s': { 'in-process': fmt(local.writeBatchesPerSec), HTTP: fmt(remote.writeBatchesPerSec), 'HTTP / in-process': fmt(remote.writeBatchesPerSec / local.writeBatchesPerSec, 2) },
  'write vectors/s': { 'in-process': fmt(local.writeBatchesPerSec * BATCH, 0), HTTP: fmt(remote.writeBatchesPerSec * BATCH, 0), 'HTTP / in-process': fmt(remote.writeBatchesPerSec / local.writeBatchesPerSec, 2) },
  'search p50 ms': { 'in-process': fmt(local.searchP50Ms, 3), HTTP: fmt(remote.searchP50Ms, 3), 'HTTP / in-process': fmt(remote.searchP50Ms / local.searchP50Ms, 2) },
  'search p99 ms': { 'in-process': fmt(local.searchP99Ms, 3), HTTP: fmt(remote.searchP99Ms, 3), 'HTTP / in-process': fmt(remote.searchP99Ms / local.searchP99Ms, 2) },
  'searches/s': { 'in-process': fmt(local.searchesPerSec, 0), HTTP: fmt(remote.searchesPerSec, 0), 'HTTP / in-process': fmt(remote.searchesPerSec / local.searchesPerSec, 2) },
  'degraded searches': { 'in-process': fmt(local.degradedShare * 100, 1) + '%', HTTP: fmt(remote.degradedShare * 100, 1) + '%', 'HTTP / in-process': '' },
});
console.log(`load average during the run: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (figures are only comparable on an otherwise idle machine)`);
if (remote.non2xx > 0) console.warn(`WARNING: ${remote.non2xx} non-2xx answers or errors over HTTP`);
const outDir = path.join(ROOT, 'bench', 'results');
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, 'api.json'), JSON.stringify({ when: new Date().toISOString(), node: process.version, cpus: os.cpus().length, seconds: SECONDS, connections: CONNECTIONS, batch: BATCH, dim: DIM, preload: PRELOAD, rounds: ROUNDS, cache: CACHE, inProcess: local, http: remote, perRound: { inProcess: locals, http: remotes } }, null, 2));
