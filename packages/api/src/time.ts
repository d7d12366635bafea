import { ApiError } from './errors.js';
import { isAuditError } from './audit/errors.js';
import { parseIsoInstant } from './audit/time.js';

/**
 * Parses an ISO-8601 timestamp with a zone (`2024-01-15T10:00:00Z`, `…00.123456+02:00`) to
 * microseconds since the epoch, keeping up to 6 fractional digits: the audit module's one parser
 * (`parseIsoInstant`), so every timestamp of the API reads the same way — negative before 1970,
 * clamped to ±MAX_INSTANT_MICROS (before 1685, after 2255) rather than refused. Throws ApiError
 * API_INVALID_TIMESTAMP (naming `what`) on anything else, including impossible dates.
 */
export function parseIsoMicros(s: unknown, what = 'timestamp'): number {
  if (typeof s !== 'string') throw new ApiError('API_INVALID_TIMESTAMP', `${what} must be a string`);
  try {
    return parseIsoInstant(s);
  } catch (err) {
    if (isAuditError(err, 'AUDIT_BAD_TIME')) throw new ApiError('API_INVALID_TIMESTAMP', `${what} must be ISO-8601 with a time zone, e.g. 2024-01-15T10:00:00Z: ${err.message}`);
    throw err;
  }
}

export { microsToIso } from '@kyrodb/log';
