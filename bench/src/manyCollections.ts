/*
 * Checkpoints of many small collections (issue 3), as a user with a collection per tenant has
 * them. Real Projections (hot tier + HNSW cold tier in its worker) over an EventLog in a temp dir:
 * `--collections` collections of `--docs` 16-d vectors each. Each rep times
 * `Projections.checkpoint()` (4 files per collection, fsynced and hashed, then renamed in), then,
 * in the same run, the floor of that work: a plain `cp -r` of the generation it wrote and a
 * `sync`, as durable as the checkpoint. Then the time a fresh open takes to load the checkpoint
 * (every file hashed again), beside a `cat` of its files into /dev/null.
 *
 * Run `npx tsc -b` first (or `pnpm bench manyCollections`).
 *
 *   pnpm bench manyCollections [--collections 1000] [--docs 10] [--reps 3]
 *
 * Writes bench/results/many-collections.json.
 */
import { spawnSync } from 'node:child_process';
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

const COLLECTIONS = arg('collections', 1000);
const DOCS = arg('docs', 10);
const REPS = arg('reps', 3);
const DIM = 16;

function timed(cmd: string, args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} failed (${String(r.status)}): ${String(r.stderr)}`);
  return performance.now() - t0;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kyro-manycoll-'));
const rand = seededRandom(11);
const log = await EventLog.open({ dir, logger: () => {} });
const quiet = { logger: () => {}, checkpoint: { everyEvents: 0, everySecs: 0 } };
let p = await Projections.open({ log, dataDir: dir, ...quiet });
try {
  for (let c = 0; c < COLLECTIONS; c++) {
    const name = `t${c}`;
    const batch: EventInput[] = [{ type: 'collection.created', collection: name, body: { dimension: DIM, metric: 'cosine', hnsw: { M: 16, efConstruction: 100, efSearch: 50 } } }];
    for (let i = 0; i < DOCS; i++) {
      const v = new Float32Array(DIM);
      for (let j = 0; j < DIM; j++) v[j] = rand() - 0.5;
      batch.push({ type: 'vector.upserted', collection: name, body: { id: `d${i}`, vector: v, metadata: { n: i } } });
    }
    await log.append(batch);
  }
  await p.waitForCold(log.head().seq);
  console.log(`${COLLECTIONS} collections × ${DOCS} ${DIM}-d vectors: indexed`);
  const rows: { rep: number; checkpointMs: number; copyMs: number; syncMs: number; files: number; bytes: number; openMs: number; catMs: number }[] = [];
  for (let rep = 1; rep <= REPS; rep++) {
    // One event more, so that each rep has something new to checkpoint.
    await log.append([{ type: 'vector.upserted', collection: 't0', body: { id: `r${rep}`, vector: new Float32Array(DIM).fill(rep), metadata: {} } }]);
    await p.waitForCold(log.head().seq);
    spawnSync('sync');
    const t0 = performance.now();
    const { dir: gen } = await p.checkpoint();
    const checkpointMs = performance.now() - t0;
    const names = fs.readdirSync(gen);
    const bytes = names.reduce((s, n) => s + fs.statSync(path.join(gen, n)).size, 0);
    const copy = path.join(dir, 'plain-copy');
    spawnSync('sync');
    const copyMs = timed('cp', ['-r', gen, copy]);
    const syncMs = timed('sync', []);
    fs.rmSync(copy, { recursive: true, force: true });
    await p.close();
    const catMs = timed('sh', ['-c', `cat "${gen}"/* > /dev/null`]);
    const t1 = performance.now();
    p = await Projections.open({ log, dataDir: dir, ...quiet });
    const openMs = performance.now() - t1;
    rows.push({ rep, checkpointMs, copyMs, syncMs, files: names.length, bytes, openMs, catMs });
    console.log(
      `rep ${rep}: checkpoint ${checkpointMs.toFixed(0)} ms (${names.length} files, ${(bytes / 1e6).toFixed(1)} MB); plain cp -r ${copyMs.toFixed(0)} ms + sync ${syncMs.toFixed(0)} ms; ` +
        `open from it ${openMs.toFixed(0)} ms (cat of its files ${catMs.toFixed(0)} ms)`,
    );
  }
  const out = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'results', 'many-collections.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify({ when: new Date().toISOString(), collections: COLLECTIONS, docs: DOCS, dim: DIM, rows }, null, 1));
  console.log(`wrote ${out}`);
} finally {
  await p.close();
  await log.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
