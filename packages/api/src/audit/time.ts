import { systemClock, type Clock } from '@kyrodb/log';
import { AuditError } from './errors.js';

/**
 * The as-of rule, in one place (README "Auditing" states the same):
 *
 * - T is ISO-8601 with an explicit timezone (`2026-11-26T00:50:23.123456Z`, `…+02:00`; up to
 *   microsecond precision, finer digits are truncated) or an integer of microseconds since the
 *   epoch. Anything else is AUDIT_BAD_TIME.
 * - The state as of T is the log prefix of every event with `ts ≤ T` (inclusive). Event ts are
 *   non-decreasing in seq, so that is always a prefix.
 * - T before the first event is not an error: the state is empty (head digest seq 0, genesis hash).
 *   That includes any T before 1970 (negative µs).
 * - T in the future — after both the current time and the head's ts — is refused with
 *   AUDIT_TIME_IN_FUTURE, because events committed later could still get a ts ≤ T and the
 *   answer would change. (The head's ts counts as "now" too: if the clock stepped back, events
 *   up to the head's ts are already history.) Every answer carries the head digest at T
 *   (seq, ts, hash) so an auditor can pin exactly which prefix it describes.
 */
export const AS_OF_RULE = 'state as of T = all events with ts <= T; T before the first event = empty state; T after max(now, head ts) = AUDIT_TIME_IN_FUTURE';

const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

/**
 * The µs range of an instant: a safe integer. Instants outside it (before 1685, after 2255) are
 * read as its ends — earlier, resp. later, than any event — never refused as out of range.
 */
export const MAX_INSTANT_MICROS = Number.MAX_SAFE_INTEGER;

function clampMicros(micros: number): number {
  return Math.max(-MAX_INSTANT_MICROS, Math.min(MAX_INSTANT_MICROS, micros));
}

/**
 * Parses ISO-8601 with an explicit timezone (`2026-11-26T00:50:23.123456Z`, `…+02:00`; years
 * 0000–9999 of the proleptic Gregorian calendar; digits past microseconds are truncated) into
 * microseconds since the epoch: negative before 1970, clamped to ±MAX_INSTANT_MICROS. Throws
 * AUDIT_BAD_TIME for anything else, including impossible dates (`2024-02-30`) and offsets. The
 * one ISO parser of the api package; every timestamp reads through `parseInstant`, which adds integer µs.
 */
export function parseIsoInstant(s: string): number {
  const m = typeof s === 'string' ? ISO_RE.exec(s.trim()) : null;
  if (m === null) throw new AuditError('AUDIT_BAD_TIME', `timestamp ${JSON.stringify(s)} is not ISO-8601 with a timezone (e.g. 2026-01-02T03:04:05.123456Z)`, { input: s });
  const [, y, mo, d, h, mi, sec, frac, tz] = m as unknown as [string, string, string, string, string, string, string, string | undefined, string];
  const year = Number(y), month = Number(mo), day = Number(d), hour = Number(h), minute = Number(mi), second = Number(sec);
  // Not Date.UTC: it reads years 0-99 as 1900-1999.
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, 0);
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59 || date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) {
    throw new AuditError('AUDIT_BAD_TIME', `timestamp ${JSON.stringify(s)} is not a valid date and time`, { input: s });
  }
  let offsetMin = 0;
  if (tz !== 'Z') {
    const sign = tz.startsWith('-') ? -1 : 1;
    const oh = Number(tz.slice(1, 3)), om = Number(tz.slice(4, 6));
    if (oh > 23 || om > 59) throw new AuditError('AUDIT_BAD_TIME', `timestamp ${JSON.stringify(s)} has an invalid timezone offset`, { input: s });
    offsetMin = sign * (oh * 60 + om);
  }
  return clampMicros((date.getTime() - offsetMin * 60_000) * 1000 + (frac === undefined ? 0 : Number(frac.padEnd(6, '0').slice(0, 6))));
}

/**
 * Parses an instant — ISO-8601 with timezone (`parseIsoInstant`) or a non-negative integer of
 * microseconds since the epoch — without checking it against the present. Past
 * ±MAX_INSTANT_MICROS it is clamped (so a far-future T is "in the future", not malformed).
 * Throws AUDIT_BAD_TIME. Every timestamp of the API and CLI reads through it (as-of times with
 * `parseAsOf`; `--since`, `--before`, `--point-in-time` and their HTTP twins with `parseIsoMicros`).
 */
export function parseInstant(s: string): number {
  if (typeof s !== 'string') throw new AuditError('AUDIT_BAD_TIME', 'a timestamp must be a string');
  const t = s.trim();
  if (/^\d{1,64}$/.test(t)) return clampMicros(Number(t));
  if (!ISO_RE.test(t)) throw new AuditError('AUDIT_BAD_TIME', `timestamp ${JSON.stringify(s)} is neither ISO-8601 with a timezone (e.g. 2026-01-02T03:04:05.123456Z) nor integer microseconds`, { input: s });
  return parseIsoInstant(t);
}

/**
 * The present for the as-of rule, µs: the latest instant no event committed from now on can be
 * stamped at or before (events get ts = max(now, previous ts)). The clock's time while it is past
 * the head's ts; after the clock stepped back behind the head's ts, the µs before the head's ts
 * (events keep getting the head's ts until the clock passes it, so an answer as of it could
 * still change).
 */
export function presentMicros(log: { head(): { ts: number } }, clock: Pick<Clock, 'nowMicros'> = systemClock): number {
  const now = clock.nowMicros();
  const headTs = log.head().ts;
  return now > headTs ? now : headTs - 1;
}

/**
 * Parses an as-of time T (see the rule above) into microseconds since the epoch. `nowMicros`
 * is the present (`presentMicros`). Throws AUDIT_BAD_TIME or
 * AUDIT_TIME_IN_FUTURE; a T before the first event is fine (the state is empty).
 */
export function parseAsOf(s: string, nowMicros: number): number {
  const t = parseInstant(s);
  if (t > nowMicros) {
    throw new AuditError('AUDIT_TIME_IN_FUTURE', `as-of time ${formatMicros(t)} is in the future (now is ${formatMicros(nowMicros)}; after a step back of the server's clock, the µs before the last event's ts); an audit answer must not change later, so only past instants are accepted`, {
      asOf: t,
      now: nowMicros,
    });
  }
  return t;
}

/** ISO-8601 in UTC with microseconds: `2026-11-26T00:50:23.123456Z`. */
export function formatMicros(micros: number): string {
  const ms = Math.floor(micros / 1000);
  const us = micros - ms * 1000;
  const iso = new Date(ms).toISOString(); // …SS.mmmZ
  return `${iso.slice(0, -1)}${String(us).padStart(3, '0')}Z`;
}
