/**
 * @kyrodb/api: the product surface — the fastify HTTP server, the `kyrodb` CLI (dist/cli.js),
 * config loading and validation, metrics and the backup scheduler (DESIGN.md §4).
 */
export { ApiError, ApiErrorCodes, HTTP_STATUS, RETRYABLE_CODES, errorBody, httpStatusFor, isApiError, retryAfterSeconds } from './errors.js';
export type { ApiErrorCode } from './errors.js';
export { ROLES, backupStoreUrl, dataDirOf, defaultConfig, envNames, loadConfig } from './config.js';
export type { ApiKeyConfig, KyroConfig, LoadConfigOptions, Role } from './config.js';
export { buildApp } from './server.js';
export type { AppDeps } from './server.js';
export { decryptionKeyOf, encryptionOf, openConfiguredStore, startNode } from './node.js';
export type { KyroNode, NodeLogger, StartNodeOptions } from './node.js';
export { SKETCH_METRICS, ensureSketchMetrics, registerHttpMetrics } from './metrics.js';
export { buildOpenApi } from './openapi.js';
export { microsToIso, parseIsoMicros } from './time.js';
