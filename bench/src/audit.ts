/**
 * Audit benchmark: value-as-of latency beside a current read (same log, same run), collection-as-of
 * and replay-to-T rates, export rate, and verify rate beside a raw SHA-256 over the same bytes.
 *
 *   pnpm exec tsx bench/src/audit.ts [--events 1000000] [--dim 16] [--docs 100000] [--lookups 20000]
 *
 * Prints a table and writes bench/results/audit.json.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { DocKeyFingerprint, EventLog, FakeClock, indexDocId, recordIndexFields } from '@kyrodb/log';
import type { EventInput } from '@kyrodb/log';
import { collectionAsOf, exportStateAsOf, stateAsOf, verifyDigest, writeState } from '../../packages/api/src/audit/index.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

const EVENTS = arg('events', 1_000_000);
const DIM = arg('dim', 16);
const DOCS = arg('docs', 100_000);
const LOOKUPS = arg('lookups', 20_000);
const COLLECTIONS = 10;
const BATCH = 1000;

// Deterministic PRNG (mulberry32) so runs are comparable.
let seed = 42;
function rnd(): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

interface Row {
  what: string;
  n: number;
  seconds: number;
  rate: string;
  p50_us?: number;
  p99_us?: number;
  note?: string;
}

const rows: Row[] = [];
function row(r: Row): void {
  rows.push(r);
  console.log(`${r.what.padEnd(44)} ${String(r.n).padStart(9)} ${r.seconds.toFixed(3).padStart(8)} s  ${r.rate.padStart(16)}${r.p50_us !== undefined ? `  p50 ${r.p50_us.toFixed(1)} µs  p99 ${r.p99_us!.toFixed(1)} µs` : ''}${r.note ? `  (${r.note})` : ''}`);
}

function latency(what: string, n: number, fn: (i: number) => unknown, note?: string): void {
  const lat: number[] = new Array<number>(n);
  for (let i = 0; i < Math.min(1000, n); i++) fn(i); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    fn(i);
    lat[i] = (performance.now() - s) * 1000;
  }
  const secs = (performance.now() - t0) / 1000;
  row({ what, n, seconds: secs, rate: `${Math.round(n / secs).toLocaleString('en')} ops/s`, p50_us: pct(lat, 50), p99_us: pct(lat, 99), ...(note !== undefined ? { note } : {}) });
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kyro-bench-audit-'));
  const clock = new FakeClock();
  const log = await EventLog.open({ dir, clock, logger: () => {}, maxBatchEvents: BATCH });
  console.log(`load average at start: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} on ${os.cpus().length} cpus`);
  console.log(`building ${EVENTS.toLocaleString('en')} events (dim ${DIM}, ${DOCS.toLocaleString('en')} docs in ${COLLECTIONS} collections, batches of ${BATCH}) in ${dir}`);
  const tb = performance.now();
  const creates: EventInput[] = [];
  for (let c = 0; c < COLLECTIONS; c++) creates.push({ type: 'collection.created', collection: `c${c}`, actor: 'admin', body: { dimension: DIM, metric: 'l2', hnsw: { M: 16, efConstruction: 100, efSearch: 50 } } });
  await log.append(creates);
  let written = COLLECTIONS;
  const batchTs: number[] = [];
  while (written < EVENTS) {
    clock.advance(1);
    const batch: EventInput[] = [];
    const n = Math.min(BATCH, EVENTS - written);
    for (let i = 0; i < n; i++) {
      const d = Math.floor(rnd() * DOCS);
      const collection = `c${d % COLLECTIONS}`;
      const id = `doc-${d}`;
      if (rnd() < 0.05) batch.push({ type: 'vector.deleted', collection, actor: 'writer', body: { id } });
      else {
        const v = new Float32Array(DIM);
        for (let j = 0; j < DIM; j++) v[j] = rnd() * 2 - 1;
        batch.push({ type: 'vector.upserted', collection, actor: 'writer', body: { id, vector: v, metadata: { n: written + i, tag: `t${d % 17}` } } });
      }
    }
    const r = await log.append(batch);
    batchTs.push(r.ts);
    written += n;
    if (batchTs.length % 100 === 0) process.stdout.write(`\r  ${written.toLocaleString('en')} events`);
  }
  process.stdout.write('\n');
  const buildSecs = (performance.now() - tb) / 1000;
  row({ what: 'build: append (batches of 1000, fsync each)', n: written, seconds: buildSecs, rate: `${Math.round(written / buildSecs).toLocaleString('en')} ev/s`, note: 'setup, not an audit figure' });
  const head = log.head();
  const mdBytes = fs.statSync(path.join(dir, 'log.mdb')).size;

  // --- value-as-of vs a current read, same keys, same log
  const keys = Array.from({ length: LOOKUPS }, () => {
    const d = Math.floor(rnd() * DOCS);
    return { c: `c${d % COLLECTIONS}`, id: `doc-${d}`, t: batchTs[Math.floor(rnd() * batchTs.length)]! };
  });
  latency('current read: docAsOf(c, id)  [baseline]', LOOKUPS, (i) => log.docAsOf(keys[i]!.c, keys[i]!.id));
  latency('value-as-of: docAsOf(c, id, T random)', LOOKUPS, (i) => log.docAsOf(keys[i]!.c, keys[i]!.id, keys[i]!.t));
  latency('point read: get(seq random)  [baseline]', LOOKUPS, (i) => log.get(1 + Math.floor(((i * 7919) % head.seq))));

  const mid = batchTs[Math.floor(batchTs.length / 2)]!;
  const midSeq = log.seqAtTime(mid);

  // --- verify vs raw SHA-256 over the same records (before the replays: a fresh heap, as in `kyrodb audit verify`)
  let t0 = performance.now();
  let hashed = 0;
  for (const r of log.readRecords(1, head.seq)) {
    createHash('sha256').update(r.record.subarray(0, 32)).update(r.record.subarray(64)).digest();
    hashed += 1;
  }
  let secs = (performance.now() - t0) / 1000;
  row({ what: 'raw scan + SHA-256 per record  [baseline]', n: hashed, seconds: secs, rate: `${Math.round(hashed / secs).toLocaleString('en')} ev/s` });
  t0 = performance.now();
  const v = verifyDigest(log, { seq: midSeq, hash: log.get(midSeq)!.hash });
  secs = (performance.now() - t0) / 1000;
  if (!v.ok) throw new Error(`verify failed: ${v.message}`);
  row({ what: 'verify: whole chain + digest', n: v.checked, seconds: secs, rate: `${Math.round(v.checked / secs).toLocaleString('en')} ev/s`, note: 'target >= 200,000 ev/s' });
  t0 = performance.now();
  const lv = log.verify({ digest: { seq: midSeq, hash: log.get(midSeq)!.hash } });
  secs = (performance.now() - t0) / 1000;
  if (!lv.ok) throw new Error(`log.verify failed: ${lv.message}`);
  row({ what: "log.verify (decodes every body)  [baseline]", n: lv.checked, seconds: secs, rate: `${Math.round(lv.checked / secs).toLocaleString('en')} ev/s` });
  // The two parts of verify's by-doc index check, alone: the index's keys, and the keys the records call for.
  t0 = performance.now();
  const indexed = log.docIndexFingerprint(head.seq)!;
  secs = (performance.now() - t0) / 1000;
  row({ what: '  of verify: by-doc index keys fingerprinted', n: indexed.count, seconds: secs, rate: `${Math.round(indexed.count / secs).toLocaleString('en')} keys/s` });
  t0 = performance.now();
  const called = new DocKeyFingerprint();
  for (const r of log.readRecords(1, head.seq)) {
    const x = recordIndexFields(r.record);
    called.add(x.collection, indexDocId(x), r.seq);
  }
  secs = (performance.now() - t0) / 1000;
  if (!called.equals(indexed)) throw new Error('the by-doc index fingerprints differ');
  row({ what: '  of verify: records\' keys (with the raw scan)', n: called.count, seconds: secs, rate: `${Math.round(called.count / secs).toLocaleString('en')} ev/s` });


  // --- replay to T (the whole state) and collection-as-of
  t0 = performance.now();
  let n = 0;
  for (const r of log.readRecords(1, head.seq)) n += r.record.length > 0 ? 1 : 0;
  secs = (performance.now() - t0) / 1000;
  row({ what: 'raw scan: readRecords 1..head  [baseline]', n, seconds: secs, rate: `${Math.round(n / secs).toLocaleString('en')} ev/s` });
  t0 = performance.now();
  n = 0;
  for (const e of log.read(1, head.seq)) n += e.seq > 0 ? 1 : 0;
  secs = (performance.now() - t0) / 1000;
  row({ what: 'decode scan: read 1..head  [baseline]', n, seconds: secs, rate: `${Math.round(n / secs).toLocaleString('en')} ev/s` });
  t0 = performance.now();
  const full = stateAsOf(log, head.ts);
  secs = (performance.now() - t0) / 1000;
  let docs = 0;
  for (const c of full.collections.values()) docs += c.docs.size;
  row({ what: 'replay-to-T: stateAsOf(head ts)', n: head.seq, seconds: secs, rate: `${Math.round(head.seq / secs).toLocaleString('en')} ev/s`, note: `${docs.toLocaleString('en')} live docs` });
  t0 = performance.now();
  stateAsOf(log, mid);
  secs = (performance.now() - t0) / 1000;
  row({ what: 'replay-to-T: stateAsOf(mid T)', n: midSeq, seconds: secs, rate: `${Math.round(midSeq / secs).toLocaleString('en')} ev/s` });
  t0 = performance.now();
  const col = collectionAsOf(log, 'c3', mid);
  secs = (performance.now() - t0) / 1000;
  row({ what: 'collection-as-of: c3 at mid T', n: midSeq, seconds: secs, rate: `${Math.round(midSeq / secs).toLocaleString('en')} ev/s`, note: `${col?.docs.size ?? 0} docs; replays the prefix` });

  // --- export to a file (replay + NDJSON)
  const outFile = path.join(dir, 'state.ndjson');
  const out = fs.createWriteStream(outFile);
  t0 = performance.now();
  const sum = await exportStateAsOf(log, head.ts, out);
  await new Promise<void>((res) => out.end(res));
  secs = (performance.now() - t0) / 1000;
  row({ what: 'export (replay + NDJSON write) at head', n: head.seq, seconds: secs, rate: `${Math.round(head.seq / secs).toLocaleString('en')} ev/s`, note: `${sum.documents.toLocaleString('en')} docs, ${(sum.bytes / 1e6).toFixed(1)} MB` });
  const out2 = fs.createWriteStream(path.join(dir, 'state2.ndjson'));
  t0 = performance.now();
  const sum2 = await writeState(full, out2);
  await new Promise<void>((res) => out2.end(res));
  secs = (performance.now() - t0) / 1000;
  row({ what: 'export write phase only (NDJSON)', n: sum2.documents, seconds: secs, rate: `${Math.round(sum2.documents / secs).toLocaleString('en')} docs/s`, note: `${(sum2.bytes / 1e6 / secs).toFixed(1)} MB/s` });

  await log.close();
  const result = { events: head.seq, loadavg_end: os.loadavg(), dim: DIM, docs: DOCS, lookups: LOOKUPS, log_mb: Math.round(mdBytes / 1e6), node: process.version, cpus: os.cpus().length, rows };
  fs.mkdirSync(path.join(import.meta.dirname, '..', 'results'), { recursive: true });
  fs.writeFileSync(path.join(import.meta.dirname, '..', 'results', 'audit.json'), JSON.stringify(result, null, 2));
  console.log(`load average at end: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  console.log(`log: ${head.seq.toLocaleString('en')} events, ${(mdBytes / 1e6).toFixed(0)} MB; wrote bench/results/audit.json`);
  fs.rmSync(dir, { recursive: true, force: true });
}

await main();
