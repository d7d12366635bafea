/**
 * Error codes of the log package. Callers branch on `code`, never on message text.
 * Every code is documented here; `errors.test.ts` checks that the docs and the list agree.
 */
export const LogErrorCodes = {
  /** The event or batch does not have the documented shape (field, type, range). Nothing was written. */
  LOG_INVALID_EVENT: 'an event does not have the documented shape; nothing was written',
  /** `append([])`: a batch must hold at least one event. Nothing was written. */
  LOG_EMPTY_BATCH: 'an append batch is empty; nothing was written',
  /** A vector holds NaN or ±Infinity. Nothing was written. */
  LOG_NON_FINITE_VECTOR: 'a vector value is NaN or infinite; nothing was written',
  /** The batch is larger than `maxBatchEvents`. Nothing was written. */
  LOG_BATCH_TOO_LARGE: 'an append batch exceeds the configured maximum; nothing was written',
  /** The stored chain does not verify (a record was altered, removed or reordered). */
  LOG_CHAIN_BROKEN: 'the stored hash chain does not verify',
  /** A stored record cannot be decoded. */
  LOG_CORRUPT_RECORD: 'a stored record cannot be decoded',
  /** log.mdb is shorter than its own pages reach (cut short) and cannot be rebuilt here: opened read-only, or no write-ahead segments. */
  LOG_STORE_CORRUPT: 'the LMDB store is damaged and cannot be rebuilt by this open',
  /** The data dir was written by an unknown format version. */
  LOG_FORMAT_VERSION: 'the data dir has an unsupported format version',
  /** Another live process holds the writer lock on this data dir. */
  LOG_LOCKED: 'another process holds the writer lock on this data dir',
  /** The log was opened read-only and a write was attempted. */
  LOG_READ_ONLY: 'the log is open read-only',
  /** The log is closed. */
  LOG_CLOSED: 'the log is closed',
  /** A read-only open of a log whose writer stopped without closing it (no live writer now) when LMDB lacks acknowledged events the write-ahead segments hold, or the machine stopped (LMDB cannot be trusted): a writer's open applies or rebuilds them. */
  LOG_RECOVERY_NEEDED: 'the writer stopped before LMDB had every acknowledged event; open the log for writing once',
  /** A read-only log's by-doc index misses the entries of a bulk import (`deferDocIndex`) whose writer stopped before writing them; opening it for writing writes them. */
  LOG_INDEX_INCOMPLETE: 'the by-doc index misses entries of an interrupted bulk import; open the log for writing once',
  /** The WAL circuit breaker is open after repeated write failures; writes fail fast until it half-opens or is reset. */
  WAL_CIRCUIT_OPEN: 'the WAL circuit breaker is open; writes fail fast, reads work',
  /** The disk is full (ENOSPC); the breaker opened at once. Free space, then reset the breaker or wait for the probe. */
  WAL_DISK_FULL: 'the disk is full; writes fail fast, reads work',
  /** The disk quota is exceeded (EDQUOT). */
  WAL_QUOTA_EXCEEDED: 'the disk quota is exceeded',
  /** An I/O error (EIO, …) persisted through every retry. */
  WAL_IO_ERROR: 'an I/O error persisted through every retry',
  /** The data dir is not writable (EACCES/EPERM/EROFS). */
  WAL_PERMISSION_DENIED: 'permission denied writing the data dir',
  /** A failpoint configured to panic was hit. */
  FAILPOINT_PANIC: 'a failpoint configured to panic was hit',
  /** A failpoint specification cannot be parsed. */
  FAILPOINT_INVALID: 'a failpoint specification cannot be parsed',
} as const;

/** A stable error code of the log package. */
export type LogErrorCode = keyof typeof LogErrorCodes;

/** The one error class of the log package: `code` is stable, `details` carries typed context. */
export class LogError extends Error {
  readonly code: LogErrorCode;
  readonly details: Readonly<Record<string, unknown>>;
  constructor(code: LogErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LogError';
    this.code = code;
    this.details = Object.freeze({ ...details });
  }
}

/** True when `err` is a LogError, optionally with the given code. */
export function isLogError(err: unknown, code?: LogErrorCode): err is LogError {
  return err instanceof Error && (err as { name?: string }).name === 'LogError' && (code === undefined || (err as LogError).code === code);
}
