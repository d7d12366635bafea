// Times a full restore as a user runs it: `kyrodb restore` in a fresh process, from outside.
// Shared by restoreCli.ts (A/B across checkouts) and backup.ts (beside the in-process restore).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** One CLI restore: wall time, the child's CPU, and the restore's own phases (`--json`). */
export interface CliRestore {
  wallS: number;
  userS: number;
  sysS: number;
  seq: number;
  vectorCount: number;
  phasesMs: Record<string, number>;
}

/** How long `settleDisk` waits after its `sync` by default, ms. */
export const SETTLE_MS = 4000;

/**
 * Writes back what is dirty, then waits `ms`. This VM's disk takes writes faster than the host
 * stores them: the host is still busy with them after `sync` returns here (nothing shows in
 * flight in /proc/diskstats). A restore started right after a 1.45 GB copy was ~0.3 s slower
 * (5 reps each way, in both orders); started 5 s later, it was not.
 */
export function settleDisk(ms = SETTLE_MS): void {
  spawnSync('sync');
  if (ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Restores the newest backup in the local store `backupsDir` into `target` with `checkout`'s
 * built CLI (a clone or worktree of this repo). First removes `target` and lets the disk settle
 * (`settleDisk`: else the restore's writes queue behind what was written before it); removes
 * `target` after.
 */
export function cliRestore(checkout: string, backupsDir: string, target: string, settleMs = SETTLE_MS): CliRestore {
  fs.rmSync(target, { recursive: true, force: true });
  settleDisk(settleMs);
  const [u0, s0] = childrenCpu();
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [path.join(checkout, 'packages/api/dist/cli.js'), 'restore', '--backup-id', 'latest', '--from', backupsDir, '--data-dir', target, '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const wallS = (performance.now() - t0) / 1000;
  const [u1, s1] = childrenCpu();
  fs.rmSync(target, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`restore with ${checkout} failed (${String(r.status)}): ${r.stderr}`);
  const out = JSON.parse(r.stdout) as { seq: number; vectorCount: number; phasesMs?: Record<string, number> };
  return { wallS, userS: u1 - u0, sysS: s1 - s0, seq: out.seq, vectorCount: out.vectorCount, phasesMs: out.phasesMs ?? {} };
}

/** CPU time of the children reaped so far (user, system), in seconds, from /proc (Linux); zeros elsewhere. */
function childrenCpu(): [number, number] {
  try {
    const f = fs.readFileSync('/proc/self/stat', 'utf8');
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
    const hz = 100; // USER_HZ on Linux
    return [Number(fields[13]) / hz, Number(fields[14]) / hz];
  } catch {
    return [0, 0];
  }
}
