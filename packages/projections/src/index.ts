export { ProjectionError, ProjectionErrorCodes, isProjectionError } from './errors.js';
export type { ProjectionErrorCode } from './errors.js';
export { MAX_FILTER_IN_VALUES, MAX_FILTER_KEYS, compileFilter, filterKey, matchesFilter, validateFilter } from './filter.js';
export type { Filter, FilterOps, FilterValue } from './filter.js';
export { TopK, compareHits, score } from './scoring.js';
export { applyEvent, emptyState, exactSearch, materialize } from './state.js';
export type { CollectionInfo, CollectionState, DocValue, MaterializedState, SearchHit, SearchRequest, SearchResponse } from './state.js';
export { CHECKPOINT_FORMAT_VERSION, checkpointsDir, defaultCheckpointOptions, listGenerations, metadataText, validateCheckpoint } from './checkpoints.js';
export type { CheckpointMetadata, CheckpointOptions, Generation, LoadedCheckpoint } from './checkpoints.js';
export { defaultHotTierOptions } from './hotTier.js';
export type { HotTierOptions } from './hotTier.js';
export { Projections, QUERY_LAYERS, defaultQueryOptions } from './projections.js';
export type { ProjectionsHealth, ProjectionsOptions, QueryLayer, QueryOptions } from './projections.js';
// The semantic cache and its seam with the tiered executor (CacheQuery, QueryCacheLayer).
export * from './cache/index.js';
