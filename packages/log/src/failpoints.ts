import { LogError } from './errors.js';

/**
 * What a failpoint does when hit.
 * - `off`: nothing.
 * - `error(CODE)`: throws an Error whose `code` is CODE (as Node's system errors do: ENOSPC, EIO, …).
 * - `panic`: throws a `FAILPOINT_PANIC` LogError; inside a worker this is an uncaught crash.
 * - `delay(MS)`: waits MS milliseconds, then carries on.
 * A prefix `N*` limits the action to the next N hits, after which the failpoint turns itself off.
 */
export type FailpointAction =
  | { kind: 'off' }
  | { kind: 'error'; code: string }
  | { kind: 'panic' }
  | { kind: 'delay'; ms: number };

interface Armed {
  action: FailpointAction;
  remaining: number; // Infinity when unlimited
}

/** Parses one action spec such as `error(ENOSPC)`, `3*error(EIO)`, `panic`, `delay(50)`, `off`. */
export function parseFailpointAction(spec: string): { action: FailpointAction; count: number } {
  const m = /^\s*(?:(\d+)\*)?\s*(off|panic|error\(([A-Z0-9_]+)\)|delay\((\d+)\))\s*$/.exec(spec);
  if (!m) throw new LogError('FAILPOINT_INVALID', `cannot parse failpoint action "${spec}"; expected off, panic, error(CODE), delay(MS), optionally prefixed by N*`);
  const count = m[1] !== undefined ? Number(m[1]) : Infinity;
  const word = m[2] ?? '';
  if (word === 'off') return { action: { kind: 'off' }, count };
  if (word === 'panic') return { action: { kind: 'panic' }, count };
  if (m[3] !== undefined) return { action: { kind: 'error', code: m[3] }, count };
  return { action: { kind: 'delay', ms: Number(m[4]) }, count };
}

/** Builds the error a failpoint throws for `error(CODE)`: shaped like a Node system error. */
export function failpointError(name: string, code: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${code}: injected by failpoint ${name}`);
  err.code = code;
  err.syscall = `failpoint:${name}`;
  return err;
}

/**
 * A named-failpoint registry (like Rust's `fail` or etcd's gofail). Components take one in their
 * options and call `hit(name)` at the instrumented spot; with nothing armed, `hit` is a single
 * size check and returns without allocating.
 *
 * Known names: `wal.append` (before the write transaction), `wal.flush` (after the commit, before
 * the flush is confirmed), `wal.import` (before an import's frames are written), `log.apply` (as a batch is handed to the LMDB apply thread: `error` fails
 * it there, `panic` kills the thread, `delay` makes it slow), `projection.cold.search`, `projection.cold.insert`,
 * `projection.cold.save` (a checkpoint's index write: `delay` is a slow disk, searches are served meanwhile),
 * `projection.cold.answer` (`delay`: an index answer is taken that late, as by a busy event loop; `error`: it is lost), `training.rmi`,
 * `restore.swap` (between a restore's two renames, where the data dir is moved aside), `restore.cleanup`
 * (the new data dir in place and checked, before the replaced one is deleted). The object
 * store's faults are produced for real instead (a fault-injecting proxy before s3rver, a full tmpfs).
 */
export class Failpoints {
  private readonly armed = new Map<string, Armed>();

  /** Arms `name` with `spec` (see FailpointAction); `off` disarms it. */
  set(name: string, spec: string): void {
    const { action, count } = parseFailpointAction(spec);
    if (action.kind === 'off') this.armed.delete(name);
    else this.armed.set(name, { action, remaining: count });
  }

  /** Disarms `name`. */
  clear(name: string): void {
    this.armed.delete(name);
  }

  /** Disarms every failpoint. */
  clearAll(): void {
    this.armed.clear();
  }

  /** Arms failpoints from `name=action;name=action` (the `KYRODB_FAILPOINTS` format). */
  configure(spec: string | undefined): void {
    if (spec === undefined || spec.trim() === '') return;
    for (const part of spec.split(';')) {
      if (part.trim() === '') continue;
      const eq = part.indexOf('=');
      if (eq <= 0) throw new LogError('FAILPOINT_INVALID', `cannot parse failpoint "${part}"; expected name=action`);
      this.set(part.slice(0, eq).trim(), part.slice(eq + 1));
    }
  }

  /** A registry armed from `env.KYRODB_FAILPOINTS`. */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): Failpoints {
    const fp = new Failpoints();
    fp.configure(env['KYRODB_FAILPOINTS']);
    return fp;
  }

  /** The armed specs, for diagnostics (`name=action`). */
  list(): Record<string, FailpointAction> {
    return Object.fromEntries([...this.armed].map(([k, v]) => [k, v.action]));
  }

  /** True when any failpoint is armed. */
  get active(): boolean {
    return this.armed.size > 0;
  }

  /**
   * Synchronous evaluation: throws for `error`/`panic`, returns the delay in ms for `delay`
   * (the caller decides how to wait), 0 otherwise.
   */
  check(name: string): number {
    if (this.armed.size === 0) return 0;
    const a = this.armed.get(name);
    if (a === undefined) return 0;
    if (--a.remaining <= 0) this.armed.delete(name);
    switch (a.action.kind) {
      case 'error':
        throw failpointError(name, a.action.code);
      case 'panic':
        throw new LogError('FAILPOINT_PANIC', `failpoint ${name} panicked`, { failpoint: name });
      case 'delay':
        return a.action.ms;
      default:
        return 0;
    }
  }

  /** Asynchronous evaluation: like `check`, but waits out a delay itself. */
  async hit(name: string): Promise<void> {
    if (this.armed.size === 0) return;
    const ms = this.check(name);
    if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
  }
}
