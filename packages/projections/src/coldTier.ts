import type { Worker } from 'node:worker_threads';
import { isLogError, startWorker } from '@kyrodb/log';
import type { Failpoints } from '@kyrodb/log';
import type { ColdFault, ColdHit, ColdOp, ColdSavedCollection, ColdStats, FromCold, ToCold } from './coldProtocol.js';
import { ProjectionError } from './errors.js';
import type { Filter } from './filter.js';

/** Raised (as PROJ_COLD_UNAVAILABLE with `details.timeout`) when a cold request outlives its timeout. */
export const COLD_TIMEOUT = 'cold_timeout';

interface Waiter {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
}

/** Turns an armed failpoint into a fault the worker carries out (a real hang or a real crash). */
export function faultFrom(fp: Failpoints, name: string): ColdFault | undefined {
  if (!fp.active) return undefined;
  try {
    const ms = fp.check(name);
    return ms > 0 ? { kind: 'delay', ms } : undefined;
  } catch (err) {
    if (isLogError(err, 'FAILPOINT_PANIC')) return { kind: 'panic' };
    return { kind: 'error', code: String((err as NodeJS.ErrnoException).code ?? 'EFAULT') };
  }
}

/**
 * The main-thread handle of one cold-tier worker: posts batches (transferring their buffers),
 * correlates replies, times requests out, and reports the worker's watermark and its death.
 * A dead handle rejects everything with PROJ_COLD_UNAVAILABLE; the owner starts a new one.
 */
export class ColdTier {
  private readonly worker: Worker;
  private readonly waiters = new Map<number, Waiter>();
  private nextReq = 1;
  private dead = false;
  private stopping = false;
  private exited = false;
  /** Apply batches posted and not yet acknowledged. */
  inFlight = 0;
  /** The last seq the worker reported applied. */
  watermark = 0;
  /** Time the last search spent inside hnswlib in the worker, µs (for benchmarks). */
  lastSearchUs = 0;

  private constructor(
    private readonly failpoints: Failpoints,
    private readonly onApplied: (seq: number) => void,
    private readonly onExit: (reason: string) => void,
  ) {
    const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
    this.worker = startWorker(new URL(`./coldWorker${ext}`, import.meta.url));
  }

  /** Starts a worker and resolves once it is ready. */
  static async start(failpoints: Failpoints, onApplied: (seq: number) => void, onExit: (reason: string) => void): Promise<ColdTier> {
    const t = new ColdTier(failpoints, onApplied, onExit);
    await new Promise<void>((resolve, reject) => {
      const onMsg = (m: FromCold): void => {
        if (m.type === 'ready') {
          t.worker.off('message', onMsg);
          t.worker.off('error', onErr);
          resolve();
        }
      };
      const onErr = (e: Error): void => reject(e);
      t.worker.on('message', onMsg);
      t.worker.once('error', onErr);
    });
    t.worker.on('message', (m: FromCold) => t.onMessage(m));
    t.worker.on('error', (e) => t.die(`worker error: ${e.message}`));
    t.worker.on('exit', (code) => {
      t.exited = true;
      t.die(`worker exited with code ${code}`);
    });
    return t;
  }

  /** False once the worker crashed or was stopped. */
  get alive(): boolean {
    return !this.dead;
  }

  private onMessage(m: FromCold): void {
    if (m.type === 'applied') {
      this.inFlight = Math.max(0, this.inFlight - 1);
      this.watermark = m.seq;
      this.onApplied(m.seq);
    } else if (m.type === 'reply') {
      const w = this.waiters.get(m.reqId);
      if (w === undefined) return; // timed out earlier
      this.waiters.delete(m.reqId);
      if (w.timer) clearTimeout(w.timer);
      if (m.ok) w.resolve(m.value);
      else w.reject(new ProjectionError('PROJ_COLD_UNAVAILABLE', `cold tier: ${m.error}`));
    }
  }

  private die(reason: string): void {
    if (this.dead) return;
    this.dead = true;
    for (const w of this.waiters.values()) {
      if (w.timer) clearTimeout(w.timer);
      w.reject(new ProjectionError('PROJ_COLD_UNAVAILABLE', `cold tier: ${reason}`));
    }
    this.waiters.clear();
    if (!this.stopping) this.onExit(reason);
  }

  private post(m: ToCold, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(m, transfer);
  }

  private request<T>(build: (reqId: number) => ToCold, timeoutMs: number, transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.dead) return Promise.reject(new ProjectionError('PROJ_COLD_UNAVAILABLE', 'cold tier is not running'));
    const reqId = this.nextReq++;
    return new Promise<T>((resolve, reject) => {
      const w: Waiter = { resolve: resolve as (v: unknown) => void, reject };
      if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
        w.timer = setTimeout(() => {
          this.waiters.delete(reqId);
          reject(new ProjectionError('PROJ_COLD_UNAVAILABLE', `cold tier did not answer within ${timeoutMs} ms`, { timeout: true }));
        }, timeoutMs);
      }
      this.waiters.set(reqId, w);
      this.post(build(reqId), transfer);
    });
  }

  /** Posts a batch of ops ending at `seq`; `vectors` is transferred. Honours `projection.cold.insert`. */
  apply(ops: ColdOp[], vectors: Float32Array, seq: number): void {
    if (this.dead) return;
    const fault = faultFrom(this.failpoints, 'projection.cold.insert');
    this.inFlight += 1;
    this.post(fault ? { type: 'apply', ops, vectors, seq, fault } : { type: 'apply', ops, vectors, seq }, [vectors.buffer as ArrayBuffer]);
  }

  /** HNSW top-`k` (filter applied inside the search). Rejects PROJ_COLD_UNAVAILABLE on failure or timeout. Honours `projection.cold.search`. */
  async search(coll: string, vector: Float32Array, k: number, filter: Filter | undefined, timeoutMs: number): Promise<ColdHit[]> {
    const v = new Float32Array(vector);
    const fault = faultFrom(this.failpoints, 'projection.cold.search');
    const r = await this.request<{ hits: ColdHit[]; tookUs: number }>(
      (reqId) => {
        const m: ToCold = { type: 'search', reqId, coll, vector: v, k };
        if (filter !== undefined) m.filter = filter;
        if (fault !== undefined) m.fault = fault;
        return m;
      },
      timeoutMs,
      [v.buffer],
    );
    this.lastSearchUs = r.tookUs;
    return r.hits;
  }

  /** Writes every index and its label map into `dir`; resolves with what was written and the worker's watermark. */
  save(dir: string): Promise<{ watermark: number; collections: ColdSavedCollection[] }> {
    return this.request((reqId) => ({ type: 'save', reqId, dir }), 0);
  }

  /** Replaces the worker's state with the indexes saved in `dir`, at watermark `seq`. All or nothing. */
  async load(dir: string, collections: string[], seq: number): Promise<ColdStats> {
    const s = await this.request<ColdStats>((reqId) => ({ type: 'load', reqId, dir, collections, seq }), 0);
    this.watermark = seq;
    return s;
  }

  /** The worker's watermark and per-collection counts. */
  stats(timeoutMs = 0): Promise<ColdStats> {
    return this.request((reqId) => ({ type: 'stats', reqId }), timeoutMs);
  }

  /**
   * Ends a worker judged hung: reported through `onExit` like a crash, so the owner restarts it.
   * It is first asked to exit (a worker that is only slow does so between messages); only one
   * still running after `graceMs` is terminated.
   */
  async kill(graceMs = 2000): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<boolean>((resolve) => {
      this.worker.once('exit', () => resolve(true));
      setTimeout(() => resolve(false), graceMs).unref();
    });
    try {
      this.worker.postMessage({ type: 'stop' } satisfies ToCold);
    } catch {
      // already gone
    }
    if (!(await exited)) await this.worker.terminate();
  }

  /**
   * Stops the worker: asks it to exit between messages (after the work queued before this
   * call), and terminates it only if it has not exited within `graceMs` (a hung worker).
   * `terminate()` landing inside a native hnswlib call aborts the whole process, so a live
   * worker is never terminated while it may be working.
   */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    this.die('stopped');
    await this.kill(graceMs);
  }
}
