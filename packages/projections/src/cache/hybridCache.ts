import type { Registry } from 'prom-client';
import type { Clock, Failpoints, LogSink } from '@kyrodb/log';
import { AccessLog } from './accessLog.js';
import { resolveCacheOptions } from './options.js';
import type { CacheOptionsInput } from './options.js';
import { LearnedPredictor } from './predictor.js';
import { SemanticCache } from './semanticCache.js';
import type { CacheStats } from './semanticCache.js';
import { TrainingSupervisor } from './supervisor.js';
import type { SpawnTrainingWorker, TrainingStatus } from './supervisor.js';
import type { CacheQuery, QueryCacheLayer, SearchHit, SupervisorOptions } from './types.js';

/** What `new HybridCache` takes. */
export interface HybridCacheInit {
  /** Cache options (DESIGN.md §4 `cache:`); absent fields take the defaults. */
  options?: CacheOptionsInput;
  /** Restart policy (sketch `error_recovery.training`); absent fields take the defaults. */
  supervisor?: Partial<SupervisorOptions>;
  /** One registry for the cache_* and training_* metrics. Default: a private one. */
  registry?: Registry;
  /** Armed specs (e.g. `training.rmi=panic`) are passed to each training worker. */
  failpoints?: Failpoints;
  clock?: Clock;
  logger?: LogSink;
  /** Worker factory (tests). Default: a real worker thread. */
  spawn?: SpawnTrainingWorker;
}

/** What the health endpoint shows of the cache layer. */
export interface HybridCacheStatus {
  enabled: boolean;
  /** 'learned' while a trained model drives admission, else 'lru'. */
  policy: 'learned' | 'lru';
  stats: CacheStats;
  training: TrainingStatus;
}

/**
 * The semantic cache, its access log, the learned predictor and the supervised training task, wired
 * together: pass it as `Projections.open({ cache })`, call `start()` to begin training, `stop()` on
 * shutdown, `status()` for `GET /v1/admin/health`. The predictor's label horizon is the capacity.
 * With `enabled: false` nothing is cached and no worker is started.
 */
export class HybridCache implements QueryCacheLayer {
  readonly cache: SemanticCache;
  readonly predictor = new LearnedPredictor();
  readonly accessLog: AccessLog;
  readonly supervisor: TrainingSupervisor;

  constructor(init: HybridCacheInit = {}) {
    const options = resolveCacheOptions(init.options);
    this.accessLog = new AccessLog(options.accessLogCapacity);
    const shared = { ...(init.registry ? { registry: init.registry } : {}) };
    this.cache = new SemanticCache({ ...shared, options, accessLog: this.accessLog, predictor: this.predictor });
    this.supervisor = new TrainingSupervisor({
      ...shared,
      accessLog: this.accessLog,
      predictor: this.predictor,
      training: options.training,
      predictorTraining: { horizon: options.capacity },
      ...(init.supervisor ? { options: init.supervisor } : {}),
      ...(init.clock ? { clock: init.clock } : {}),
      ...(init.failpoints ? { failpoints: init.failpoints } : {}),
      ...(init.logger ? { logger: init.logger } : {}),
      ...(init.spawn ? { spawn: init.spawn } : {}),
    });
  }

  /** See QueryCacheLayer.lookup. */
  lookup(q: CacheQuery): SearchHit[] | undefined {
    return this.cache.lookup(q);
  }

  /** See QueryCacheLayer.offer. */
  offer(q: CacheQuery, results: SearchHit[]): void {
    this.cache.offer(q, results);
  }

  /** Starts the training task (no-op when the cache is disabled). */
  start(): void {
    if (this.cache.options.enabled) this.supervisor.start();
  }

  /** Stops the training task and its worker. */
  async stop(): Promise<void> {
    await this.supervisor.stop();
  }

  /** The cache layer's state for the health endpoint. */
  status(): HybridCacheStatus {
    const stats = this.cache.stats();
    return { enabled: this.cache.options.enabled, policy: stats.policy, stats, training: this.supervisor.status() };
  }
}

/** The YAML shape of DESIGN.md §4's `cache:` section (snake_case). */
export interface CacheConfigSection {
  enabled?: boolean;
  similarity_threshold?: number;
  capacity?: number;
  max_bytes?: number;
  max_staleness_ms?: number;
  training?: { interval_secs?: number; min_samples?: number };
}

/** The YAML shape of the sketch's `error_recovery.training` section. */
export interface TrainingConfigSection {
  max_restarts?: number;
  restart_backoff_seconds?: number[];
}

/** Maps the `cache:` config section to CacheOptionsInput (validation happens in resolveCacheOptions). */
export function cacheOptionsFromConfig(c: CacheConfigSection = {}): CacheOptionsInput {
  const o: CacheOptionsInput = {};
  if (c.enabled !== undefined) o.enabled = c.enabled;
  if (c.similarity_threshold !== undefined) o.similarityThreshold = c.similarity_threshold;
  if (c.capacity !== undefined) o.capacity = c.capacity;
  if (c.max_bytes !== undefined) o.maxBytes = c.max_bytes;
  if (c.max_staleness_ms !== undefined) o.maxStalenessMs = c.max_staleness_ms;
  if (c.training !== undefined) {
    o.training = {};
    if (c.training.interval_secs !== undefined) o.training.intervalSecs = c.training.interval_secs;
    if (c.training.min_samples !== undefined) o.training.minSamples = c.training.min_samples;
  }
  return o;
}

/** Maps `error_recovery.training` to SupervisorOptions (validation happens in resolveSupervisorOptions). */
export function supervisorOptionsFromConfig(c: TrainingConfigSection = {}): Partial<SupervisorOptions> {
  const o: Partial<SupervisorOptions> = {};
  if (c.max_restarts !== undefined) o.maxRestarts = c.max_restarts;
  if (c.restart_backoff_seconds !== undefined) o.restartBackoffSeconds = c.restart_backoff_seconds;
  return o;
}
