import fs from 'node:fs';
import path from 'node:path';
import { LogError } from './errors.js';

/** The writer lock on a data dir: `<dir>/kyrodb.lock` holding the owner's pid, start time and boot id. */
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

/** This machine's boot id ('' where the system does not say). */
export function currentBootId(): string {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
}

/** When the process with this pid started, in clock ticks since boot (Linux), or '' when unknown. */
function processStart(pid: number): string {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return '';
  }
}

/** What a lock file holds: `pid start boot` (a lock of an older version: the pid alone). */
function lockText(pid: number): string {
  return `${pid} ${processStart(pid) || '-'} ${currentBootId() || '-'}`;
}

/**
 * The pid of the live process that holds the writer lock on `dir`, or undefined. A pid alone
 * is not enough: after a crash it may name another process (pids are reused, and in a
 * container the server and a later command are both pid 1), so the lock also records when its
 * owner started and the machine's boot, and a process that started at another time (or a boot
 * since) does not hold it.
 */
export function lockHolder(dir: string): number | undefined {
  let text: string;
  try {
    text = fs.readFileSync(lockPath(dir), 'utf8');
  } catch {
    return undefined;
  }
  const [pidText, start, boot] = text.trim().split(/\s+/);
  const pid = Number(pidText);
  if (!processAlive(pid)) return undefined;
  if (boot !== undefined && boot !== '-' && boot !== currentBootId()) return undefined;
  const started = start === undefined || start === '-' ? '' : processStart(pid);
  if (started !== '' && started !== start) return undefined;
  return pid;
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
      const text = lockText(process.pid);
      fs.writeSync(fd, text);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      let released = false;
      return {
        path: p,
        release() {
          if (released) return;
          released = true;
          try {
            if (fs.readFileSync(p, 'utf8').trim() === text) fs.unlinkSync(p);
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
