import fs from 'node:fs';
import type { Subscription } from 'rxjs';
import { Counter, Gauge, Registry } from 'prom-client';
import { BREAKER_STATES, CircuitBreaker, Failpoints, defaultCircuitBreakerOptions, systemClock } from '@kyrodb/log';
import type { Clock, EventLog, LogEvent, LogSink } from '@kyrodb/log';
import {
  CHECKPOINT_FORMAT_VERSION,
  defaultCheckpointOptions,
  listGenerations,
  logHashAt,
  makeTempDir,
  pruneGenerations,
  removeTempDirs,
  sealCheckpoint,
  setCorruptAside,
  snapshotState,
  validateCheckpoint,
  verifyCheckpointFiles,
  writeStateFiles,
} from './checkpoints.js';
import type { CheckpointCollection, CheckpointMetadata, CheckpointOptions, Generation } from './checkpoints.js';
import type { ColdAnswer, ColdHit, ColdOp, ColdStats } from './coldProtocol.js';
import { ColdTier } from './coldTier.js';
import { ProjectionError, isProjectionError } from './errors.js';
import { filterKey, validateFilter } from './filter.js';
import { HotTier, defaultHotTierOptions } from './hotTier.js';
import type { HotTierOptions } from './hotTier.js';
import { compareHits, score } from './scoring.js';
import { applyEvent, checkQuery, emptyState, exactSearch, exactTopK, materialize, toHit } from './state.js';
import type { CollectionInfo, CollectionState, DocValue, MaterializedState, SearchHit, SearchRequest, SearchResponse } from './state.js';
import type { CacheQuery, QueryCacheLayer } from './cache/types.js';

/** The query layers, in the order they are consulted. */
export type QueryLayer = 'cache' | 'hot' | 'cold';
/** The layers, for metric labels. */
export const QUERY_LAYERS: readonly QueryLayer[] = ['cache', 'hot', 'cold'];

/** Settings of the tiered query executor (the sketch's `error_recovery.query`). */
export interface QueryOptions {
  /** Cache layer budget, ms. Default 10. A synchronous layer cannot be interrupted: an answer that took longer is discarded and counted as a timeout. */
  cacheTimeoutMs: number;
  /** Hot tier budget, ms. Default 50. Synchronous, like the cache: an overrun is counted as a timeout (and a breaker failure), the answer kept. */
  hotTimeoutMs: number;
  /** Cold tier (worker) timeout, ms: a real timeout. Default 1000. */
  coldTimeoutMs: number;
  /** Consecutive failures or timeouts that open a layer's breaker. Default 3. */
  breakerThreshold: number;
  /** How long an open layer breaker waits before one probe, ms. Default 60 000. */
  breakerTimeoutMs: number;
  /** When the cold breaker opens, the worker is pinged; no answer within this many ms = hung: it is terminated and restarted. Default 10 000. */
  coldHangRestartMs: number;
}

/** Defaults of the sketch: 10/50/1000 ms, breakers at 3 failures, open 60 s. */
export const defaultQueryOptions: QueryOptions = Object.freeze({
  cacheTimeoutMs: 10,
  hotTimeoutMs: 50,
  coldTimeoutMs: 1000,
  breakerThreshold: defaultCircuitBreakerOptions.failureThreshold,
  breakerTimeoutMs: defaultCircuitBreakerOptions.openTimeoutMs,
  coldHangRestartMs: 10_000,
});

/** Options of `Projections.open`. */
export interface ProjectionsOptions {
  /** The log to project (read-only is fine; the live tail then polls). */
  log: EventLog;
  /** The data dir; checkpoints go to `<dataDir>/checkpoints/<seq>/`. */
  dataDir: string;
  /** Registry for the metrics. Default: a private registry. */
  registry?: Registry;
  /** Failpoints `projection.cold.search`, `projection.cold.insert`. Default: the log's. */
  failpoints?: Failpoints;
  /** Time source for breakers, cache queries and checkpoint ages. Default the system clock. */
  clock?: Clock;
  /** Checkpoint cadence and retention. */
  checkpoint?: Partial<CheckpointOptions>;
  /** Query timeouts and breakers. */
  query?: Partial<QueryOptions>;
  /** Hot tier bound. */
  hotTier?: Partial<HotTierOptions>;
  /** The cache layer; absent = no cache layer. */
  cache?: QueryCacheLayer;
  /** Where log lines go. Default: JSON lines on stderr for warn/error. */
  logger?: LogSink;
}

/** What `health()` reports. */
export interface ProjectionsHealth {
  /** Seq the catalog and hot tier have applied. */
  applied: number;
  /** Seq the cold tier has absorbed. */
  coldWatermark: number;
  /** Vectors in the hot tier. */
  hotVectors: number;
  /** Bytes of vector data in the hot tier (4 per dimension). */
  hotBytes: number;
  /** applied − coldWatermark. */
  lagEvents: number;
  /** State of each layer's breaker. */
  breakers: Record<string, string>;
  /** Seq of the newest checkpoint (0 when none). */
  lastCheckpointSeq: number;
  /**
   * Checkpoint writes that failed since the last one that succeeded (0 when the last succeeded or
   * none was tried), and the newest failure's message ('' when none). A failing checkpoint costs
   * restart time, never data; this is where an operator sees it.
   */
  checkpointFailures: { consecutive: number; lastError: string };
  /**
   * How a search waits for the cold worker: `polling` (both threads spin: the fastest hop, on
   * cores nothing else needs), `sleeping` (polling stalled: other work holds the cores; see
   * PollGovernor), `down` (no cold worker running).
   */
  searchChannel: 'polling' | 'sleeping' | 'down';
}

const COLD_BATCH_EVENTS = 2000;
const COLD_MAX_IN_FLIGHT = 2;
/** Docs per message when copying vectors to a worker that loaded a checkpoint. */
const COLD_FILL_DOCS = 4096;

const defaultLogger: LogSink = (level, msg, fields) => {
  if (level === 'info') return;
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level, component: 'projections', msg, ...fields }) + '\n');
};

/** Events an as-of search replays per turn of the event loop. */
const AS_OF_CHUNK = 5_000;
/** As-of searches that may wait (or run) at once; more get PROJ_BUSY. */
const AS_OF_MAX_WAITING = 8;

/** How long after a failed automatic checkpoint the next one waits, ms. */
const AUTO_CHECKPOINT_RETRY_MS = 5000;

/**
 * The projections of the log: catalog, hot tier (exact, updated synchronously as events commit),
 * cold tier (HNSW in a worker thread), checkpoints with corruption fallback, and the tiered
 * query executor. Everything is rebuildable from the log: a corrupt checkpoint costs time,
 * never data.
 */
export class Projections {
  private state: MaterializedState = emptyState();
  private readonly hot = new HotTier();
  private cold: ColdTier | undefined;
  private coldSentSeq = 0;
  private coldWatermark = 0;
  private coldRestarts = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private pumpScheduled = false;
  private sub: Subscription | undefined;
  private waiters: { seq: number; resolve: () => void; reject: (e: Error) => void }[] = [];
  private closed = false;
  private generations: (Generation & { createdMs: number; coldSeq: number })[] = [];
  private checkpointing: Promise<{ seq: number; dir: string }> | undefined;
  private eventsSinceCheckpoint = 0;
  /** No automatic checkpoint before this (Clock.monotonicMs): set when one failed (see autoCheckpoint). */
  private cpRetryAt = 0;
  /** Failed checkpoint writes since the last success, and the newest one's message (health, metrics). */
  private cpFailures = { consecutive: 0, lastError: '' };
  private cpTimer: NodeJS.Timeout | undefined;
  private asOfCache: MaterializedState | undefined;
  /** As-of searches run one after another (see `searchAsOf`). */
  private asOfQueue: Promise<unknown> = Promise.resolve();
  private asOfWaiting = 0;
  private initializing = true;
  private ingest = { lastMs: 0, lastSeq: 0, rate: 0 };
  private readonly log: EventLog;
  private readonly dataDir: string;
  private readonly clock: Clock;
  private readonly failpoints: Failpoints;
  private readonly logger: LogSink;
  private readonly cache: QueryCacheLayer | undefined;
  private readonly cpOpts: CheckpointOptions;
  private readonly qOpts: QueryOptions;
  private readonly hotOpts: HotTierOptions;
  /** One breaker per query layer. */
  readonly breakers: Record<QueryLayer, CircuitBreaker>;
  private readonly m: {
    corruption: Counter;
    recovery: Counter<'result'>;
    timeouts: Counter<'layer'>;
    degradation: Counter<'fallback_to'>;
    coldRestarts: Counter;
    coldCatchUps: Counter;
    checkpointFailures: Counter;
  };

  private constructor(o: ProjectionsOptions) {
    this.log = o.log;
    this.dataDir = o.dataDir;
    this.clock = o.clock ?? systemClock;
    this.failpoints = o.failpoints ?? o.log.failpoints ?? new Failpoints();
    this.logger = o.logger ?? defaultLogger;
    this.cache = o.cache;
    this.cpOpts = Object.freeze({ ...defaultCheckpointOptions, ...o.checkpoint });
    this.qOpts = Object.freeze({ ...defaultQueryOptions, ...o.query });
    this.hotOpts = Object.freeze({ ...defaultHotTierOptions, ...o.hotTier });
    const mk = (layer: QueryLayer): CircuitBreaker =>
      new CircuitBreaker(`query.${layer}`, {
        failureThreshold: this.qOpts.breakerThreshold,
        openTimeoutMs: this.qOpts.breakerTimeoutMs,
        clock: this.clock,
        onStateChange: (to, from, reason) => {
          this.logger(to === 'open' ? 'warn' : 'info', `query layer ${layer} breaker ${from} -> ${to}`, { reason });
          if (layer === 'cold' && to === 'open') this.checkColdHang();
        },
      });
    this.breakers = { cache: mk('cache'), hot: mk('hot'), cold: mk('cold') };
    const registry = o.registry ?? new Registry();
    const breakers = this.breakers;
    const gens = (): { createdMs: number }[] => this.generations;
    const now = (): number => this.clock.now();
    const applied = (): number => this.state.seq;
    const coldWm = (): number => this.coldWatermark;
    const hotSize = (): number => this.hot.size();
    const hotBytes = (): number => this.hot.bytes();
    this.m = {
      corruption: new Counter({ name: 'hnsw_corruption_detected_total', help: 'Checkpoints found corrupt or inconsistent on load', registers: [registry] }),
      recovery: new Counter({ name: 'hnsw_recovery_attempts_total', help: 'Checkpoint load attempts by result (success, failure, rebuild)', labelNames: ['result'], registers: [registry] }),
      timeouts: new Counter({ name: 'query_timeouts_total', help: 'Query layer timeouts', labelNames: ['layer'], registers: [registry] }),
      degradation: new Counter({ name: 'query_degradation_total', help: 'Degraded answers by the layer that answered', labelNames: ['fallback_to'], registers: [registry] }),
      coldRestarts: new Counter({ name: 'projection_cold_restarts_total', help: 'Cold-tier worker restarts after a crash', registers: [registry] }),
      coldCatchUps: new Counter({ name: 'query_cold_catchups_total', help: 'Cold answers older than the cold watermark, completed from the log', registers: [registry] }),
      checkpointFailures: new Counter({ name: 'hnsw_checkpoint_failures_total', help: 'Checkpoint writes that failed (timed, requested or at shutdown)', registers: [registry] }),
    };
    for (const r of ['success', 'failure', 'rebuild']) this.m.recovery.inc({ result: r }, 0);
    for (const l of QUERY_LAYERS) this.m.timeouts.inc({ layer: l }, 0);
    for (const l of QUERY_LAYERS) this.m.degradation.inc({ fallback_to: l }, 0);
    new Gauge({
      name: 'query_layer_circuit_breaker_state',
      help: 'Query layer breaker state (1 for the current state)',
      labelNames: ['layer', 'state'],
      registers: [registry],
      collect() {
        for (const l of QUERY_LAYERS) {
          const st = breakers[l].state;
          for (const s of BREAKER_STATES) this.set({ layer: l, state: s }, s === st ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: 'hnsw_snapshot_age_seconds',
      help: 'Age of each kept checkpoint generation (0 = newest)',
      labelNames: ['generation'],
      registers: [registry],
      collect() {
        this.reset();
        const t = now();
        gens().forEach((g, i) => this.set({ generation: String(i) }, Math.max(0, (t - g.createdMs) / 1000)));
      },
    });
    const cpFailing = (): number => this.cpFailures.consecutive;
    new Gauge({ name: 'hnsw_checkpoint_consecutive_failures', help: 'Checkpoint writes that failed since the last one that succeeded', registers: [registry], collect() { this.set(cpFailing()); } });
    new Gauge({ name: 'projection_applied_seq', help: 'Seq applied by the catalog and hot tier', registers: [registry], collect() { this.set(applied()); } });
    new Gauge({ name: 'projection_cold_watermark_seq', help: 'Seq absorbed by the cold tier', registers: [registry], collect() { this.set(coldWm()); } });
    new Gauge({ name: 'projection_hot_tier_vectors', help: 'Vectors plus tombstones in the hot tier', registers: [registry], collect() { this.set(hotSize()); } });
    new Gauge({ name: 'projection_hot_tier_bytes', help: 'Bytes of vector data in the hot tier', registers: [registry], collect() { this.set(hotBytes()); } });
  }

  /**
   * Opens the projections: loads the newest valid checkpoint (falling back generation by
   * generation, counting corruption; rebuilding from the log when none is valid), replays the log
   * from its watermark, and resolves once the catalog and hot tier have applied the log head as
   * of the call. The cold tier catches up in the background (the hot tier covers the gap).
   */
  static async open(o: ProjectionsOptions): Promise<Projections> {
    const p = new Projections(o);
    try {
      await p.init();
    } catch (err) {
      await p.close();
      throw err;
    }
    return p;
  }

  private async init(): Promise<void> {
    const movedAside = removeTempDirs(this.dataDir);
    if (movedAside !== undefined) this.logger('error', 'the checkpoints path is not a directory: moved aside; checkpoints are written anew', { movedTo: movedAside });
    this.cold = await this.startCold();
    const gens = listGenerations(this.dataDir);
    const corrupt = new Set<Generation>();
    let loaded = false;
    for (const g of gens) {
      try {
        const cp = validateCheckpoint(g.dir, this.log);
        if (cp.meta.watermark.seq !== g.seq) throw new Error(`its name says seq ${g.seq}, its metadata ${cp.meta.watermark.seq}`);
        const stats = await this.cold.load(g.dir, cp.meta.collections.map((c) => c.name), cp.meta.cold.seq, cp.meta.format);
        checkColdStats(g.dir, cp.meta, stats);
        this.state = cp.state;
        this.coldSentSeq = this.coldWatermark = cp.meta.cold.seq;
        this.fillCold(this.cold, cp.state, cp.meta.cold.seq);
        this.m.recovery.inc({ result: 'success' });
        if (g !== gens[0]) this.logger('warn', 'loaded an older checkpoint generation after corruption', { dir: g.dir, seq: g.seq });
        loaded = true;
        break;
      } catch (err) {
        // Anything wrong with a generation (checksums, shape, consistency, the worker refusing its
        // index) costs a fallback, never the open.
        this.m.corruption.inc();
        this.m.recovery.inc({ result: 'failure' });
        this.logger('error', 'checkpoint corrupt; trying the next older generation', { dir: g.dir, error: err instanceof Error ? err.message : String(err) });
        corrupt.add(g);
        if (!this.cold.alive) this.cold = await this.startCold();
      }
    }
    // Never tried again: not at the next open, not by a cold restart, and never the "newest"
    // generation that timed checkpoints and health go by.
    for (const g of corrupt) setCorruptAside(g);
    if (!loaded) {
      if (gens.length > 0) this.logger('error', 'no valid checkpoint; rebuilding from the log', { generations: gens.length });
      // A new, empty data dir has nothing to recover: not counted (it read as a recovery on every first start).
      if (gens.length > 0 || this.log.head().seq > 0) this.m.recovery.inc({ result: 'rebuild' });
      this.state = emptyState();
      this.coldSentSeq = this.coldWatermark = 0;
    }
    this.generations = gens.flatMap((g) => {
      if (corrupt.has(g)) return [];
      try {
        const meta = JSON.parse(fs.readFileSync(`${g.dir}/metadata.json`, 'utf8')) as CheckpointMetadata;
        return [{ ...g, createdMs: meta.createdMs, coldSeq: meta.cold.seq }];
      } catch {
        return [];
      }
    });
    this.hot.reset(this.state, this.coldWatermark, this.log);
    const head = this.log.head().seq;
    this.sub = this.log.tail(this.state.seq + 1).subscribe({
      next: (e) => this.apply(e),
      error: (err: unknown) => this.logger('error', 'log tail failed', { error: String(err) }),
    });
    await this.waitForApplied(head);
    // The tail goes live one turn after its catch-up ends (and catches up again if appends landed
    // meanwhile); from then on appends are applied before they resolve.
    do await new Promise((r) => setImmediate(r));
    while (this.state.seq < this.log.head().seq);
    this.initializing = false;
    if (!this.cold.alive) this.onColdExit('worker died during open');
    this.schedulePump();
    if (this.cpOpts.everySecs > 0) {
      this.cpTimer = setInterval(() => {
        if (this.state.seq > (this.generations[0]?.seq ?? 0)) this.autoCheckpoint();
      }, this.cpOpts.everySecs * 1000);
      this.cpTimer.unref();
    }
  }

  private startCold(): Promise<ColdTier> {
    return ColdTier.start(
      this.failpoints,
      (seq) => this.onColdApplied(seq),
      (reason) => this.onColdExit(reason),
    );
  }

  // ------------------------------------------------------------------ runner

  private apply(e: LogEvent): void {
    if (e.seq <= this.state.seq) return;
    const a = applyEvent(this.state, e);
    this.hot.onApplied(a);
    if (e.type === 'collection.dropped' && this.cache?.invalidateCollection !== undefined) {
      try {
        this.cache.invalidateCollection(e.collection);
      } catch (err) {
        this.logger('warn', 'cache invalidation failed', { collection: e.collection, error: String(err) });
      }
    }
    this.eventsSinceCheckpoint += 1;
    if (this.waiters.length > 0) {
      const due = this.waiters.filter((w) => w.seq <= e.seq);
      if (due.length > 0) {
        this.waiters = this.waiters.filter((w) => w.seq > e.seq);
        for (const w of due) w.resolve();
      }
    }
    this.schedulePump();
    if (this.cpOpts.everyEvents > 0 && this.eventsSinceCheckpoint >= this.cpOpts.everyEvents) this.autoCheckpoint();
  }

  /**
   * A checkpoint by the schedule (every N events or T seconds). Not while one is under way or the
   * cold tier is down (its restart loads a checkpoint, and the next event or tick after it takes
   * one), nor for AUTO_CHECKPOINT_RETRY_MS after one failed: every applied event retried it
   * before, and a restarting cold tier logged 130 "checkpoint failed" lines in 150 ms.
   */
  private autoCheckpoint(): void {
    if (this.checkpointing !== undefined || this.cold?.alive !== true || this.clock.monotonicMs() < this.cpRetryAt) return;
    // One that a close cut short is not a failure to report (the close says what it gave up).
    this.checkpoint().catch((err: unknown) => {
      this.cpRetryAt = this.clock.monotonicMs() + AUTO_CHECKPOINT_RETRY_MS;
      if (!this.closed) this.logger('error', 'checkpoint failed', { error: String(err), retryInMs: AUTO_CHECKPOINT_RETRY_MS });
    });
  }

  private schedulePump(): void {
    if (this.pumpScheduled || this.closed) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pumpCold();
    });
  }

  /** Feeds the cold tier from the log in batches, at most COLD_MAX_IN_FLIGHT unacknowledged (unless `force`: a checkpoint needs everything sent). */
  private pumpCold(force = false): void {
    const cold = this.cold;
    if (this.closed || cold === undefined || !cold.alive) return;
    while ((force || cold.inFlight < COLD_MAX_IN_FLIGHT) && this.coldSentSeq < this.state.seq) {
      const ops: ColdOp[] = [];
      const vecs: Float32Array[] = [];
      let floats = 0;
      let last = this.coldSentSeq;
      for (const e of this.log.read(this.coldSentSeq + 1, this.state.seq, COLD_BATCH_EVENTS)) {
        last = e.seq;
        switch (e.type) {
          case 'collection.created':
            ops.push({ op: 'create', coll: e.collection, dim: e.body.dimension, metric: e.body.metric, M: e.body.hnsw.M, efC: e.body.hnsw.efConstruction, efS: e.body.hnsw.efSearch, createdSeq: e.seq });
            break;
          case 'collection.dropped':
            ops.push({ op: 'drop', coll: e.collection, seq: e.seq });
            break;
          case 'vector.upserted': {
            const op: ColdOp = { op: 'upsert', coll: e.collection, id: e.body.id, seq: e.seq, off: floats, len: e.body.vector.length };
            if (e.body.metadata !== undefined) op.meta = e.body.metadata;
            ops.push(op);
            vecs.push(e.body.vector);
            floats += e.body.vector.length;
            break;
          }
          case 'vector.deleted':
            ops.push({ op: 'delete', coll: e.collection, id: e.body.id, seq: e.seq });
            break;
        }
      }
      if (last === this.coldSentSeq) break;
      const buf = new Float32Array(floats);
      let off = 0;
      for (const v of vecs) {
        buf.set(v, off);
        off += v.length;
      }
      cold.apply(ops, buf, last);
      this.coldSentSeq = last;
    }
  }

  private onColdApplied(seq: number): void {
    const now = this.clock.monotonicMs();
    if (this.ingest.lastMs > 0 && now > this.ingest.lastMs) {
      const r = ((seq - this.ingest.lastSeq) * 1000) / (now - this.ingest.lastMs);
      this.ingest.rate = this.ingest.rate === 0 ? r : 0.8 * this.ingest.rate + 0.2 * r;
    }
    this.ingest.lastMs = now;
    this.ingest.lastSeq = seq;
    this.coldWatermark = seq;
    this.hot.shed(seq);
    this.pumpCold();
  }

  private onColdExit(reason: string): void {
    if (this.closed || this.initializing) return;
    this.logger('error', 'cold tier worker died; restarting', { reason, restarts: this.coldRestarts });
    // Until the new worker catches up, the hot tier must cover everything it will not have.
    const base = this.generations[0]?.coldSeq ?? 0;
    this.coldWatermark = Math.min(this.coldWatermark, base);
    this.hot.reset(this.state, this.coldWatermark, this.log);
    const delay = Math.min(5000, 100 * 2 ** Math.min(this.coldRestarts, 6));
    this.restartTimer = setTimeout(() => void this.restartCold(), delay);
  }

  /** Pings the worker; one that does not answer within `coldHangRestartMs` is terminated (and so restarted). */
  private checkColdHang(): void {
    const c = this.cold;
    if (c === undefined || !c.alive || this.closed) return;
    const before = c.progress();
    c.stats(this.qOpts.coldHangRestartMs).catch((err: unknown) => {
      if (!isProjectionError(err) || err.details['timeout'] !== true || c !== this.cold || !c.alive || this.closed) return;
      // The probe waits behind the inserts queued before it; a worker working through a backlog
      // (thousands of 1536-d inserts) answers it late but is not hung. Killed, it restarted from
      // its checkpoint, took the same backlog again and was killed again, for minutes.
      if (c.progress() !== before) {
        this.logger('warn', 'cold tier worker is busy (it answered no probe, but works on); not restarting it', { waitedMs: this.qOpts.coldHangRestartMs });
        return;
      }
      this.logger('error', 'cold tier worker is hung; terminating it', { waitedMs: this.qOpts.coldHangRestartMs });
      void c.kill();
    });
  }

  private async restartCold(): Promise<void> {
    this.restartTimer = undefined;
    if (this.closed) return;
    this.coldRestarts += 1;
    this.m.coldRestarts.inc();
    let cold: ColdTier;
    try {
      cold = await this.startCold();
    } catch (err) {
      this.onColdExit(`restart failed: ${String(err)}`);
      return;
    }
    if (this.closed) {
      await cold.stop();
      return;
    }
    let base = 0;
    let loaded = false;
    const g = this.generations[0];
    if (g !== undefined) {
      try {
        // Checked without loading its docs (this thread already holds the live ones), and hashed
        // a chunk a turn: the server keeps serving while the worker restarts.
        const meta = await verifyCheckpointFiles(g.dir, this.log);
        if (this.closed) {
          await cold.stop();
          return;
        }
        checkColdStats(g.dir, meta, await cold.load(g.dir, meta.collections.map((c) => c.name), meta.cold.seq, meta.format));
        base = meta.cold.seq;
        loaded = true;
      } catch (err) {
        this.logger('warn', 'cold restart could not load the newest checkpoint; rebuilding the cold tier from the log', { error: String(err) });
        if (!cold.alive) return; // its own exit handler schedules the next try
      }
    }
    const previous = this.cold;
    this.cold = cold;
    if (previous !== undefined && previous !== cold && previous.alive) await previous.stop();
    this.coldSentSeq = this.coldWatermark = base;
    this.hot.reset(this.state, base, this.log);
    // An open breaker (failures of the worker that died, or a hang) probes the new worker with the
    // next search rather than after its timeout: the hot tier sheds what the new worker absorbs.
    this.breakers.cold.probeNow('the cold tier worker was restarted');
    this.logger('info', 'cold tier restarted; catching up', { from: base, to: this.state.seq });
    this.pumpCold();
    // The labels loaded hold the versions with seq ≤ base; the live docs of such a seq are those
    // very versions (a later write has a later seq, and reaches the worker by replay).
    if (loaded) this.fillCold(cold, this.state, base);
  }

  /**
   * Sends the worker copies of the vectors of the labels it loaded from a checkpoint (the docs of
   * `state` with seq ≤ `coldSeq`), one chunk a turn, so their hits come back scored; until then
   * this thread scores them. Stops when the worker is replaced or the projections close.
   */
  private fillCold(cold: ColdTier, state: MaterializedState, coldSeq: number): void {
    function* chunks(): Generator<{ coll: string; docs: DocValue[]; dim: number }> {
      for (const c of state.collections.values()) {
        let docs: DocValue[] = [];
        for (const d of c.docs.values()) {
          if (d.seq > coldSeq) continue;
          docs.push(d);
          if (docs.length === COLD_FILL_DOCS) {
            yield { coll: c.info.name, docs, dim: c.info.dimension };
            docs = [];
          }
        }
        if (docs.length > 0) yield { coll: c.info.name, docs, dim: c.info.dimension };
      }
    }
    const it = chunks();
    const step = (): void => {
      if (this.closed || cold !== this.cold || !cold.alive) return;
      const next = it.next();
      if (next.done === true) return;
      const { coll, docs, dim } = next.value;
      const vectors = new Float32Array(docs.length * dim);
      docs.forEach((d, i) => vectors.set(d.vector, i * dim));
      cold.fillVectors(
        coll,
        docs.map((d) => d.id),
        docs.map((d) => d.seq),
        vectors,
      );
      setImmediate(step);
    };
    setImmediate(step);
  }

  // ------------------------------------------------------------------ reads

  /** Seq the catalog and hot tier have applied. After `await log.append(...)` resolves, `applied() ≥` its seq. */
  applied(): number {
    return this.state.seq;
  }

  /** Resolves once `applied() ≥ seq`; rejects PROJ_CLOSED if closed first. */
  waitForApplied(seq: number): Promise<void> {
    if (this.state.seq >= seq) return Promise.resolve();
    if (this.closed) return Promise.reject(new ProjectionError('PROJ_CLOSED', 'the projections are closed'));
    return new Promise((resolve, reject) => this.waiters.push({ seq, resolve, reject }));
  }

  /** The collections, sorted by name (copies). */
  listCollections(): CollectionInfo[] {
    return [...this.state.collections.values()].map((c) => copyInfo(c.info)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** One collection (a copy), or undefined. */
  getCollection(name: string): CollectionInfo | undefined {
    const c = this.state.collections.get(name);
    return c === undefined ? undefined : copyInfo(c.info);
  }

  /** The live value of a document, or undefined. */
  getDoc(collection: string, id: string): DocValue | undefined {
    return this.state.collections.get(collection)?.docs.get(id);
  }

  /** The live state (read-only by contract): the catalog and every live doc at `applied()`. */
  liveState(): MaterializedState {
    return this.state;
  }

  /**
   * Backpressure: `ok: false` while the hot tier holds more than `hotTier.maxVectors` vectors
   * plus tombstones or more than `hotTier.maxBytes` of vector data, or the cold tier is behind by
   * more than `hotTier.maxVectors` events (overwrites of a few ids keep the hot tier small while
   * the index's backlog grows without end). `retryAfterMs` is how long the cold tier takes, at
   * its recent rate, to absorb the excess.
   */
  admission(): { ok: true } | { ok: false; retryAfterMs: number } {
    const overBytes = this.hot.bytes() - this.hotOpts.maxBytes;
    const vectors = this.hot.vectors();
    // The excess in bytes as a number of the hot tier's average vectors.
    const excess = Math.max(
      this.hot.size() - this.hotOpts.maxVectors,
      this.state.seq - this.coldWatermark - this.hotOpts.maxVectors,
      overBytes > 0 && vectors > 0 ? Math.ceil(overBytes / (this.hot.bytes() / vectors)) : 0,
    );
    if (excess <= 0) return { ok: true };
    const rate = this.ingest.rate > 0 ? this.ingest.rate : 1000;
    return { ok: false, retryAfterMs: Math.max(100, Math.min(10_000, Math.round((excess / rate) * 1000))) };
  }

  /**
   * Top-k of hot ∪ cold (or the cache), scores consistent across tiers (rescored exactly).
   * The cold tier is asked for k + (ids changed since it last absorbed) hits, so its stale copies
   * cannot crowd out the k-th. Changes applied while the cold search is in flight (an answer
   * awaited asynchronously) are not counted in that margin: when they leave fewer than k of a
   * full cold answer standing, the cold tier is asked again with the new margin (twice at most),
   * as a hit beyond what it answered may belong in the top k. A stale or deleted hit never shows.
   * A cold answer older than the cold watermark (answered, then overtaken by the acknowledgement
   * of a batch the worker applied after it, which the hot tier has shed) is completed from the
   * log: the events between the two are read, and the live documents they wrote are scored
   * exactly beside the hot tier's, their changes beside its change marks.
   * With `asOf`, an exact search of the log prefix with ts ≤ asOf (no cache, no tiers).
   * Throws PROJ_UNKNOWN_COLLECTION, PROJ_DIMENSION_MISMATCH, PROJ_INVALID_QUERY,
   * PROJ_INVALID_FILTER, PROJ_NO_LAYER_AVAILABLE, PROJ_CLOSED.
   */
  async search(collection: string, req: SearchRequest): Promise<SearchResponse> {
    if (this.closed) throw new ProjectionError('PROJ_CLOSED', 'the projections are closed');
    if (req.filter !== undefined) validateFilter(req.filter);
    if (req.asOf !== undefined) return { results: await this.searchAsOf(collection, req), degraded: false, layers: [] };
    const c0 = this.state.collections.get(collection);
    if (c0 === undefined) throw new ProjectionError('PROJ_UNKNOWN_COLLECTION', `no collection ${collection}`, { collection });
    checkQuery(c0.info, req);

    let cq: CacheQuery | undefined;
    if (this.cache !== undefined) {
      cq = { collection, vector: req.vector, metric: c0.info.metric, k: req.k, filterKey: filterKey(req.filter), version: c0.info.version, createdSeq: c0.info.createdSeq, nowMs: this.clock.monotonicMs() };
      const hit = this.runSync('cache', this.qOpts.cacheTimeoutMs, true, () => this.cache!.lookup(cq!));
      if (hit !== undefined) return { results: hit, degraded: false, layers: ['cache'] };
    }

    // Cold first (it runs in the worker), hot after it answers, so both reflect one instant.
    // When the cold tier has not been sent this collection's creation, it holds nothing of it
    // and the hot tier alone is complete.
    const coldUseful = this.hot.createdSeq(collection) <= this.coldWatermark || this.coldSentSeq >= c0.info.createdSeq;
    // The hot tier is searched while the worker searches; that answer is kept only when the cold
    // answer came back in the same turn (no event applied in between), else it is searched again.
    const searchHot = (): SearchHit[] | undefined => this.runSync('hot', this.qOpts.hotTimeoutMs, false, () => this.hot.search(c0.info, req));
    let coldAnswer: ColdAnswer | undefined;
    let hotHits: SearchHit[] | undefined;
    let results: SearchHit[];
    for (let round = 0; ; round++) {
      const asked = req.k + this.hot.changedCount(collection);
      let early: { hits: SearchHit[] | undefined } | undefined;
      const pending = coldUseful ? this.searchCold(collection, req, asked, () => (early = { hits: searchHot() })) : undefined;
      if (pending instanceof Promise) {
        early = undefined;
        coldAnswer = await pending;
      } else coldAnswer = pending;
      if (coldAnswer !== undefined && this.failpoints.active) {
        // projection.cold.answer=delay(MS): the answer is taken MS late, as on a busy event loop
        // (batches acknowledged meanwhile overtake it); error or panic: it is lost.
        try {
          const lateMs = this.failpoints.check('projection.cold.answer');
          if (lateMs > 0) {
            early = undefined;
            await new Promise((resolve) => setTimeout(resolve, lateMs));
          }
        } catch {
          coldAnswer = undefined;
        }
      }
      const c = this.state.collections.get(collection);
      if (c === undefined || c.info.createdSeq !== c0.info.createdSeq) throw new ProjectionError('PROJ_UNKNOWN_COLLECTION', `collection ${collection} was dropped during the search`, { collection });
      hotHits = early !== undefined ? early.hits : searchHot();
      if (hotHits === undefined && coldAnswer === undefined) throw new ProjectionError('PROJ_NO_LAYER_AVAILABLE', `no layer could answer a search of ${collection}`, { collection });
      // The hot tier holds what came after the cold watermark; what an older cold answer missed
      // before it, the hot tier has shed: read from the log. On a loaded two-core machine 8% of
      // cold answers came back up to 14 events behind (awaited ones: the acknowledgement of a
      // later batch was handled first). They were asked again, three times at most, then dropped
      // for a hot-only answer: degraded, often empty (0.3% of searches).
      const gap = coldAnswer !== undefined && coldAnswer.seq < this.coldWatermark ? this.gapSince(c, req, coldAnswer.seq) : undefined;
      if (gap !== undefined) this.m.coldCatchUps.inc();
      if (gap !== undefined && hotHits !== undefined) hotHits = hotHits.concat(gap.hits); // disjoint: the hot tier holds the versions after the watermark
      const merged = this.merge(c, req, hotHits ?? [], coldAnswer?.hits ?? [], gap?.changes);
      results = merged.results;
      // A full cold answer of which fewer than k hits still stand (writes applied while it was
      // awaited made more of them stale than the margin allowed for): a cold hit it did not
      // include may outrank what filled the gap. Seen as k−1 results under overwrites.
      if (round < 2 && coldAnswer !== undefined && coldAnswer.hits.length >= asked && merged.coldKept < req.k) continue;
      break;
    }
    const coldAnswered = coldAnswer !== undefined;
    const layers: ('hot' | 'cold')[] = [];
    if (hotHits !== undefined) layers.push('hot');
    if (coldAnswered) layers.push('cold');
    const degraded = hotHits === undefined || (coldUseful && !coldAnswered);
    if (degraded) this.m.degradation.inc({ fallback_to: hotHits !== undefined ? 'hot' : 'cold' });
    else if (cq !== undefined) {
      try {
        this.cache!.offer(cq, results);
      } catch (err) {
        this.logger('warn', 'cache offer failed', { error: String(err) });
      }
    }
    return { results, degraded, layers };
  }

  /**
   * Top-k of hot ∪ cold: cold hits that are deleted, stale (a newer version exists) or also in the
   * hot tier are dropped. The rest keep the exact score the worker computed from its copy of the
   * very vector (the same `scoreAt` over the same float32 values: bit-identical to rescoring it
   * here), so a score does not depend on the tier. Staleness comes from the hot tier's change
   * marks, which cover everything after the cold watermark (≤ the answer's seq); only hits the
   * worker could not score, hits with metadata, and collections the hot tier does not track are
   * looked up in the live docs.
   */
  private merge(c: CollectionState, req: SearchRequest, hotHits: SearchHit[], coldHits: ColdHit[], gapChanges?: ReadonlyMap<string, number>): { results: SearchHit[]; coldKept: number } {
    const { createdSeq, metric } = c.info;
    const changes = this.hot.changes(c.info.name, createdSeq);
    const hotIds = hotHits.length > 0 ? new Set(hotHits.map((h) => h.id)) : undefined;
    const out = hotHits.slice();
    let coldKept = 0; // cold hits that stand: live as answered (from either tier)
    for (const h of coldHits) {
      if (h.seq < createdSeq) continue; // from a dropped namesake the worker had not dropped yet
      if (changes !== undefined && changes.size > 0 && (changes.get(h.id) ?? 0) > h.seq) continue; // deleted, or a newer version lives in the hot tier
      if (gapChanges !== undefined && (gapChanges.get(h.id) ?? 0) > h.seq) continue; // deleted or replaced after the cold answer, before the watermark
      if (hotIds?.has(h.id) === true) {
        coldKept += 1; // the same version, absorbed after the watermark: the hot tier's hit stands for it
        continue;
      }
      if (changes !== undefined && !h.meta && !Number.isNaN(h.score)) {
        out.push({ id: h.id, score: h.score });
        coldKept += 1;
        continue;
      }
      const d = c.docs.get(h.id);
      if (d === undefined || d.seq !== h.seq) continue;
      out.push(toHit(d, Number.isNaN(h.score) ? score(metric, req.vector, d.vector) : h.score));
      coldKept += 1;
    }
    out.sort(compareHits);
    if (out.length > req.k) out.length = req.k;
    return { results: out, coldKept };
  }

  /**
   * What the events in (`from`, cold watermark] did to collection `c`, which a cold answer at
   * `from` does not reflect and the hot tier has shed: id → seq of its newest change there, and
   * the exact top-k of the live documents they wrote (still at that version: a newer one is the
   * hot tier's).
   */
  private gapSince(c: CollectionState, req: SearchRequest, from: number): { hits: SearchHit[]; changes: Map<string, number> } {
    const to = this.coldWatermark;
    const changes = new Map<string, number>();
    for (const e of this.log.read(from + 1, to)) {
      if ((e.type === 'vector.upserted' || e.type === 'vector.deleted') && e.collection === c.info.name && e.seq >= c.info.createdSeq) changes.set(e.body.id, e.seq);
    }
    const docs: DocValue[] = [];
    for (const id of changes.keys()) {
      const d = c.docs.get(id);
      if (d !== undefined && d.seq > from && d.seq <= to) docs.push(d);
    }
    return { hits: exactTopK(c.info, docs, req), changes };
  }

  /** Runs a synchronous layer under its breaker; undefined when refused, failed, or (if `discardLate`) late. */
  private runSync<T>(layer: QueryLayer, budgetMs: number, discardLate: boolean, fn: () => T): T | undefined {
    const b = this.breakers[layer];
    const permit = b.tryAcquire();
    if (!permit.allowed) return undefined;
    const t0 = performance.now();
    try {
      const r = fn();
      if (performance.now() - t0 > budgetMs) {
        this.m.timeouts.inc({ layer });
        if (discardLate) {
          b.recordFailure(`${layer} layer took longer than ${budgetMs} ms`);
          return undefined;
        }
        // A late answer that is kept (the hot tier's: the only holder of the newest writes) is
        // an answer. Counted as a failure, it opened the hot breaker for a minute under a heavy
        // ingest, and searches then missed every write the cold tier had not indexed yet.
        b.recordSuccess();
        return r;
      }
      b.recordSuccess();
      return r;
    } catch (err) {
      b.recordFailure(String(err));
      this.logger('warn', `${layer} layer failed`, { error: String(err) });
      return undefined;
    }
  }

  /** The cold layer under its breaker; undefined when refused or failed. Synchronous when the worker answered within the channel's synchronous wait. */
  private searchCold(collection: string, req: SearchRequest, k: number, whileWaiting: () => void): ColdAnswer | undefined | Promise<ColdAnswer | undefined> {
    const b = this.breakers.cold;
    const cold = this.cold;
    // A worker known to be down (restarting) is not asked, and not counted against the breaker:
    // three searches during a restart opened it, and it then kept the restarted worker out for
    // its whole timeout (60 s), while the hot tier shed what the worker absorbed: searches answered
    // empty.
    if (cold === undefined || !cold.alive) return undefined;
    const permit = b.tryAcquire();
    if (!permit.allowed) return undefined;
    const failed = (err: unknown): undefined => {
      if (isProjectionError(err) && err.details['timeout'] === true) this.m.timeouts.inc({ layer: 'cold' });
      b.recordFailure(err instanceof Error ? err.message : String(err));
      return undefined;
    };
    let r: ColdAnswer | Promise<ColdAnswer>;
    try {
      r = cold.search(collection, req.vector, k, req.filter, this.qOpts.coldTimeoutMs, whileWaiting);
    } catch (err) {
      return failed(err);
    }
    if (!(r instanceof Promise)) {
      b.recordSuccess();
      return r;
    }
    return r.then((a) => {
      b.recordSuccess();
      return a;
    }, failed);
  }

  /**
   * An as-of search: the state at T is replayed from the log (from the cached state of an earlier
   * call when T is not before it, else from seq 1), AS_OF_CHUNK events a turn. In one call, a
   * replay of 140k events held the event loop, and every write and search, for over a second.
   * One runs at a time (they share the cached state); past AS_OF_MAX_WAITING waiting, PROJ_BUSY.
   */
  private async searchAsOf(collection: string, req: SearchRequest): Promise<SearchHit[]> {
    if (this.asOfWaiting >= AS_OF_MAX_WAITING) throw new ProjectionError('PROJ_BUSY', `${this.asOfWaiting} as-of searches are waiting (each replays the log up to its instant, one at a time); retry shortly`);
    this.asOfWaiting += 1;
    const run = this.asOfQueue.then(() => this.replayAsOf(collection, req));
    this.asOfQueue = run.catch(() => undefined);
    try {
      return await run;
    } finally {
      this.asOfWaiting -= 1;
    }
  }

  private async replayAsOf(collection: string, req: SearchRequest): Promise<SearchHit[]> {
    const seq = this.log.seqAtTime(req.asOf!);
    let st = this.asOfCache;
    if (st === undefined || st.seq > seq) st = emptyState();
    // Not cached while half-replayed: a failure leaves the cache as it was, or empty.
    this.asOfCache = undefined;
    while (st.seq < seq) {
      materialize(this.log, Math.min(seq, st.seq + AS_OF_CHUNK), undefined, st);
      if (st.seq < seq) await new Promise((r) => setImmediate(r));
      if (this.closed) throw new ProjectionError('PROJ_CLOSED', 'the projections are closed');
    }
    this.asOfCache = st;
    const { asOf: _asOf, ...rest } = req;
    return exactSearch(st, collection, rest);
  }

  // ------------------------------------------------------------------ checkpoints

  /**
   * Writes a checkpoint of the current state (catalog and docs at `applied()`, cold indexes at
   * what the worker has been sent) atomically, then prunes to `keepGenerations`. Concurrent calls
   * share one write. Rejects PROJ_COLD_UNAVAILABLE when the cold worker is down.
   */
  checkpoint(): Promise<{ seq: number; dir: string }> {
    if (this.closed) return Promise.reject(new ProjectionError('PROJ_CLOSED', 'the projections are closed'));
    if (this.checkpointing !== undefined) return this.checkpointing;
    const p = this.writeCheckpoint().then(
      (r) => {
        this.cpFailures = { consecutive: 0, lastError: '' };
        return r;
      },
      (err: unknown) => {
        // One that a close cut short is not a failure of the checkpoint (the close says what it gave up).
        if (!this.closed) {
          this.m.checkpointFailures.inc();
          this.cpFailures = { consecutive: this.cpFailures.consecutive + 1, lastError: err instanceof Error ? err.message : String(err) };
        }
        throw err;
      },
    ).finally(() => {
      this.checkpointing = undefined;
    });
    this.checkpointing = p;
    return p;
  }

  private async writeCheckpoint(): Promise<{ seq: number; dir: string }> {
    const cold = this.cold;
    if (cold === undefined || !cold.alive) throw new ProjectionError('PROJ_COLD_UNAVAILABLE', 'cannot checkpoint while the cold tier is down');
    const seq = this.state.seq;
    const head = seq === 0 ? undefined : this.log.get(seq);
    const hash = logHashAt(this.log, seq) ?? '';
    const tmp = makeTempDir(this.dataDir);
    let saved: ReturnType<ColdTier['save']> | undefined;
    try {
      // Synchronously, in one turn: send the cold tier everything up to `seq`, snapshot the docs at
      // `seq`, and ask the worker to save (it applies messages in order, so it saves at `seq`).
      this.pumpCold(true);
      const snap = snapshotState(this.state);
      const expectCold = this.coldSentSeq;
      const collections: CheckpointCollection[] = [...this.state.collections.values()].map((c) => ({ name: c.info.name, dimension: c.info.dimension, metric: c.info.metric, count: c.docs.size, coldCount: 0 }));
      saved = cold.save(tmp);
      // Awaited below, or in the catch when writing the docs fails first (a full disk): a save
      // left unobserved that then failed (the worker stopped at shutdown) crashed the process.
      saved.catch(() => undefined);
      this.eventsSinceCheckpoint = 0;
      await writeStateFiles(tmp, snap);
      const s = await saved;
      if (s.watermark !== expectCold) throw new ProjectionError('PROJ_COLD_UNAVAILABLE', `cold tier saved at ${s.watermark}, expected ${expectCold}`);
      for (const c of collections) {
        const sc = s.collections.find((x) => x.name === c.name);
        if (sc === undefined) throw new ProjectionError('PROJ_COLD_UNAVAILABLE', `cold tier has no index for ${c.name} at ${expectCold}`);
        c.coldCount = sc.live;
      }
      const createdMs = this.clock.now();
      const dir = await sealCheckpoint(this.dataDir, tmp, {
        format: CHECKPOINT_FORMAT_VERSION,
        createdMs,
        watermark: { seq, ts: head?.ts ?? 0, hash },
        cold: { seq: expectCold },
        collections,
      });
      const kept = pruneGenerations(this.dataDir, this.cpOpts.keepGenerations);
      const known = new Map(this.generations.map((g) => [g.seq, g]));
      known.set(seq, { seq, dir, createdMs, coldSeq: expectCold });
      this.generations = kept.map((g) => known.get(g.seq) ?? { ...g, createdMs, coldSeq: 0 });
      this.logger('info', 'checkpoint written', { seq, coldSeq: expectCold, dir });
      return { seq, dir };
    } catch (err) {
      // The worker may still be writing its indexes into tmp: removed once it is done with it.
      if (saved !== undefined) await saved.catch(() => undefined);
      fs.rmSync(tmp, { recursive: true, force: true });
      throw err;
    }
  }

  // ------------------------------------------------------------------ admin

  /** Applied seq, cold watermark, hot size, lag, breaker states, newest checkpoint. */
  health(): ProjectionsHealth {
    return {
      applied: this.state.seq,
      coldWatermark: this.coldWatermark,
      hotVectors: this.hot.vectors(),
      hotBytes: this.hot.bytes(),
      lagEvents: this.state.seq - this.coldWatermark,
      breakers: { cache: this.breakers.cache.state, hot: this.breakers.hot.state, cold: this.breakers.cold.state },
      lastCheckpointSeq: this.generations[0]?.seq ?? 0,
      checkpointFailures: { ...this.cpFailures },
      searchChannel: this.cold === undefined || !this.cold.alive ? 'down' : this.cold.polling ? 'polling' : 'sleeping',
    };
  }

  /** Closes a layer's breaker by hand. */
  resetBreaker(layer: QueryLayer): void {
    this.breakers[layer].reset();
  }

  /** Resolves once the cold tier has absorbed `seq` (for tests and benchmarks). */
  async waitForCold(seq: number, pollMs = 10): Promise<void> {
    while (this.coldWatermark < seq) {
      if (this.closed) throw new ProjectionError('PROJ_CLOSED', 'the projections are closed');
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  /** Microseconds the last cold search spent inside hnswlib in the worker (0 before any), to separate the thread hop from the search in benchmarks. */
  lastColdSearchUs(): number {
    return this.cold?.lastSearchUs ?? 0;
  }

  /** The cold worker's own counts (undefined when it is down). */
  async coldStats(): Promise<ColdStats | undefined> {
    const c = this.cold;
    if (c === undefined || !c.alive) return undefined;
    return c.stats(5000);
  }

  /** Stops the tail, the timers and the worker. Writes no checkpoint by itself. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.sub?.unsubscribe();
    if (this.cpTimer) clearInterval(this.cpTimer);
    if (this.restartTimer) clearTimeout(this.restartTimer);
    for (const w of this.waiters) w.reject(new ProjectionError('PROJ_CLOSED', 'the projections are closed'));
    this.waiters = [];
    // The cold tier first: a checkpoint in flight waits for it to index its backlog (minutes,
    // or forever when it hangs); stopped, the checkpoint fails and removes its temp dir.
    await this.cold?.stop();
    if (this.checkpointing) await this.checkpointing.catch(() => undefined);
  }
}

function copyInfo(i: CollectionInfo): CollectionInfo {
  return { ...i, hnsw: { ...i.hnsw } };
}

/** The cold indexes loaded from a checkpoint must match its metadata (dimension and live count). */
function checkColdStats(dir: string, meta: CheckpointMetadata, stats: ColdStats): void {
  for (const c of meta.collections) {
    const s = stats.collections.find((x) => x.name === c.name);
    if (s === undefined) throw new ProjectionError('PROJ_CHECKPOINT_CORRUPT', `checkpoint ${dir}: cold index ${c.name} missing`);
    if (s.dim !== c.dimension) throw new ProjectionError('PROJ_CHECKPOINT_CORRUPT', `checkpoint ${dir}: cold index ${c.name} has dimension ${s.dim}, metadata says ${c.dimension}`);
    if (s.live !== c.coldCount) throw new ProjectionError('PROJ_CHECKPOINT_CORRUPT', `checkpoint ${dir}: cold index ${c.name} holds ${s.live} live vectors, metadata says ${c.coldCount}`);
  }
}
