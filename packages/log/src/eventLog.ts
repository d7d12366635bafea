import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Database, RootDatabase } from 'lmdb';
import type { Observable } from 'rxjs';
import { rxjs } from './rx.js';
import { Counter, Gauge, Registry } from 'prom-client';
import { CircuitBreaker, BREAKER_STATES } from './circuitBreaker.js';
import type { BreakerState } from './circuitBreaker.js';
import { systemClock } from './clock.js';
import type { Clock } from './clock.js';
import { chainHash, decodePayloadHeader, decodeRecord, indexDocId, payloadHeaderAt, recordHashOk, recordIndexFields, sealEvent, splitRecord } from './codec.js';
import { LogError, isLogError } from './errors.js';
import { GENESIS_HASH, eventDocId, toHex, validateEventInput } from './events.js';
import type { EventInput, LogEvent } from './events.js';
import { Failpoints } from './failpoints.js';
import { FRAME_HEADER_BYTES, FrameArena, FrameBuilder, SegmentWal, DEFAULT_SEGMENT_BYTES, encodeFrame, frameFirstSeq, frameSpans, fsyncPath, listSegments, readSegments, segmentRuns, segmentsChain, TORN_TAIL_FOLLOWERS, walDirOf, type RecordRun, type RecordSpans } from './wal.js';
import type { WalMark } from './wal.js';
import { ApplyThread } from './applier.js';
import type { ApplyBatch } from './applier.js';
import { DocKeyFingerprint } from './docFingerprint.js';
import { DOC_INDEX_PENDING_KEY, DOC_LEVEL, HEAD_KEY, applyRows, docsInKeyOrder, lmdbCutShort, lmdbMetaDamaged, openStores, writeDocEntries, type DocEntry } from './store.js';
import type { IndexRow, Stores } from './store.js';
import { rowRecord, spanView } from './store.js';
import { acquireWriterLock, currentBootId, writerRunning } from './writerLock.js';
import type { WriterLock } from './writerLock.js';
import { WAL_ERROR_TYPES, classifyWalError, isRetryable, refineByFreeSpace, toWalError, unwrapStorageError } from './walErrors.js';

/** Settings of the WAL error handling (the sketch's `error_recovery.wal`). */
export interface WalOptions {
  /** Attempts for a retryable (I/O) error, the first included. Default 5. */
  retryAttempts: number;
  /** First backoff delay, ms; doubles per attempt. Default 10. */
  retryBaseDelayMs: number;
  /** Largest backoff delay, ms. Default 1000. */
  retryMaxDelayMs: number;
  /** Consecutive failed appends that open the breaker. Default 3. */
  circuitBreakerThreshold: number;
  /** How long the breaker stays open before one probe is let through, ms. Default 60 000. */
  circuitBreakerTimeoutMs: number;
}

/** Defaults of the sketch: 5 attempts, breaker at 3 failures, open 60 s. */
export const defaultWalOptions: WalOptions = Object.freeze({
  retryAttempts: 5,
  retryBaseDelayMs: 10,
  retryMaxDelayMs: 1000,
  circuitBreakerThreshold: 3,
  circuitBreakerTimeoutMs: 60_000,
});

/** A structured log line from the event log. */
export type LogSink = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

/** Options of `EventLog.open`. */
export interface EventLogOptions {
  /** The data dir. The log lives in `<dir>/log.mdb`; the writer lock in `<dir>/kyrodb.lock`. Created if absent (unless read-only). */
  dir: string;
  /** Open for reading only: no writer lock, no appends; the head is re-read from disk on each call. Default false. */
  readOnly?: boolean;
  /** Registry for the `wal_*` metrics. Default: a private registry. */
  registry?: Registry;
  /** Failpoints (`wal.append`, `wal.flush`). Default: from `KYRODB_FAILPOINTS`. */
  failpoints?: Failpoints;
  /** Time source for `ts`, backoff and the breaker. Default the system clock. */
  clock?: Clock;
  /** WAL error handling. */
  wal?: Partial<WalOptions>;
  /** Largest batch `append` accepts. Default 10 000 events. */
  maxBatchEvents?: number;
  /** Largest number of events one group commit takes. Default 20 000. */
  maxGroupEvents?: number;
  /**
   * Groups in flight at once: a group's frame is written and synced while the groups ahead of it
   * are still syncing (acknowledged in order). Default and most 2. (`pipelineCommits: false` is 1.)
   */
  commitDepth?: number;
  /** False: one group at a time (commitDepth 1). Default true. */
  pipelineCommits?: boolean;
  /**
   * Where acknowledged events are applied to LMDB: `on` a thread of its own from the start, `off`
   * the writer's thread, `auto` (default) the writer's, until APPLY_THREAD_AFTER_EVENTS events
   * were appended since open on a machine with 4 or more cores, then a thread of its own (a log
   * that takes a steady stream of appends gains a core; one that takes a few does not pay for a
   * thread; with 2 cores there is no core to gain).
   */
  applyThread?: 'auto' | 'on' | 'off';
  /** Where log lines go. Default: JSON lines on stderr for warn/error. */
  logger?: LogSink;
  /** Size at which the write-ahead segment rotates. Default 64 MiB. */
  segmentBytes?: number;
  /**
   * For bulk loading (restore): once an applied batch writes its documents in random key order
   * (ids such as UUIDv4 or hashes, whose by-doc entries land all over the index; see
   * `docsInKeyOrder`), by-doc entries are gathered instead and written sorted by
   * `flushDocIndex()` or `close()` (for a million random ids ~2x cheaper; see
   * `writeDocEntries`); ids that arrive in about key order are cheap and put as before. `history` and `docAsOf` flush first. If the process stops before the
   * flush, a marker in LMDB says so and the next open for writing writes the missing entries (a
   * read-only open refuses `history`/`docAsOf` until then: LOG_INDEX_INCOMPLETE). `'always'`
   * defers from the first row (a loader that knows its ids are random; tests). Default false.
   */
  deferDocIndex?: boolean | 'always';
}

/** The head of the log: the last committed event, or seq 0 and the genesis hash when empty. */
export interface LogHead {
  seq: number;
  /** Microseconds since the epoch; 0 when empty. */
  ts: number;
  hash: Uint8Array;
}

/** What `append` resolves to once the batch is durable. */
export interface AppendResult {
  firstSeq: number;
  lastSeq: number;
  /** Commit ts of the batch, µs (all its events share it): taken when its group is sealed, just before the group's commit; never less than the previous ts. */
  ts: number;
  events: LogEvent[];
}

/**
 * A problem `verify` found (or an audit's check of the write-ahead segments against LMDB:
 * `segments_missing`, `segments_differ`; and of the by-doc index against the records: `index_differs`).
 */
export type VerifyProblem = 'hash_mismatch' | 'prev_hash_mismatch' | 'seq_mismatch' | 'seq_gap' | 'ts_regression' | 'decode_error' | 'head_mismatch' | 'digest_mismatch' | 'digest_beyond_head' | 'segments_missing' | 'segments_differ' | 'index_differs';

/** The result of `verify`. */
export type VerifyReport =
  | { ok: true; checked: number; head: LogHead }
  | { ok: false; checked: number; seq: number; problem: VerifyProblem; message: string };

/** Options of `verify`. */
export interface VerifyOptions {
  /** Start at this seq (default 1). The record before it is trusted as the anchor. */
  fromSeq?: number;
  /** A digest the log must extend: the event at `seq` must have `hash`. */
  digest?: { seq: number; hash: Uint8Array };
  /** Called every `progressEvery` events with the seq reached. */
  onProgress?: (seq: number, head: number) => void;
  progressEvery?: number;
}

/** Options of `tail`. */
export interface TailOptions {
  /** Poll the disk for commits by other processes every N ms (default: 0 = in-process commits only, unless read-only, then 100). */
  pollMs?: number;
  /** Events read from disk per step while catching up. Default 1000. */
  chunk?: number;
}

interface Pending {
  inputs: EventInput[];
  resolve: (r: AppendResult) => void;
  reject: (e: unknown) => void;
}

interface Prepared {
  events: LogEvent[];
  records: Buffer[];
  head: LogHead;
  /** The records' frame, built in place as they were sealed (undefined: build it by copying). */
  frame: Buffer | undefined;
}

/** A group in the committer's window: sealed, its frame being written and synced. */
interface Flight {
  group: Pending[];
  prepared: Prepared;
  /** Where the WAL was just before this group's frame (set when its write starts). */
  mark: WalMark | undefined;
  /** Resolves true once the frame is written (the next frame may follow), false if it never will be. */
  written: Promise<boolean>;
  /** Settles with undefined once the frame is durable, or with the error of the attempt. */
  done: Promise<unknown>;
}

/** How the last writer left the data dir: written at open, removed by a clean close. */
interface OpenMarker {
  pid: number;
  bootId: string;
}

const FORMAT_KEY = 'format';
/** 2: by-time has an entry per run of equal ts (see applyRows); 1 (one per seq) is read the same way and upgraded when opened for writing. */
const FORMAT_VERSION = 2;
/** Acknowledged events are handed to LMDB in batches of about this many, or after APPLY_DELAY_MS. */
const APPLY_BATCH_EVENTS = 1024;
const APPLY_DELAY_MS = 2;
/**
 * Applied on the writer thread, acknowledged events go to LMDB as soon as this many have gathered,
 * right after the next group's write is issued, so the apply overlaps that write. Bigger batches
 * stall the writer thread longer than a write takes (~1.6 µs an event: 1024 rows are 1.6 ms, 200
 * rows from the 2 ms timer 0.3 ms), during which finished groups wait to be acknowledged and the
 * disk idles; at 64 writers × 1 event, 64 measured 120–129k events/s against 109–114k with the timer.
 */
const APPLY_INLINE_EVENTS = 64;
/** Batches the apply thread may have outstanding before the writer waits for it. */
const APPLY_MAX_BACKLOG = 64;
/** Under `applyThread: 'auto'`, the apply thread starts once this many events were appended since open, */
const APPLY_THREAD_AFTER_EVENTS = 20_000;
/**
 * and only with 4 or more cores. On 2 (this machine) it lowers the writer's CPU per event by a
 * quarter (11 → 8 µs at 64 writers) but not its throughput: the writes' completions then wait
 * for a core, and 64 writers × 1 event measured 73–84k events/s with it against 85–89k without.
 */
const APPLY_THREAD_AUTO = os.availableParallelism() >= 4;
/** Below this much free space a group is applied to LMDB before it is acknowledged. */
const LOW_SPACE_BYTES = 256 * 1024 * 1024;
/**
 * With `deferDocIndex`, by-doc entries are deferred from the first applied batch of at least
 * DOC_DEFER_MIN_ROWS whose documents are not in about key order (fewer than this share of
 * neighbours in order). Their order, not the puts' time, decides: timed, a restore of `d<i>` ids
 * on a busy machine crossed the threshold and paid for a deferral it did not need. Measured at 1M
 * events in batches of 12.5k: `d<i>` ids ~0.85 µs a by-doc put and nearly all in order; UUIDs
 * ~3.4 µs on average (~5 µs late) and half in order.
 */
const DOC_DEFER_ORDERED_SHARE = 0.8;
const DOC_DEFER_MIN_ROWS = 4096;
/** An import is written as frames of about this size. */
const IMPORT_FRAME_BYTES = 8 * 1024 * 1024;
/**
 * `recordRuns` reads ranges of at least this many records (or from seq 1) from the write-ahead
 * segments: a segment (64 MiB) is read whole, ~100k events of 128-d vectors, so a short range
 * further on (an incremental backup of 1k events) costs less through LMDB's index.
 */
const SEGMENT_RUNS_MIN_EVENTS = 50_000;
/** Records per run when `recordRuns` reads LMDB. */
const LMDB_RUN_EVENTS = 10_000;

/** Index fields of records, one entry per record, read where each record's own hash was checked. */
export interface CheckedIndex {
  /** Each record's collection. */
  collections: readonly string[];
  /** Each record's by-doc id (`indexDocId`: a vector event's id, '' for a collection-level event). */
  docIds: readonly string[];
}

/** Options of `EventLog.importRecords` and `importFrames`. */
export interface ImportOptions {
  /**
   * Set only when every record was checked by `checkRecord` (its own hash) on these very bytes,
   * nothing has written to them since, and these are the fields it returned (the restore's codec
   * checks records in a worker thread and transfers the buffer). The import then neither
   * re-hashes nor decodes more than seq and ts, and checks what ties the records to the log and
   * to each other: consecutive seqs from the head, each prevHash equal to the hash stored in the
   * record before it (the head's for the first), ts never going back. Absent (the default):
   * every record is re-hashed and decoded here.
   */
  checked?: CheckedIndex;
}


/**
 * The event log: durable, hash-chained, totally ordered. One process writes (the writer lock);
 * any number read. `append` resolves only once its batch is flushed to disk; concurrent appends
 * share one commit and one flush (group commit). Failed writes are classified, retried after a
 * reopen (never in place), and guarded by a circuit breaker; reads keep working throughout.
 */
export class EventLog {
  private stores!: Stores;
  private env!: RootDatabase;
  private events!: Database<Buffer, number>;
  private byTime!: Database<Buffer, [number, number]>;
  private byDoc!: Database<Buffer, [string, string, number]>;
  private meta!: Database<unknown, string>;
  private cachedHead: LogHead = { seq: 0, ts: 0, hash: GENESIS_HASH };
  private readonly queue: Pending[] = [];
  private committing = false;
  private closed = false;
  private lock: WriterLock | undefined;
  /** Who hears each committed event as it commits (the live part of `tail`). */
  private readonly committedListeners = new Set<(e: LogEvent) => void>();
  private readonly opts: Required<Omit<EventLogOptions, 'wal' | 'registry'>> & { wal: WalOptions };
  /** By-doc entries of applied rows not written yet (`deferDocIndex`); undefined when not deferring. */
  private deferredDocs: DocEntry[] | undefined;
  /**
   * The thread applying acknowledged events to LMDB (see `applyThread`): off (not started, or
   * applying on this thread), starting, running, failed (a batch failed and is being applied
   * on this thread) or gone (it died; applying on this thread from now on); and how many batches
   * it applied.
   */
  get applyThreadStatus(): { state: 'off' | 'starting' | 'running' | 'failed' | 'gone'; batches: number } {
    const t = this.applier;
    if (t === undefined) return { state: this.opts.applyThread === 'off' && this.applierGone ? 'gone' : 'off', batches: this.appliedByGone };
    return { state: t.state, batches: t.applied + this.appliedByGone };
  }

  /** The WAL circuit breaker (exposed for admin reset and health). */
  readonly breaker: CircuitBreaker;
  private readonly metrics: {
    writes: Counter<'status'>;
    errors: Counter<'type'>;
    retries: Counter;
    breakerState: Gauge<'state'>;
  };
  private lastFailureType: string | undefined;
  private wal: SegmentWal | undefined;
  private cursors: Record<string, unknown> = {};
  private markerWritten = false;
  /** Acknowledged rows LMDB does not have yet and nobody is applying, in seq order, and the head after them. */
  private pendingRows: IndexRow[] = [];
  /** The first seq of each import being written, oldest first (see importHeldFrom). */
  private importsFrom: number[] = [];
  private pendingHead: LogHead | undefined;
  /** Where group frames are built (wal.ts). */
  private readonly frameArena = new FrameArena();
  /** The imports being written (see importRecords): the last one started, the head it leaves, and how many. */
  private importing: Promise<LogHead> | undefined;
  private importHead: LogHead | undefined;
  private importsInFlight = 0;
  /** A sync of LMDB started by an import ahead of close (see importRecords), and the first such sync's failure. */
  private envSyncAhead: Promise<void> | undefined;
  private envSyncAheadError: Error | undefined;
  private applyScheduled = false;
  /** Wakes the committer waiting for appends (see runCommitter). */
  private onArrival: ((arrived: true) => void) | undefined;
  /** The thread applying acknowledged rows to LMDB (see applier.ts), once started. */
  private applier: ApplyThread | undefined;
  /** `applier.finished` when this thread's LMDB read snapshot was last renewed. */
  private readSnapshotAt = 0;
  private appendedSinceOpen = 0;
  /** A thread that died: its batches, and that it did. */
  private appliedByGone = 0;
  private applierGone = false;

  private constructor(options: EventLogOptions) {
    const wal = { ...defaultWalOptions, ...options.wal };
    this.opts = {
      dir: options.dir,
      readOnly: options.readOnly ?? false,
      failpoints: options.failpoints ?? Failpoints.fromEnv(),
      clock: options.clock ?? systemClock,
      maxBatchEvents: options.maxBatchEvents ?? 10_000,
      maxGroupEvents: options.maxGroupEvents ?? 20_000,
      pipelineCommits: options.pipelineCommits ?? true,
      applyThread: options.applyThread ?? 'auto',
      // At most 2: a torn tail is told from damage mid-log by the frames after it (TORN_TAIL_FOLLOWERS).
      commitDepth: options.pipelineCommits === false ? 1 : Math.min(TORN_TAIL_FOLLOWERS + 1, Math.max(1, Math.floor(options.commitDepth ?? 2))),
      logger: options.logger ?? defaultLogger,
      segmentBytes: options.segmentBytes ?? DEFAULT_SEGMENT_BYTES,
      deferDocIndex: options.deferDocIndex ?? false,
      wal,
    };
    if (this.opts.deferDocIndex === 'always' && !this.opts.readOnly) this.deferredDocs = [];
    this.breaker = new CircuitBreaker('wal', {
      failureThreshold: wal.circuitBreakerThreshold,
      openTimeoutMs: wal.circuitBreakerTimeoutMs,
      clock: this.opts.clock,
      onStateChange: (to, from, reason) => this.opts.logger(to === 'open' ? 'error' : 'info', `WAL circuit breaker ${from} -> ${to}`, { reason }),
    });
    const registry = options.registry ?? new Registry();
    const breaker = this.breaker;
    this.metrics = {
      writes: new Counter({ name: 'wal_writes_total', help: 'WAL appends by outcome', labelNames: ['status'], registers: [registry] }),
      errors: new Counter({ name: 'wal_errors_total', help: 'WAL write errors by class', labelNames: ['type'], registers: [registry] }),
      retries: new Counter({ name: 'wal_retry_attempts_total', help: 'WAL write retries after a failed attempt', registers: [registry] }),
      breakerState: new Gauge({
        name: 'wal_circuit_breaker_state',
        help: 'WAL circuit breaker state (1 for the current state)',
        labelNames: ['state'],
        registers: [registry],
        collect() {
          const st = breaker.state;
          for (const s of BREAKER_STATES) this.set({ state: s }, s === st ? 1 : 0);
        },
      }),
    };
    for (const s of ['success', 'failure']) this.metrics.writes.inc({ status: s }, 0);
    for (const t of WAL_ERROR_TYPES) this.metrics.errors.inc({ type: t }, 0);
  }

  /** Opens (creating if needed) the log in `options.dir`. Throws LOG_LOCKED if another live process writes it. */
  static async open(options: EventLogOptions): Promise<EventLog> {
    const log = new EventLog(options);
    if (!log.opts.readOnly) {
      makeDir(options.dir);
      log.lock = await acquireWriterLock(options.dir);
    } else if (!fs.existsSync(path.join(options.dir, 'log.mdb'))) {
      throw new LogError('LOG_CLOSED', `no log at ${options.dir}`, { dir: options.dir });
    }
    try {
      if (!log.opts.readOnly) log.dropLmdbAfterMachineCrash();
      await log.setAsideLmdbCutShort();
      log.openEnv();
      log.checkFormat();
      log.cachedHead = log.readHeadFromDisk();
      if (!log.opts.readOnly && (await log.setAsideLmdbWithHoles())) {
        log.openEnv();
        log.checkFormat();
        log.cachedHead = log.readHeadFromDisk();
      }
      if (log.opts.readOnly) log.checkRecovered();
      if (!log.opts.readOnly) {
        log.loadCursors();
        await log.openWal();
        log.completeDocIndex();
        await log.checkTail(16);
        if (log.opts.applyThread === 'on') log.startApplier();
      }
    } catch (err) {
      await log.close();
      throw err;
    }
    return log;
  }

  /** The data dir. */
  get dir(): string {
    return this.opts.dir;
  }

  /** Whether the log was opened read-only. */
  get readOnly(): boolean {
    return this.opts.readOnly;
  }

  /** The failpoints registry in use. */
  get failpoints(): Failpoints {
    return this.opts.failpoints;
  }

  private openEnv(): void {
    const st = openStores(this.opts.dir, this.opts.readOnly);
    this.stores = st;
    this.env = st.env;
    this.events = st.events;
    this.byTime = st.byTime;
    this.byDoc = st.byDoc;
    this.meta = st.meta;
  }

  private checkFormat(): void {
    const v = this.meta.get(FORMAT_KEY);
    if (v === undefined) {
      if (!this.opts.readOnly) this.meta.putSync(FORMAT_KEY, FORMAT_VERSION);
      return;
    }
    if (v === 1) {
      // Format 1 reads as format 2; what this writer adds would not read as format 1.
      if (!this.opts.readOnly) this.meta.putSync(FORMAT_KEY, FORMAT_VERSION);
      return;
    }
    if (v !== FORMAT_VERSION) throw new LogError('LOG_FORMAT_VERSION', `data dir format ${JSON.stringify(v)} is not supported (expected ${FORMAT_VERSION})`, { found: v as unknown });
  }

  /**
   * The head as stored on disk: the last record of `events` (its key is the seq). A damaged head
   * record does not make this throw — `verify()` (and, for a writer, the tail check at open)
   * names it; its ts then falls back to `meta.head`'s.
   */
  private readHeadFromDisk(): LogHead {
    for (const { key, value } of this.events.getRange({ reverse: true, limit: 1 })) {
      const hash = value.byteLength >= 64 ? new Uint8Array(value.subarray(32, 64)) : new Uint8Array(GENESIS_HASH);
      let ts: number;
      try {
        ts = decodePayloadHeader(splitRecord(value).payload).ts;
      } catch {
        const m = this.meta.get(HEAD_KEY) as { ts?: unknown } | undefined;
        ts = typeof m?.ts === 'number' ? m.ts : 0;
      }
      return { seq: key, ts, hash };
    }
    return { seq: 0, ts: 0, hash: GENESIS_HASH };
  }

  /** Re-hashes the last `n` records and checks their links; throws LOG_CHAIN_BROKEN naming the seq. */
  private async checkTail(n: number): Promise<void> {
    const head = this.cachedHead.seq;
    if (head === 0) return;
    const from = Math.max(1, head - n + 1);
    const report = this.verify({ fromSeq: from });
    if (!report.ok) throw new LogError('LOG_CHAIN_BROKEN', `the tail of the log does not verify at seq ${report.seq}: ${report.message}`, { seq: report.seq, problem: report.problem });
    await Promise.resolve();
  }

  /** The last committed event's seq, ts and hash. */
  head(): LogHead {
    if (this.opts.readOnly) this.cachedHead = this.readHeadFromDisk();
    return { ...this.cachedHead };
  }

  // ---------------------------------------------------------------- appends

  /**
   * Appends a batch atomically and resolves once it is flushed to disk (its group's LMDB
   * transaction committed with a sync). A rejection with WAL_IO_ERROR after a flush failure means
   * "outcome unknown": the whole batch is either on disk or not, never part of it. Every event gets the
   * next seq, the batch's commit ts (µs, never less than the previous ts) and its chain hash.
   * Rejects, writing nothing, with LOG_EMPTY_BATCH, LOG_BATCH_TOO_LARGE, LOG_INVALID_EVENT,
   * LOG_NON_FINITE_VECTOR, WAL_CIRCUIT_OPEN, WAL_DISK_FULL, WAL_QUOTA_EXCEEDED, WAL_IO_ERROR,
   * WAL_PERMISSION_DENIED, LOG_CLOSED or LOG_READ_ONLY.
   */
  append(inputs: readonly EventInput[]): Promise<AppendResult> {
    try {
      if (this.closed) throw new LogError('LOG_CLOSED', 'the log is closed');
      if (this.opts.readOnly) throw new LogError('LOG_READ_ONLY', 'the log is open read-only');
      if (!Array.isArray(inputs) || inputs.length === 0) throw new LogError('LOG_EMPTY_BATCH', 'an append batch must hold at least one event');
      if (inputs.length > this.opts.maxBatchEvents) throw new LogError('LOG_BATCH_TOO_LARGE', `a batch holds at most ${this.opts.maxBatchEvents} events (got ${inputs.length})`, { max: this.opts.maxBatchEvents });
      const copies = inputs.map((e, i) => {
        validateEventInput(e, i);
        return copyInput(e);
      });
      const permit = this.breaker.tryAcquire();
      if (!permit.allowed) {
        this.metrics.writes.inc({ status: 'failure' });
        throw this.blockedError(permit.retryAfterMs, permit.reason);
      }
      return new Promise<AppendResult>((resolve, reject) => {
        this.queue.push({ inputs: copies, resolve, reject });
        const wake = this.onArrival;
        if (wake !== undefined) {
          this.onArrival = undefined;
          wake(true);
        }
        if (!this.committing) void this.runCommitter();
      });
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** The fail-fast error while the breaker is open: WAL_DISK_FULL after a disk-full failure, else WAL_CIRCUIT_OPEN. */
  private blockedError(retryAfterMs: number, reason: string): LogError {
    const diskFull = this.lastFailureType === 'disk_full';
    return new LogError(diskFull ? 'WAL_DISK_FULL' : 'WAL_CIRCUIT_OPEN', `WAL writes are blocked: circuit breaker open (${reason}); retry in ${Math.ceil(retryAfterMs / 1000)} s or reset the breaker`, {
      retryAfterMs,
      reason,
    });
  }

  /**
   * The next group: queued requests up to `maxGroupEvents`. With `split` (nothing in flight) a
   * long queue is halved: the two halves then commit in turn, each one's sync overlapping the
   * other's writers (instead of all writers waiting on one sync and then all working at once).
   * Measured on this machine (bench/src/log.ts, quiet): 64 writers 57k vs 49k events/s, 16
   * writers 28k vs 25k, 64 × 16-event batches 79k vs 71k, against taking the queue whole; an
   * adaptive rule (split only when the writers' work outlasts a sync) did no better than never.
   */
  private takeGroup(split: boolean): Pending[] | undefined {
    if (this.queue.length === 0) return undefined;
    const maxRequests = split && this.queue.length >= 8 ? Math.ceil(this.queue.length / 2) : Number.MAX_SAFE_INTEGER;
    const group: Pending[] = [];
    let n = 0;
    while (this.queue.length > 0 && group.length < maxRequests && (group.length === 0 || n + this.queue[0]!.inputs.length <= this.opts.maxGroupEvents)) {
      const p = this.queue.shift()!;
      n += p.inputs.length;
      group.push(p);
    }
    return group;
  }

  /**
   * The group-commit loop. One group = one frame = one durable write. Up to `commitDepth` groups
   * are in flight at once: each is sealed on the head the one before it will leave, and its frame
   * is placed after that one's, so frames are always in seq order in the file, but its write
   * does not wait for the earlier one to be durable. (On this machine's disk, two syncs in flight
   * complete 6.6–7.2k times a second against 5.3–5.9k for one.) Groups are acknowledged strictly in
   * order, each only once its own write and every earlier group's have succeeded. When a group
   * fails, the groups behind it are not acknowledged even if their own writes succeeded (after a
   * failed write or sync nothing the kernel says about the file is trusted): once their writes have
   * settled, the segment is cut back to where the failed group began, that group is retried
   * alone (with backoff, from scratch) and the ones behind it go back to the head of the queue, to
   * be sealed again on the real head.
   */
  private async runCommitter(): Promise<void> {
    if (this.committing) return;
    this.committing = true;
    const flights: Flight[] = [];
    try {
      for (;;) {
        while (flights.length < this.opts.commitDepth && (flights.length === 0 || this.wal!.needsRollback === undefined)) {
          // Let appends issued in this turn of the event loop join the group. Without this, the
          // writers woken by the previous group re-append only after the loop has taken a group
          // of one, and group sizes alternate 1, N-1, 1, N-1 (half the throughput). With a group
          // in flight, the writers just woken (their continuations are microtasks) are enough:
          // waiting for the next turn as well measured 78-91k against 88-94k events/s at 64
          // writers, and appends that arrive later join the group after it.
          if (flights.length > 0) {
            for (let i = 0; i < 4; i++) await Promise.resolve();
          } else await tick();
          const group = this.takeGroup(flights.length === 0);
          if (group === undefined) break;
          const last = flights[flights.length - 1];
          const prepared = this.prepare(
            group.map((p) => p.inputs),
            last?.prepared.head ?? this.cachedHead,
          );
          if (this.failFastIfOpen(group)) continue;
          flights.push(this.launch(group, prepared, last?.written));
        }
        if (flights.length === 0) break;
        if (flights.length < this.opts.commitDepth && this.queue.length === 0 && this.wal!.needsRollback === undefined) {
          // Room in the window: appends that arrive (from I/O, say) while the first group is in
          // flight start the next one at once, instead of after it.
          const arrived = await Promise.race([flights[0]!.done.then(() => false), this.nextArrival()]);
          if (arrived) continue;
        }
        const first = flights.shift()!;
        let failure = await first.done;
        if (failure === undefined) {
          try {
            this.acknowledge(first.prepared);
            this.cachedHead = first.prepared.head;
          } catch (err) {
            failure = err;
          }
        }
        if (failure === undefined) {
          this.settleSuccess(first.group, splitResults(batchesOf(first.group), first.prepared.events));
          continue;
        }
        // The groups behind it are never acknowledged: wait for their I/O, then send them back.
        await Promise.all(flights.map((f) => f.done));
        const behind = flights.splice(0).flatMap((f) => f.group);
        this.queue.unshift(...behind);
        try {
          // Its mark was taken before its write: the group ahead of it had been written (it was acknowledged).
          const results = await this.commitGroup(batchesOf(first.group), first.prepared, { err: failure, mark: first.mark! });
          this.settleSuccess(first.group, results);
        } catch (err) {
          this.settleFailure(first.group, err);
        }
      }
    } finally {
      this.committing = false;
    }
  }

  /** Resolves (true) when the next append is queued. */
  private nextArrival(): Promise<true> {
    return new Promise<true>((resolve) => (this.onArrival = resolve));
  }

  /** With the breaker open (a failure ahead of this group opened it), fails the group fast, as `append` does. */
  private failFastIfOpen(group: Pending[]): boolean {
    if (this.breaker.state !== 'open') return false;
    this.metrics.writes.inc({ status: 'failure' }, group.length);
    const e = this.blockedError(Math.max(1, this.breaker.retryAfterMs), this.breaker.reason);
    for (const p of group) p.reject(e);
    return true;
  }

  /**
   * Starts a group's first attempt: its frame is written once the frame ahead of it (`after`) is,
   * then synced. `done` settles with undefined once the frame is durable, or with the error.
   */
  private launch(group: Pending[], prepared: Prepared, after: Promise<boolean> | undefined): Flight {
    let wrote!: (ok: boolean) => void;
    const flight: Flight = { group, prepared, mark: undefined, written: new Promise<boolean>((resolve) => (wrote = resolve)), done: Promise.resolve(undefined) };
    flight.done = this.attemptFrame(prepared, after, (m) => (flight.mark = m), wrote).then(
      () => undefined,
      (err: unknown) => {
        wrote(false);
        return err ?? new Error('WAL write failed');
      },
    );
    return flight;
  }

  /** Hands a committed event to each live tail. A listener's failure is its own: it never reaches the commit that announced it. */
  private announce(e: LogEvent): void {
    for (const l of this.committedListeners) {
      try {
        l(e);
      } catch (err) {
        this.opts.logger('error', 'a live tail failed on a committed event', { seq: e.seq, error: String(err) });
      }
    }
  }

  private settleSuccess(group: Pending[], results: AppendResult[]): void {
    this.breaker.recordSuccess();
    this.lastFailureType = undefined;
    this.metrics.writes.inc({ status: 'success' }, group.length);
    if (this.committedListeners.size > 0) for (const r of results) for (const ev of r.events) this.announce(ev);
    group.forEach((p, i) => p.resolve(results[i]!));
  }

  private settleFailure(group: Pending[], err: unknown): void {
    const e = toWalError(err, this.opts.wal.retryAttempts);
    const type = (e.details['type'] as string | undefined) ?? classifyWalError(err);
    this.lastFailureType = type;
    this.metrics.writes.inc({ status: 'failure' }, group.length);
    if (e.code === 'WAL_DISK_FULL') this.breaker.trip(`disk full: ${e.message}`);
    else this.breaker.recordFailure(e.message);
    this.opts.logger('error', 'WAL append failed', { code: e.code, message: e.message, requests: group.length });
    // The failure that opened the breaker says how long writes stay blocked (Retry-After), as the
    // refusals after it do.
    const code = e.code;
    const answer = this.breaker.state === 'open' ? new LogError(code, e.message, { ...e.details, retryAfterMs: Math.max(1, this.breaker.retryAfterMs) }, { cause: e.cause }) : e;
    for (const p of group) p.reject(answer);
  }

  /**
   * Commits one group (several requests' batches) on its own: one frame, one `fdatasync`. A failed
   * write, sync or apply is never retried in place: the segment is reopened and cut back to the
   * last durable frame (so nothing the kernel still holds from the failed attempt survives — the
   * fsyncgate lesson), the head is re-read from the file and the tail verified, and only then is
   * the batch written again, from scratch, on top of that head: it can neither be lost nor land
   * twice. Retries I/O errors with backoff. `failed`: the first attempt was made in the
   * committer's window and failed so (with the segment where `mark` says it was before it).
   */
  private async commitGroup(batches: EventInput[][], sealed: Prepared, failed?: { err: unknown; mark: WalMark }): Promise<AppendResult[]> {
    let prepared = sealed;
    let attempt = 1;
    if (failed !== undefined) prepared = await this.afterFailedAttempt(failed.err, failed.mark, attempt++, batches, prepared);
    for (; ; attempt++) {
      const wal = this.wal!;
      const mark = wal.needsRollback ?? wal.mark();
      try {
        await this.attemptFrame(prepared, undefined, undefined, undefined);
        this.acknowledge(prepared);
        this.cachedHead = prepared.head;
        return splitResults(batches, prepared.events);
      } catch (thrown) {
        prepared = await this.afterFailedAttempt(thrown, mark, attempt, batches, prepared);
      }
    }
  }

  /**
   * After a failed attempt: classifies and counts the error, cuts the segment back to `mark`
   * (see `recover`), and either throws the classified error (not retryable, or out of attempts)
   * or waits out the backoff and returns the batches sealed again on the real head.
   */
  private async afterFailedAttempt(thrown: unknown, mark: WalMark, attempt: number, batches: EventInput[][], prepared: Prepared): Promise<Prepared> {
    const { retryAttempts, retryBaseDelayMs, retryMaxDelayMs } = this.opts.wal;
    const err = refineByFreeSpace(await unwrapStorageError(thrown), this.opts.dir, recordBytes(prepared));
    const type = classifyWalError(err);
    this.metrics.errors.inc({ type });
    this.opts.logger('warn', 'WAL write attempt failed', { attempt, type, message: err instanceof Error ? err.message : String(err) });
    await this.recover(mark);
    if (!isRetryable(type) || attempt >= retryAttempts || isLogError(err, 'FAILPOINT_PANIC')) throw toWalError(err, attempt);
    this.metrics.retries.inc();
    const delay = Math.min(retryMaxDelayMs, retryBaseDelayMs * 2 ** (attempt - 1));
    await this.opts.clock.sleep(delay);
    return this.prepare(batches, this.cachedHead);
  }

  private prepare(batches: EventInput[][], head: LogHead): Prepared {
    let { seq, hash } = head;
    const ts = Math.max(this.opts.clock.nowMicros(), head.ts);
    const events: LogEvent[] = [];
    const records: Buffer[] = [];
    let estimate = 0;
    for (const batch of batches) for (const input of batch) estimate += recordEstimate(input);
    const frame = new FrameBuilder(estimate, this.frameArena);
    const firstSeq = seq + 1;
    for (const batch of batches) {
      for (const input of batch) {
        seq += 1;
        const sealed = sealEvent(input, seq, ts, hash, frame.alloc);
        hash = sealed.event.hash;
        events.push(sealed.event);
        records.push(sealed.record);
      }
    }
    return { events, records, head: { seq, ts, hash }, frame: frame.finish(firstSeq) };
  }

  /**
   * One attempt at a group's frame: written (after the frame ahead of it, `after`, if any; a
   * failed one ahead fails this one too) and made durable. `onMark` gets where the WAL was just
   * before. Meanwhile, once enough acknowledged rows have gathered, they are handed to LMDB; if
   * LMDB has failed to take acknowledged rows, this attempt fails too (and its frame is cut
   * back): nothing new is acknowledged past rows LMDB cannot take.
   */
  private async attemptFrame(p: Prepared, after: Promise<boolean> | undefined, onMark: ((m: WalMark) => void) | undefined, wrote: ((ok: boolean) => void) | undefined): Promise<void> {
    if (after !== undefined && !(await after)) throw new LogError('WAL_IO_ERROR', 'a group ahead of this one failed');
    const wal = this.wal!;
    onMark?.(wal.needsRollback ?? wal.mark());
    if (wal.needsRollback !== undefined) await wal.rollback(wal.needsRollback);
    const fp = this.opts.failpoints;
    if (fp.active) await fp.hit('wal.append');
    const durable = wal.appendDurable(p.records, p.events[0]!.seq, wrote && (() => wrote(true)), p.frame);
    let applyError: Error | undefined;
    try {
      const threshold = this.applier?.takes() === true ? APPLY_BATCH_EVENTS : APPLY_INLINE_EVENTS;
      if (this.pendingRows.length >= threshold || this.applier?.failedNow() === true) this.handOver();
    } catch (err) {
      applyError = err instanceof Error ? err : new Error(String(err));
    }
    await durable;
    // On disk, but its outcome reported as failed: the frame is cut back like any other.
    if (fp.active) await fp.hit('wal.flush');
    if (applyError !== undefined) throw applyError;
  }

  /**
   * A durable group becomes acknowledged: its rows join those waiting for LMDB. They are handed
   * over once APPLY_BATCH_EVENTS have gathered or APPLY_DELAY_MS later, whichever comes first,
   * and every read first waits until LMDB has every acknowledged row: reads always see every
   * acknowledged append, while the append's latency is its frame's write alone. (Another
   * process reading the data dir sees an append once it is applied, a few ms later.) With
   * little free space left the rows are applied here, and a failure fails the group (throws,
   * with its rows taken back) instead of a later read.
   */
  private acknowledge(p: Prepared): void {
    const events = p.events;
    const rows = new Array<IndexRow>(events.length);
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      const record = p.records[i]!;
      rows[i] = { seq: e.seq, ts: e.ts, collection: e.collection, docId: eventDocId(e) ?? DOC_LEVEL, record, at: 0, end: record.byteLength };
    }
    this.acknowledgeRows(rows, p.head);
  }

  /** `acknowledge` for rows (an append's group, or an import's records). */
  private acknowledgeRows(rows: readonly IndexRow[], head: LogHead): void {
    for (const r of rows) this.pendingRows.push(r);
    this.pendingHead = head;
    this.appendedSinceOpen += rows.length;
    if (this.applier === undefined && this.opts.applyThread === 'auto' && APPLY_THREAD_AUTO && this.appendedSinceOpen >= APPLY_THREAD_AFTER_EVENTS) this.startApplier();
    if (this.wal!.freeBytes() < LOW_SPACE_BYTES) {
      try {
        this.applyPending();
      } catch (err) {
        this.pendingRows.length -= rows.length;
        this.pendingHead = this.pendingRows.length > 0 ? this.cachedHead : undefined;
        throw err;
      }
      return;
    }
    if (this.pendingRows.length >= APPLY_BATCH_EVENTS && this.applier?.takes() === true && this.applier.backlog < APPLY_MAX_BACKLOG) {
      this.postPending(this.applier);
      return;
    }
    if (this.applyScheduled) return;
    this.applyScheduled = true;
    setTimeout(() => {
      this.applyScheduled = false;
      if (this.closed) return; // close applies what is left
      try {
        this.handOver();
      } catch (err) {
        this.opts.logger('error', 'applying durable events to LMDB failed; reads and appends will retry it', { message: err instanceof Error ? err.message : String(err) });
      }
    }, APPLY_DELAY_MS);
  }

  private startApplier(): void {
    try {
      this.applier = ApplyThread.start(this.opts.dir);
    } catch (err) {
      this.opts.applyThread = 'off';
      this.opts.logger('warn', 'could not start the LMDB apply thread; applying on the writer thread', { message: err instanceof Error ? err.message : String(err) });
    }
  }

  /**
   * Hands the acknowledged rows waiting for LMDB over without waiting: posted to the apply thread
   * when it takes them, else applied here (see `applyPending`, whose errors this throws).
   */
  private handOver(): void {
    const t = this.applier;
    // A thread that falls this far behind (the cores are busy elsewhere) makes the writer wait
    // for it, so that the acknowledged rows it holds stay bounded.
    if (t !== undefined && t.takes() && t.backlog < APPLY_MAX_BACKLOG) {
      this.postPending(t);
      return;
    }
    this.applyPending();
  }

  /** Posts the waiting rows to the apply thread (the `log.apply` failpoint travels with them). */
  private postPending(t: ApplyThread): void {
    if (this.pendingRows.length === 0) return;
    let fail: ApplyBatch['fail'];
    const fp = this.opts.failpoints;
    if (fp.active) {
      try {
        const delayMs = fp.check('log.apply');
        if (delayMs > 0) fail = { delayMs };
      } catch (err) {
        fail = isLogError(err, 'FAILPOINT_PANIC') ? { panic: true } : { code: (err as NodeJS.ErrnoException).code ?? 'EIO' };
      }
    }
    t.post(this.pendingRows, this.pendingHead!, fail);
    this.pendingRows = [];
    this.pendingHead = undefined;
  }

  /**
   * Makes LMDB have every acknowledged row before returning: hands the waiting rows to the apply
   * thread and waits for it, or applies them here (the thread not started yet, failed or gone:
   * what it did not apply comes back and is applied here, in order). Called before every read.
   * On failure (LMDB's file cannot grow: disk full) the rows stay waiting and the error is
   * thrown, classified like a WAL error; the segments have them, so nothing is lost.
   */
  private applyPending(): void {
    const t = this.applier;
    if (t !== undefined) {
      if (t.takes()) this.postPending(t);
      const back = t.outstanding ? t.drain() : undefined;
      if (t.finished !== this.readSnapshotAt) {
        // The thread committed since this thread's read snapshot was taken: take a new one.
        this.readSnapshotAt = t.finished;
        this.env.resetReadTxn();
      }
      if (back !== undefined && back.rows.length > 0) {
        this.opts.logger('warn', 'the LMDB apply thread did not apply acknowledged events; applying them here', { rows: back.rows.length, message: back.error?.message });
        // A thread that stopped answering may have committed before it stopped: skip what LMDB has.
        const inLmdb = this.readHeadFromDisk().seq;
        this.pendingRows = back.rows.filter((r) => r.seq > inLmdb).concat(this.pendingRows);
        this.pendingHead ??= back.head;
        if (this.pendingRows.length === 0) this.pendingHead = undefined;
      }
      if (t.broken !== undefined) {
        this.applier = undefined;
        this.opts.applyThread = 'off';
        this.applierGone = true;
        this.appliedByGone += t.applied;
        this.opts.logger('error', 'the LMDB apply thread is gone; applying on the writer thread from now on', { message: t.broken.message });
        void t.close();
      }
    }
    if (this.pendingRows.length === 0) return;
    const rows = this.pendingRows;
    try {
      applyRows(this.stores, rows, this.pendingHead!, this.deferredDocs);
      if (this.opts.deferDocIndex === true && this.deferredDocs === undefined && rows.length >= DOC_DEFER_MIN_ROWS && docsInKeyOrder(rows, DOC_DEFER_ORDERED_SHARE) === false) this.deferredDocs = [];
    } catch (thrown) {
      const err = refineByFreeSpace(thrown, this.opts.dir, rows[0]!.end - rows[0]!.at);
      throw toWalError(err, 1);
    }
    this.pendingRows = [];
    this.pendingHead = undefined;
    this.applier?.resume();
  }

  /**
   * After a failed attempt: cut the segment back to `mark` through a fresh descriptor, re-read
   * the last frame from the file and check it is the last acknowledged head, check LMDB ends
   * there too and verify its tail. Throws (classified) if the cut fails; the next attempt then
   * starts by cutting again.
   */
  private async recover(mark: WalMark): Promise<void> {
    const wal = this.wal!;
    try {
      await wal.rollback(mark);
    } catch (thrown) {
      const err = refineByFreeSpace(thrown, this.opts.dir, 0);
      this.metrics.errors.inc({ type: classifyWalError(err) });
      throw toWalError(err, 1);
    }
    const inFile = wal.readLastFromFile();
    if (inFile !== undefined && (inFile.seq !== mark.lastSeq || !bytesEqual(inFile.hash, mark.lastHash))) {
      throw new LogError('LOG_CHAIN_BROKEN', `after a failed write the write-ahead segment ends at seq ${inFile.seq}, expected ${mark.lastSeq}`, { seq: mark.lastSeq });
    }
    if (this.cachedHead.seq !== mark.lastSeq || !bytesEqual(this.cachedHead.hash, mark.lastHash)) {
      throw new LogError('LOG_CHAIN_BROKEN', `after a failed write the write-ahead segments end at seq ${mark.lastSeq}, the acknowledged head is ${this.cachedHead.seq}`, { seq: mark.lastSeq });
    }
    if (this.pendingRows.length > 0 || this.applier?.outstanding === true) return; // LMDB is behind by acknowledged rows: applied before the next write or read
    const lmdbHead = this.readHeadFromDisk();
    if (lmdbHead.seq !== mark.lastSeq || !bytesEqual(lmdbHead.hash, mark.lastHash)) {
      throw new LogError('LOG_CHAIN_BROKEN', `after a failed write LMDB ends at seq ${lmdbHead.seq}, the write-ahead segments at ${mark.lastSeq}`, { seq: mark.lastSeq });
    }
    const report = this.verify({ fromSeq: Math.max(1, lmdbHead.seq - 15) });
    if (!report.ok) throw new LogError('LOG_CHAIN_BROKEN', `the tail of the log does not verify at seq ${report.seq}: ${report.message}`, { seq: report.seq, problem: report.problem });
  }

  /**
   * Checks that the records `spans` lays out extend `from`: consecutive seqs, each linking to the
   * previous hash and re-hashing to its stored hash, ts never going back. Decodes only the index
   * fields. With `checked` (see ImportOptions) nothing is re-hashed and only seq and ts are
   * decoded. The rows hold the records where they lie (no view per record).
   */
  private checkRecords(spans: RecordSpans, from: LogHead, checked?: CheckedIndex): { rows: IndexRow[]; head: LogHead } {
    const { bufs, at: ats, end: ends } = spans;
    const n = bufs.length;
    if (checked !== undefined && (checked.collections.length !== n || checked.docIds.length !== n)) {
      throw new LogError('LOG_INVALID_EVENT', `import of ${n} records with index fields for ${checked.collections.length} and ${checked.docIds.length}`);
    }
    let { seq, ts } = from;
    // The previous hash is `hash[hashAt..hashAt + 32]`: the head's, then each record's own.
    let hash: Uint8Array = from.hash;
    let hashAt = 0;
    const rows: IndexRow[] = new Array<IndexRow>(n);
    for (let i = 0; i < n; i++) {
      const buf = bufs[i]!;
      const at = ats[i]!;
      const end = ends[i]!;
      if (end - at < 65) throw new LogError('LOG_CORRUPT_RECORD', 'record is too short');
      // Checked elsewhere: seq and ts read in place, the rest given. Else the index fields decoded here.
      let f: { seq: number; ts: number };
      let collection: string;
      let docId: string;
      if (checked !== undefined) {
        f = payloadHeaderAt(buf, at + 64, end);
        collection = checked.collections[i]!;
        docId = checked.docIds[i]!;
      } else {
        const x = recordIndexFields(spanView(buf, at, end));
        f = x;
        collection = x.collection;
        docId = indexDocId(x);
      }
      if (f.seq !== seq + 1) throw new LogError('LOG_CHAIN_BROKEN', `import expected seq ${seq + 1}, got ${f.seq}`, { seq: seq + 1, problem: 'seq_gap' });
      if (!linksTo(buf, at, hash, hashAt)) throw new LogError('LOG_CHAIN_BROKEN', `seq ${f.seq} does not link to the previous hash`, { seq: f.seq, problem: 'prev_hash_mismatch' });
      if (checked === undefined && !recordHashOk(spanView(buf, at, end))) throw new LogError('LOG_CHAIN_BROKEN', `seq ${f.seq} does not hash to its stored hash`, { seq: f.seq, problem: 'hash_mismatch' });
      if (f.ts < ts) throw new LogError('LOG_CHAIN_BROKEN', `seq ${f.seq} goes back in time`, { seq: f.seq, problem: 'ts_regression' });
      seq = f.seq;
      ts = f.ts;
      hash = buf;
      hashAt = at + 32;
      rows[i] = { seq, ts, collection, docId, record: buf, at, end };
    }
    return { rows, head: { seq, ts, hash: new Uint8Array(hash.subarray(hashAt, hashAt + 32)) } };
  }

  /**
   * Imports already-sealed records (from a backup) after the head: each must continue the seqs,
   * link to the previous hash, never go back in time and re-hash correctly, or nothing is written
   * (LOG_CHAIN_BROKEN; LOG_CORRUPT_RECORD for one that does not decode). With
   * `options.checked` the caller vouches for each record's own hash and the import checks the
   * rest (see ImportOptions). Resolves once durable in the write-ahead segments; like an
   * append's group, the records then go to LMDB (see `acknowledge`): handed to the apply thread
   * once it runs, else applied while the next import's frames are written and synced, or before
   * any read or close — so that a restore's two heaviest steps overlap. Used by restore.
   *
   * An import may be started while earlier ones are still being written: it is checked at once
   * against the head they will leave, and its frames go out after theirs. If one fails, every
   * import started behind it fails with the same error and writes nothing. A restore so checks
   * and frames its next batch while the previous one's frames are on their way to disk (1M
   * events: the import's thread otherwise waited ~1.3-1.9 s for the write-ahead writes).
   */
  importRecords(records: readonly Uint8Array[], options: ImportOptions = {}): Promise<LogHead> {
    return this.startImport(spansOf(records), options.checked, undefined);
  }

  /**
   * `importRecords` of the records inside write-ahead frames the caller built (`encodeFrame`,
   * `sealFrame`; in seq order): the frames are written as they are. Their records are read out
   * of them here, in one pass over each frame's header and record lengths (`frameSpans`), so
   * a frame always holds exactly the records imported from it. A frame that is not one, or whose
   * first seq is not its first record's, is LOG_INVALID_EVENT, and nothing is written. The
   * restore's codec worker builds the frames (and checks the records: `options.checked`).
   */
  importFrames(frames: readonly Uint8Array[], options: ImportOptions = {}): Promise<LogHead> {
    const records: RecordSpans = { bufs: [], at: [], end: [] };
    const spans: [number, number, Uint8Array][] = [];
    for (const f of frames) {
      const start = records.bufs.length;
      if (!frameSpans(f, records)) return Promise.reject(new LogError('LOG_INVALID_EVENT', `import frame ${spans.length} is not a write-ahead frame`));
      spans.push([start, records.bufs.length, f]);
    }
    return this.startImport(records, options.checked, spans);
  }

  /**
   * The lowest seq whose record bytes, as given to `importRecords` or `importFrames`, the log may
   * still read: in an import being written, in rows waiting for LMDB, or in rows the apply thread
   * holds until it has applied them. Undefined when it holds none. A bulk loader may reuse the
   * memory of the records below it (restore hands its sources' buffers back to its codec worker).
   */
  importHeldFrom(): number | undefined {
    let from = this.importsFrom[0];
    const pending = this.pendingRows[0]?.seq;
    if (pending !== undefined && (from === undefined || pending < from)) from = pending;
    const posted = this.applier?.heldFrom;
    if (posted !== undefined && (from === undefined || posted < from)) from = posted;
    return from;
  }

  /** Checks an import and starts writing it: in the frames `built` spans, else in frames built here. */
  private startImport(records: RecordSpans, checked: CheckedIndex | undefined, built: readonly [number, number, Uint8Array][] | undefined): Promise<LogHead> {
    try {
      if (this.opts.readOnly) throw new LogError('LOG_READ_ONLY', 'the log is open read-only');
      if (records.bufs.length === 0) return this.importing === undefined ? Promise.resolve(this.head()) : this.importing.then(() => this.head());
      // Only the index fields are decoded (no vectors, no metadata): restore imports millions.
      const { rows, head } = this.checkRecords(records, this.importHead ?? this.cachedHead, checked);
      const frames = importSpans(rows, built);
      const done = this.writeImport(this.importing, rows, head, frames);
      this.importing = done;
      this.importHead = head;
      this.importsInFlight += 1;
      this.importsFrom.push(rows[0]!.seq);
      // Imports settle in the order they start (each waits for the one before it).
      const settled = (): void => {
        this.importsFrom.shift();
        this.importsInFlight -= 1;
        if (this.importsInFlight === 0) {
          this.importing = undefined;
          this.importHead = undefined;
        }
      };
      done.then(settled, settled);
      return done;
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Writes a checked import's frames once the import before it (`prev`) is done, and acknowledges its rows. */
  private async writeImport(prev: Promise<LogHead> | undefined, rows: IndexRow[], head: LogHead, frames: [number, number, Uint8Array | undefined][]): Promise<LogHead> {
    if (prev !== undefined) {
      try {
        await prev;
      } catch (cause) {
        throw new LogError('WAL_IO_ERROR', 'an import ahead of this one failed; nothing of this one was written', {}, { cause });
      }
    }
    const wal = this.wal!;
    const mark = wal.needsRollback ?? wal.mark();
    const writing = (async (): Promise<void> => {
      if (wal.needsRollback !== undefined) await wal.rollback(wal.needsRollback);
      if (this.opts.failpoints.active) await this.opts.failpoints.hit('wal.import');
      for (const [start, end, built] of frames) {
        const last = rows[end - 1]!;
        const frame = built ?? encodeFrame(rows.slice(start, end).map(rowRecord), rows[start]!.seq);
        await wal.appendImport(frame, end - start, rows[start]!.seq, last.record.subarray(last.at + 32, last.at + 64));
      }
      await wal.sync();
    })();
    // While these frames are written and synced (off this thread), the rows acknowledged before
    // them (the previous import's) go to LMDB: to the apply thread, or applied here. If that
    // fails, this import fails too (its frames are cut back): nothing new is written past
    // acknowledged rows LMDB cannot take.
    let applyError: Error | undefined;
    try {
      if (this.pendingRows.length > 0) {
        this.handOver();
        this.syncEnvAhead();
      }
    } catch (err) {
      applyError = err instanceof Error ? err : new Error(String(err));
    }
    try {
      await writing;
      if (applyError !== undefined) throw applyError;
      this.acknowledgeRows(rows, head);
    } catch (thrown) {
      const err = refineByFreeSpace(await unwrapStorageError(thrown), this.opts.dir, 0);
      this.metrics.errors.inc({ type: classifyWalError(err) });
      await this.recover(mark);
      throw toWalError(err, 1);
    }
    this.cachedHead = head;
    if (this.committedListeners.size > 0) for (const r of rows) this.announce(decodeRecord(rowRecord(r)));
    return { ...head };
  }

  /**
   * Starts syncing LMDB in the background (unless a sync is running), so that what a bulk import
   * applied is mostly on disk when close syncs it (1M events: ~0.35 s of close-time sync, now
   * overlapping the import). An extra sync only; a failure is kept and fails `close` — a failed
   * flush is never retried as if nothing happened.
   */
  private syncEnvAhead(): void {
    if (this.envSyncAhead !== undefined) return;
    this.envSyncAhead = syncEnv(this.env).then(
      () => {
        this.envSyncAhead = undefined;
      },
      (err: unknown) => {
        this.envSyncAheadError ??= err instanceof Error ? err : new Error(String(err));
        this.envSyncAhead = undefined;
      },
    );
  }

  // ---------------------------------------------------------------- write-ahead segments

  private get walDir(): string {
    return walDirOf(this.opts.dir);
  }

  private get markerPath(): string {
    return path.join(this.opts.dir, 'log.open');
  }

  /**
   * Opens the write-ahead segments and brings LMDB to agree with them:
   * - the machine stopped while the log was open (the open-marker names another boot): LMDB's
   *   unsynced pages cannot be trusted, so it is rebuilt from the segments;
   * - the segments are ahead (a process crash after a frame was synced, before or during its
   *   LMDB apply): the missing records are applied, each checked against the chain;
   * - the segments are behind (a data dir written before they existed): LMDB's records are
   *   written to them;
   * - same seq, different hash: LOG_CHAIN_BROKEN.
   */
  private async openWal(): Promise<void> {
    const head = this.cachedHead;
    const wal = SegmentWal.open(this.walDir, this.opts.segmentBytes, head.seq);
    this.wal = wal;
    if (wal.damaged !== undefined) {
      const d = wal.damaged;
      this.opts.logger('warn', `the write-ahead segment ${d.segment} was damaged at byte ${d.offset}; LMDB holds its records (to seq ${d.through}): rewritten from there`, { ...d });
    }
    if (wal.lastSeq > head.seq) {
      this.opts.logger('warn', 'applying write-ahead records LMDB does not have yet', { from: head.seq + 1, to: wal.lastSeq });
      this.replayWal(head.seq + 1);
    } else if (wal.lastSeq < head.seq) {
      if (wal.lastSeq > 0) {
        const rec = this.events.get(wal.lastSeq);
        if (rec === undefined || !bytesEqual(splitRecord(rec).hash, wal.lastHash)) {
          throw new LogError('LOG_CHAIN_BROKEN', `the write-ahead segments end at seq ${wal.lastSeq} with another hash than LMDB's record`, { seq: wal.lastSeq });
        }
      }
      if (!wal.empty) this.opts.logger('warn', 'writing LMDB records the write-ahead segments lack', { from: wal.lastSeq + 1, to: head.seq });
      let batch: Buffer[] = [];
      let first = wal.lastSeq + 1;
      for (const { seq, record } of this.readRecords(wal.lastSeq + 1, head.seq)) {
        if (batch.length === 0) first = seq;
        batch.push(record);
        if (batch.length >= 10_000) {
          await wal.append(batch, first);
          batch = [];
        }
      }
      if (batch.length > 0) await wal.append(batch, first);
      await wal.sync();
    } else if (!bytesEqual(wal.lastHash, head.hash)) {
      throw new LogError('LOG_CHAIN_BROKEN', `the write-ahead segments and LMDB both end at seq ${head.seq} with different hashes`, { seq: head.seq });
    }
    writeMarker(this.markerPath, { pid: process.pid, bootId: currentBootId() });
    this.markerWritten = true;
  }

  /**
   * Writes the by-doc entries deferred so far (`deferDocIndex`), after what is pending for LMDB;
   * with `minEntries`, only if at least that many are deferred (a bulk loader flushes while it
   * would otherwise wait, in sorted chunks big enough to keep most of the gain; what is pending
   * for LMDB is handed over either way: a restore of `d<i>` ids was ~0.1 s faster so). A no-op when
   * nothing is deferred. On a read-only log whose writer stopped before its flush,
   * LOG_INDEX_INCOMPLETE. Throws like an append's LMDB apply when LMDB cannot take them (they
   * stay deferred).
   */
  flushDocIndex(minEntries = 0): void {
    if (minEntries > 0) {
      // A loader with time to spare: acknowledged rows go to LMDB now (without waiting for an
      // apply thread: handed over), deferred entries only once there are enough.
      if (this.pendingRows.length > 0) this.handOver();
      if (this.deferredDocs === undefined || this.deferredDocs.length < minEntries) return;
    }
    this.applyPending();
    if (this.opts.readOnly) {
      if (this.meta.get(DOC_INDEX_PENDING_KEY) !== undefined) throw new LogError('LOG_INDEX_INCOMPLETE', `the by-doc index of ${this.opts.dir} misses the entries of a bulk import that stopped before writing them; open it for writing once to write them`, { dir: this.opts.dir });
      return;
    }
    const entries = this.deferredDocs;
    if (entries === undefined || entries.length === 0 || entries.length < minEntries) return;
    this.deferredDocs = [];
    try {
      writeDocEntries(this.stores, entries);
    } catch (thrown) {
      this.deferredDocs = entries.concat(this.deferredDocs);
      throw toWalError(refineByFreeSpace(thrown, this.opts.dir, 0), 1);
    }
  }

  /**
   * At open for writing: writes the by-doc entries a deferring writer (`deferDocIndex`) applied
   * rows for but stopped before writing, from the seq its marker names up to the head (entries
   * already there are put again, unchanged).
   */
  private completeDocIndex(): void {
    const from = this.meta.get(DOC_INDEX_PENDING_KEY) as number | undefined;
    if (from === undefined) return;
    this.opts.logger('warn', 'a bulk import stopped before writing its by-doc index entries: writing them', { from, to: this.cachedHead.seq });
    const entries: DocEntry[] = [];
    for (const { seq, record } of this.readRecords(from, this.cachedHead.seq)) {
      const x = recordIndexFields(record);
      entries.push({ collection: x.collection, docId: indexDocId(x), seq });
    }
    try {
      writeDocEntries(this.stores, entries);
    } catch (thrown) {
      throw toWalError(refineByFreeSpace(thrown, this.opts.dir, 0), 1); // the marker stays: the next open tries again
    }
  }

  /** Applies the segments' records from `fromSeq` on to LMDB, checking each against the chain. */
  private replayWal(fromSeq: number): void {
    let chunk: Uint8Array[] = [];
    const flush = (): void => {
      const { rows, head } = this.checkRecords(spansOf(chunk), this.cachedHead);
      applyRows(this.stores, rows, head);
      this.cachedHead = head;
      chunk = [];
    };
    for (const { record } of readSegments(this.walDir, fromSeq)) {
      chunk.push(record);
      if (chunk.length >= 10_000) flush();
    }
    if (chunk.length > 0) flush();
  }

  /**
   * A log.mdb cut short (see `lmdbCutShort`) would kill the process at its first read of a missing
   * page. A writable open with write-ahead segments moves it aside (`log.mdb.cut-short-<ts>`, kept:
   * nothing is deleted) and `openWal` rebuilds LMDB from the segments; a read-only open, or a data
   * dir without segments, is LOG_STORE_CORRUPT.
   */
  private async setAsideLmdbCutShort(): Promise<void> {
    // A damaged first meta page first: opening such a file (as lmdbCutShort does) kills the process.
    const damaged = lmdbMetaDamaged(this.opts.dir);
    const cut = damaged === undefined ? await lmdbCutShort(this.opts.dir) : undefined;
    if (damaged === undefined && cut === undefined) return;
    const file = path.join(this.opts.dir, 'log.mdb');
    const what = damaged !== undefined ? `${file} is damaged: ${damaged}` : `${file} is cut short: ${cut!.size} bytes, its pages reach ${cut!.needed}`;
    const details: Record<string, unknown> = cut ?? { reason: damaged };
    if (this.opts.readOnly) throw new LogError('LOG_STORE_CORRUPT', `${what}; opening the data dir for writing (kyrodb serve) rebuilds it from the write-ahead segments`, details);
    if (listSegments(this.walDir).length === 0) throw new LogError('LOG_STORE_CORRUPT', `${what}, and there are no write-ahead segments to rebuild it from`, details);
    const aside = path.join(this.opts.dir, `log.mdb.${damaged !== undefined ? 'damaged' : 'cut-short'}-${fileStamp()}`);
    this.opts.logger('warn', `${what}: moved aside to ${aside}; rebuilding LMDB from the write-ahead segments`, { ...details, aside });
    this.moveLmdbAside(aside);
  }

  /** Renames log.mdb to `aside` (kept: nothing is deleted) and drops its lock file: `openWal` then rebuilds LMDB from the segments. */
  private moveLmdbAside(aside: string): void {
    fs.renameSync(path.join(this.opts.dir, 'log.mdb'), aside);
    fs.rmSync(path.join(this.opts.dir, 'log.mdb-lock'), { force: true });
  }

  /**
   * A read-only open reads LMDB only. Its writer applies acknowledged events to LMDB a few ms
   * after they are durable in the segments, and a writer's open applies what a crash left
   * unapplied (or rebuilds LMDB after a machine crash). With no live writer and the open-marker
   * of one that never closed, a read-only open would silently answer without those events (an
   * audit, a backup of the data dir): LOG_RECOVERY_NEEDED, when the segments hold events past
   * LMDB's head or the machine stopped. A live writer's LMDB catching up is not refused.
   */
  private checkRecovered(): void {
    const marker = readMarker(this.markerPath);
    if (marker === undefined || writerRunning(this.opts.dir)) return;
    const fix = 'open the data dir for writing once (kyrodb serve, then stop it), which applies them; nothing was changed';
    if (marker.bootId === '' || marker.bootId !== currentBootId()) {
      throw new LogError('LOG_RECOVERY_NEEDED', `the machine stopped while ${this.opts.dir} was open for writing: its LMDB must be rebuilt from the write-ahead segments before it can be read; ${fix}`, { dir: this.opts.dir });
    }
    const head = this.cachedHead.seq;
    for (const { seq } of readSegments(this.walDir, head + 1)) {
      if (seq <= head) continue;
      throw new LogError('LOG_RECOVERY_NEEDED', `the writer of ${this.opts.dir} stopped before LMDB had every acknowledged event: the write-ahead segments hold seq ${seq} and on, LMDB ends at ${head}; ${fix}`, { dir: this.opts.dir, head, seq });
    }
  }

  /**
   * If the machine stopped while a writer had the log open (the open-marker names another
   * boot, or cannot say), LMDB's unsynced pages may be anything — not even safe to open — so it
   * is deleted before opening (once the segments are seen to hold an unbroken chain); `openWal`
   * then rebuilds it from the segments.
   */
  private dropLmdbAfterMachineCrash(): void {
    const marker = readMarker(this.markerPath);
    if (marker === undefined) return;
    const boot = currentBootId();
    if (marker.bootId !== '' && marker.bootId === boot) return; // only the process stopped: the page cache kept LMDB whole
    if (listSegments(this.walDir).length === 0) return; // nothing to rebuild from: keep what there is
    // LMDB is deleted only for segments that hold an unbroken chain from seq 1 (a damaged or
    // missing segment in the middle would make the rebuild stop there, and LMDB may be the only
    // copy of what follows): otherwise the open refuses and changes nothing. A damaged frame that
    // valid frames follow, even within one segment, is such a break (`readSegments` reads on past
    // it, so the seqs jump); only a torn tail, with nothing valid after it, is cut off.
    const chain = segmentsChain(this.walDir);
    if (chain.brokenAt !== null) {
      throw new LogError(
        'LOG_CHAIN_BROKEN',
        `the machine stopped while ${this.opts.dir} was open, so LMDB (whose last writes may not have reached the disk) must be rebuilt from the write-ahead segments, but they hold an unbroken chain only up to seq ${chain.events} (${chain.damage !== undefined ? `${chain.damage.segment} is damaged at byte ${chain.damage.offset}, and valid frames follow it from seq ${chain.brokenAt}: damage in the middle of the log, not a torn tail` : `seq ${chain.brokenAt} follows a damaged or missing segment`}): nothing was changed; keep a copy of the data dir and restore it from a backup (kyrodb restore)`,
        { events: chain.events, brokenAt: chain.brokenAt, ...(chain.damage !== undefined ? { segment: chain.damage.segment, offset: chain.damage.offset } : {}) },
      );
    }
    this.opts.logger('warn', 'the machine stopped while the log was open: rebuilding LMDB from the write-ahead segments', { markerBoot: marker.bootId, boot, events: chain.events });
    for (const f of ['log.mdb', 'log.mdb-lock']) fs.rmSync(path.join(this.opts.dir, f), { force: true });
  }

  /**
   * LMDB holds every seq from 1 to its head, or it lost commits: an LMDB that let another
   * process's open set its transaction counter back dropped whole commits without a word (see
   * lmdbReaderOpenRace.int.test.ts), leaving holes that a restart never filled (it applies only
   * what lies past the head). Its record count says so at once. With write-ahead segments that
   * hold an unbroken chain through the head, such a log.mdb is moved aside
   * (`log.mdb.damaged-<ts>`, kept) and `openWal` rebuilds LMDB from them; true then (the caller
   * opens the new one). Otherwise it stays, with an error logged: it may hold what nothing else does.
   */
  private async setAsideLmdbWithHoles(): Promise<boolean> {
    const head = this.cachedHead.seq;
    const count = (this.events.getStats() as { entryCount: number }).entryCount;
    if (count === head) return false;
    const what = `${path.join(this.opts.dir, 'log.mdb')} holds ${count} records for seqs 1..${head}: commits were lost from it`;
    const chain = listSegments(this.walDir).length === 0 ? undefined : segmentsChain(this.walDir);
    if (chain === undefined || chain.brokenAt !== null || chain.events < head) {
      this.opts.logger('error', `${what}, and the write-ahead segments cannot rebuild it (${chain === undefined ? 'there are none' : `they hold an unbroken chain only up to seq ${chain.events}`}); kept as it is: restore the data dir from a backup`, { count, head });
      return false;
    }
    const aside = path.join(this.opts.dir, `log.mdb.damaged-${fileStamp()}`);
    this.opts.logger('warn', `${what}: moved aside to ${aside}; rebuilding LMDB from the write-ahead segments (${chain.events} events)`, { count, head, aside });
    await this.env.close();
    this.moveLmdbAside(aside);
    return true;
  }

  // ---------------------------------------------------------------- reads

  /**
   * The event at `seq`, or undefined. Its record is checked against its own hash first (see
   * `checkedRecord`). Throws LOG_CORRUPT_RECORD if no good copy can be read or decoded.
   */
  get(seq: number): LogEvent | undefined {
    this.applyPending();
    const rec = this.events.get(seq);
    return rec === undefined ? undefined : decodeRecord(this.checkedRecord(seq, rec));
  }

  /**
   * `rec`, LMDB's copy of `seq`, when it hashes to its stored hash. LMDB keeps no checksums: a
   * bit flipped on disk was served as the acknowledged value (a vector, live and as of any
   * instant, and into every checkpoint rebuilt from it) with nothing said. A damaged copy is
   * read again from the write-ahead segments (CRC'd frames), whose copy must hash right itself;
   * a writer puts it back into LMDB. LOG_CORRUPT_RECORD when neither copy is good.
   */
  private checkedRecord(seq: number, rec: Buffer): Buffer {
    return recordHashOk(rec) ? rec : this.recordFromSegments(seq);
  }

  private recordFromSegments(seq: number): Buffer {
    let good: Buffer | undefined;
    for (const r of readSegments(this.walDir, seq)) {
      if (r.seq === seq && recordHashOk(r.record)) good = Buffer.from(r.record);
      if (r.seq >= seq) break;
    }
    if (good === undefined) throw new LogError('LOG_CORRUPT_RECORD', `seq ${seq}: LMDB's copy of the record does not hash to its stored hash, and the write-ahead segments hold no good copy of it: restore the data dir from a backup`, { seq });
    const fix = this.opts.readOnly ? 'read from the write-ahead segments (a writer\'s read puts it back)' : 'read from the write-ahead segments and put back into LMDB';
    if (!this.opts.readOnly) {
      const rec = good;
      this.stores.env.transactionSync(() => this.events.putSync(seq, rec));
    }
    this.opts.logger('warn', `seq ${seq}: LMDB's copy of the record was damaged (it no longer hashes to its stored hash); ${fix}`, { seq });
    return good;
  }

  /** The stored record bytes at `seq` (prevHash ‖ hash ‖ payload). */
  getRecord(seq: number): Buffer | undefined {
    this.applyPending();
    return this.events.get(seq);
  }

  /** Events with `fromSeq ≤ seq ≤ toSeq` in order (toSeq defaults to the head), at most `limit`. */
  *read(fromSeq = 1, toSeq = Number.MAX_SAFE_INTEGER, limit = Number.MAX_SAFE_INTEGER): Generator<LogEvent> {
    for (const rec of this.readCheckedRecords(fromSeq, toSeq, limit)) yield decodeRecord(rec.record);
  }

  /**
   * `readRecords`, each record checked against its own hash as `read` checks it (a damaged one is
   * read from the write-ahead segments, or LOG_CORRUPT_RECORD): for readers that ship records on
   * undecoded (continuous backup).
   */
  *readCheckedRecords(fromSeq = 1, toSeq = Number.MAX_SAFE_INTEGER, limit = Number.MAX_SAFE_INTEGER): Generator<{ seq: number; record: Buffer }> {
    for (const rec of this.readRecords(fromSeq, toSeq, limit)) yield { seq: rec.seq, record: this.checkedRecord(rec.seq, rec.record) };
  }

  /** Stored records with `fromSeq ≤ seq ≤ toSeq` in order, undecoded (for backup and verify). */
  *readRecords(fromSeq = 1, toSeq = Number.MAX_SAFE_INTEGER, limit = Number.MAX_SAFE_INTEGER): Generator<{ seq: number; record: Buffer }> {
    if (toSeq < fromSeq || limit <= 0) return;
    this.applyPending();
    const end = toSeq >= Number.MAX_SAFE_INTEGER ? undefined : toSeq + 1;
    for (const { key, value } of this.events.getRange({ start: Math.max(1, fromSeq), ...(end !== undefined ? { end } : {}), limit })) {
      yield { seq: key, record: value };
    }
  }

  /**
   * Records `fromSeq..toSeq` as runs (see RecordRun), in seq order: a bulk reader's way, with no
   * object per record. From the write-ahead segments (`source` 'auto': when the range starts at
   * seq 1 or holds at least SEGMENT_RUNS_MIN_EVENTS), where whole files read and CRC-checked
   * cost far less than LMDB's cursor, which copies each record into a Buffer of its own (a full
   * backup of 1M events spent ~2.4 s of its main thread on that and the garbage it made); else,
   * and for whatever the segments do not hold, from LMDB, in runs of up to LMDB_RUN_EVENTS.
   * Stops short of `toSeq` only where LMDB lacks a seq too: the caller checks the count. A run's
   * bytes are valid only until the generator is resumed (the segments' read buffers are
   * reused): copy what you keep.
   */
  async *recordRuns(fromSeq: number, toSeq: number, source: 'auto' | 'segments' | 'lmdb' = 'auto'): AsyncGenerator<RecordRun> {
    let next = Math.max(1, fromSeq);
    if (toSeq < next) return;
    if (source === 'segments' || (source === 'auto' && (next === 1 || toSeq - next + 1 >= SEGMENT_RUNS_MIN_EVENTS))) {
      for await (const run of segmentRuns(this.walDir, next, toSeq)) {
        yield run;
        next = run.firstSeq + run.count;
      }
    }
    while (next <= toSeq) {
      const records: Buffer[] = [];
      for (const { seq, record } of this.readRecords(next, Math.min(toSeq, next + LMDB_RUN_EVENTS - 1))) {
        if (seq !== next + records.length) break;
        records.push(record);
      }
      if (records.length === 0) return;
      const frame = encodeFrame(records, next);
      yield { buf: frame, firstSeq: next, count: records.length, start: FRAME_HEADER_BYTES, end: frame.byteLength };
      next += records.length;
    }
  }

  /**
   * The largest seq whose ts ≤ `tsMicros` (0 when none): the log prefix as of that instant. The
   * by-time entry at or before it starts a run of that ts, which ends where the next entry
   * starts (or at the head); see `applyRows`.
   */
  seqAtTime(tsMicros: number): number {
    this.applyPending();
    let at: [number, number] | undefined;
    for (const key of this.byTime.getKeys({ start: [tsMicros, Number.MAX_SAFE_INTEGER], reverse: true, limit: 1 })) at = key;
    if (at === undefined) return 0;
    for (const next of this.byTime.getKeys({ start: [at[0], at[1] + 1], limit: 1 })) return next[1] - 1;
    for (const key of this.events.getKeys({ reverse: true, limit: 1 })) return key;
    return at[1];
  }

  /** Events with ts ≤ `tsMicros` (a prefix of the log), from `fromSeq`. */
  *readUntilTime(tsMicros: number, fromSeq = 1): Generator<LogEvent> {
    yield* this.read(fromSeq, this.seqAtTime(tsMicros));
  }

  /**
   * The by-doc index's keys with seq ≤ `toSeq` as a fingerprint (see DocKeyFingerprint), or
   * undefined while a bulk import's entries are still to be written (the index is incomplete by
   * design until the next writer's open completes it).
   */
  docIndexFingerprint(toSeq: number): DocKeyFingerprint | undefined {
    if (this.meta.get(DOC_INDEX_PENDING_KEY) === undefined || !this.opts.readOnly) this.flushDocIndex();
    if (this.meta.get(DOC_INDEX_PENDING_KEY) !== undefined) return undefined;
    const fp = new DocKeyFingerprint();
    for (const key of this.byDoc.getKeys()) if (key[2] <= toSeq) fp.add(key[0], key[1], key[2]);
    return fp;
  }

  /**
   * The first seq ≤ `toSeq` where the by-doc index and the records disagree: a record whose key
   * the index lacks, else an entry no record calls for (one that names another document, or a
   * seq the log does not hold). Undefined when they agree.
   */
  docIndexFirstDifference(toSeq: number): { seq: number; what: string } | undefined {
    this.flushDocIndex();
    for (const { seq, record } of this.readRecords(1, toSeq)) {
      const x = recordIndexFields(record);
      const id = indexDocId(x);
      if (!this.byDoc.doesExist([x.collection, id, seq])) return { seq, what: `the by-doc index lacks seq ${seq} (${x.type} of ${x.collection}${id !== DOC_LEVEL ? `/${id}` : ''})` };
    }
    for (const key of this.byDoc.getKeys()) {
      if (key[2] > toSeq) continue;
      const record = this.getRecord(key[2]);
      const x = record === undefined ? undefined : recordIndexFields(record);
      if (x === undefined || x.collection !== key[0] || indexDocId(x) !== key[1]) return { seq: key[2], what: `the by-doc index files seq ${key[2]} under ${key[0]}${key[1] !== DOC_LEVEL ? `/${key[1]}` : ''}, which that event is not about` };
    }
    return undefined;
  }

  /**
   * Every event that concerned document `id` of `collection`, oldest first; with `beforeSeq`,
   * only those with a lower seq (read through the index: later events are not even decoded).
   */
  history(collection: string, id: string, beforeSeq = Number.MAX_SAFE_INTEGER): LogEvent[] {
    this.flushDocIndex();
    const out: LogEvent[] = [];
    for (const key of this.byDoc.getKeys({ start: [collection, id, 0], end: [collection, id, beforeSeq] })) {
      const e = this.get(key[2]);
      if (e !== undefined) out.push(e);
    }
    return out;
  }

  private lastDocKeyAtOrBefore(collection: string, id: string, seq: number): number {
    for (const key of this.byDoc.getKeys({ start: [collection, id, seq], end: [collection, id, 0], reverse: true, limit: 1 })) return key[2];
    return 0;
  }

  /**
   * The document's upsert event if it was live at `tsMicros` (default: now), else undefined
   * (never written, deleted, or its collection dropped since). O(log n) through `by-doc`, plus
   * a look at the few lifecycle events of its collection. It follows the projections' rules
   * for events that do not apply: an upsert into a collection that did not exist then, or of
   * the wrong dimension, changes nothing; a repeated `collection.created` does not end the
   * documents; only a drop does.
   */
  docAsOf(collection: string, id: string, tsMicros?: number): (LogEvent & { type: 'vector.upserted' }) | undefined {
    return this.docAtSeq(collection, id, tsMicros === undefined ? Number.MAX_SAFE_INTEGER - 1 : this.seqAtTime(tsMicros));
  }

  /** `docAsOf` at the state after event `maxSeq` (0: before any). */
  docAtSeq(collection: string, id: string, maxSeq: number): (LogEvent & { type: 'vector.upserted' }) | undefined {
    this.flushDocIndex();
    if (maxSeq <= 0) return undefined;
    let docSeq = this.lastDocKeyAtOrBefore(collection, id, maxSeq);
    if (docSeq === 0) return undefined;
    // The collection's lifecycle, newest first, down to the document's last write.
    let dimension: number | undefined;
    let since = 0; // seq of the create in force at docSeq
    for (const key of this.byDoc.getKeys({ start: [collection, DOC_LEVEL, maxSeq], end: [collection, DOC_LEVEL, 0], reverse: true })) {
      const life = this.get(key[2]);
      if (life === undefined) continue;
      if (key[2] > docSeq) {
        if (life.type === 'collection.dropped') return undefined;
        continue;
      }
      if (life.type === 'collection.dropped') {
        if (dimension === undefined) return undefined; // written while the collection did not exist
        break;
      }
      if (life.type === 'collection.created') {
        // A create that is itself ignored (the collection existed) does not reset the dimension;
        // the first create after the last drop is the one in force.
        dimension = life.body.dimension;
        since = key[2];
      }
    }
    if (dimension === undefined) return undefined;
    // The newest write that applied: skip upserts of another dimension.
    while (docSeq > since) {
      const e = this.get(docSeq);
      if (e === undefined) return undefined;
      if (e.type === 'vector.deleted') return undefined;
      if (e.type === 'vector.upserted' && e.body.vector.length === dimension) return e;
      docSeq = this.lastDocKeyAtOrBefore(collection, id, docSeq - 1);
    }
    return undefined;
  }

  /**
   * Committed events from `fromSeq` on, as an Observable: first caught up from disk in chunks,
   * then live, with no gap and no duplicate at the seam. Never completes on its own.
   */
  tail(fromSeq = 1, options: TailOptions = {}): Observable<LogEvent> {
    const chunk = options.chunk ?? 1000;
    const pollMs = options.pollMs ?? (this.opts.readOnly ? 100 : 0);
    return new (rxjs().Observable)<LogEvent>((sub) => {
      let next = Math.max(1, fromSeq);
      let live = false;
      let stopped = false;
      let timer: NodeJS.Timeout | undefined;
      const pump = (upTo: number, max: number): number => {
        let n = 0;
        for (const e of this.read(next, upTo, max)) {
          if (e.seq !== next) {
            sub.error(new LogError('LOG_CHAIN_BROKEN', `tail expected seq ${next}, found ${e.seq}`, { seq: next }));
            stopped = true;
            return n;
          }
          next += 1;
          n += 1;
          sub.next(e);
          if (stopped) return n;
        }
        return n;
      };
      const onCommitted = (e: LogEvent): void => {
        if (!live || stopped) return;
        if (e.seq < next) return;
        try {
          if (e.seq > next) pump(e.seq - 1, Number.MAX_SAFE_INTEGER);
        } catch (err) {
          stopped = true;
          sub.error(err);
          return;
        }
        if (e.seq === next) {
          next += 1;
          sub.next(e);
        }
      };
      this.committedListeners.add(onCommitted);
      const catchUp = (): void => {
        if (stopped) return;
        try {
          const headSeq = this.head().seq;
          if (next <= headSeq) {
            pump(headSeq, chunk);
            setImmediate(catchUp);
            return;
          }
          live = true;
          if (pollMs > 0) {
            const poll = (): void => {
              if (stopped) return;
              try {
                const h = this.head().seq;
                if (h >= next) pump(h, Number.MAX_SAFE_INTEGER);
              } catch (err) {
                sub.error(err);
                return;
              }
              timer = setTimeout(poll, pollMs);
            };
            timer = setTimeout(poll, pollMs);
          }
        } catch (err) {
          sub.error(err);
        }
      };
      setImmediate(catchUp);
      return () => {
        stopped = true;
        this.committedListeners.delete(onCommitted);
        if (timer) clearTimeout(timer);
      };
    });
  }

  /**
   * Walks the chain from `fromSeq` (default 1) to the head and reports the first bad record:
   * a stored hash that does not match its payload, a broken link, a seq gap or mismatch, a ts
   * going back, an undecodable record, or a head that disagrees. With `digest`, also checks
   * that the event at `digest.seq` has `digest.hash` (the log extends the auditor's digest).
   */
  verify(options: VerifyOptions = {}): VerifyReport {
    this.applyPending();
    const fromSeq = Math.max(1, options.fromSeq ?? 1);
    const every = options.progressEvery ?? 10_000;
    let prevHash: Uint8Array = GENESIS_HASH;
    let prevTs = 0;
    if (fromSeq > 1) {
      const anchor = this.events.get(fromSeq - 1);
      if (anchor === undefined) return { ok: false, checked: 0, seq: fromSeq - 1, problem: 'seq_gap', message: `seq ${fromSeq - 1} is missing` };
      try {
        const { hash, payload } = splitRecord(anchor);
        prevHash = new Uint8Array(hash);
        prevTs = decodePayloadHeader(payload).ts;
      } catch (err) {
        return { ok: false, checked: 0, seq: fromSeq - 1, problem: 'decode_error', message: String(err) };
      }
    }
    const digest = options.digest;
    const stored = this.head();
    if (digest !== undefined && digest.seq > stored.seq) {
      return { ok: false, checked: 0, seq: digest.seq, problem: 'digest_beyond_head', message: `the digest's seq ${digest.seq} is beyond the head ${stored.seq}: the log was truncated or is not the one digested` };
    }
    let expected = fromSeq;
    let checked = 0;
    let last: LogHead = { seq: fromSeq - 1, ts: prevTs, hash: prevHash };
    for (const { key, value } of this.events.getRange({ start: fromSeq })) {
      const seq = key;
      if (seq !== expected) return { ok: false, checked, seq: expected, problem: 'seq_gap', message: `seq ${expected} is missing (next stored is ${seq})` };
      let prev: Uint8Array, hash: Uint8Array, payload: Uint8Array, p: { seq: number; ts: number };
      try {
        ({ prevHash: prev, hash, payload } = splitRecord(value));
        p = decodePayloadHeader(payload);
      } catch (err) {
        return { ok: false, checked, seq, problem: 'decode_error', message: `seq ${seq} cannot be decoded: ${err instanceof Error ? err.message : String(err)}` };
      }
      if (p.seq !== seq) return { ok: false, checked, seq, problem: 'seq_mismatch', message: `record stored at seq ${seq} says seq ${p.seq}` };
      if (!bytesEqual(prev, prevHash)) return { ok: false, checked, seq, problem: 'prev_hash_mismatch', message: `seq ${seq} does not link to the hash of seq ${seq - 1}` };
      const h = chainHash(prev, payload);
      if (!bytesEqual(h, hash)) return { ok: false, checked, seq, problem: 'hash_mismatch', message: `seq ${seq} does not hash to its stored hash (content altered)` };
      if (p.ts < prevTs) return { ok: false, checked, seq, problem: 'ts_regression', message: `seq ${seq} has ts ${p.ts} before the previous ${prevTs}` };
      if (digest !== undefined && seq === digest.seq && !bytesEqual(h, digest.hash)) {
        return { ok: false, checked, seq, problem: 'digest_mismatch', message: `seq ${seq} has hash ${toHex(h)}, the digest says ${toHex(digest.hash)}: history was rewritten` };
      }
      prevHash = h;
      prevTs = p.ts;
      last = { seq, ts: p.ts, hash: h };
      checked += 1;
      expected += 1;
      if (options.onProgress && checked % every === 0) options.onProgress(seq, stored.seq);
    }
    const metaHead = this.meta.get(HEAD_KEY) as { seq: number; hash: Uint8Array } | undefined;
    if (metaHead !== undefined && (metaHead.seq !== last.seq || !bytesEqual(new Uint8Array(metaHead.hash), last.hash))) {
      return { ok: false, checked, seq: last.seq + (metaHead.seq > last.seq ? 1 : 0), problem: 'head_mismatch', message: `the stored head says seq ${metaHead.seq}, the chain ends at ${last.seq}` };
    }
    return { ok: true, checked, head: last };
  }

  // ---------------------------------------------------------------- cursors

  private get cursorsPath(): string {
    return path.join(this.opts.dir, 'cursors.json');
  }

  /**
   * Reads `cursors.json`. It is only ever replaced whole (`setCursor`), so one that does not
   * parse was damaged from outside. Its cursors are positions their consumers can find again
   * (continuous backup resumes from the segments in its store), so the log does not refuse to
   * open over it: a writable open moves it aside (`cursors.json.damaged-<ts>`) and starts with
   * none, saying so; a read-only one reads none.
   */
  private loadCursors(): void {
    let text: string;
    try {
      text = fs.readFileSync(this.cursorsPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new LogError('LOG_CORRUPT_RECORD', `cannot read ${this.cursorsPath}: ${String(err)}`, {});
      this.cursors = {};
      return;
    }
    try {
      const parsed = JSON.parse(text) as unknown;
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not a JSON object');
      this.cursors = parsed as Record<string, unknown>;
    } catch (err) {
      this.cursors = {};
      if (this.opts.readOnly) return;
      const aside = `${this.cursorsPath}.damaged-${fileStamp()}`;
      fs.renameSync(this.cursorsPath, aside);
      this.opts.logger('warn', `${this.cursorsPath} is damaged (${err instanceof Error ? err.message : String(err)}): moved aside to ${aside}; consumers start from their own records (continuous backup: the segments in its store)`, { aside });
    }
  }

  /**
   * A small durable value stored by a consumer (e.g. continuous backup's shipped position). Kept
   * in `cursors.json` beside the log, not in LMDB, so that a rebuild of LMDB keeps them.
   */
  getCursor<T = unknown>(name: string): T | undefined {
    if (this.opts.readOnly) this.loadCursors();
    const v = this.cursors[name];
    // A data dir from before cursors.json kept them in LMDB's meta.
    return (v !== undefined ? v : this.meta.get(`cursor:${name}`)) as T | undefined;
  }

  /** Stores a cursor durably (written to a temp file, synced, renamed over, dir synced). */
  async setCursor(name: string, value: unknown): Promise<void> {
    if (this.opts.readOnly) throw new LogError('LOG_READ_ONLY', 'the log is open read-only');
    const next = { ...this.cursors, [name]: value };
    await writeFileDurably(this.cursorsPath, JSON.stringify(next));
    this.cursors = next;
  }

  // ---------------------------------------------------------------- admin

  /** Closes the WAL circuit breaker by hand (after freeing space, say). */
  resetBreaker(): void {
    this.breaker.reset();
    this.lastFailureType = undefined;
  }

  /** The breaker's state and, unless it is closed, why it opened. */
  breakerStatus(): { state: BreakerState; reason: string; retryAfterMs: number; lastFailureType: string | null } {
    const state = this.breaker.state;
    return { state, reason: state === 'closed' ? '' : this.breaker.reason, retryAfterMs: this.breaker.retryAfterMs, lastFailureType: this.lastFailureType ?? null };
  }

  /** Waits for queued appends, then closes the environment and releases the writer lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.committing || this.queue.length > 0) await new Promise((r) => setTimeout(r, 1));
    await this.importing?.catch(() => undefined); // an import still being written ends (or fails) first
    this.committedListeners.clear();
    try {
      if (this.env !== undefined) {
        // LMDB commits without syncing; a clean close applies what is queued and syncs it, and
        // only then says so (removes the open-marker). If that fails the segments still have it all.
        if (!this.opts.readOnly && this.wal !== undefined) {
          try {
            this.applyPending();
            this.flushDocIndex();
          } finally {
            await this.applier?.close();
            this.applier = undefined;
          }
          await this.envSyncAhead;
          if (this.envSyncAheadError !== undefined) throw toWalError(this.envSyncAheadError, 1);
          await syncEnv(this.env);
        }
        await this.env.close();
      }
      if (this.wal !== undefined) {
        await this.wal.close();
        if (this.markerWritten) {
          fs.rmSync(this.markerPath, { force: true });
          fsyncPath(this.opts.dir);
        }
      }
    } finally {
      await this.lock?.release();
    }
  }
}

/** Forces LMDB's pages to disk (it commits without syncing). */
function syncEnv(env: RootDatabase): Promise<void> {
  const e = env as unknown as { sync(cb: (err?: Error | null) => void): void };
  return new Promise((resolve, reject) => e.sync((err) => (err ? reject(err) : resolve())));
}

async function writeFileDurably(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp`;
  const fh = await fs.promises.open(tmp, 'w');
  try {
    await fh.writeFile(text);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await fs.promises.rename(tmp, file);
  fsyncPath(path.dirname(file));
}

/** This boot of the machine (changes on every reboot); '' where the kernel does not say. */
function readMarker(file: string): OpenMarker | undefined {
  try {
    const m = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<OpenMarker>;
    return { pid: Number(m.pid), bootId: typeof m.bootId === 'string' ? m.bootId : '' };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return { pid: 0, bootId: '' }; // unreadable: assume the worst
  }
}

function writeMarker(file: string, m: OpenMarker): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, JSON.stringify(m));
    fs.fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fsyncPath(path.dirname(file));
}

function tick(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

/**
 * An import's frames: [first record, end, built frame?]. Built ones (`EventLog.importFrames`,
 * whose records were read out of them) must each start at the seq of their first record, else
 * LOG_INVALID_EVENT; the others are cut from the records, about IMPORT_FRAME_BYTES a frame.
 */
function importSpans(rows: readonly IndexRow[], built: readonly [number, number, Uint8Array][] | undefined): [number, number, Uint8Array | undefined][] {
  if (built !== undefined) {
    for (let i = 0; i < built.length; i++) {
      const [start, , f] = built[i]!;
      if (frameFirstSeq(f) !== rows[start]!.seq) throw new LogError('LOG_INVALID_EVENT', `import frame ${i} starts at seq ${frameFirstSeq(f)}, but its first record is seq ${rows[start]!.seq}`);
    }
    return built.slice();
  }
  const frames: [number, number, Uint8Array | undefined][] = [];
  let start = 0;
  while (start < rows.length) {
    let end = start;
    let bytes = 0;
    while (end < rows.length && (end === start || bytes < IMPORT_FRAME_BYTES)) {
      const r = rows[end++]!;
      bytes += r.end - r.at;
    }
    frames.push([start, end, undefined]);
    start = end;
  }
  return frames;
}

/** Whether the prevHash of the record at `b[at..]` (its first 32 bytes) is `hash[hashAt..hashAt + 32]`. */
function linksTo(b: Uint8Array, at: number, hash: Uint8Array, hashAt: number): boolean {
  for (let i = 0; i < 32; i++) if (b[at + i] !== hash[hashAt + i]) return false;
  return true;
}

/** Records as spans (`checkRecords`): each one whole. */
function spansOf(records: readonly Uint8Array[]): RecordSpans {
  const n = records.length;
  const at = new Array<number>(n).fill(0);
  const end = new Array<number>(n);
  for (let i = 0; i < n; i++) end[i] = records[i]!.byteLength;
  return { bufs: records.slice(), at, end };
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

/** The input with its own copy of the vector (the caller may reuse its array). Field by field: object spreads cost µs an event. */
function copyInput(e: EventInput): EventInput {
  if (e.type !== 'vector.upserted') return e;
  const b = e.body;
  const vector = new Float32Array(b.vector);
  const body = b.metadata === undefined ? { id: b.id, vector } : { id: b.id, vector, metadata: b.metadata };
  return e.actor === undefined ? { type: e.type, collection: e.collection, body } : { type: e.type, collection: e.collection, actor: e.actor, body };
}

function recordBytes(p: Prepared): number {
  let n = 0;
  for (const r of p.records) n += r.byteLength;
  return n;
}

/**
 * Room to reserve in a group's frame for an event's record and its length: generous for a vector
 * upsert (the hot path); a record that does not fit makes its group's frame be built by copying.
 */
function recordEstimate(e: EventInput): number {
  const base = 4 + 64 + 64 + e.collection.length + (e.actor?.length ?? 0);
  if (e.type !== 'vector.upserted') return base + 256;
  return base + e.body.id.length + e.body.vector.byteLength + (e.body.metadata === undefined ? 0 : 1024);
}

function batchesOf(group: readonly Pending[]): EventInput[][] {
  return group.map((p) => p.inputs);
}

function splitResults(batches: EventInput[][], events: LogEvent[]): AppendResult[] {
  const out: AppendResult[] = [];
  let i = 0;
  for (const b of batches) {
    const evs = events.slice(i, i + b.length);
    i += b.length;
    out.push({ firstSeq: evs[0]!.seq, lastSeq: evs[evs.length - 1]!.seq, ts: evs[0]!.ts, events: evs });
  }
  return out;
}

const defaultLogger: LogSink = (level, msg, fields) => {
  if (level === 'info') return;
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level, component: 'log', msg, ...fields }) + '\n');
};

/**
 * Makes `dir` and its missing parents. Node's recursive mkdir reports a parent it cannot write
 * (a read-only file system, no permission) as ENOENT, which names the wrong problem; the real
 * error is found by making each missing level in turn.
 */
export function makeDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    const missing: string[] = [];
    for (let d = path.resolve(dir); !fs.existsSync(d) && path.dirname(d) !== d; d = path.dirname(d)) missing.unshift(d);
    for (const m of missing) fs.mkdirSync(m); // throws the real reason: EROFS, EACCES, ENOTDIR, …
    throw err;
  }
}

/** Now, for the names of files set aside: 20261127T041428849Z. */
function fileStamp(): string {
  return new Date().toISOString().replace(/[-:.]/g, '');
}
