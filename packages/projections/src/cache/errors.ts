/**
 * Error codes of the cache layer (packages/projections/src/cache). Callers branch on `code`.
 * Kept beside the cache until the projections package's errors.ts absorbs them.
 */
export const CacheErrorCodes = {
  /** A cache, predictor or supervisor option is out of range (the message names the field). */
  CACHE_INVALID_OPTIONS: 'a cache, predictor or supervisor option is out of range',
  /** Serialized predictor weights do not have the expected version or feature count. */
  CACHE_INVALID_WEIGHTS: 'predictor weights have the wrong version or shape',
  /** A training run failed inside the worker (crash, exit, hang) or the supervisor was stopped. */
  CACHE_TRAINING_FAILED: 'a training run failed or was cancelled',
} as const;

/** A stable error code of the cache layer. */
export type CacheErrorCode = keyof typeof CacheErrorCodes;

/** The error class of the cache layer: `code` is stable, `details` carries typed context. */
export class CacheError extends Error {
  readonly code: CacheErrorCode;
  readonly details: Readonly<Record<string, unknown>>;
  constructor(code: CacheErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CacheError';
    this.code = code;
    this.details = Object.freeze({ ...details });
  }
}

/** True when `err` is a CacheError, optionally with the given code. */
export function isCacheError(err: unknown, code?: CacheErrorCode): err is CacheError {
  return err instanceof Error && err.name === 'CacheError' && (code === undefined || (err as CacheError).code === code);
}
