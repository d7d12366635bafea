import type { Worker } from 'node:worker_threads';
import { LogError, isLogError, startWorker } from '@kyrodb/log/codec';
import { BackupError, isBackupError } from './errors.js';
import { REUSE_MIN_BYTES } from './reuse.js';
import type { ReplayState } from './state.js';
import { FileSealer, SourceOpener, type OpenOptions, type OpenedSource, type SealOptions, type SealedFile, type SourceSpec } from './fileCodec.js';

/**
 * Where the CPU-bound file work of a backup or restore runs: `inline` on the calling thread, or
 * `worker` in one worker thread beside it. `auto` (the default): a full backup or a restore of
 * at least `CODEC_WORKER_MIN_EVENTS` events runs its codec in the worker — a backup's
 * compressing and hashing then overlap reading the log; a restore's checks (each record's own
 * SHA-256, ~1 µs of its ~4.5 µs per event), decompression, decoding and counting overlap the
 * import (1M events, quiet machine: 9.1-9.4 s inline, 6.5 s in the worker). The worker's start-up, ~0.2-0.3 s
 * mostly loading its modules, makes it no faster than inline at ~100k events and slower below.
 */
export type CodecThread = 'auto' | 'inline' | 'worker';

/** Full backups and restores of at least this many events run their codec in a worker under `codecThread: 'auto'`. */
export const CODEC_WORKER_MIN_EVENTS = 250_000;

/** Whether a job runs its codec in a worker: a full backup (`seal`) or a restore (`open`) of `events` events. */
export function useCodecWorker(mode: CodecThread | undefined, job: { kind: 'seal' | 'open'; events: number }): boolean {
  if (mode === 'worker') return true;
  if (mode === 'inline') return false;
  return job.events >= CODEC_WORKER_MIN_EVENTS;
}

/** The file work of a job, in order: seal (backup) or open (restore) calls are applied in call order. */
export interface CodecRunner {
  /** Seals the next raw segment. */
  seal(raw: Buffer): Promise<SealedFile>;
  /** Opens the next source, once `stored` resolves (its rejection is handed to the opener, see SourceOpener.open). */
  open(spec: SourceSpec, stored: Promise<Buffer>): Promise<OpenedSource>;
  /**
   * Hands the memory behind an opened source's frames back to the codec, which decompresses later
   * sources into it: call once nothing reads the frames any more (for an import, once the log
   * holds none of their records: `EventLog.importHeldFrom`). Only a worker reuses it: its frames
   * cross by transfer, so the transfer back leaves any view of them on this side empty (a read
   * by mistake finds no bytes, never another source's). Inline, a no-op.
   */
  recycle(frames: readonly Buffer[]): void;
  /** Live vectors per collection after everything opened (a backup counts them as it reads: none here), and the codec's busy time (ms). */
  finish(): Promise<CodecFinish>;
  /** Stops the worker, if any. Pending calls reject. */
  close(): Promise<void>;
  /** Whether the work runs in a worker thread. */
  readonly inWorker: boolean;
  /** The opener's replayed state when inline (deep verify keeps the vectors); undefined in a worker. */
  readonly state: ReplayState | undefined;
}

/** What `CodecRunner.finish` tells. */
export interface CodecFinish {
  /** Live vectors per collection after everything opened (none for a backup: it counts as it reads). */
  counts: Record<string, number>;
  /** The codec's busy time, ms. */
  busyMs: number;
  /** Sources decompressed into memory handed back by `recycle`. */
  bodiesReused: number;
}

/** What the codec worker is started with (`workerData`). */
export type CodecJob = { kind: 'seal'; options: SealOptions } | { kind: 'open'; options: OpenOptions };

/** Messages to and from the codec worker. */
export type ToCodec =
  | { id: number; op: 'seal'; raw: ArrayBuffer; offset: number; length: number }
  | { id: number; op: 'open'; spec: SourceSpec; stored?: { ab: ArrayBuffer; offset: number; length: number }; error?: SerializedError }
  | { id: number; op: 'finish' }
  | { id: number; op: 'recycle'; buffers: ArrayBuffer[] };
type DistributiveOmitId<T> = T extends unknown ? Omit<T, 'id'> : never;
export type FromCodec = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: SerializedError };

/** An error crossing the thread boundary, rebuilt with its class and code. */
export interface SerializedError {
  name: string;
  message: string;
  code?: string;
  details?: Record<string, unknown>;
}

export function serializeError(err: unknown): SerializedError {
  if (isBackupError(err) || isLogError(err)) return { name: err.name, message: err.message, code: err.code, details: { ...err.details } };
  return { name: err instanceof Error ? err.name : 'Error', message: err instanceof Error ? err.message : String(err) };
}

export function deserializeError(e: SerializedError): Error {
  if (e.name === 'BackupError' && e.code !== undefined) return new BackupError(e.code as never, e.message, e.details ?? {});
  if (e.name === 'LogError' && e.code !== undefined) return new LogError(e.code as never, e.message, e.details ?? {});
  const err = new Error(e.message);
  err.name = e.name;
  return err;
}

/**
 * A buffer as an ArrayBuffer to transfer plus the view's offset and length. A buffer that owns a
 * large ArrayBuffer (never Node's small-allocation pool) transfers without a copy; others are
 * copied. The sender must not use `b` afterwards.
 */
export function forTransfer(b: Buffer): { ab: ArrayBuffer; offset: number; length: number } {
  if (b.buffer instanceof ArrayBuffer && b.buffer.byteLength > Buffer.poolSize) return { ab: b.buffer, offset: b.byteOffset, length: b.byteLength };
  const ab = new ArrayBuffer(b.byteLength);
  new Uint8Array(ab).set(b);
  return { ab, offset: 0, length: b.byteLength };
}

/** Opens a runner for `job`, inline or in a worker. */
export function openCodecRunner(job: CodecJob, inWorker: boolean): CodecRunner {
  return inWorker ? WorkerCodecRunner.start(job) : new InlineCodecRunner(job);
}

class InlineCodecRunner implements CodecRunner {
  private readonly sealer: FileSealer | undefined;
  private readonly opener: SourceOpener | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  readonly inWorker = false;

  constructor(job: CodecJob) {
    if (job.kind === 'seal') this.sealer = new FileSealer(job.options);
    else this.opener = new SourceOpener(job.options);
  }

  seal(raw: Buffer): Promise<SealedFile> {
    return Promise.resolve(this.sealer!.seal(raw));
  }

  open(spec: SourceSpec, stored: Promise<Buffer>): Promise<OpenedSource> {
    const p = this.chain.then(() => stored.then((b) => this.opener!.open(spec, b), (err: unknown) => this.opener!.open(spec, undefined, err instanceof Error ? err : new Error('the fetch failed', { cause: err }))));
    this.chain = p.catch(() => undefined);
    return p;
  }

  finish(): Promise<CodecFinish> {
    const c = this.sealer ?? this.opener!;
    return this.chain.then(() => ({ counts: this.opener?.counts() ?? {}, busyMs: c.busyMs, bodiesReused: this.opener?.bodiesReused ?? 0 }));
  }

  get state(): ReplayState | undefined {
    return this.opener?.state;
  }

  recycle(): void {
    // Nothing crosses a thread here: the frames stay readable wherever they were kept.
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

class WorkerCodecRunner implements CodecRunner {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private chain: Promise<unknown> = Promise.resolve();
  private failed: Error | undefined;
  readonly state = undefined;
  readonly inWorker = true;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (m: FromCodec) => {
      const w = this.waiting.get(m.id);
      if (w === undefined) return;
      this.waiting.delete(m.id);
      if (m.ok) w.resolve(m.result);
      else w.reject(deserializeError(m.error));
    });
    const fail = (err: Error): void => {
      this.failed ??= err;
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the codec worker exited (code ${code})`)));
  }

  /** Starts the worker; calls queue until it is up (its start, mostly loading the log package, overlaps the caller's first reads). */
  static start(job: CodecJob): WorkerCodecRunner {
    const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
    return new WorkerCodecRunner(startWorker(new URL(`./codecWorker${ext}`, import.meta.url), { workerData: job }));
  }

  private call(msg: DistributiveOmitId<ToCodec>, transfer: ArrayBuffer[]): Promise<unknown> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage({ ...msg, id }, transfer);
    });
  }

  async seal(raw: Buffer): Promise<SealedFile> {
    const t = forTransfer(raw);
    const r = (await this.call({ op: 'seal', raw: t.ab, offset: t.offset, length: t.length }, [t.ab])) as { body: { ab: ArrayBuffer; offset: number; length: number }; sha256: string };
    return { body: Buffer.from(r.body.ab, r.body.offset, r.body.length), sha256: r.sha256 };
  }

  open(spec: SourceSpec, stored: Promise<Buffer>): Promise<OpenedSource> {
    // Posted in call order (the worker applies them in order), each once its bytes are here and
    // the one before it is posted — not answered: the worker then finds the next source queued
    // as it finishes one. (Waiting for each answer first left it idle 20-50 ms a file, until
    // this thread had taken the answer and posted the next: ~0.7 s of a 1M-event restore.)
    const posted = this.chain.then(() =>
      stored.then(
        (b) => {
          const t = forTransfer(b);
          return { answer: this.call({ op: 'open', spec, stored: t }, [t.ab]) };
        },
        (err: unknown) => ({ answer: this.call({ op: 'open', spec, error: serializeError(err) }, []) }),
      ),
    );
    this.chain = posted.catch(() => undefined);
    return posted.then(({ answer }) => answer).then((res) => {
      const r = res as Omit<OpenedSource, 'frames'> & { frames: { ab: ArrayBuffer; offset: number; length: number }[] };
      return { ...r, frames: r.frames.map((f) => Buffer.from(f.ab, f.offset, f.length)) };
    });
  }

  recycle(frames: readonly Buffer[]): void {
    if (this.failed !== undefined) return;
    const buffers = [...new Set(frames.map((f) => f.buffer))].filter((ab): ab is ArrayBuffer => ab instanceof ArrayBuffer && ab.byteLength >= REUSE_MIN_BYTES);
    if (buffers.length === 0) return;
    try {
      this.worker.postMessage({ id: 0, op: 'recycle', buffers } satisfies ToCodec, buffers);
    } catch {
      // Not transferable: left to the garbage collector, as without recycling.
    }
  }

  async finish(): Promise<CodecFinish> {
    await this.chain;
    return (await this.call({ op: 'finish' }, [])) as CodecFinish;
  }

  async close(): Promise<void> {
    this.failed ??= new Error('the codec runner is closed');
    await this.worker.terminate();
  }
}
