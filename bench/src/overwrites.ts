// Overwrites and the HNSW index (issue 3): `--rounds` rounds of overwriting the same `--ids` ids
// (128-d cosine, M 16, efConstruction 200) through the log and the projections, beside the
// baseline of as many writes of distinct ids (every write a new document: what an index of that
// many live vectors costs). Times how long the cold tier takes to absorb them (from the first
// append), then 200 searches (k 10). Run:
//   npx tsc -b && node bench/dist/index.js overwrites [--ids 1000] [--rounds 40] [CHECKOUT…]
// Each CHECKOUT is a built clone or worktree of this repo (default: this one), so that an old
// build can run beside the new one; checkouts run one after the other (their packages are loaded
// from their dist at run time).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const flag = (name: string, def: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const IDS = flag('ids', 1000);
const ROUNDS = flag('rounds', 40);
const DIM = 128;
const flagged = new Set(args.flatMap((a, i) => (a.startsWith('--') ? [i, i + 1] : [])));
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const checkouts = args.filter((_, i) => !flagged.has(i));
if (checkouts.length === 0) checkouts.push(root);

async function run(checkout: string, distinct: boolean): Promise<Record<string, unknown>> {
  const { EventLog } = await import(pathToFileURL(path.join(checkout, 'packages/log/dist/index.js')).href);
  const { Projections } = await import(pathToFileURL(path.join(checkout, 'packages/projections/dist/index.js')).href);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kyro-bench-ow-'));
  const log = await EventLog.open({ dir, logger: () => undefined });
  const p = await Projections.open({ log, dataDir: dir, logger: () => undefined, checkpoint: { everyEvents: 0, everySecs: 0 } });
  let s = 1;
  const r = (): number => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1;
  try {
    await log.append([{ type: 'collection.created', collection: 'c', body: { dimension: DIM, metric: 'cosine', hnsw: { M: 16, efConstruction: 200, efSearch: 64 } } }]);
    const t0 = performance.now();
    for (let round = 0; round < ROUNDS; round++) {
      await log.append(Array.from({ length: IDS }, (_, i) => ({ type: 'vector.upserted', collection: 'c', body: { id: distinct ? `d${round}-${i}` : `d${i}`, vector: Float32Array.from({ length: DIM }, r) } })));
    }
    const appended = performance.now();
    await p.waitForCold(log.head().seq);
    const absorbed = performance.now();
    const lat: number[] = [];
    for (let q = 0; q < 200; q++) {
      const v = Float32Array.from({ length: DIM }, r);
      const a = performance.now();
      await p.search('c', { vector: v, k: 10 });
      lat.push(performance.now() - a);
    }
    lat.sort((a, b) => a - b);
    const st = (await p.coldStats())?.collections?.[0];
    return { checkout: path.basename(checkout), writes: distinct ? 'distinct ids' : `overwrites of ${IDS} ids`, appendS: +((appended - t0) / 1000).toFixed(2), absorbedS: +((absorbed - t0) / 1000).toFixed(2), searchP50Ms: +lat[100]!.toFixed(3), searchP99Ms: +lat[198]!.toFixed(3), live: st?.live, indexCapacity: st?.capacity };
  } finally {
    await p.close();
    await log.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const rows: Record<string, unknown>[] = [];
for (const c of checkouts) {
  for (const distinct of [true, false]) {
    const row = await run(c, distinct);
    rows.push(row);
    console.log(JSON.stringify(row));
  }
}
console.log(`\n${ROUNDS} rounds of ${IDS} writes (${DIM}-d cosine); absorbed = until the index holds every write`);
console.table(rows);
const outDir = path.join(root, 'bench/results');
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, 'overwrites.json'), JSON.stringify({ ids: IDS, rounds: ROUNDS, dim: DIM, rows }, null, 2));
