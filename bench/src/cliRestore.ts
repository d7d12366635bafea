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

/**
 * Restores the newest backup in the local store `backupsDir` into `target` with `checkout`'s
 * built CLI (a clone or worktree of this repo). Writes back what is dirty first (else the
 * restore's writes queue behind it) and removes `target` after (else its pages are written back
 * during the next run).
 */
export function cliRestore(checkout: string, backupsDir: string, target: string): CliRestore {
  fs.rmSync(target, { recursive: true, force: true });
  spawnSync('sync');
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
