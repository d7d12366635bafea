/**
 * Error codes of the projections package. Callers branch on `code`, never on message text.
 * Every code is documented here; `errors.test.ts` checks that the docs and the list agree.
 */
export const ProjectionErrorCodes = {
  /** The collection does not exist (or did not exist at the requested `asOf`). */
  PROJ_UNKNOWN_COLLECTION: 'the collection does not exist',
  /** The query vector's length differs from the collection's dimension. */
  PROJ_DIMENSION_MISMATCH: 'the query vector length differs from the collection dimension',
  /** The query vector holds NaN or ±Infinity, or `k` is not a positive integer. */
  PROJ_INVALID_QUERY: 'the query is malformed (non-finite vector values or a bad k)',
  /** The metadata filter does not have the documented shape. */
  PROJ_INVALID_FILTER: 'the metadata filter does not have the documented shape',
  /** No query layer (cache, hot, cold) could answer: all failed, timed out or have open breakers. */
  PROJ_NO_LAYER_AVAILABLE: 'no query layer could answer',
  /** The cold-tier worker failed or is not running. */
  PROJ_COLD_UNAVAILABLE: 'the cold-tier worker failed or is not running',
  /** A checkpoint is corrupt or inconsistent with the log (callers fall back; surfaced only by explicit validation). */
  PROJ_CHECKPOINT_CORRUPT: 'a checkpoint is corrupt or does not match the log',
  /** The projections were closed. */
  PROJ_CLOSED: 'the projections are closed',
  /** Too many as-of searches are waiting (each replays the log up to its instant, one at a time). */
  PROJ_BUSY: 'too many as-of searches are waiting; retry shortly',
} as const;

/** A stable error code of the projections package. */
export type ProjectionErrorCode = keyof typeof ProjectionErrorCodes;

/** The one error class of the projections package: `code` is stable, `details` carries typed context. */
export class ProjectionError extends Error {
  readonly code: ProjectionErrorCode;
  readonly details: Readonly<Record<string, unknown>>;
  constructor(code: ProjectionErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProjectionError';
    this.code = code;
    this.details = Object.freeze({ ...details });
  }
}

/** True when `err` is a ProjectionError, optionally with the given code. */
export function isProjectionError(err: unknown, code?: ProjectionErrorCode): err is ProjectionError {
  return err instanceof Error && (err as { name?: string }).name === 'ProjectionError' && (code === undefined || (err as ProjectionError).code === code);
}
