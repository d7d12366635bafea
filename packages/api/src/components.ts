/**
 * Loads @kyrodb/projections and @kyrodb/backup at runtime. When a package exports the contract's
 * names they are used; otherwise the server falls back (projections → ExactProjections) or the
 * feature answers API_NOT_AVAILABLE (backup). `available` says which is in use.
 */
import type { EventLog } from '@kyrodb/log';
import { ApiError } from './errors.js';
import type { Registry } from 'prom-client';
import type { Failpoints } from '@kyrodb/log';
import type { KyroConfig } from './config.js';
import type { BackupModule, Filter, MaterializedState, ProjectionsModule, ProjectionsOpenOptions, ProjectionsPort, SemanticCachePort, TrainingSupervisorPort } from './contracts.js';
import { ExactProjections, materializeExact, validateFilterShape } from './exactProjections.js';

/** Which implementation each seam uses. */
export interface ComponentsInfo {
  projections: 'kyrodb' | 'exact-fallback';
  backup: 'kyrodb' | 'missing';
  /** The semantic cache with its supervised training task, when @kyrodb/projections exports them. */
  cache: 'kyrodb' | 'disabled' | 'missing';
}

async function importOptional(name: string): Promise<Record<string, unknown>> {
  try {
    return (await import(name)) as Record<string, unknown>;
  } catch {
    return {};
  }
}

let projMod: Partial<ProjectionsModule> | undefined;
let backupMod: Partial<BackupModule> | undefined;

async function projections(): Promise<Partial<ProjectionsModule>> {
  projMod ??= (await importOptional('@kyrodb/projections')) as Partial<ProjectionsModule>;
  return projMod;
}

/** The backup module, or undefined when @kyrodb/backup does not export the contract yet. */
export async function loadBackup(): Promise<BackupModule | undefined> {
  backupMod ??= (await importOptional('@kyrodb/backup')) as Partial<BackupModule>;
  const m = backupMod;
  return typeof m.BackupManager === 'function' && typeof m.openObjectStore === 'function' && typeof m.restore === 'function' ? (m as BackupModule) : undefined;
}

/** Like loadBackup, but throws API_NOT_AVAILABLE naming what is missing. */
export async function requireBackup(): Promise<BackupModule> {
  const m = await loadBackup();
  if (m === undefined) throw new ApiError('API_NOT_AVAILABLE', '@kyrodb/backup does not export BackupManager/openObjectStore/restore in this build; backups are not available');
  return m;
}

/** Opens the projections: the real ones when exported, else the exact in-memory fallback. */
export async function openProjections(o: ProjectionsOpenOptions): Promise<{ projections: ProjectionsPort; kind: ComponentsInfo['projections'] }> {
  const m = await projections();
  if (typeof m.Projections?.open === 'function') return { projections: await m.Projections.open(o), kind: 'kyrodb' };
  return { projections: await ExactProjections.open(o.log), kind: 'exact-fallback' };
}

/** Validates a filter with the projections' validator when available (errors keep their code). */
export async function filterValidator(): Promise<(f: unknown) => Filter> {
  const m = await projections();
  return typeof m.validateFilter === 'function' ? m.validateFilter : validateFilterShape;
}

/** State of the log prefix 1..toSeq by replay (the projections' `materialize` when available). */
export async function materializer(): Promise<(log: EventLog, toSeq?: number, onProgress?: (seq: number) => void) => MaterializedState> {
  const m = await projections();
  return typeof m.materialize === 'function' ? m.materialize : materializeExact;
}

/**
 * The semantic cache and its supervised training task from the config (`cache:`,
 * `error_recovery.training`), when @kyrodb/projections exports SemanticCache, LearnedPredictor and
 * TrainingSupervisor; `kind` says whether it is running. The caller starts and stops `supervisor`.
 */
export async function openCache(cfg: KyroConfig, registry: Registry, failpoints: Failpoints): Promise<{ kind: ComponentsInfo['cache']; cache?: SemanticCachePort; supervisor?: TrainingSupervisorPort }> {
  if (!cfg.cache.enabled) return { kind: 'disabled' };
  const m = await projections();
  if (m.SemanticCache === undefined || m.LearnedPredictor === undefined || m.TrainingSupervisor === undefined) return { kind: 'missing' };
  const c = cfg.cache;
  const training = { intervalSecs: c.training.interval_secs, minSamples: c.training.min_samples };
  const predictor = new m.LearnedPredictor();
  const cache = new m.SemanticCache({ options: { enabled: true, similarityThreshold: c.similarity_threshold, capacity: c.capacity, maxStalenessMs: c.max_staleness_ms, training }, registry, predictor });
  const t = cfg.error_recovery.training;
  const supervisor = new m.TrainingSupervisor({ accessLog: cache.accessLog, predictor, options: { maxRestarts: t.max_restarts, restartBackoffSeconds: [...t.restart_backoff_seconds] }, training, registry, failpoints });
  return { kind: 'kyrodb', cache, supervisor };
}
