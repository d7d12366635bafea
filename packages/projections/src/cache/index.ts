export { AccessLog } from './accessLog.js';
export type { AccessRecord, AccessSnapshot } from './accessLog.js';
export { CacheError, CacheErrorCodes, isCacheError } from './errors.js';
export type { CacheErrorCode } from './errors.js';
export { resolveCacheOptions, resolveSupervisorOptions } from './options.js';
export type { CacheOptionsInput } from './options.js';
export {
  FEATURE_COUNT,
  FEATURE_NAMES,
  LearnedPredictor,
  WEIGHTS_FORMAT,
  accessFeatures,
  defaultPredictorTrainingOptions,
  newAccessStats,
  touchAccessStats,
  trainPredictor,
  validateWeights,
} from './predictor.js';
export type { AccessStats, PredictorTrainingOptions, PredictorWeights } from './predictor.js';
export { MAX_SCOPE_KEY_CHARS, SemanticCache } from './semanticCache.js';
export type { CacheStats, SemanticCacheInit } from './semanticCache.js';
export { TrainingSupervisor, spawnTrainingWorkerThread } from './supervisor.js';
export type {
  FromTrainingWorker,
  SpawnTrainingWorker,
  ToTrainingWorker,
  TrainingState,
  TrainingStatus,
  TrainingSupervisorInit,
  TrainingWorkerData,
  TrainingWorkerEvents,
  TrainingWorkerHandle,
} from './supervisor.js';
export { defaultCacheOptions, defaultSupervisorOptions } from './types.js';
export type { CacheOptions, CacheQuery, CacheTrainingOptions, QueryCacheLayer, SearchHit, SupervisorOptions } from './types.js';
export { HybridCache, cacheOptionsFromConfig, supervisorOptionsFromConfig } from './hybridCache.js';
export type { CacheConfigSection, HybridCacheInit, HybridCacheStatus, TrainingConfigSection } from './hybridCache.js';
