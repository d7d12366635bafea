// Benchmark of the event log (issue 2). Run: npx tsc -b && pnpm exec tsx bench/src/log.ts [--dir DIR] [--quick]
// Prints a table and writes bench/results/log.json. Baselines are measured in the same run, in the same directory.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EventLog } from '@kyrodb/log';
import type { EventInput, EventLogOptions } from '@kyrodb/log';
import { vectorsOf } from './vectors.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const dirArg = args.indexOf('--dir');
const base = dirArg >= 0 && args[dirArg + 1] !== undefined ? args[dirArg + 1]! : os.tmpdir();
const DIM = 128;
const LATENCY_N = quick ? 300 : 3000;
const THROUGHPUT_MS = quick ? 1000 : 4000;
const BIG_LOG = quick ? 20_000 : 200_000;

const dirs: string[] = [];
function freshDir(tag: string): string {
  const d = fs.mkdtempSync(path.join(base, `kyro-bench-${tag}-`));
  dirs.push(d);
  return d;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}

// Vectors are made once: the writers measure the log, not the making of a vector per event (which
// cost as much as sealing the event). The log copies each vector it is given.
const vec = vectorsOf('clustered', DIM);
const POOL = Array.from({ length: 1024 }, (_, i) => vec(i));

function upsert(i: number): EventInput {
  return { type: 'vector.upserted', collection: 'bench', body: { id: `d${i}`, vector: POOL[i % POOL.length]! } };
}

const created: EventInput = { type: 'collection.created', collection: 'bench', body: { dimension: DIM, metric: 'l2', hnsw: { M: 16, efConstruction: 200, efSearch: 64 } } };

/** The log's settings the A/B section compares (defaults otherwise). */
type Variant = Pick<EventLogOptions, 'commitDepth' | 'applyThread'>;

async function openLog(tag: string, variant: Variant = {}): Promise<EventLog> {
  const log = await EventLog.open({ dir: freshDir(tag), logger: () => {}, ...variant });
  await log.append([created]);
  return log;
}

/**
 * Durable append latency beside the raw baseline, interleaved: each iteration times one
 * `append` (1 event, one 128-d vector) and then one raw `write` + `fdatasync` of a record-sized
 * buffer to a file in the same directory, so both see the same disk and CPU weather (the machine
 * is shared). Reports both distributions and the median of the per-iteration ratios.
 */
async function latencyBesideRaw(n: number): Promise<{ append: number[]; raw: number[]; prealloc: number[]; ratios: number[]; recordBytes: number }> {
  const log = await openLog('lat');
  await log.append([upsert(0)]);
  const recordBytes = log.getRecord(2)!.byteLength;
  const fd = fs.openSync(path.join(log.dir, 'raw-baseline.bin'), 'w');
  // A second baseline: the same write + fdatasync into a file whose space is already written
  // (zeros), as the log's segments are; no file-size change, so no journal commit per sync.
  const pfd = fs.openSync(path.join(log.dir, 'raw-prealloc.bin'), 'w+');
  const zeros = Buffer.alloc(1 << 20);
  for (let i = 0; i < Math.ceil(((n + 1) * recordBytes) / zeros.byteLength); i++) fs.writeSync(pfd, zeros);
  fs.fsyncSync(pfd);
  let poff = 0;
  const buf = Buffer.alloc(recordBytes, 1);
  const append: number[] = [];
  const raw: number[] = [];
  const prealloc: number[] = [];
  const ratios: number[] = [];
  for (let i = 1; i <= n; i++) {
    let t0 = process.hrtime.bigint();
    await log.append([upsert(i)]);
    const a = Number(process.hrtime.bigint() - t0) / 1e3;
    // One turn of the event loop before the (blocking) raw loop: the log applies an acknowledged
    // group to LMDB at its next turn, as an idle server does right after answering. Without this
    // the raw loop's synchronous block pushes that work into the next append's measurement.
    await new Promise((r) => setImmediate(r));
    t0 = process.hrtime.bigint();
    fs.writeSync(fd, buf);
    fs.fdatasyncSync(fd);
    const r = Number(process.hrtime.bigint() - t0) / 1e3;
    t0 = process.hrtime.bigint();
    fs.writeSync(pfd, buf, 0, buf.byteLength, poff);
    poff += buf.byteLength;
    fs.fdatasyncSync(pfd);
    prealloc.push(Number(process.hrtime.bigint() - t0) / 1e3);
    append.push(a);
    raw.push(r);
    ratios.push(a / r);
  }
  fs.closeSync(fd);
  fs.closeSync(pfd);
  await log.close();
  return { append, raw, prealloc, ratios, recordBytes };
}

async function throughput(writers: number, batch: number, ms: number, variant: Variant = {}): Promise<{ eventsPerSec: number; appendsPerSec: number; p50: number; p99: number }> {
  const log = await openLog(`tp${writers}`, variant);
  let events = 0;
  let appends = 0;
  const lat: number[] = [];
  const end = performance.now() + ms;
  let i = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (performance.now() < end) {
        const b = Array.from({ length: batch }, () => upsert(i++));
        const s = performance.now();
        await log.append(b);
        lat.push((performance.now() - s) * 1000);
        events += batch;
        appends += 1;
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  if (!log.verify().ok) throw new Error('log does not verify after the throughput run');
  await log.close();
  // Removed at once: left in place, its unsynced LMDB pages are written back by the kernel during
  // the runs after it, on the same disk as their syncs (the A/B rows, run last, read 10-20% low).
  fs.rmSync(log.dir, { recursive: true, force: true });
  return { eventsPerSec: events / secs, appendsPerSec: appends / secs, p50: pct(lat, 0.5), p99: pct(lat, 0.99) };
}

async function readAndVerify(total: number): Promise<{ events: number; fillSecs: number; readPerSec: number; readRecordsPerSec: number; verifyPerSec: number }> {
  const log = await openLog('big');
  const t0 = performance.now();
  let n = 1;
  // fill with 8 writers × 500-event batches
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (n < total) {
        const b = Array.from({ length: Math.min(500, total - n) }, () => upsert(n++));
        if (b.length > 0) await log.append(b);
      }
    }),
  );
  const fillSecs = (performance.now() - t0) / 1000;
  const events = log.head().seq;
  let t = performance.now();
  let count = 0;
  for (const e of log.read()) if (e.seq > 0) count += 1;
  const readSecs = (performance.now() - t) / 1000;
  if (count !== events) throw new Error(`read ${count} of ${events}`);
  t = performance.now();
  count = 0;
  for (const r of log.readRecords()) count += r.record.byteLength > 0 ? 1 : 0;
  const readRecordsSecs = (performance.now() - t) / 1000;
  t = performance.now();
  const report = log.verify();
  const verifySecs = (performance.now() - t) / 1000;
  if (!report.ok) throw new Error('verify failed');
  await log.close();
  return { events, fillSecs, readPerSec: events / readSecs, readRecordsPerSec: events / readRecordsSecs, verifyPerSec: events / verifySecs };
}

const fmt = (x: number, d = 0): string => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

async function main(): Promise<void> {
  console.log(`event log benchmark — dir ${base} (${os.cpus().length} cpus, node ${process.version})${quick ? ' [quick]' : ''}`);
  // warm up (page cache, JIT)
  await latencyBesideRaw(100);
  const { append: lat, raw, prealloc, ratios, recordBytes } = await latencyBesideRaw(LATENCY_N);
  const latency = {
    n: LATENCY_N,
    recordBytes,
    interleaved: true,
    append: { p50: pct(lat, 0.5), p99: pct(lat, 0.99) },
    rawWriteFdatasync: { p50: pct(raw, 0.5), p99: pct(raw, 0.99) },
    rawPreallocatedWriteFdatasync: { p50: pct(prealloc, 0.5), p99: pct(prealloc, 0.99) },
    ratioP50: pct(lat, 0.5) / pct(raw, 0.5),
    ratioP99: pct(lat, 0.99) / pct(raw, 0.99),
    ratioP50VsPreallocated: pct(lat, 0.5) / pct(prealloc, 0.5),
    medianPairedRatio: pct(ratios, 0.5),
    targetRatioP50: 1.5,
  };
  console.log('\nDurable append latency, 1 writer, 1 event (128-d vector) per append, interleaved with the raw baseline — µs (target p50 ≤ 1.5× raw)');
  console.table({
    'EventLog.append': { p50: fmt(latency.append.p50), p99: fmt(latency.append.p99) },
    'raw write+fdatasync (baseline)': { p50: fmt(latency.rawWriteFdatasync.p50), p99: fmt(latency.rawWriteFdatasync.p99) },
    'raw, preallocated file': { p50: fmt(latency.rawPreallocatedWriteFdatasync.p50), p99: fmt(latency.rawPreallocatedWriteFdatasync.p99) },
    ratio: { p50: fmt(latency.ratioP50, 2), p99: fmt(latency.ratioP99, 2) },
    'ratio to the preallocated raw loop': { p50: fmt(latency.ratioP50VsPreallocated, 2), p99: '' },
    'median of paired ratios': { p50: fmt(latency.medianPairedRatio, 2), p99: '' },
  });

  const tp: Record<string, Awaited<ReturnType<typeof throughput>>> = {};
  for (const w of [1, 16, 64]) tp[`${w} writers × 1 event`] = await throughput(w, 1, THROUGHPUT_MS);
  tp['64 writers × 16 events'] = await throughput(64, 16, THROUGHPUT_MS);
  // What the two commit-path choices are worth: the defaults beside each one switched,
  // interleaved so that all see the same disk and CPU weather.
  const half = Math.max(500, THROUGHPUT_MS / 2);
  const variants: Record<string, Variant> = {
    [`defaults (2 groups in flight, apply thread ${os.availableParallelism() >= 4 ? 'on' : 'off'} with ${os.availableParallelism()} cores)`]: {},
    '1 group in flight': { commitDepth: 1 },
    'LMDB apply thread on': { applyThread: 'on' },
    'LMDB apply thread off': { applyThread: 'off' },
  };
  const ab: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  for (let rep = 0; rep < 2; rep++) for (const [k, v] of Object.entries(variants)) ab[k]!.push((await throughput(64, 1, half, v)).eventsPerSec);
  console.log('\nThroughput (durable), events of one 128-d vector; target ≥ 100k events/s at 64 writers');
  console.table(Object.fromEntries(Object.entries(tp).map(([k, v]) => [k, { 'events/s': fmt(v.eventsPerSec), 'appends/s': fmt(v.appendsPerSec), 'p50 µs': fmt(v.p50), 'p99 µs': fmt(v.p99) }])));

  console.log('\nThe commit path, its choices switched one at a time, 64 writers × 1 event, 2 interleaved reps — events/s');
  console.table(Object.fromEntries(Object.entries(ab).map(([k, xs]) => [k, xs.map((x) => fmt(x))])));

  const big = await readAndVerify(BIG_LOG);
  console.log(`\nWhole log (${fmt(big.events)} events, filled in ${fmt(big.fillSecs, 1)} s)`);
  console.table({
    'read() decoded': { 'events/s': fmt(big.readPerSec), seconds: fmt(big.events / big.readPerSec, 2) },
    'readRecords() raw': { 'events/s': fmt(big.readRecordsPerSec), seconds: fmt(big.events / big.readRecordsPerSec, 2) },
    'verify() chain': { 'events/s': fmt(big.verifyPerSec), seconds: fmt(big.events / big.verifyPerSec, 2) },
  });

  const results = { when: new Date().toISOString(), dir: base, node: process.version, cpus: os.cpus().length, quick, latency, throughput: tp, commitPathAB: ab, wholeLog: big };
  const outDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'results');
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'log.json'), JSON.stringify(results, null, 2));
  console.log(`\nwrote ${path.join(outDir, 'log.json')}`);
}

try {
  await main();
} finally {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
}
