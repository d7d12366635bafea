import fs from 'node:fs';
import path from 'node:path';
import { LogError } from './errors.js';

/** The writer lock on a data dir: `<dir>/kyrodb.lock` holding the owner's pid. */
export interface WriterLock {
  readonly path: string;
  release(): void;
}

/** The lock file's path in a data dir. */
export function lockPath(dir: string): string {
  return path.join(dir, 'kyrodb.lock');
}

/** Whether a process with this pid exists (one of another user's counts). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid of the live process that holds the writer lock on `dir`, or undefined. */
export function lockHolder(dir: string): number | undefined {
  let text: string;
  try {
    text = fs.readFileSync(lockPath(dir), 'utf8');
  } catch {
    return undefined;
  }
  const pid = Number(text.trim());
  return processAlive(pid) ? pid : undefined;
}

/**
 * Takes the writer lock on `dir`. A lock left by a dead process (a crash, SIGKILL) is taken
 * over; one held by a live process throws LOG_LOCKED naming its pid.
 */
export function acquireWriterLock(dir: string): WriterLock {
  const p = lockPath(dir);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(p, 'wx');
      fs.writeSync(fd, String(process.pid));
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      let released = false;
      return {
        path: p,
        release() {
          if (released) return;
          released = true;
          try {
            if (fs.readFileSync(p, 'utf8').trim() === String(process.pid)) fs.unlinkSync(p);
          } catch {
            // already gone
          }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = lockHolder(dir);
      if (holder !== undefined && holder !== process.pid) {
        throw new LogError('LOG_LOCKED', `data dir ${dir} is in use by process ${holder} (lock ${p})`, { pid: holder, dir });
      }
      if (holder === process.pid) throw new LogError('LOG_LOCKED', `data dir ${dir} is already open for writing in this process`, { pid: holder, dir });
      fs.rmSync(p, { force: true }); // stale: its owner is gone
    }
  }
  throw new LogError('LOG_LOCKED', `could not take the writer lock on ${dir}`, { dir });
}
