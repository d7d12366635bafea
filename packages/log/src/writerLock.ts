import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { LogError } from './errors.js';

/**
 * The writer lock on a data dir: an abstract Unix socket named after the dir (Linux: held by
 * the kernel, gone the instant its process dies), and `<dir>/kyrodb.lock` holding the owner's
 * pid, start time and boot id (what readers and other tools look at).
 */
export interface WriterLock {
  readonly path: string;
  /** Releases it; resolves once another process can take it. */
  release(): Promise<void>;
}

/** The lock file's path in a data dir. */
export function lockPath(dir: string): string {
  return path.join(dir, 'kyrodb.lock');
}

/**
 * Whether a process with this pid is running (one of another user's counts). A zombie (Linux
 * state Z, or X while it is being reaped) is not: it has exited, its fds, flocks and sockets are
 * released, and only its exit status waits for a parent that reaps slowly (a container's pid 1).
 */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const state = procStat(pid)?.[0];
  return state !== 'Z' && state !== 'X';
}

/** This machine's boot id ('' where the system does not say). */
export function currentBootId(): string {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
}

/**
 * The fields of /proc/<pid>/stat after the command name (state first, start time at 19), or
 * undefined where there is none (not Linux, no such process).
 */
function procStat(pid: number): string[] | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** When the process with this pid started, in clock ticks since boot (Linux), or '' when unknown. */
function processStart(pid: number): string {
  return procStat(pid)?.[19] ?? '';
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
 * Whether a live process holds `dir`'s writer lock: the pid its lock file names (`lockHolder`),
 * or, on Linux, its abstract socket bound (read from /proc/net/unix): a lock file deleted by hand
 * under a running server must not make the dir look free to a restore or a reader.
 */
export function writerRunning(dir: string): boolean {
  if (lockHolder(dir) !== undefined) return true;
  let name: string | undefined;
  try {
    name = socketName(dir);
  } catch {
    return false; // no such dir
  }
  if (name === undefined) return false;
  let table: string;
  try {
    table = fs.readFileSync('/proc/net/unix', 'utf8');
  } catch {
    return false;
  }
  // Listed with '@' for its leading NUL, and for the NULs Node pads the name with to the full
  // address length.
  const bound = ` @${name.slice(1)}`;
  return table.split('\n').some((line) => {
    const at = line.indexOf(bound);
    return at >= 0 && /^@*$/.test(line.slice(at + bound.length));
  });
}

/**
 * The abstract socket name of `dir`'s lock: from the dir's device and inode, so every path to
 * the dir (a symlink, another spelling) names the same lock. Undefined off Linux.
 */
function socketName(dir: string): string | undefined {
  if (process.platform !== 'linux') return undefined;
  const st = fs.statSync(dir);
  return `\0kyrodb-writer-${st.dev}-${st.ino}`;
}

/** Binds the abstract socket `name`: false when another process (or this one) holds it. */
function bindExclusive(name: string): Promise<net.Server | false> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((c) => c.destroy());
    server.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' ? resolve(false) : reject(err)));
    server.listen(name, () => {
      server.unref(); // the lock keeps nothing alive
      resolve(server);
    });
  });
}

/**
 * Takes the writer lock on `dir`; one held by a live process throws LOG_LOCKED naming its pid.
 * The socket decides, atomically: two servers started at once on a dir whose lock file a dead
 * process left both judged it stale, and each removed the file the other had just created (both
 * wrote, and acknowledged writes of one were lost). A lock file deleted by hand under a running
 * server no longer lets a second one in either. The lock file is then written (a dead owner's
 * replaced). Where there is no abstract socket (not Linux) the lock file alone decides.
 */
export async function acquireWriterLock(dir: string): Promise<WriterLock> {
  const p = lockPath(dir);
  const name = socketName(dir);
  let server: net.Server | undefined;
  if (name !== undefined) {
    const bound = await bindExclusive(name);
    if (bound === false) {
      const holder = lockHolder(dir);
      if (holder === process.pid) throw new LogError('LOG_LOCKED', `data dir ${dir} is already open for writing in this process`, { pid: holder, dir });
      throw new LogError('LOG_LOCKED', `data dir ${dir} is in use by ${holder !== undefined ? `process ${holder}` : 'another process'} (lock ${p})`, { ...(holder !== undefined ? { pid: holder } : {}), dir });
    }
    server = bound;
  }
  const closeServer = (): Promise<void> => new Promise((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
  try {
    const text = takeLockFile(dir, p, server !== undefined);
    let released: Promise<void> | undefined;
    return {
      path: p,
      release() {
        released ??= (async () => {
          try {
            if (fs.readFileSync(p, 'utf8').trim() === text) fs.unlinkSync(p);
          } catch {
            // already gone
          }
          await closeServer();
        })();
        return released;
      },
    };
  } catch (err) {
    await closeServer();
    throw err;
  }
}

/** Writes this process's lock file at `p` (a dead owner's is replaced); its text. */
function takeLockFile(dir: string, p: string, socketHeld: boolean): string {
  const text = lockText(process.pid);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(p, 'wx');
      fs.writeSync(fd, text);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      return text;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = lockHolder(dir);
      // A live owner named by the file while the socket was free: a process in another network
      // namespace (a container) sharing this dir. Refused, never overwritten.
      if (holder !== undefined && holder !== process.pid) throw new LogError('LOG_LOCKED', `data dir ${dir} is in use by process ${holder} (lock ${p})`, { pid: holder, dir });
      if (holder === process.pid && !socketHeld) throw new LogError('LOG_LOCKED', `data dir ${dir} is already open for writing in this process`, { pid: holder, dir });
      fs.rmSync(p, { force: true }); // stale: its owner is gone
    }
  }
  throw new LogError('LOG_LOCKED', `could not take the writer lock on ${dir}`, { dir });
}
