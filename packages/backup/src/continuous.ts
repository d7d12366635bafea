import { GENESIS_HASH, payloadHeaderAt, toHex, type EventLog } from '@kyrodb/log';
import { Registry } from 'prom-client';
import type { Subscription } from 'rxjs';
import { BackupError, isBackupError } from './errors.js';
import { padSeq, type BackupManifest } from './manifest.js';
import { claimHistory } from './historyClaims.js';
import { backupMetrics, type BackupMetrics } from './metrics.js';
import { encodeObject, type Compression, type EncryptionKey } from './objectCodec.js';
import { checkChain, fetchSegment, loadManifests, loadSegments, segmentKey, segmentLastHash, type SegmentInfo } from './pieces.js';
import { CONTINUOUS_CURSOR, checkLogHoldsStore, cursorShipped } from './storeHistory.js';
import { defaultBackupLogger, type BackupLogger, type ProgressFn } from './progress.js';
import { backoffDelay, sleep } from './retry.js';
import { encodeSegment, type SegmentEntry } from './segment.js';
import type { ObjectStore } from './stores/objectStore.js';

/** Options of ContinuousBackup. */
export interface ContinuousBackupOptions {
  log: EventLog;
  store: ObjectStore;
  /** Longest time events wait before being shipped, ms (the RPO). Default 250. */
  intervalMs?: number;
  /** Most events per segment. Default 100 000. */
  maxBatchEvents?: number;
  /** Most bytes of records per segment (a segment holds at least one record). Default 16 MiB. */
  maxBatchBytes?: number;
  /** Poll the disk for commits by another process every N ms (read-only logs). Default: the log's default. */
  pollMs?: number;
  /** Compression of segments. Default 'zstd'. */
  compression?: Compression;
  /** Encrypt segments with this key. Default: none. */
  encryption?: EncryptionKey;
  /** Upload retry backoff: first delay and cap, ms. Uploads retry until they succeed or `stop()`. Defaults 100 / 5000. */
  retryBaseDelayMs?: number;
  retryMaxDelayMs?: number;
  /** Registry for the lag metrics. Default: a private registry. */
  registry?: Registry;
  logger?: BackupLogger;
}

/** Defaults of ContinuousBackupOptions. */
export const defaultContinuousBackupOptions: Readonly<{ intervalMs: number; maxBatchEvents: number; maxBatchBytes: number; compression: Compression; retryBaseDelayMs: number; retryMaxDelayMs: number }> = Object.freeze({ intervalMs: 250, maxBatchEvents: 100_000, maxBatchBytes: 16 * 1024 * 1024, compression: 'zstd', retryBaseDelayMs: 100, retryMaxDelayMs: 5000 });

/**
 * How long `start` waits for its first try to find where to resume before it lets the caller go
 * on (a store that does not answer: each request may wait out its connection timeout and retries).
 */
export const START_WAIT_MS = 5000;

export { CONTINUOUS_CURSOR };
const STORE_CURSOR_PREFIX = 'continuous/cursor-';

/**
 * Ships the log to the store as it grows: woken by commits (an rxjs subscription to `log.tail`),
 * it reads the events after the shipped position in batches by time and count (see `subscribe`),
 * encodes each batch as an immutable segment under the deterministic key
 * `segments/<first>-<last>`, uploads it (retrying with backoff until it lands), then durably
 * records the shipped position (a log cursor when the log is writable, else a small cursor
 * object in the store). On start it resumes from the larger of the cursor and the contiguous
 * segments already in the store, so a restart after a crash at any point ships every event
 * exactly once (no gap, no overlap).
 */
export class ContinuousBackup {
  private readonly o: ContinuousBackupOptions & typeof defaultContinuousBackupOptions;
  private readonly metrics: BackupMetrics;
  private readonly logger: BackupLogger;
  private sub: Subscription | undefined;
  /** The upload in flight (one at a time). */
  private current: Promise<void> | undefined;
  /** The next segment's timer (see `wake`), and when the last one began (performance.now()). */
  private wakeTimer: NodeJS.Timeout | undefined;
  private lastShipAt = -Infinity;
  /** The last segment was cut at a bound (`maxBatchEvents`, `maxBatchBytes`): more waits, the next goes at once. */
  private fullBatch = false;
  /** Counts pipelines: the callbacks of one that ended (a failure, `stop`) find it changed and do nothing. */
  private runs = 0;
  private stopped = true;
  private shipped = 0;
  /** See `recordedShipped` (undefined until read). */
  private recorded: number | undefined;
  private lastError: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The next try to find where to resume, while the store could not be read (see `start`). */
  private resumeTimer: NodeJS.Timeout | undefined;
  /** What the pipeline is doing: shipping, still finding where to resume, or given up on a store it must not write (see `start`). */
  private state: 'running' | 'resuming' | 'failed' = 'resuming';
  /** Counts `start`s: a try begun before a `stop` (and a new `start`) finds it changed and does nothing. */
  private starts = 0;
  private waiters: { seq: number; resolve: () => void }[] = [];
  /** Aborted by `stop`: an upload in flight is cancelled rather than waited for (a store that never answers held a server's shutdown for good). */
  private abort = new AbortController();

  constructor(o: ContinuousBackupOptions) {
    this.o = { ...defaultContinuousBackupOptions, ...o };
    this.metrics = backupMetrics(o.registry ?? new Registry());
    this.logger = o.logger ?? defaultBackupLogger;
  }

  /**
   * Where shipping would resume: the end of what this store holds, read from the store alone —
   * its cursor objects and its backups' last seqs, extended over the contiguous segments after
   * them. The data dir's own cursor is not asked: it names no store, and after `backup.s3.prefix`
   * was changed (or back) shipping resumed after the other store's position, leaving the new store
   * without events 1.. and the old one with a gap, while health said nothing was waiting.
   */
  async resumePosition(segments?: readonly SegmentInfo[], manifests?: readonly BackupManifest[]): Promise<number> {
    let from = 0;
    for (const k of await this.o.store.list(STORE_CURSOR_PREFIX)) from = Math.max(from, Number(k.slice(STORE_CURSOR_PREFIX.length)) || 0);
    for (const m of manifests ?? (await loadManifests(this.o.store)).manifests) from = Math.max(from, m.to_seq);
    return extendOverSegments(from, segments ?? (await loadSegments(this.o.store)));
  }

  /**
   * Finds where to resume (reading the store) and starts the pipeline. Rejects, with nothing
   * started, when the store holds what this log must not be shipped to: BACKUP_LOG_DIVERGED if it
   * already holds a history this log does not extend (e.g. the data dir was restored to an earlier
   * point, or the store belongs to another database: shipping on would skip or mix events; use a
   * fresh store prefix), or segments it cannot read (wrong key, corrupt).
   *
   * A store that cannot be reached (BACKUP_STORE_ERROR after its retries: network, 5xx) does not
   * stop the caller: a database must start while its backup target is down. Then, or when the
   * first try takes longer than START_WAIT_MS, this resolves and the pipeline keeps trying in the
   * background with backoff (`status()` says `resuming`, with the error, as it does while a
   * segment's upload is being retried later on; the lag gauges count the events past what this
   * data dir's cursor says it shipped there, or every event without one), and ships from where the store ends once it answers. A
   * refusal found only then is logged and kept in `status()` (`failed`): nothing is shipped.
   */
  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    this.abort = new AbortController();
    this.state = 'resuming';
    this.recorded = undefined;
    this.lastError = undefined;
    this.starts += 1;
    this.timer = setInterval(() => this.status(), this.o.intervalMs);
    this.timer.unref();
    let waitTimer: NodeJS.Timeout | undefined;
    const first = this.tryResume(0, this.starts);
    const waited = new Promise<void>((resolve) => {
      waitTimer = setTimeout(resolve, START_WAIT_MS);
      waitTimer.unref();
    });
    try {
      await Promise.race([first, waited]);
    } catch (err) {
      await this.stop();
      throw err;
    } finally {
      clearTimeout(waitTimer);
    }
    // Still trying when the wait ended: a refusal found later is the background's to report.
    const started = this.starts;
    first.catch((err: unknown) => this.refuse(err, started));
  }

  /**
   * One try to find where to resume and start shipping. Resolves true once shipping, false when
   * the store could not be read (a retry is scheduled); rejects when the store holds what this log
   * must not be shipped to.
   */
  private async tryResume(attempt: number, started: number): Promise<boolean> {
    const current = (): boolean => !this.stopped && this.starts === started;
    let shipped: number;
    try {
      // One listing of the store's segments serves the resume point and both checks.
      const segments = await loadSegments(this.o.store);
      const { manifests } = await loadManifests(this.o.store);
      shipped = await this.resumePosition(segments, manifests);
      // The whole store first: with no segment from seq 1 (continuous backup turned on after a
      // full backup, or early segments pruned) the resume point is 0 and says nothing, and a data
      // dir restored to an earlier point shipped its new events beside the old history.
      await checkLogHoldsStore(this.o.log, this.o.store, this.o.encryption, manifests, segments);
      await this.checkExtends(shipped, segments, manifests);
    } catch (err) {
      if (!current()) return false;
      if (isBackupError(err) && err.code !== 'BACKUP_STORE_ERROR') throw err;
      this.lastError = err instanceof Error ? err.message : String(err);
      const delay = backoffDelay(Math.min(attempt, 20), { attempts: Infinity, baseDelayMs: this.o.retryBaseDelayMs, maxDelayMs: this.o.retryMaxDelayMs });
      this.logger('warn', `continuous backup cannot read its store ${this.o.store.url}; trying again in ${Math.round(delay)} ms (writes go on and are shipped once it answers)`, { error: this.lastError, attempt });
      // Not unref'd: a retry to come is work in hand, as a running pipeline is. Unref'd, a
      // process with nothing else to do (a backup-only process) exited here, shipping nothing.
      this.resumeTimer = setTimeout(() => {
        this.resumeTimer = undefined;
        this.tryResume(attempt + 1, started).catch((e: unknown) => this.refuse(e, started));
      }, delay);
      return false;
    }
    if (!current()) return false;
    this.shipped = shipped;
    this.state = 'running';
    this.lastError = undefined;
    this.logger('info', `continuous backup resumes after seq ${this.shipped}`, { shipped: this.shipped });
    this.subscribe();
    this.status();
    return true;
  }

  /** How far this log's cursor says it shipped to this store (0 for a read-only log: its cursor is an object in the store). Read once. */
  private recordedShipped(): number {
    this.recorded ??= this.o.log.readOnly ? 0 : cursorShipped(this.o.log, this.o.store.url);
    return this.recorded;
  }

  /** A refusal found after `start` resolved: nothing is shipped; the lag keeps growing where alerts see it. */
  private refuse(err: unknown, started: number): void {
    if (this.stopped || this.starts !== started) return;
    this.state = 'failed';
    this.lastError = err instanceof Error ? err.message : String(err);
    this.logger('error', `continuous backup stopped: ${this.lastError}`, { error: this.lastError, ...(isBackupError(err) ? { code: err.code } : {}) });
  }

  private async checkExtends(shipped: number, segments: readonly SegmentInfo[], manifests: readonly BackupManifest[]): Promise<void> {
    if (shipped === 0) return;
    const head = this.o.log.head().seq;
    const rec = this.o.log.getRecord(shipped);
    let storedHash: string | undefined = manifests.find((m) => m.to_seq === shipped)?.head_hash;
    const seg = segments.find((x) => x.last_seq === shipped);
    // The segment's own record of it, else (a segment encrypted with a key since rotated) this log's cursor of this store.
    if (storedHash === undefined && seg !== undefined) storedHash = await segmentLastHash(this.o.store, seg, this.o.encryption);
    if (storedHash === undefined && !this.o.log.readOnly) {
      const cursor = this.o.log.getCursor<{ seq?: number; hash?: string; store?: string }>(CONTINUOUS_CURSOR);
      if (cursor?.seq === shipped && (cursor.store === undefined || cursor.store === this.o.store.url)) storedHash = cursor.hash;
    }
    if (rec === undefined || (storedHash !== undefined && storedHash !== rec.toString('hex', 32, 64))) {
      throw new BackupError('BACKUP_LOG_DIVERGED', `the store ${this.o.store.url} already holds events up to seq ${shipped} that this log (head ${head}) does not extend; use a fresh store prefix`, { shipped, head });
    }
  }

  /**
   * Commits only wake the shipper (`log.tail` from the head: what it delivers is dropped); what
   * to ship it reads from the log itself, at most `maxBatchEvents` records (and `maxBatchBytes`)
   * at a time. A segment goes out `intervalMs` after the one before it began at the earliest
   * (batching by time), or at once when a full batch waits. Segments grow with what waits, up to
   * those bounds: at 1 s per request (five a segment), 10 000 events a segment shipped ~1 700
   * events/s, and a server taking 4 000/s fell behind for good. So while an upload takes longer than the interval, what
   * commits meanwhile goes into the next segment, and a backlog (a restart, an outage of the
   * store, continuous backup turned on over a long log) costs one batch of memory. The tail used
   * to carry the events themselves, buffered per interval and queued per upload: with 120 ms per
   * request (three requests a segment) and 20 ms windows, ~70 segments were still queued after
   * 1.5 s of writes; catching up a log of 1M 128-d events held them all, decoded (peak heap
   * 916 MB, RSS 2.5 GB).
   */
  private subscribe(): void {
    const tailOpts = this.o.pollMs !== undefined ? { pollMs: this.o.pollMs } : {};
    const run = ++this.runs;
    this.sub = this.o.log.tail(this.o.log.head().seq + 1, tailOpts).subscribe({
      next: () => this.wake(),
      error: (err: unknown) => this.pipelineFailed(run, err),
    });
    this.wake(); // what is already waiting (a backlog)
  }

  /** Schedules the next segment if events wait and none is under way (see `subscribe`); an upload's end wakes it again. */
  private wake(): void {
    if (this.sub === undefined || this.current !== undefined || this.wakeTimer !== undefined || this.stopped) return;
    const waiting = this.o.log.head().seq - this.shipped;
    if (waiting <= 0) return;
    const delay = this.fullBatch || waiting >= this.o.maxBatchEvents ? 0 : Math.max(0, this.lastShipAt + this.o.intervalMs - performance.now());
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = undefined;
      this.drain();
    }, delay);
  }

  /** Ships the next segment: the events after the shipped position, up to the head, at most `maxBatchEvents`. */
  private drain(): void {
    if (this.current !== undefined || this.stopped) return;
    const from = this.shipped + 1;
    const to = Math.min(this.o.log.head().seq, this.shipped + this.o.maxBatchEvents);
    if (to < from) return;
    const run = this.runs;
    this.lastShipAt = performance.now();
    this.current = this.ship(from, to)
      .then(
        () => undefined,
        (err: unknown) => this.pipelineFailed(run, err),
      )
      .finally(() => {
        this.current = undefined;
        this.wake(); // the pipeline's, if it was restarted meanwhile
      });
  }

  /** The tail or a segment failed (not an upload: those retry): the pipeline starts again from the shipped position. */
  private pipelineFailed(run: number, err: unknown): void {
    if (run !== this.runs) return;
    this.endRun();
    this.lastError = String(err);
    this.logger('error', 'continuous backup pipeline failed; restarting', { error: this.lastError });
    if (!this.stopped) setTimeout(() => !this.stopped && this.subscribe(), this.o.retryMaxDelayMs).unref();
  }

  /** Ends the current pipeline: commits no longer wake it, and no segment is begun (one under way finishes). */
  private endRun(): void {
    this.runs += 1;
    this.sub?.unsubscribe();
    this.sub = undefined;
    if (this.wakeTimer !== undefined) clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
  }

  /** Uploads seqs from..to as one segment (retrying until it lands or `stop`), then records the shipped position. */
  private async ship(from: number, to: number): Promise<void> {
    if (this.stopped) return;
    const entries: SegmentEntry[] = [];
    let bytes = 0;
    for (const { seq, record } of this.o.log.readCheckedRecords(from, to)) {
      if (seq !== from + entries.length) break;
      entries.push({ seq, ts: payloadHeaderAt(record, 64).ts, record });
      bytes += record.byteLength;
      if (bytes >= this.o.maxBatchBytes) break; // the rest goes into the next segment, at once
    }
    this.fullBatch = bytes >= this.o.maxBatchBytes || entries.length >= this.o.maxBatchEvents;
    if (entries.length !== to - from + 1 && bytes < this.o.maxBatchBytes) throw new BackupError('BACKUP_CHAIN_GAP', `continuous backup expected seqs ${from}..${to}, the log holds ${entries.length} of them from ${from}`, { seq: from + entries.length });
    const seg = encodeSegment(entries);
    const body = encodeObject(seg.body, this.o.compression, this.o.encryption);
    const key = segmentKey(seg.header.first_seq, seg.header.last_seq);
    const firstHash = toHex(entries[0]!.record.subarray(32, 64));
    for (let attempt = 0; ; attempt++) {
      if (this.stopped) return;
      try {
        // Claimed first: another data dir shipping its own history from the same seq stops one of the two here (see historyClaims.ts).
        await claimHistory(this.o.store, seg.header.first_seq, firstHash, `continuous backup of seq ${seg.header.first_seq}..${seg.header.last_seq}`, this.abort.signal);
        await this.o.store.put(key, body, { signal: this.abort.signal });
        break;
      } catch (err) {
        if (this.stopped) return; // cancelled by stop: the events ship on the next start
        if (isBackupError(err, 'BACKUP_LOG_DIVERGED')) {
          // Nothing more is shipped to this store: the lag grows where alerts see it, health says failed.
          this.endRun();
          this.refuse(err, this.starts);
          return;
        }
        this.lastError = err instanceof Error ? err.message : String(err);
        if (this.state === 'running') this.state = 'resuming'; // the store stopped answering: shown as at start
        this.metrics.uploadRetries.inc();
        this.logger('warn', `segment ${key} upload failed; retrying`, { error: this.lastError, attempt });
        await sleep(backoffDelay(Math.min(attempt, 20), { attempts: Infinity, baseDelayMs: this.o.retryBaseDelayMs, maxDelayMs: this.o.retryMaxDelayMs }));
      }
    }
    await this.recordCursor(seg.header.last_seq, toHex(entries[entries.length - 1]!.record.subarray(32, 64)));
    this.shipped = seg.header.last_seq;
    this.lastError = undefined;
    if (this.state === 'resuming') this.state = 'running';
    this.metrics.segmentsShipped.inc();
    this.status();
    this.waiters = this.waiters.filter((w) => {
      if (w.seq <= this.shipped) w.resolve();
      return w.seq > this.shipped;
    });
  }

  private async recordCursor(seq: number, hash: string): Promise<void> {
    if (!this.o.log.readOnly) {
      await this.o.log.setCursor(CONTINUOUS_CURSOR, { seq, hash, store: this.o.store.url });
      return;
    }
    // Immutable keys: write a new cursor object, then drop the older ones.
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        const old = await this.o.store.list(STORE_CURSOR_PREFIX);
        await this.o.store.put(`${STORE_CURSOR_PREFIX}${padSeq(seq)}`, Buffer.from(JSON.stringify({ seq, hash })));
        for (const k of old) if (k !== `${STORE_CURSOR_PREFIX}${padSeq(seq)}`) await this.o.store.delete(k);
        return;
      } catch (err) {
        // The segment is already stored; resume finds it even without the cursor.
        this.lastError = String(err);
        await sleep(backoffDelay(Math.min(attempt, 20), { attempts: Infinity, baseDelayMs: this.o.retryBaseDelayMs, maxDelayMs: this.o.retryMaxDelayMs }));
      }
    }
  }

  /** Resolves once every event up to `seq` is shipped. */
  waitForShipped(seq: number): Promise<void> {
    if (seq <= this.shipped) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ seq, resolve }));
  }

  /** Stops the pipeline: an upload in flight is cancelled (an S3 request) or waited for (a local file); unshipped events ship on the next start. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.endRun();
    if (this.timer) clearInterval(this.timer);
    if (this.resumeTimer) clearTimeout(this.resumeTimer);
    this.resumeTimer = undefined;
    this.abort.abort(new Error('continuous backup stopped'));
    await this.current?.catch(() => undefined);
  }

  /**
   * Shipped position and lag (events committed but not shipped; age of the oldest of them,
   * seconds), and `state` (see `start`). Also updates the lag gauges.
   */
  status(): { state: 'running' | 'resuming' | 'failed' | 'stopped'; shippedSeq: number; lagEvents: number; lagSeconds: number; lastError?: string } {
    const head = this.o.log.head();
    // Until the store has been read (down at start), this data dir's own record of how far it
    // shipped there: the lag counted from seq 0 said every event of the log waited (148 522
    // events, the age of seq 1) when the store held all but a few.
    const shipped = this.state === 'resuming' && this.shipped === 0 ? this.recordedShipped() : this.shipped;
    const lagEvents = Math.max(0, head.seq - shipped);
    let lagSeconds = 0;
    if (lagEvents > 0) {
      const e = this.o.log.get(shipped + 1);
      if (e !== undefined) lagSeconds = Math.max(0, (Date.now() * 1000 - e.ts) / 1e6);
    }
    this.metrics.lagEvents.set(lagEvents);
    this.metrics.lagSeconds.set(lagSeconds);
    return { state: this.stopped ? 'stopped' : this.state, shippedSeq: shipped, lagEvents, lagSeconds, ...(this.lastError !== undefined ? { lastError: this.lastError } : {}) };
  }
}

/** The end of the contiguous run of segments that starts at or before `from + 1`. */
export function extendOverSegments(from: number, segments: readonly SegmentInfo[]): number {
  let cur = from;
  for (;;) {
    const next = segments.filter((s) => s.first_seq <= cur + 1 && s.last_seq > cur).sort((a, b) => b.last_seq - a.last_seq)[0];
    if (next === undefined) return cur;
    cur = next.last_seq;
  }
}

/** What `verifySegments` found. */
export interface SegmentReport {
  ok: boolean;
  /** Seq ranges no segment holds between the first and last segment (and before the first if it does not start at 1). */
  gaps: { from: number; to: number }[];
  /** Pairs of segments whose ranges overlap. */
  overlaps: { a: string; b: string }[];
  /** Segment keys listed but unreadable (head absent). */
  missing: string[];
  /** Highest contiguous seq from 1. */
  contiguousTo: number;
}

/** Checks the segment chain in a store: gaps, overlaps and missing objects (by listing and HEAD). */
export async function verifySegments(store: ObjectStore): Promise<SegmentReport> {
  const segs = await loadSegments(store);
  const gaps: SegmentReport['gaps'] = [];
  const overlaps: SegmentReport['overlaps'] = [];
  const missing: string[] = [];
  let cur = 0;
  let prev: SegmentInfo | undefined;
  for (const s of segs) {
    if ((await store.head(s.key)) === undefined) missing.push(s.key);
    if (s.first_seq > cur + 1) gaps.push({ from: cur + 1, to: s.first_seq - 1 });
    if (prev !== undefined && s.first_seq <= prev.last_seq) overlaps.push({ a: prev.key, b: s.key });
    cur = Math.max(cur, s.last_seq);
    prev = s;
  }
  return { ok: gaps.length === 0 && overlaps.length === 0 && missing.length === 0, gaps, overlaps, missing, contiguousTo: extendOverSegments(0, segs) };
}

/** What `verifySegmentChain` found. */
export interface SegmentChainReport {
  /** Every segment read and checked, no overlap, and seqs 1..lastSeq held by segments or backups. */
  ok: boolean;
  /** Segments listed (`read` of them were read and checked before a failure, if any). */
  segments: number;
  read: number;
  /** Events in the segments read. */
  events: number;
  firstSeq: number | null;
  lastSeq: number | null;
  /** µs, of the first and last event in the segments read. */
  firstTs: number | null;
  lastTs: number | null;
  /** Seq ranges in 1..lastSeq that no segment and no backup holds. */
  gaps: { from: number; to: number }[];
  /** Pairs of segments whose ranges overlap. */
  overlaps: { a: string; b: string }[];
  /** The backup whose head the first segment continues (none: the segments start at seq 1, or nothing before them is stored). */
  continues?: string;
  /** Why it is not ok when a segment failed its checks: the error's code and message, and the segment. */
  code?: string;
  message?: string;
  key?: string;
}

/**
 * Reads every continuous segment in the store and checks it: decryption and decompression, that
 * it holds the range its key names, each record's own hash, and the chain — each record linking
 * to the one before it, across segments, and the first segment after a backup to that backup's
 * head. Also reports overlaps, and the seqs up to the last segment that neither a segment nor a
 * backup holds (a gap a point-in-time restore would stop at). Never throws for a bad store
 * (the report's `code` names the problem); BACKUP_NOT_FOUND when the store holds no segment.
 */
export async function verifySegmentChain(store: ObjectStore, o: { encryption?: EncryptionKey; onProgress?: ProgressFn } = {}): Promise<SegmentChainReport> {
  const segs = await loadSegments(store);
  if (segs.length === 0) throw new BackupError('BACKUP_NOT_FOUND', `the store ${store.url} holds no continuous segments`, {});
  const { manifests } = await loadManifests(store);
  const report: SegmentChainReport = { ok: false, segments: segs.length, read: 0, events: 0, firstSeq: null, lastSeq: null, firstTs: null, lastTs: null, gaps: [], overlaps: [] };
  // Seq ranges held, segments and backups alike, for the gaps.
  const held: { from: number; to: number }[] = manifests.map((m) => ({ from: m.from_seq, to: m.to_seq }));
  let cur = 0;
  let curHash: string | undefined;
  let prev: SegmentInfo | undefined;
  try {
    for (const s of segs) {
      const { header, entries } = await fetchSegment(store, s, o.encryption);
      let linkTo = header.prev_hash; // unknown predecessor: the segment's own chain only
      if (prev !== undefined && s.first_seq <= prev.last_seq) report.overlaps.push({ a: prev.key, b: s.key });
      else if (s.first_seq === cur + 1 && curHash !== undefined) linkTo = curHash;
      else if (s.first_seq === 1) linkTo = toHex(GENESIS_HASH);
      else {
        const before = manifests.find((m) => m.to_seq === s.first_seq - 1);
        if (before !== undefined) {
          if (before.head_hash !== header.prev_hash) throw new BackupError('BACKUP_CHAIN_BROKEN', `${s.key} does not continue backup ${before.backup_id} (seq ${before.to_seq}): another history`, { key: s.key, backupId: before.backup_id });
          if (report.read === 0) report.continues = before.backup_id;
        }
      }
      const last = checkChain(entries, linkTo, s.key);
      if (s.last_seq > cur) {
        cur = s.last_seq;
        curHash = last;
      }
      held.push({ from: s.first_seq, to: s.last_seq });
      report.read += 1;
      report.events += entries.length;
      report.firstSeq ??= header.first_seq;
      report.firstTs ??= header.first_ts;
      report.lastSeq = Math.max(report.lastSeq ?? 0, header.last_seq);
      report.lastTs = Math.max(report.lastTs ?? 0, header.last_ts);
      prev = s;
      o.onProgress?.({ phase: 'verify', done: report.read, total: segs.length });
    }
    report.gaps = uncovered(held, cur);
    report.ok = report.gaps.length === 0 && report.overlaps.length === 0;
  } catch (err) {
    if (!isBackupError(err)) throw err;
    report.code = err.code;
    report.message = err.message;
    const at = segs[report.read];
    if (at !== undefined) report.key = at.key;
  }
  return report;
}

/** The ranges of 1..to that none of `held` covers. */
function uncovered(held: readonly { from: number; to: number }[], to: number): { from: number; to: number }[] {
  const gaps: { from: number; to: number }[] = [];
  let next = 1;
  for (const r of [...held].sort((a, b) => a.from - b.from)) {
    if (next > to) break;
    if (r.from > next) gaps.push({ from: next, to: Math.min(r.from - 1, to) });
    next = Math.max(next, r.to + 1);
  }
  if (next <= to) gaps.push({ from: next, to });
  return gaps;
}
