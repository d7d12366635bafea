/*
 * Searches during a checkpoint (issue 3). Real Projections (hot tier + HNSW cold tier in its
 * worker) over an EventLog in a temp dir, two collections of high-dimensional vectors (768-d and
 * 1536-d by default, cosine, with metadata). A searcher issues one search every 20 ms; the bench
 * times every search and the longest the main thread's event loop went without a turn (a 1 ms
 * interval timer), first for `--secs` with nothing else running (the baseline), then while
 * `Projections.checkpoint()` writes a checkpoint, in the same run.
 *
 * Run `npx tsc -b` first (or `pnpm bench checkpointStall`).
 *
 *   pnpm bench checkpointStall [--a 20000] [--b 10000] [--reps 3] [--secs 1]
 *
 * Writes bench/results/checkpoint-stall.json.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventLog, seededRandom } from '@kyrodb/log';
import type { EventInput } from '@kyrodb/log';
import { Projections } from '@kyrodb/projections';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? Number(process.argv[i + 1]) : def;
}

const SPECS = [
  { name: 'a', dim: 768, n: arg('a', 20_000) },
  { name: 'b', dim: 1536, n: arg('b', 10_000) },
];
const REPS = arg('reps', 3);
const SECS = arg('secs', 1);

interface Window {
  searches: number;
  degraded: number;
  maxSearchMs: number;
  p50SearchMs: number;
  maxLoopGapMs: number;
  ms: number;
}

/** Searches every 20 ms and watches the event loop until `until` resolves. */
async function watch(p: Projections, until: Promise<unknown>, rand: () => number): Promise<Window> {
  let maxGap = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const t = performance.now();
    maxGap = Math.max(maxGap, t - last);
    last = t;
  }, 1);
  const lat: number[] = [];
  let degraded = 0;
  let stop = false;
  const t0 = performance.now();
  const searcher = (async () => {
    while (!stop) {
      const q = new Float32Array(768);
      for (let i = 0; i < q.length; i++) q[i] = rand() - 0.5;
      const t = performance.now();
      const r = await p.search('a', { vector: q, k: 10 });
      lat.push(performance.now() - t);
      if (r.degraded) degraded += 1;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  await until;
  const ms = performance.now() - t0;
  stop = true;
  await searcher;
  clearInterval(timer);
  lat.sort((a, b) => a - b);
  return { searches: lat.length, degraded, maxSearchMs: lat[lat.length - 1] ?? 0, p50SearchMs: lat[Math.floor(lat.length / 2)] ?? 0, maxLoopGapMs: maxGap, ms };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kyro-cpstall-'));
const rand = seededRandom(7);
const log = await EventLog.open({ dir, logger: () => {} });
const p = await Projections.open({ log, dataDir: dir, logger: () => {}, checkpoint: { everyEvents: 0, everySecs: 0 } });
try {
  for (const s of SPECS) {
    await log.append([{ type: 'collection.created', collection: s.name, body: { dimension: s.dim, metric: 'cosine', hnsw: { M: 16, efConstruction: 100, efSearch: 50 } } }]);
    for (let b = 0; b < s.n; b += 500) {
      const batch: EventInput[] = [];
      for (let i = b; i < Math.min(s.n, b + 500); i++) {
        const v = new Float32Array(s.dim);
        for (let j = 0; j < s.dim; j++) v[j] = rand() - 0.5;
        batch.push({ type: 'vector.upserted', collection: s.name, body: { id: `${s.name}${i}`, vector: v, metadata: { n: i, tag: `t${i % 10}` } } });
      }
      await log.append(batch);
    }
  }
  await p.waitForCold(log.head().seq);
  console.log(`${SPECS.map((s) => `${s.n} × ${s.dim}-d`).join(' + ')}: indexed; ${REPS} reps of ${SECS} s baseline, then a checkpoint`);
  const rows: { rep: number; baseline: Window; checkpoint: Window }[] = [];
  for (let rep = 1; rep <= REPS; rep++) {
    const baseline = await watch(p, new Promise((r) => setTimeout(r, SECS * 1000)), rand);
    const checkpoint = await watch(p, p.checkpoint(), rand);
    rows.push({ rep, baseline, checkpoint });
    const f = (w: Window): string => `${w.searches} searches, ${w.degraded} degraded, p50 ${w.p50SearchMs.toFixed(1)} ms, max ${w.maxSearchMs.toFixed(1)} ms; event loop's longest gap ${w.maxLoopGapMs.toFixed(0)} ms`;
    console.log(`rep ${rep}: baseline (${SECS} s): ${f(baseline)}`);
    console.log(`rep ${rep}: checkpoint (${checkpoint.ms.toFixed(0)} ms): ${f(checkpoint)}`);
  }
  const out = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'results', 'checkpoint-stall.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify({ when: new Date().toISOString(), specs: SPECS, rows }, null, 1));
  console.log(`wrote ${out}`);
} finally {
  await p.close();
  await log.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
