import { ApiError } from './errors.js';
import { isAuditError } from './audit/errors.js';
import { parseInstant } from './audit/time.js';

/**
 * Parses a timestamp to microseconds since the epoch: ISO-8601 with a zone
 * (`2024-01-15T10:00:00Z`, `…00.123456+02:00`; up to 6 fractional digits kept) or integer
 * microseconds since the epoch — the audit module's one parser (`parseInstant`, as for `asOf`), so
 * every timestamp of the API and CLI reads the same way: negative before 1970, clamped to
 * ±MAX_INSTANT_MICROS (before 1685, after 2255) rather than refused. It does not check the
 * instant against the present (that is the as-of rule's, `parseAsOf`). Throws ApiError
 * API_INVALID_TIMESTAMP (naming `what`) on anything else, including impossible dates. (The name
 * predates the integer form.)
 */
export function parseIsoMicros(s: unknown, what = 'timestamp'): number {
  if (typeof s !== 'string') throw new ApiError('API_INVALID_TIMESTAMP', `${what} must be a string`);
  try {
    return parseInstant(s);
  } catch (err) {
    if (isAuditError(err, 'AUDIT_BAD_TIME')) throw new ApiError('API_INVALID_TIMESTAMP', `${what} must be ISO-8601 with a time zone (e.g. 2024-01-15T10:00:00Z) or integer microseconds since the epoch: ${err.message}`);
    throw err;
  }
}

export { microsToIso } from '@kyrodb/log';
