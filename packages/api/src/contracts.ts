/**
 * The parts of the agreed @kyrodb/projections and @kyrodb/backup contracts the api uses, stated
 * structurally here so the api builds and runs while those packages are being written. The
 * real modules are loaded at runtime by `components.ts` when they export these names.
 */
import type { EventLog, HnswParams, Metadata, Metric } from '@kyrodb/log';
import type { Registry } from 'prom-client';
import type { Failpoints } from '@kyrodb/log';

export type FilterValue = unknown;
/** `{"k": v}` equality, `{"k": {"$in": [...]}}`, `{"k": {"$gte": n, "$gt", "$lte", "$lt"}}`; AND. */
export type Filter = Record<string, FilterValue>;

export interface SearchRequest {
  vector: Float32Array;
  k: number;
  filter?: Filter;
  /** µs since the epoch. */
  asOf?: number;
}
export interface SearchHit {
  id: string;
  score: number;
  metadata?: Metadata;
}
export interface SearchResponse {
  results: SearchHit[];
  degraded: boolean;
  layers: ('cache' | 'hot' | 'cold')[];
}
export interface CollectionInfo {
  name: string;
  dimension: number;
  metric: Metric;
  hnsw: HnswParams;
  count: number;
  createdSeq: number;
  version: number;
}
export interface DocValue {
  id: string;
  vector: Float32Array;
  metadata?: Metadata;
  seq: number;
  ts: number;
}
export interface ProjectionsHealth {
  applied: number;
  coldWatermark: number;
  hotVectors: number;
  lagEvents: number;
  breakers: Record<string, string>;
  lastCheckpointSeq: number;
}
/** What the server needs from the projections (the `Projections` class of the contract). */
export interface ProjectionsPort {
  listCollections(): CollectionInfo[];
  getCollection(name: string): CollectionInfo | undefined;
  getDoc(collection: string, id: string): DocValue | undefined;
  search(collection: string, req: SearchRequest): Promise<SearchResponse>;
  applied(): number;
  waitForApplied(seq: number): Promise<void>;
  admission(): { ok: true } | { ok: false; retryAfterMs: number };
  checkpoint(): Promise<{ seq: number; dir: string }>;
  health(): ProjectionsHealth;
  resetBreaker(layer: 'cache' | 'hot' | 'cold'): void;
  close(): Promise<void>;
}
export interface ProjectionsOpenOptions {
  log: EventLog;
  cache?: QueryCacheLayer;
  dataDir: string;
  registry?: Registry;
  failpoints?: Failpoints;
  checkpoint?: Partial<{ everyEvents: number; everySecs: number; keepGenerations: number }>;
  query?: Partial<{ cacheTimeoutMs: number; hotTimeoutMs: number; coldTimeoutMs: number; breakerThreshold: number; breakerTimeoutMs: number }>;
}
export interface MaterializedState {
  seq: number;
  collections: Map<string, { info: CollectionInfo; docs: Map<string, DocValue> }>;
}
/** The cache seam of the projections. */
export interface QueryCacheLayer {
  lookup(q: unknown): SearchHit[] | undefined;
  offer(q: unknown, results: SearchHit[]): void;
}
/** The semantic cache (projections/src/cache), as far as the api uses it. */
export interface SemanticCachePort extends QueryCacheLayer {
  readonly accessLog: unknown;
}
/** The training supervisor (projections/src/cache). */
export interface TrainingSupervisorPort {
  start(): void;
  stop(): Promise<void>;
  status(): unknown;
}
/** The runtime surface of @kyrodb/projections the api uses. */
export interface ProjectionsModule {
  Projections: { open(o: ProjectionsOpenOptions): Promise<ProjectionsPort> };
  validateFilter(f: unknown): Filter;
  materialize(log: EventLog, toSeq?: number, onProgress?: (seq: number) => void): MaterializedState;
  /** Optional: the semantic cache, its learned predictor and training supervisor. */
  SemanticCache?: new (o: { options?: Record<string, unknown>; registry?: Registry; predictor?: unknown }) => SemanticCachePort;
  LearnedPredictor?: new () => unknown;
  TrainingSupervisor?: new (o: { accessLog: unknown; predictor: unknown; options?: Record<string, unknown>; training?: Record<string, unknown>; registry?: Registry; failpoints?: Failpoints; logger?: unknown }) => TrainingSupervisorPort;
}

// ------------------------------------------------------------------ backup

export interface ObjectStore {
  readonly url: string;
  put(key: string, body: Buffer): Promise<void>;
  get(key: string): Promise<Buffer>;
  head(key: string): Promise<{ size: number } | undefined>;
  list(prefix: string): Promise<string[]>;
  delete(key: string): Promise<void>;
}
export interface BackupManifest {
  backup_id: string;
  type: 'full' | 'incremental';
  parent: string | null;
  created: string;
  tag?: string;
  description?: string;
  from_seq: number;
  to_seq: number;
  from_ts: number;
  to_ts: number;
  head_hash: string;
  vector_count: number;
  [k: string]: unknown;
}
export type Progress = (done: number, total: number, phase?: string) => void;
export interface BackupManagerPort {
  createFull(o?: { tag?: string; description?: string }): Promise<BackupManifest>;
  createIncremental(o?: { since?: number }): Promise<BackupManifest>;
  list(o?: { before?: number }): Promise<BackupManifest[]>;
  verify(idOrLatest: string, o?: { deep?: boolean }): Promise<{ ok: boolean; [k: string]: unknown }>;
  prune(o: { retentionDays?: number; policy?: unknown; dryRun?: boolean; now?: number }): Promise<unknown>;
}
export interface ContinuousBackupPort {
  start(): Promise<void>;
  stop(): Promise<void>;
  status(): { shippedSeq: number; lagEvents: number; lagSeconds: number; lastError?: string };
}
/** The runtime surface of @kyrodb/backup the api uses. */
export interface BackupModule {
  openObjectStore(url: string, o?: Record<string, unknown>): ObjectStore;
  BackupManager: new (o: { log: EventLog; dataDir: string; store: ObjectStore; registry?: Registry; compression?: 'zstd' | 'none'; encryption?: unknown; onProgress?: Progress }) => BackupManagerPort;
  ContinuousBackup: new (o: { log: EventLog; store: ObjectStore; intervalMs?: number; registry?: Registry; compression?: 'zstd' | 'none'; encryption?: unknown }) => ContinuousBackupPort;
  /** Reads a 32-byte key (raw, hex or base64) and derives its key id. */
  loadKey?: (o: { file?: string }) => { key: Buffer; keyId: string } | undefined;
  restore(o: { store: ObjectStore; dataDir: string; backupId?: string; tag?: string; pointInTime?: number; dryRun?: boolean; force?: boolean; registry?: Registry; onProgress?: Progress; encryption?: unknown }): Promise<unknown>;
}
