// A full restore as a user runs it: `kyrodb restore` in a fresh process, timed from outside
// (issue 4's target: ≤ 5 s for 1M events on local disk). Run:
//   npx tsc -b && pnpm exec tsx bench/src/restoreCli.ts [--n 1000000] [--reps 3] [--ids seq|uuid|uuid7] [--vectors clustered|sin] [--dir DIR] [--settle 4] [CHECKOUT…]
// Builds (once, kept in DIR, default <tmp>/kyro-bench-restore-<n>-<vectors>[-<ids>]) a log of n 128-d upserts and one
// full zstd backup of it; then restores it `reps` times with each CHECKOUT's CLI (a built clone or
// worktree of this repo; default: this one), the checkouts interleaved (each rep starting with the
// next one), so that an A/B sees the same machine. Each restore goes into a fresh dir, removed
// right after; before each timed run the disk is left `--settle` seconds (see settleDisk). Prints
// wall time, the child's CPU and the restore's own phases (`--json`); each rep first times the
// baseline, a plain `cp -r` + `sync` of the fixture's data dir. `--ids uuid` gives the documents
// random-looking UUIDs (deterministic) instead of `d<i>`: where a document's by-doc index entry
// lands is then random, as with most real ids; `--ids uuid7` gives them time-ordered UUIDs, which
// ascend as they are written.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { cliRestore, settleDisk, type CliRestore } from './cliRestore.js';
import { buildRestoreFixture, idsSuffix, restoreBenchArgs } from './restoreFixture.js';

const { n: N, reps: REPS, ids: IDS, vectors: VECTORS, base, settleS, checkouts, root: ROOT } = restoreBenchArgs(process.argv.slice(2), 3);
const SETTLE = settleS * 1000;

interface Run extends CliRestore {
  checkout: string;
}

/**
 * The baseline, timed in each rep beside the restores: a plain `cp -r` of the fixture's data dir
 * (the 1.45 GB a 1M restore builds) into the restore's place, then `sync` so that it is as
 * durable as a restore's result. It shows how fast the machine copies right now: the backup
 * bench's plain copy of the same 1.45 GB took 2.73 s and 3.52 s an hour apart, and the restores
 * beside it moved alike.
 */
function plainCopy(target: string): { copyS: number; syncS: number } {
  fs.rmSync(target, { recursive: true, force: true });
  settleDisk(SETTLE);
  const t0 = performance.now();
  const r = spawnSync('cp', ['-r', path.join(base, 'data'), target]);
  const t1 = performance.now();
  spawnSync('sync');
  const t2 = performance.now();
  fs.rmSync(target, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`cp -r failed (${String(r.status)}): ${String(r.stderr)}`);
  return { copyS: (t1 - t0) / 1000, syncS: (t2 - t1) / 1000 };
}

await buildRestoreFixture(base, N, VECTORS, IDS);
// Once, untimed: reads the data dir into the page cache (the first copy of a run read it from
// disk: 4.6 s against 2.0-2.5 s after), as the restores find their backup files there.
plainCopy(path.join(base, 'restored'));
const runs: Run[] = [];
const copies: { copyS: number; syncS: number }[] = [];
for (let rep = 0; rep < REPS; rep++) {
  const cp = plainCopy(path.join(base, 'restored'));
  copies.push(cp);
  console.log(`${'plain copy'.padEnd(16)} wall ${(cp.copyS + cp.syncS).toFixed(2)} s  (cp -r ${cp.copyS.toFixed(2)} s, then sync ${cp.syncS.toFixed(2)} s)`);
  // Each rep starts with another checkout: none always runs right after the copy.
  for (const c of checkouts.map((_, i) => checkouts[(i + rep) % checkouts.length]!)) {
    const run = { checkout: c, ...cliRestore(c, path.join(base, 'backups'), path.join(base, 'restored'), SETTLE) };
    runs.push(run);
    const p = run.phasesMs;
    console.log(`${path.basename(c).padEnd(16)} wall ${run.wallS.toFixed(2)} s  user ${run.userS.toFixed(2)} s  sys ${run.sysS.toFixed(2)} s  inside the restore ${((p['total'] ?? 0) / 1000).toFixed(2)} s (import ${((p['import'] ?? 0) / 1000).toFixed(2)} s, by-doc index ${((p['docIndex'] ?? 0) / 1000).toFixed(2)} s, waiting for files ${((p['waitOpen'] ?? 0) / 1000).toFixed(2)} s)`);
  }
}
console.log(`plain copy (baseline): ${copies.map((x) => (x.copyS + x.syncS).toFixed(2)).join(', ')} s`);
for (const c of checkouts) {
  const w = runs.filter((r) => r.checkout === c).map((r) => r.wallS);
  console.log(`${c}: wall ${w.map((x) => x.toFixed(2)).join(', ')} s (target ≤ 5 s for 1M)`);
}
const outDir = path.join(ROOT, 'bench/results');
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, `restore-cli-${N}${idsSuffix(IDS)}.json`), JSON.stringify({ n: N, ids: IDS, vectors: VECTORS, reps: REPS, copies, runs }, null, 2));
