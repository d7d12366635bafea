import fs from 'node:fs';
import path from 'node:path';
import { processAlive } from './writerLock.js';

/**
 * Scratch dirs and partial files a command makes on its way to a result (a deep verify's restored
 * copy, an export written beside its target). Each carries the pid of its maker in its name, so
 * that what a killed process left is recognised and removed by the next one that makes such a
 * thing (`sweepDead`), and each is registered while it is used, so that a command stopped by a
 * signal removes it before it exits (`removeRegistered`, called by the CLI's signal handler).
 */
const registered = new Set<string>();

/** Registers `p` (a path this process made) for removal on an interrupt; returns a function that unregisters it. */
export function registerScratch(p: string): () => void {
  registered.add(p);
  return () => void registered.delete(p);
}

/** Removes every registered path (synchronously: a signal handler calls it before it exits); returns those removed. */
export function removeRegisteredScratch(): string[] {
  const out: string[] = [];
  for (const p of registered) {
    try {
      fs.rmSync(p, { recursive: true, force: true });
      out.push(p);
    } catch {
      // Best effort: the path stays, and the next sweep of its kind removes it (its pid is gone).
    }
  }
  registered.clear();
  return out;
}

/** Removes the entries of `dir` named `<prefix><pid>-…` whose pid is not a live process; returns those removed. */
export function sweepDeadScratch(dir: string, prefix: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const n of names) {
    if (!n.startsWith(prefix)) continue;
    const m = /^(\d+)(?:-|$)/.exec(n.slice(prefix.length));
    if (m === null) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || processAlive(pid)) continue;
    try {
      fs.rmSync(path.join(dir, n), { recursive: true, force: true });
      out.push(path.join(dir, n));
    } catch {
      // Another sweeper got there first, or it cannot be removed: it is only garbage.
    }
  }
  return out;
}

/**
 * A new scratch dir `<parent>/<prefix><pid>-XXXXXX`, registered (see `registerScratch`), after
 * removing those a dead process left there. `release` removes it and unregisters it.
 */
export function makeScratchDir(parent: string, prefix: string): { dir: string; release: () => void } {
  fs.mkdirSync(parent, { recursive: true });
  sweepDeadScratch(parent, prefix);
  const dir = fs.mkdtempSync(path.join(parent, `${prefix}${process.pid}-`));
  const unregister = registerScratch(dir);
  return {
    dir,
    release: () => {
      fs.rmSync(dir, { recursive: true, force: true });
      unregister();
    },
  };
}
