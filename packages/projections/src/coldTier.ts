import type { Worker } from 'node:worker_threads';
import { isLogError, startWorker } from '@kyrodb/log';
import type { Failpoints } from '@kyrodb/log';
import type { ColdAnswer, ColdFault, ColdOp, ColdSavedCollection, ColdStats, FromCold, ToCold } from './coldProtocol.js';
import { ProjectionError } from './errors.js';
import type { Filter } from './filter.js';
import { BELL, POLL, POLL_CLOCK_STRIDE, PROGRESS, PollGovernor, SLOT, STOP, SearchChannel, waitAsync } from './searchChannel.js';
import type { SlotAnswer } from './searchChannel.js';

/** Raised (as PROJ_COLD_UNAVAILABLE with `details.timeout`) when a cold request outlives its timeout. */
export const COLD_TIMEOUT = 'cold_timeout';

interface Waiter {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
}

/**
 * How long a search may block the calling thread waiting for the worker's answer before it
 * waits asynchronously instead, ms. About ten HNSW searches: a search that is not answered by
 * then is stuck behind a slow worker, and the caller's event loop must go on.
 */
export const COLD_SYNC_WAIT_MS = 2;
/** The longest search the smoothed round trip counts, ms (a hung worker moves it only a little). */
const ROUND_TRIP_CAP_MS = 1;
/**
 * The calling thread polls for an answer for four times the smoothed round trip, and at least
 * this long, ms, before it sleeps. Polling for twice the round trip (0.3 ms at 100k vectors,
 * ef 64), the searches the worker took longer than that for paid a futex wake-up on top:
 * +70–90 µs beyond the search (median), against +10 µs for the others.
 */
const COLD_POLL_MIN_MS = 0.5;


function timeoutError(timeoutMs: number): ProjectionError {
  return new ProjectionError('PROJ_COLD_UNAVAILABLE', `cold tier did not answer within ${timeoutMs} ms`, { timeout: true });
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
  private readonly channel = SearchChannel.create();
  private readonly waiters = new Map<number, Waiter>();
  /** Channel searches waiting asynchronously (past COLD_SYNC_WAIT_MS), by slot; settled by their answer, their timeout or the worker's death. */
  private readonly slowSlots = new Map<number, Waiter>();
  private ticket = 0;
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
  /** Smoothed time from request to answer of the synchronous channel searches, ms. */
  private roundTripMs = 0.25;
  /** Whether both ends poll for each other instead of sleeping. */
  private readonly poll = new PollGovernor();

  private constructor(
    private readonly failpoints: Failpoints,
    private readonly onApplied: (seq: number) => void,
    private readonly onExit: (reason: string) => void,
  ) {
    const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
    this.worker = startWorker(new URL(`./coldWorker${ext}`, import.meta.url), { workerData: this.channel.buffers });
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
    for (const [slot, w] of this.slowSlots) {
      if (w.timer) clearTimeout(w.timer);
      w.reject(new ProjectionError('PROJ_COLD_UNAVAILABLE', `cold tier: ${reason}`));
      this.channel.set(slot, SLOT.free); // releases this slot's Atomics.waitAsync
    }
    this.slowSlots.clear();
    if (!this.stopping) this.onExit(reason);
  }

  private post(m: ToCold, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(m, transfer);
    // The worker sleeps on the channel's bell, not in its event loop: wake it for the message.
    this.channel.ring();
  }

  private request<T>(build: (reqId: number) => ToCold, timeoutMs: number, transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.dead) return Promise.reject(new ProjectionError('PROJ_COLD_UNAVAILABLE', 'cold tier is not running'));
    const reqId = this.nextReq++;
    return new Promise<T>((resolve, reject) => {
      const w: Waiter = { resolve: resolve as (v: unknown) => void, reject };
      if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
        w.timer = setTimeout(() => {
          this.waiters.delete(reqId);
          reject(timeoutError(timeoutMs));
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

  /** Whether the search channel's two ends poll for each other (see PollGovernor); false while they sleep. */
  get polling(): boolean {
    return this.poll.polling;
  }

  /**
   * HNSW top-`k` (filter applied inside the search). Rejects PROJ_COLD_UNAVAILABLE on failure or
   * after `timeoutMs` (`details.timeout`). Honours `projection.cold.search`.
   *
   * Goes through the shared channel when a slot is free and the request fits: the calling thread
   * then waits synchronously for at most COLD_SYNC_WAIT_MS (only when no earlier channel search is
   * still unanswered, so a slow or hung worker costs the event loop one such wait, not one per
   * search, nor while it is still busy with a search it was given up on), and asynchronously
   * after that. Otherwise (or for an `error` fault) by message.
   * Returns the answer itself when it came within the synchronous wait. On the channel path,
   * `whileWaiting` is called after the request went out and before the wait, in the same turn.
   */
  search(coll: string, vector: Float32Array, k: number, filter: Filter | undefined, timeoutMs: number, whileWaiting?: () => void): ColdAnswer | Promise<ColdAnswer> {
    if (this.dead) return Promise.reject(new ProjectionError('PROJ_COLD_UNAVAILABLE', 'cold tier is not running'));
    const fault = faultFrom(this.failpoints, 'projection.cold.search');
    const slot = this.channel.findFree();
    this.ticket = (this.ticket + 1) | 0;
    if (slot < 0 || !this.channel.publish(slot, this.ticket, coll, vector, k, filter === undefined ? undefined : JSON.stringify(filter), fault)) {
      return this.searchByMessage(coll, vector, k, filter, fault, timeoutMs);
    }
    const t0 = performance.now();
    this.channel.ring();
    whileWaiting?.();
    if (this.slowSlots.size === 0 && !this.channel.anyAbandoned()) {
      const early = this.channel.state(slot) === SLOT.done;
      const st = this.waitSync(slot, t0 + Math.min(COLD_SYNC_WAIT_MS, timeoutMs));
      // Only a search the caller had to wait for, while the worker had no inserts to make,
      // tells whether polling pays: not one answered while the caller was busy
      // (`whileWaiting`), nor one that waited for an insert or the batch's hand-over. One that
      // outlasted the synchronous wait counts too, once answered: the longest stalls (a thread
      // waiting a whole time slice for a core, 3–5 ms) are the ones polling must not miss.
      const note = !early && this.inFlight === 0 ? t0 : undefined;
      if (st === SLOT.done) {
        const a = this.channel.take(slot);
        if (a.ok && note !== undefined) this.notePoll((performance.now() - note) * 1000 - a.answer.tookUs);
        return this.settle(a);
      }
      return this.waitSlow(slot, Math.max(0, timeoutMs - (performance.now() - t0)), timeoutMs, note);
    }
    return this.waitSlow(slot, Math.max(0, timeoutMs - (performance.now() - t0)), timeoutMs, undefined);
  }

  /**
   * Waits until the slot is answered or `until` (performance.now() ms); returns the slot's state.
   * While polling pays (see PollGovernor) it polls first, for up to four times the recent round trip:
   * the caller is blocked either way, and a futex wake-up costs ~40 µs here, a fifth of a search.
   * Then it sleeps in Atomics.wait.
   */
  private waitSync(slot: number, until: number): number {
    const ch = this.channel;
    const t0 = performance.now();
    let st = ch.state(slot);
    if (this.poll.polling) {
      const pollUntil = Math.min(until, t0 + Math.max(COLD_POLL_MIN_MS, 4 * this.roundTripMs));
      for (let n = 1; st !== SLOT.done; n++) {
        st = ch.state(slot);
        if (n % POLL_CLOCK_STRIDE === 0 && performance.now() >= pollUntil) break;
      }
    }
    for (; st !== SLOT.done; st = ch.state(slot)) {
      const left = until - performance.now();
      if (left <= 0) return st;
      Atomics.wait(ch.ints, ch.stateIndex(slot), st, left);
    }
    // The recent round trip, smoothed; one slow answer (a hung worker) moves it only a little.
    this.roundTripMs += (Math.min(performance.now() - t0, ROUND_TRIP_CAP_MS) - this.roundTripMs) / 8;
    return st;
  }

  /** Feeds the poll governor one synchronous search's cost beyond the worker's search time; tells the worker when polling flips. */
  private notePoll(hopUs: number): void {
    const on = this.poll.polling;
    this.poll.note(hopUs, performance.now());
    if (this.poll.polling !== on) Atomics.store(this.channel.ints, POLL, this.poll.polling ? 1 : 0);
  }

  private settle(a: SlotAnswer): ColdAnswer {
    if (!a.ok) throw new ProjectionError('PROJ_COLD_UNAVAILABLE', `cold tier: ${a.error}`);
    this.lastSearchUs = a.answer.tookUs;
    return a.answer;
  }

  /**
   * Waits for a channel slot without blocking: Atomics.waitAsync for the answer, a timer for the
   * timeout. `notedFrom`: when the search was published (performance.now() ms), if its answer
   * feeds the poll governor.
   */
  private waitSlow(slot: number, leftMs: number, timeoutMs: number, notedFrom: number | undefined): Promise<ColdAnswer> {
    const ch = this.channel;
    return new Promise<ColdAnswer>((resolve, reject) => {
      let settled = false;
      const w: Waiter = {
        resolve: resolve as (v: unknown) => void,
        reject: (e) => {
          settled = true;
          reject(e);
        },
      };
      const finish = (): void => {
        settled = true;
        this.slowSlots.delete(slot);
        if (w.timer) clearTimeout(w.timer);
        try {
          const a = ch.take(slot);
          if (a.ok && notedFrom !== undefined && this.inFlight === 0) this.notePoll((performance.now() - notedFrom) * 1000 - a.answer.tookUs);
          resolve(this.settle(a));
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      };
      const watch = (): void => {
        if (settled) return;
        const st = ch.state(slot);
        if (st === SLOT.done) return finish();
        const r = waitAsync(ch.ints, ch.stateIndex(slot), st);
        if (r.async) void r.value.then(watch);
        else watch();
      };
      w.timer = setTimeout(() => {
        if (settled) return;
        if (!ch.abandon(slot)) return finish(); // answered just now
        settled = true;
        this.slowSlots.delete(slot);
        Atomics.notify(ch.ints, ch.stateIndex(slot)); // releases our waitAsync
        reject(timeoutError(timeoutMs));
      }, leftMs);
      this.slowSlots.set(slot, w);
      watch();
    });
  }

  private async searchByMessage(coll: string, vector: Float32Array, k: number, filter: Filter | undefined, fault: ColdFault | undefined, timeoutMs: number): Promise<ColdAnswer> {
    const v = new Float32Array(vector);
    const r = await this.request<ColdAnswer>(
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
    return r;
  }

  /** Sends copies of vectors for labels loaded from a checkpoint (see the `vectors` message); `vectors` is transferred. */
  fillVectors(coll: string, ids: string[], seqs: number[], vectors: Float32Array): void {
    if (this.dead) return;
    this.post({ type: 'vectors', coll, ids, seqs, vectors }, [vectors.buffer as ArrayBuffer]);
  }

  /** Writes every index and its label map into `dir`; resolves with what was written and the worker's watermark. */
  save(dir: string): Promise<{ watermark: number; collections: ColdSavedCollection[] }> {
    const fault = faultFrom(this.failpoints, 'projection.cold.save');
    return this.request((reqId) => (fault !== undefined ? { type: 'save', reqId, dir, fault } : { type: 'save', reqId, dir }), 0);
  }

  /** Replaces the worker's state with the indexes saved in `dir` (a checkpoint of `format`), at watermark `seq`. All or nothing. */
  async load(dir: string, collections: string[], seq: number, format: number): Promise<ColdStats> {
    const s = await this.request<ColdStats>((reqId) => ({ type: 'load', reqId, dir, collections, seq, format }), 0);
    this.watermark = seq;
    return s;
  }

  /** The worker's watermark and per-collection counts. */
  /** A count that grows while the worker does anything (applies an op, handles a message, serves a search). */
  progress(): number {
    return Atomics.load(this.channel.ints, PROGRESS);
  }

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
    // The STOP word too: a worker inside a filtered search (its filter then accepts every label,
    // which ends the walk) or a backlog comes out of the native call and exits between calls, where it is safe.
    Atomics.store(this.channel.ints, STOP, 1);
    Atomics.notify(this.channel.ints, STOP);
    const exited = new Promise<boolean>((resolve) => {
      this.worker.once('exit', () => resolve(true));
      setTimeout(() => resolve(false), graceMs).unref();
    });
    try {
      this.post({ type: 'stop' });
    } catch {
      // already gone
    }
    if (!(await exited)) await this.worker.terminate();
  }

  /**
   * Stops the worker: asks it to exit at its next message (skipping the work still queued), and
   * terminates it only if it has not exited within `graceMs` (a hung worker).
   * `terminate()` landing inside a native hnswlib call aborts the whole process, so a live
   * worker is never terminated while it may be working.
   */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    this.die('stopped');
    // It exits at its next message, not after the inserts still queued (a backlog of minutes
    // held a server's shutdown), nor at the end of an injected hang.
    Atomics.store(this.channel.ints, STOP, 1);
    Atomics.notify(this.channel.ints, STOP);
    Atomics.add(this.channel.ints, BELL, 1);
    Atomics.notify(this.channel.ints, BELL);
    await this.kill(graceMs);
  }
}
