import { CacheError } from './errors.js';
import { defaultCacheOptions, defaultSupervisorOptions } from './types.js';
import type { CacheOptions, CacheTrainingOptions, SupervisorOptions } from './types.js';

/** Partial CacheOptions as accepted at the edges (training may itself be partial). */
export type CacheOptionsInput = Partial<Omit<CacheOptions, 'training'>> & { training?: Partial<CacheTrainingOptions> };

function bad(field: string, want: string, got: unknown): never {
  throw new CacheError('CACHE_INVALID_OPTIONS', `cache option ${field} must be ${want}, got ${JSON.stringify(got)}`, { field, value: got });
}

/** Merges `input` over the defaults, validates every field (CacheError CACHE_INVALID_OPTIONS naming the field) and freezes. */
export function resolveCacheOptions(input: CacheOptionsInput = {}): Readonly<CacheOptions> {
  const o: CacheOptions = { ...defaultCacheOptions, ...input, training: { ...defaultCacheOptions.training, ...(input.training ?? {}) } };
  if (typeof o.enabled !== 'boolean') bad('enabled', 'a boolean', o.enabled);
  if (!(o.similarityThreshold > 0 && o.similarityThreshold <= 1)) bad('similarityThreshold', 'in (0, 1]', o.similarityThreshold);
  if (!Number.isInteger(o.capacity) || o.capacity < 1) bad('capacity', 'an integer ≥ 1', o.capacity);
  if (!(o.maxBytes > 0)) bad('maxBytes', '> 0', o.maxBytes);
  if (!(o.maxStalenessMs >= 0) || !Number.isFinite(o.maxStalenessMs)) bad('maxStalenessMs', 'a finite number ≥ 0', o.maxStalenessMs);
  if (!Number.isInteger(o.historyCapacity) || o.historyCapacity < 0) bad('historyCapacity', 'an integer ≥ 0', o.historyCapacity);
  if (!Number.isInteger(o.accessLogCapacity) || o.accessLogCapacity < 1) bad('accessLogCapacity', 'an integer ≥ 1', o.accessLogCapacity);
  if (!(o.training.intervalSecs > 0) || !Number.isFinite(o.training.intervalSecs)) bad('training.intervalSecs', 'a finite number > 0', o.training.intervalSecs);
  if (!Number.isInteger(o.training.minSamples) || o.training.minSamples < 0) bad('training.minSamples', 'an integer ≥ 0', o.training.minSamples);
  Object.freeze(o.training);
  return Object.freeze(o);
}

/** Merges `input` over the supervisor defaults, validates (CACHE_INVALID_OPTIONS) and freezes. */
export function resolveSupervisorOptions(input: Partial<SupervisorOptions> = {}): Readonly<SupervisorOptions> {
  const o: SupervisorOptions = { ...defaultSupervisorOptions, ...input };
  if (!Number.isInteger(o.maxRestarts) || o.maxRestarts < 0) bad('maxRestarts', 'an integer ≥ 0', o.maxRestarts);
  if (!Array.isArray(o.restartBackoffSeconds) || o.restartBackoffSeconds.length === 0 || !o.restartBackoffSeconds.every((s) => typeof s === 'number' && s >= 0 && Number.isFinite(s)))
    bad('restartBackoffSeconds', 'a non-empty list of finite numbers ≥ 0', o.restartBackoffSeconds);
  if (!(o.heartbeatIntervalMs > 0)) bad('heartbeatIntervalMs', '> 0', o.heartbeatIntervalMs);
  if (!(o.heartbeatTimeoutMs > o.heartbeatIntervalMs)) bad('heartbeatTimeoutMs', '> heartbeatIntervalMs', o.heartbeatTimeoutMs);
  return Object.freeze({ ...o, restartBackoffSeconds: Object.freeze([...o.restartBackoffSeconds]) as unknown as number[] });
}
