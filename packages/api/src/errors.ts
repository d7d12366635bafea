import type { FastifyReply } from 'fastify';
import { auditErrorStatus } from './audit/errors.js';

/**
 * Error codes of the api package, and the ONE table that maps every package's error codes to
 * HTTP statuses. Callers branch on `code`, never on message text. `errors.test.ts` checks that
 * every code is documented and has a status.
 */
export const ApiErrorCodes = {
  /** The request does not match the route's JSON Schema (unknown field, wrong type, bad range), or its JSON body has a `__proto__` key or a `constructor` key holding `prototype` (prototype poisoning). Nothing was written. */
  API_INVALID_REQUEST: 'the request does not match the documented schema; nothing was written',
  /** The body is not valid JSON, is empty, or is not well-formed UTF-8 (the message names the byte offset). Nothing was written. */
  API_MALFORMED_JSON: 'the body is not valid UTF-8 JSON; nothing was written',
  /** The body is not `application/json`, names a charset other than utf-8 (or utf8), or has a Content-Encoding other than identity (bodies are never decompressed). Nothing was written. */
  API_UNSUPPORTED_MEDIA_TYPE: 'the body must be uncompressed application/json in UTF-8',
  /** A collection name or document id is outside COLLECTION_NAME_RE / DOC_ID_RE. */
  API_INVALID_NAME: 'a collection name or document id is outside the documented character set or length',
  /** One batch names the same id twice. Rule: a batch is rejected whole; send one upsert per id. */
  API_DUPLICATE_ID: 'a batch names the same document id more than once; nothing was written',
  /** A batch holds no vectors. */
  API_EMPTY_BATCH: 'a batch holds no vectors; nothing was written',
  /** A batch holds more than `server.max_batch` vectors. */
  API_BATCH_TOO_LARGE: 'a batch holds more vectors than server.max_batch; nothing was written',
  /** The request's headers are larger than node's limit (16 KiB by default). */
  API_HEADERS_TOO_LARGE: 'the request headers are too large',
  /** The request was not received whole in time (node's request timeout). */
  API_REQUEST_TIMEOUT: 'the request was not received in time',
  /** The body is larger than `server.body_limit_bytes`. */
  API_PAYLOAD_TOO_LARGE: 'the body is larger than server.body_limit_bytes',
  /** A vector's length differs from its collection's dimension. */
  API_DIMENSION_MISMATCH: 'a vector length differs from the collection dimension; nothing was written',
  /** A vector value is NaN, ±Infinity or not a number (e.g. the string "NaN"). */
  API_NON_FINITE_VECTOR: 'a vector value is not a finite number; nothing was written',
  /** Metadata that is not a JSON object of finite numbers, strings, booleans, null, arrays and objects at most 16 levels deep, or is more than `server.max_metadata_bytes` of JSON. */
  API_INVALID_METADATA: 'metadata is not a JSON object with finite numbers, at most 16 levels deep and server.max_metadata_bytes of JSON; nothing was written',
  /** `asOf` (or `--as-of`, `--before`, `--since`) is not an ISO-8601 timestamp with a zone. */
  API_INVALID_TIMESTAMP: 'a timestamp is neither ISO-8601 with a time zone (e.g. 2024-01-15T10:00:00Z) nor integer microseconds since the epoch',
  /** A metadata filter does not have the documented shape. */
  API_INVALID_FILTER: 'a metadata filter does not have the documented shape',
  /** No API key was given but the server requires one. */
  API_UNAUTHORIZED: 'an API key is required (Authorization: Bearer KEY or x-api-key)',
  /** The API key lacks the role this route needs. */
  API_FORBIDDEN: 'the API key lacks the role this route needs',
  /** No such route. */
  API_ROUTE_NOT_FOUND: 'no such route',
  /** The route exists, for other methods (named in the `Allow` header). */
  API_METHOD_NOT_ALLOWED: 'the route does not take this method',
  /** The collection does not exist. */
  API_COLLECTION_NOT_FOUND: 'the collection does not exist',
  /** The document does not exist (or did not at `asOf`). */
  API_DOC_NOT_FOUND: 'the document does not exist',
  /** The collection exists with other settings (same settings: 200, idempotent). */
  API_COLLECTION_EXISTS: 'the collection exists with other settings',
  /** The hot tier is full: writes outpace indexing. Retry after `Retry-After` seconds. */
  API_BACKPRESSURE: 'the server is applying backpressure; retry after Retry-After seconds',
  /** The server is shutting down. */
  API_SHUTTING_DOWN: 'the server is shutting down',
  /** `POST /v1/backups` while a backup (requested, or scheduled) is under way in this server: one at a time. Retry after `Retry-After` seconds. */
  API_BACKUP_IN_PROGRESS: 'a backup is under way in this server; retry once it is done',
  /** A feature is not available in this build or configuration (e.g. backups without @kyrodb/backup). */
  API_NOT_AVAILABLE: 'the feature is not available in this build or configuration',
  /** The failpoints API is off (start the server with KYRODB_TEST_FAILPOINTS_API=1). */
  API_FAILPOINTS_DISABLED: 'the failpoints API is off',
  /** The config file, env overrides or flags are invalid; the message names the key. */
  API_CONFIG_INVALID: 'the configuration is invalid',
  /** A CLI command cannot reach the server at --url. */
  API_SERVER_UNREACHABLE: 'the server cannot be reached',
  /** An unexpected internal error. */
  API_INTERNAL: 'an unexpected internal error',
} as const;

/** A stable error code of the api package. */
export type ApiErrorCode = keyof typeof ApiErrorCodes;

/** The one error class of the api package. `status` is the HTTP status it maps to. */
export class ApiError extends Error {
  readonly code: ApiErrorCode;
  readonly details: Readonly<Record<string, unknown>>;
  constructor(code: ApiErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.details = Object.freeze({ ...details });
  }
}

/** True when `err` is an ApiError, optionally with the given code. */
export function isApiError(err: unknown, code?: ApiErrorCode): err is ApiError {
  return err instanceof ApiError && (code === undefined || err.code === code);
}

/**
 * HTTP status of every known error code of every package. Codes of other packages not listed
 * here fall back by prefix (see `httpStatusFor`). This table is the only place statuses are decided.
 */
export const HTTP_STATUS: Readonly<Record<string, number>> = Object.freeze({
  // api
  API_INVALID_REQUEST: 400,
  API_MALFORMED_JSON: 400,
  API_UNSUPPORTED_MEDIA_TYPE: 415,
  API_INVALID_NAME: 400,
  API_DUPLICATE_ID: 400,
  API_INVALID_METADATA: 400,
  API_EMPTY_BATCH: 400,
  API_BATCH_TOO_LARGE: 413,
  API_PAYLOAD_TOO_LARGE: 413,
  API_HEADERS_TOO_LARGE: 431,
  API_REQUEST_TIMEOUT: 408,
  API_DIMENSION_MISMATCH: 400,
  API_NON_FINITE_VECTOR: 400,
  API_INVALID_TIMESTAMP: 400,
  API_INVALID_FILTER: 400,
  API_UNAUTHORIZED: 401,
  API_FORBIDDEN: 403,
  API_ROUTE_NOT_FOUND: 404,
  API_METHOD_NOT_ALLOWED: 405,
  API_COLLECTION_NOT_FOUND: 404,
  API_DOC_NOT_FOUND: 404,
  API_COLLECTION_EXISTS: 409,
  API_BACKPRESSURE: 429,
  API_SHUTTING_DOWN: 503,
  API_BACKUP_IN_PROGRESS: 409,
  API_NOT_AVAILABLE: 501,
  API_FAILPOINTS_DISABLED: 404,
  API_CONFIG_INVALID: 400,
  API_SERVER_UNREACHABLE: 503,
  API_INTERNAL: 500,
  // audit (packages/api/src/audit)
  ...auditErrorStatus,
  // @kyrodb/log
  LOG_INVALID_EVENT: 400,
  LOG_EMPTY_BATCH: 400,
  LOG_NON_FINITE_VECTOR: 400,
  LOG_BATCH_TOO_LARGE: 413,
  LOG_CHAIN_BROKEN: 500,
  LOG_CORRUPT_RECORD: 500,
  LOG_STORE_CORRUPT: 500,
  LOG_FORMAT_VERSION: 500,
  LOG_INDEX_INCOMPLETE: 500,
  LOG_RECOVERY_NEEDED: 503,
  LOG_LOCKED: 409,
  LOG_READ_ONLY: 503,
  LOG_CLOSED: 503,
  WAL_CIRCUIT_OPEN: 503,
  WAL_DISK_FULL: 503,
  WAL_QUOTA_EXCEEDED: 503,
  WAL_IO_ERROR: 503,
  WAL_PERMISSION_DENIED: 503,
  FAILPOINT_PANIC: 500,
  FAILPOINT_INVALID: 400,
  // @kyrodb/projections (contract names)
  PROJ_UNKNOWN_COLLECTION: 404,
  PROJ_DIMENSION_MISMATCH: 400,
  PROJ_INVALID_FILTER: 400,
  PROJ_INVALID_QUERY: 400,
  PROJ_NO_LAYER_AVAILABLE: 503,
  PROJ_BACKPRESSURE: 429,
  PROJ_CLOSED: 503,
  PROJ_BUSY: 429,
  PROJ_COLD_UNAVAILABLE: 503,
  PROJ_CHECKPOINT_CORRUPT: 500,
  // @kyrodb/backup (contract names)
  BACKUP_NOT_FOUND: 404,
  BACKUP_MANIFEST_MISSING: 404,
  BACKUP_FILE_MISSING: 500,
  BACKUP_MANIFEST_INVALID: 500,
  BACKUP_CHECKSUM_MISMATCH: 500,
  BACKUP_DECRYPT_FAILED: 500,
  BACKUP_KEY_REQUIRED: 400,
  BACKUP_KEY_INVALID: 400,
  BACKUP_CORRUPT: 500,
  BACKUP_CHAIN_GAP: 409,
  BACKUP_CHAIN_BROKEN: 500,
  BACKUP_TARGET_EXISTS: 409,
  BACKUP_TARGET_IN_USE: 409,
  BACKUP_TARGET_NOT_DATA_DIR: 409,
  BACKUP_TAG_EXISTS: 409,
  BACKUP_ABORTED: 503,
  BACKUP_VERIFY_FAILED: 500,
  BACKUP_OBJECT_CONFLICT: 409,
  BACKUP_STORE_ERROR: 502,
  BACKUP_INVALID_URL: 400,
  BACKUP_INVALID_ARGUMENT: 400,
  BACKUP_LOG_DIVERGED: 409,
  BACKUP_NO_SPACE: 507,
});

/** Codes whose answer carries `Retry-After`: the request can be repeated once the condition passes (writes blocked for a while, a backup under way). */
export const RETRYABLE_CODES: ReadonlySet<string> = new Set(['API_BACKUP_IN_PROGRESS', 'WAL_CIRCUIT_OPEN', 'WAL_DISK_FULL', 'WAL_QUOTA_EXCEEDED', 'WAL_IO_ERROR', 'WAL_PERMISSION_DENIED', 'API_BACKPRESSURE', 'PROJ_BACKPRESSURE', 'PROJ_NO_LAYER_AVAILABLE', 'API_SHUTTING_DOWN']);

/** The HTTP status for an error code: the table, else by prefix (`*_NOT_FOUND` 404, `*_INVALID*` 400), else 500. */
export function httpStatusFor(code: string): number {
  const s = HTTP_STATUS[code];
  if (s !== undefined) return s;
  if (code.endsWith('_NOT_FOUND') || code.startsWith('PROJ_UNKNOWN')) return 404;
  if (code.includes('_INVALID')) return 400;
  if (code.endsWith('_LOCKED')) return 409;
  return 500;
}

/** `s` cut to `max` characters (default 64) with an ellipsis, so that a message never echoes a huge header, URL or body. */
export function clip(s: string, max = 64): string {
  return s.length <= max ? s : `${s.slice(0, max)}…`;
}

/** The `{code, message}` of any thrown value (errors of every package carry a string `code`). */
export function errorBody(err: unknown): { code: string; message: string } {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Z][A-Z0-9_]+$/.test(code) && (HTTP_STATUS[code] !== undefined || /^(API|AUDIT|LOG|WAL|PROJ|BACKUP|RESTORE|CACHE|TRAINING|FAILPOINT)_/.test(code))) {
      return { code, message: err.message };
    }
    return { code: 'API_INTERNAL', message: err.message };
  }
  return { code: 'API_INTERNAL', message: String(err) };
}

/** Retry-After in whole seconds for an error, when it has one (details.retryAfterMs, else 1 s for retryable codes). */
export function retryAfterSeconds(err: unknown, code: string): number | undefined {
  if (!RETRYABLE_CODES.has(code)) return undefined;
  const d = (err as { details?: { retryAfterMs?: unknown } } | undefined)?.details;
  const ms = typeof d?.retryAfterMs === 'number' ? d.retryAfterMs : (err as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
  return Math.max(1, Math.ceil((typeof ms === 'number' && Number.isFinite(ms) ? ms : 1000) / 1000));
}

/**
 * Answers an error as `{error: {code, message}}` with its status (and Retry-After): every
 * package's coded errors as they are; fastify's own (a body too large, malformed JSON, a bad
 * content type) as API_* codes; a schema failure as `validationCode`; anything else API_INTERNAL
 * (logged). Shared by the server and the audit routes' plugin.
 */
export function sendApiError(reply: FastifyReply, err: unknown, validationCode: string): FastifyReply {
  const { message } = errorBody(err);
  let { code } = errorBody(err);
  const e = err as { code?: unknown; validation?: unknown; statusCode?: unknown };
  if (e.validation !== undefined) {
    code = validationCode;
  } else if (typeof e.code === 'string' && e.code.startsWith('FST_')) {
    if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') code = 'API_PAYLOAD_TOO_LARGE';
    else if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') code = 'API_UNSUPPORTED_MEDIA_TYPE';
    else if (e.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH') code = 'API_INVALID_REQUEST';
    else if (e.code.startsWith('FST_ERR_CTP_')) code = 'API_MALFORMED_JSON';
    else if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) code = 'API_INVALID_REQUEST';
  } else if (err instanceof SyntaxError || (typeof e.statusCode === 'number' && e.statusCode === 400 && code === 'API_INTERNAL')) {
    code = 'API_MALFORMED_JSON';
  } else if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500 && code === 'API_INTERNAL') {
    code = e.statusCode === 413 ? 'API_PAYLOAD_TOO_LARGE' : e.statusCode === 415 ? 'API_UNSUPPORTED_MEDIA_TYPE' : 'API_INVALID_REQUEST';
  }
  const status = httpStatusFor(code);
  const retry = retryAfterSeconds(err, code);
  if (retry !== undefined) void reply.header('Retry-After', String(retry));
  if (status >= 500 && code === 'API_INTERNAL') process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: 'error', component: 'api', msg: 'internal error', error: err instanceof Error ? err.stack : String(err) }) + '\n');
  return reply.status(status).send({ error: { code, message } });
}
