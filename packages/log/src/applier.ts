import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import type { MessagePort, Worker } from 'node:worker_threads';
import type { IndexRow, StoredHead } from './store.js';
import { rowRecord } from './store.js';
import { startWorker } from './worker.js';

/** Words of the shared state: the id of the last batch the thread has finished, whether it is ready, whether it has exited. */
export const STATE_DONE = 0;
export const STATE_READY = 1;
export const STATE_EXITED = 2;

export interface ApplyWorkerData {
  dir: string;
  state: SharedArrayBuffer;
}

/**
 * A batch of rows as it crosses to the thread: the records packed into one buffer (the thread
 * reads their index fields from them: strings in a message cost the writer more than the
 * decoding costs the thread).
 */
export interface ApplyBatch {
  kind: 'apply';
  id: number;
  lens: Uint32Array;
  body: Uint8Array;
  head: StoredHead;
  /** From the `log.apply` failpoint: fail with this errno code, die (panic), or wait first. */
  fail?: { code: string } | { panic: true } | { delayMs: number };
}

export type ApplyResult =
  | { id: number; ok: true }
  | { id: number; ok: false; skipped: boolean; error?: { message: string; code?: string | undefined; errno?: number | undefined; syscall?: string | undefined } };

/** What `drain` hands back: rows the thread did not apply (a failed batch and all behind it), in order. */
export interface Drained {
  rows: IndexRow[];
  head: StoredHead | undefined;
  error: Error | undefined;
}

/** How long `drain` waits for the thread before it gives up on it. */
const DRAIN_TIMEOUT_MS = 60_000;

/**
 * The writer's side of the thread that applies acknowledged groups to LMDB (applyWorker.ts).
 * LMDB's puts and commits (a fifth of the writer's time at 64 concurrent writers) then run on the
 * other core. Batches are posted in order; `drain` blocks (Atomics.wait) until the thread has
 * finished all of them, so that a read on the writer's thread sees every acknowledged append.
 * After a failure the thread applies nothing more until `resume`: the writer gets the failed
 * batch and the ones behind it back from `drain` and applies them itself, in order.
 */
export class ApplyThread {
  private readonly words: Int32Array;
  private nextId = 1;
  private readonly posted: { id: number; rows: IndexRow[]; head: StoredHead }[] = [];
  private failure: Error | undefined;
  /** Set when the thread exited or stopped answering: nothing more is posted to it. */
  broken: Error | undefined;
  private closed = false;
  /** Batches the thread reported applied. */
  applied = 0;

  private constructor(
    private readonly worker: Worker,
    private readonly results: MessagePort,
    state: SharedArrayBuffer,
  ) {
    this.words = new Int32Array(state);
    worker.on('error', (err) => (this.broken ??= err));
    worker.on('exit', () => (this.broken ??= new Error('the LMDB apply thread exited')));
    worker.unref();
  }

  /** Starts the thread on the log in `dir` (it opens LMDB itself; `ready` says when it has). */
  static start(dir: string): ApplyThread {
    const state = new SharedArrayBuffer(12);
    const { port1, port2 } = new MessageChannel();
    const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
    const worker = startWorker(new URL(`./applyWorker${ext}`, import.meta.url), { workerData: { dir, state, results: port2 }, transferList: [port2] });
    return new ApplyThread(worker, port1, state);
  }

  /** Whether batches can be posted: the thread has opened LMDB, has not reported a failure, and is alive. */
  takes(): boolean {
    if (this.closed || this.broken !== undefined || Atomics.load(this.words, STATE_READY) !== 1) return false;
    this.collect();
    return this.failure === undefined;
  }

  /** For health and tests: starting (LMDB not open yet), running, failed (a batch failed; the writer applies it), gone. */
  get state(): 'starting' | 'running' | 'failed' | 'gone' {
    if (this.closed || this.broken !== undefined) return 'gone';
    if (Atomics.load(this.words, STATE_READY) !== 1) return 'starting';
    this.collect();
    return this.failure === undefined ? 'running' : 'failed';
  }

  /** Whether posted batches are not yet known to be applied. */
  get outstanding(): boolean {
    return this.posted.length > 0;
  }

  /** The first seq of the rows posted and not yet known to be applied (kept to be applied elsewhere if the thread fails), if any; takes the results reported so far first. */
  get heldFrom(): number | undefined {
    this.collect();
    return this.posted[0]?.rows[0]?.seq;
  }

  /** How many posted batches are not yet known to be applied. */
  get backlog(): number {
    return this.posted.length;
  }

  /** The id of the last batch the thread finished: changes whenever LMDB may have new commits. */
  get finished(): number {
    return Atomics.load(this.words, STATE_DONE);
  }

  /** Whether the thread reported a failure (collects its results without waiting). */
  failedNow(): boolean {
    this.collect();
    return this.failure !== undefined || this.broken !== undefined;
  }

  /** Posts rows (consecutive seqs extending everything posted before) and the head after them. */
  post(rows: IndexRow[], head: StoredHead, fail?: ApplyBatch['fail']): void {
    let bytes = 0;
    for (const r of rows) bytes += r.end - r.at;
    const body = new Uint8Array(bytes);
    const lens = new Uint32Array(rows.length);
    let off = 0;
    for (let i = 0; i < rows.length; i++) {
      const rec = rowRecord(rows[i]!);
      body.set(rec, off);
      off += rec.byteLength;
      lens[i] = rec.byteLength;
    }
    const id = this.nextId++;
    const batch: ApplyBatch = { kind: 'apply', id, lens, body, head: { seq: head.seq, ts: head.ts, hash: head.hash } };
    if (fail !== undefined) batch.fail = fail;
    this.posted.push({ id, rows, head });
    this.worker.postMessage(batch, [body.buffer, lens.buffer]);
  }

  /** Takes the results the thread has reported so far, without waiting. */
  private collect(): void {
    for (;;) {
      const m = receiveMessageOnPort(this.results) as { message: ApplyResult } | undefined;
      if (m === undefined) return;
      const r = m.message;
      if (r.ok) {
        if (this.posted[0]?.id === r.id) this.posted.shift();
        this.applied++;
      } else if (!r.skipped && r.error !== undefined) {
        const e = new Error(r.error.message) as NodeJS.ErrnoException;
        if (r.error.code !== undefined) e.code = r.error.code;
        if (r.error.errno !== undefined) e.errno = r.error.errno;
        if (r.error.syscall !== undefined) e.syscall = r.error.syscall;
        this.failure ??= e;
      }
    }
  }

  /**
   * Waits until the thread has finished every posted batch. Returns the rows it did not apply (a
   * failed batch and the ones behind it, or all outstanding ones if the thread is gone or stopped
   * answering) with the head after them and the error, for the writer to apply itself.
   */
  drain(): Drained {
    const last = this.posted[this.posted.length - 1];
    if (last !== undefined && this.broken === undefined) {
      const deadline = performance.now() + DRAIN_TIMEOUT_MS;
      for (;;) {
        const done = Atomics.load(this.words, STATE_DONE);
        if (done >= last.id) break;
        if (Atomics.load(this.words, STATE_EXITED) === 1) {
          // (its 'exit' event cannot be delivered while this thread waits)
          this.broken ??= new Error('the LMDB apply thread exited');
          break;
        }
        if (performance.now() > deadline) {
          this.broken = new Error(`the LMDB apply thread did not answer in ${DRAIN_TIMEOUT_MS / 1000} s`);
          break;
        }
        Atomics.wait(this.words, STATE_DONE, done, 100);
      }
    }
    this.collect();
    if (this.posted.length === 0) return { rows: [], head: undefined, error: undefined };
    const left = this.posted.splice(0);
    return { rows: left.flatMap((b) => b.rows), head: left[left.length - 1]!.head, error: this.failure ?? this.broken };
  }

  /** After the writer applied what `drain` handed back: the thread may take batches again. */
  resume(): void {
    if (this.failure === undefined) return;
    this.failure = undefined;
    this.worker.postMessage({ kind: 'resume' });
  }

  /** Stops the thread after everything posted (call `drain` first); it closes its LMDB handle. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.broken !== undefined) {
      await this.worker.terminate();
      return;
    }
    this.worker.ref(); // the process must not end before the thread has closed its handle
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage({ kind: 'close' });
    await exited;
    this.results.close();
  }
}
