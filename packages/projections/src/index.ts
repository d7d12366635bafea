export { ProjectionError, ProjectionErrorCodes, isProjectionError } from './errors.js';
export type { ProjectionErrorCode } from './errors.js';
export { filterKey, matchesFilter, validateFilter } from './filter.js';
export type { Filter, FilterOps, FilterValue } from './filter.js';
export { TopK, compareHits, score } from './scoring.js';
export { applyEvent, emptyState, exactSearch, materialize } from './state.js';
export type { CollectionInfo, CollectionState, DocValue, MaterializedState, SearchHit, SearchRequest, SearchResponse } from './state.js';
export { CHECKPOINT_FORMAT_VERSION, checkpointsDir, defaultCheckpointOptions, listGenerations, validateCheckpoint } from './checkpoints.js';
export type { CheckpointMetadata, CheckpointOptions, Generation, LoadedCheckpoint } from './checkpoints.js';
export { defaultHotTierOptions } from './hotTier.js';
export type { HotTierOptions } from './hotTier.js';
export { Projections, QUERY_LAYERS, defaultQueryOptions } from './projections.js';
export type { CacheQuery, ProjectionsHealth, ProjectionsOptions, QueryCacheLayer, QueryLayer, QueryOptions } from './projections.js';
// The semantic cache (packages/projections/src/cache, the cache engineer's). Its CacheQuery,
// QueryCacheLayer and SearchHit are structurally the ones above; the explicit exports above win.
export * from './cache/index.js';
