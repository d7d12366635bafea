import type { Metric } from '@kyrodb/log';
import type { SearchHit } from '../state.js';

/**
 * One search result: the projections package's `SearchHit` (state.ts), re-exported so the cache layer
 * and the executor share one definition. Scores are "higher is better" for every metric.
 */
export type { SearchHit };

/**
 * A query as the tiered executor presents it to the cache layer.
 * - `collection`, `k`, `filterKey` (a canonical string of the filter; `''` for none) scope the match:
 *   only entries with all three equal can answer.
 * - `vector`: the query vector; similarity is the cosine of the two query vectors.
 * - `version`: the collection's version (seq of the last event that changed it) at query time.
 * - `nowMs`: the time of the query, ms, on the monotonic clock (`Clock.monotonicMs`): only its
 *   differences mean anything (how old a cached answer is).
 */
export interface CacheQuery {
  collection: string;
  vector: Float32Array;
  /**
   * The collection's metric. Under `cosine` a query within `similarityThreshold` of a remembered
   * one gets its answer; under `l2` and `ip` only the same query does (no threshold on two
   * queries' directions or lengths bounds how far their answers differ). Default `cosine`.
   */
  metric?: Metric;
  k: number;
  filterKey: string;
  version: number;
  /**
   * The collection's incarnation: the seq of the event that created it. It scopes the match too,
   * so an answer of a dropped collection never serves the one created after it under the same
   * name (with `maxStalenessMs` > 0 it did: its documents, scored under the old metric). Default 0.
   */
  createdSeq?: number;
  nowMs: number;
}

/** The seam between the tiered query executor and the cache. */
export interface QueryCacheLayer {
  /** Served only if similar enough AND collection version unchanged (or within opt-in staleness); else undefined. */
  lookup(q: CacheQuery): SearchHit[] | undefined;
  /** Offers the tiers' answer to `q`; admission is decided by the cache (learned predictor, or LRU). */
  offer(q: CacheQuery, results: SearchHit[]): void;
  /** Drops every answer of `collection` (it was dropped: none can ever be served again, and they would hold memory until evicted). */
  invalidateCollection?(collection: string): void;
}

/** Options of the training task (DESIGN.md §4 `cache.training`). */
export interface CacheTrainingOptions {
  /** Seconds between training runs. Default 60. Must be > 0. */
  intervalSecs: number;
  /** Fewest logged accesses needed before a run trains a model; with fewer the run is skipped. Default 100. */
  minSamples: number;
}

/** Options of the semantic cache (DESIGN.md §4 `cache:`). */
export interface CacheOptions {
  /** False turns the layer off: `lookup` always misses, `offer` does nothing. Default true. */
  enabled: boolean;
  /** Minimum cosine similarity between query vectors for a cached answer to be served, in (0, 1]. Default 0.99. */
  similarityThreshold: number;
  /** Maximum number of cached answers (entries). Default 10000. */
  capacity: number;
  /**
   * Maximum bytes held by cached answers (estimated: query vector + hits + metadata). Default 256 MiB.
   * Remembered-but-uncached queries (for the predictor's statistics) may use another quarter of it.
   */
  maxBytes: number;
  /**
   * Opt-in staleness bound in ms: an entry whose collection has changed since it was made may still be
   * served while it is at most this old. 0 (the default) = a stale answer is never served.
   */
  maxStalenessMs: number;
  /** How many recently seen queries (cached or not) the cache remembers access statistics for; 0 = 4 × capacity. */
  historyCapacity: number;
  /** Size of the access-log ring (records). Default 100000. */
  accessLogCapacity: number;
  /** Training task options. */
  training: CacheTrainingOptions;
}

/** Defaults for CacheOptions (the sketch's/DESIGN.md values). */
export const defaultCacheOptions: Readonly<CacheOptions> = Object.freeze({
  enabled: true,
  similarityThreshold: 0.99,
  capacity: 10_000,
  maxBytes: 256 * 1024 * 1024,
  maxStalenessMs: 0,
  historyCapacity: 0,
  accessLogCapacity: 100_000,
  training: Object.freeze({ intervalSecs: 60, minSamples: 100 }),
});

/** Options of the training supervisor (sketch `error_recovery.training`). */
export interface SupervisorOptions {
  /** Restarts allowed before the supervisor gives up (the next crash gives up). Default 10. */
  maxRestarts: number;
  /** Backoff before restart n (1-based) is `restartBackoffSeconds[min(n, len) - 1]` seconds. Default [1, 2, 4, 8, 16]. */
  restartBackoffSeconds: number[];
  /** How often the worker sends a heartbeat and the supervisor checks it, in ms. Default 1000. */
  heartbeatIntervalMs: number;
  /**
   * A worker silent for longer than this (ms) is hung: terminated and restarted. Checked every
   * `heartbeatIntervalMs`, so a hang is noticed within timeout + interval. Default 10000.
   */
  heartbeatTimeoutMs: number;
}

/** Defaults for SupervisorOptions. */
export const defaultSupervisorOptions: Readonly<SupervisorOptions> = Object.freeze({
  maxRestarts: 10,
  restartBackoffSeconds: Object.freeze([1, 2, 4, 8, 16]) as unknown as number[],
  heartbeatIntervalMs: 1000,
  heartbeatTimeoutMs: 10_000,
});
