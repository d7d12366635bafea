// An incremental backup over documents with long histories (issue 4), beside the same incremental
// over documents written once before. Run: pnpm bench incrementalHistory [--docs 3000] [--writes 80] [--reps 3]
// Each log holds --docs documents (32-d); the "long" one wrote each --writes times before its full
// backup, the baseline once. Then, --reps times: every document is overwritten once and an
// incremental backup taken (timed). An incremental costs the events in its range; before stop 36
// it also decoded every earlier event of each document it touched (1.3 s against ~0.1 s at the
// defaults), in a server's event loop.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventLog, type EventInput } from '@kyrodb/log';
import { BackupManager, LocalDirStore } from '@kyrodb/backup';

const args = process.argv.slice(2);
const arg = (name: string, def: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const DOCS = arg('--docs', 3000);
const WRITES = arg('--writes', 80);
const REPS = arg('--reps', 3);
const DIM = 32;

function upsert(id: number, seed: number): EventInput {
  return { type: 'vector.upserted', collection: 'c', body: { id: `d${id}`, vector: Float32Array.from({ length: DIM }, (_, k) => Math.sin(seed + k)) } };
}

async function writeAll(log: EventLog, seed: number): Promise<void> {
  for (let i = 0; i < DOCS; i += 500) await log.append(Array.from({ length: Math.min(500, DOCS - i) }, (_, j) => upsert(i + j, seed + i + j)));
}

/** Incremental times (ms) over a log whose documents were each written `before` times before the full backup. */
async function run(before: number): Promise<number[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kyro-bench-inchist-'));
  try {
    const log = await EventLog.open({ dir: path.join(dir, 'data'), logger: () => undefined });
    await log.append([{ type: 'collection.created', collection: 'c', body: { dimension: DIM, metric: 'cosine', hnsw: { M: 16, efConstruction: 100, efSearch: 50 } } }]);
    for (let r = 0; r < before; r++) await writeAll(log, r * DOCS);
    const mgr = new BackupManager({ log, dataDir: path.join(dir, 'data'), store: new LocalDirStore(path.join(dir, 'store')), logger: () => undefined });
    await mgr.createFull();
    const times: number[] = [];
    for (let rep = 0; rep < REPS; rep++) {
      await writeAll(log, -1e6 * (rep + 1));
      const t0 = performance.now();
      const m = await mgr.createIncremental();
      times.push(performance.now() - t0);
      if (m.vector_count !== DOCS) throw new Error(`the incremental counted ${m.vector_count} vectors, expected ${DOCS}`);
    }
    await log.close();
    return times;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`incrementalHistory: ${DOCS} documents of ${DIM} dims; each incremental covers ${DOCS} overwrites; ${REPS} reps`);
const baseline = await run(1);
const long = await run(WRITES);
const fmt = (xs: number[]): string => xs.map((x) => x.toFixed(0)).join(', ');
console.table({
  [`documents written once before (baseline)`]: { 'incremental ms': fmt(baseline) },
  [`documents written ${WRITES} times before`]: { 'incremental ms': fmt(long) },
});
