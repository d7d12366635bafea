/**
 * Error codes of the audit module. Callers branch on `code`, never on message text; the HTTP
 * status of each code is in `auditErrorStatus` (the one place that maps them).
 */
export const AuditErrorCodes = {
  /** A digest is not `SEQ:HASH` (non-negative integer seq, 64 hex characters), or a `{seq, hash}` pair is malformed. */
  AUDIT_BAD_DIGEST: 'a digest must be SEQ:HASH with a non-negative integer seq and a 64-hex-character SHA-256 hash',
  /** A timestamp is neither ISO-8601 with a timezone nor a non-negative integer of microseconds. */
  AUDIT_BAD_TIME: 'a timestamp must be ISO-8601 with a timezone (Z or ±hh:mm) or an integer of microseconds since the epoch',
  /** An as-of time lies after the current time (and after the head): the answer could still change, so it is refused. */
  AUDIT_TIME_IN_FUTURE: 'an as-of time in the future is refused: an audit answer must not change later',
  /** An exported state file does not follow the documented format (or its footer counts disagree). */
  AUDIT_BAD_EXPORT: 'the state export file does not follow the kyrodb-state format',
  /** A query parameter (seq, limit, …) is out of range. */
  AUDIT_BAD_REQUEST: 'a request parameter is out of range',
  /** The collection did not exist at the requested time (for a history: it has no event at all). */
  AUDIT_UNKNOWN_COLLECTION: 'the collection did not exist at the requested time',
  /** The document was not live at the requested time (never written, deleted, or its collection dropped; for a history: it has no event at all). */
  AUDIT_DOC_NOT_FOUND: 'the document was not live at the requested time',
  /** As many state exports as the server serves at once are running (each holds a whole state in memory); retry after Retry-After seconds. */
  AUDIT_BUSY: 'too many state exports are running; retry after Retry-After seconds',
  /** The disk (or quota) ran out writing an output file (`audit replay --out`); nothing of it is kept. */
  AUDIT_NO_SPACE: 'not enough disk space to write the output',
} as const;

/** A stable error code of the audit module. */
export type AuditErrorCode = keyof typeof AuditErrorCodes;

/** HTTP status for each audit error code. */
export const auditErrorStatus: Readonly<Record<AuditErrorCode, number>> = Object.freeze({
  AUDIT_BAD_DIGEST: 400,
  AUDIT_BAD_TIME: 400,
  AUDIT_TIME_IN_FUTURE: 422,
  AUDIT_BAD_EXPORT: 400,
  AUDIT_BAD_REQUEST: 400,
  AUDIT_UNKNOWN_COLLECTION: 404,
  AUDIT_DOC_NOT_FOUND: 404,
  AUDIT_BUSY: 429,
  AUDIT_NO_SPACE: 507,
});

/** The one error class of the audit module: `code` is stable, `details` carries typed context. */
export class AuditError extends Error {
  readonly code: AuditErrorCode;
  readonly details: Readonly<Record<string, unknown>>;
  constructor(code: AuditErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AuditError';
    this.code = code;
    this.details = Object.freeze({ ...details });
  }
}

/** True when `err` is an AuditError, optionally with the given code. */
export function isAuditError(err: unknown, code?: AuditErrorCode): err is AuditError {
  return err instanceof Error && (err as { name?: string }).name === 'AuditError' && (code === undefined || (err as AuditError).code === code);
}
