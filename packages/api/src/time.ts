import { ApiError } from './errors.js';

const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Parses an ISO-8601 timestamp with a zone (`2024-01-15T10:00:00Z`, `…00.123456+02:00`) to
 * microseconds since the epoch, keeping up to 6 fractional digits. Throws ApiError
 * API_INVALID_TIMESTAMP (naming `what`) on anything else, including impossible dates.
 */
export function parseIsoMicros(s: unknown, what = 'timestamp'): number {
  const m = typeof s === 'string' ? ISO_RE.exec(s) : null;
  if (m === null) throw new ApiError('API_INVALID_TIMESTAMP', `${what} must be ISO-8601 with a time zone, e.g. 2024-01-15T10:00:00Z (got ${JSON.stringify(s) ?? String(s)})`);
  const [, y, mo, d, h, mi, sec, frac, zone] = m;
  const base = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(sec));
  const check = new Date(base);
  if (check.getUTCFullYear() !== Number(y) || check.getUTCMonth() !== Number(mo) - 1 || check.getUTCDate() !== Number(d) || Number(h) > 23 || Number(mi) > 59 || Number(sec) > 59) {
    throw new ApiError('API_INVALID_TIMESTAMP', `${what} is not a real instant: ${String(s)}`);
  }
  let offsetMin = 0;
  if (zone !== 'Z' && zone !== undefined) {
    const sign = zone.startsWith('-') ? -1 : 1;
    const zh = Number(zone.slice(1, 3));
    const zm = Number(zone.slice(4, 6));
    if (zh > 23 || zm > 59) throw new ApiError('API_INVALID_TIMESTAMP', `${what} has an impossible zone offset: ${String(s)}`);
    offsetMin = sign * (zh * 60 + zm);
  }
  const micros = Number(((frac ?? '') + '000000').slice(0, 6));
  const total = (base - offsetMin * 60_000) * 1000 + micros;
  if (!Number.isSafeInteger(total) || total < 0) throw new ApiError('API_INVALID_TIMESTAMP', `${what} is out of range: ${String(s)}`);
  return total;
}

export { microsToIso } from '@kyrodb/log';
