import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EventLog, FakeClock, GENESIS_HASH } from '@kyrodb/log';
import {
  AuditErrorCodes,
  docHistory,
  auditErrorStatus,
  exportStateAsOf,
  formatDigest,
  formatMicros,
  importState,
  isAuditError,
  parseAsOf,
  parseDigest,
  parseInstant,
  presentMicros,
  MAX_INSTANT_MICROS,
  stateAsOf,
  stateAsOfAsync,
  verifyDigest,
  verifyDigestAsync,
} from '../packages/api/src/audit/index.js';
import { createColl, tmpDir, upsert } from './auditHelpers.js';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isAuditError(err) ? err.code : `not an AuditError: ${String(err)}`;
  }
  return undefined;
}

describe('parseDigest', () => {
  const h = 'ab'.repeat(32);
  it('accepts SEQ:HASH (any hex case, surrounding spaces)', () => {
    const d = parseDigest(` 42:${h.toUpperCase()} `);
    expect(d.seq).toBe(42);
    expect(formatDigest(d)).toBe(`42:${h}`);
  });
  it.each([
    '',
    '42',
    `:${h}`,
    `0:${h}`,
    `-1:${h}`,
    `01:${h}`,
    `1.5:${h}`,
    `1:${h.slice(1)}`,
    `1:${h}0`,
    `1:${'zz'.repeat(32)}`,
    `1:${h}:x`,
    `99999999999999999:${h}`,
    `1 :${h}`,
  ])('rejects %j with AUDIT_BAD_DIGEST', (s) => {
    expect(code(() => parseDigest(s))).toBe('AUDIT_BAD_DIGEST');
  });
});

describe('parseAsOf: the as-of rule', () => {
  const now = 1_800_000_000_000_000;
  it('parses ISO-8601 with a timezone to microseconds (µs kept, finer digits truncated)', () => {
    expect(parseInstant('1970-01-01T00:00:00Z')).toBe(0);
    expect(parseInstant('2026-11-26T00:50:23.123456Z')).toBe(Date.UTC(2026, 10, 26, 0, 50, 23) * 1000 + 123_456);
    expect(parseInstant('2026-11-26T00:50:23.1234567Z')).toBe(Date.UTC(2026, 10, 26, 0, 50, 23) * 1000 + 123_456);
    expect(parseInstant('2026-11-26T02:50:23.5+02:00')).toBe(Date.UTC(2026, 10, 26, 0, 50, 23) * 1000 + 500_000);
    expect(parseInstant('2026-11-25T19:50:23-05:00')).toBe(Date.UTC(2026, 10, 26, 0, 50, 23) * 1000);
    expect(parseInstant('1764118223123456')).toBe(1764118223123456);
  });
  it('formatMicros round-trips', () => {
    for (const t of [0, 1, 999, 1_764_118_223_123_456, 1_700_000_000_000_000]) expect(parseInstant(formatMicros(t))).toBe(t);
  });
  it.each(['', 'now', '2026-11-26', '2026-11-26T00:50:23', '2026-11-26 00:50:23Z', '2026-02-30T00:00:00Z', '2026-13-01T00:00:00Z', '2026-11-26T24:00:00Z', '2026-11-26T00:00:00+25:00', '-5', '1.5', '1e6', '0001-02-29T00:00:00Z'])(
    'rejects %j with AUDIT_BAD_TIME',
    (s) => {
      expect(code(() => parseAsOf(s, now))).toBe('AUDIT_BAD_TIME');
    },
  );
  it('T in the future is refused with AUDIT_TIME_IN_FUTURE, however far (past the µs range too); T = now is accepted', () => {
    expect(code(() => parseAsOf(String(now + 1), now))).toBe('AUDIT_TIME_IN_FUTURE');
    expect(code(() => parseAsOf('2200-01-01T00:00:00Z', now))).toBe('AUDIT_TIME_IN_FUTURE');
    for (const far of ['2256-01-01T00:00:00Z', '9999-12-31T23:59:59Z', '99999999999999999']) {
      expect(parseInstant(far)).toBe(MAX_INSTANT_MICROS);
      expect(code(() => parseAsOf(far, now))).toBe('AUDIT_TIME_IN_FUTURE');
    }
    expect(parseAsOf(String(now), now)).toBe(now);
  });
  it('the present is the clock while it is past the head; after a step back behind the head, the µs before the head\'s ts', () => {
    const head = (ts: number) => ({ head: () => ({ ts }) });
    expect(presentMicros(head(0), { nowMicros: () => 5_000 })).toBe(5_000);
    expect(presentMicros(head(4_999), { nowMicros: () => 5_000 })).toBe(5_000);
    // The clock at or behind the head's ts: the next event gets the head's ts, so only instants before it are past.
    expect(presentMicros(head(5_000), { nowMicros: () => 5_000 })).toBe(4_999);
    expect(presentMicros(head(9_000), { nowMicros: () => 5_000 })).toBe(8_999);
  });
  it('T before 1970 is an instant like any other (before the first event: the empty state), years 0-99 included', () => {
    expect(parseAsOf('1969-12-31T23:59:59Z', now)).toBe(-1_000_000);
    expect(parseAsOf('1969-12-31T23:59:59.999999Z', now)).toBe(-1);
    expect(parseInstant('1900-01-01T00:00:00Z')).toBe(Date.UTC(1900, 0, 1) * 1000);
    // Date.UTC reads years 0-99 as 1900-1999; these are 1685 and earlier: the µs range's start.
    for (const early of ['0001-01-01T00:00:00Z', '0099-06-01T00:00:00Z', '0000-01-01T00:00:00Z']) expect(parseAsOf(early, now)).toBe(-MAX_INSTANT_MICROS);
    for (const t of [-1, -1_000_000, -123_456_789_012]) expect(parseInstant(formatMicros(t))).toBe(t);
  });
  it('every error code is documented and has an HTTP status', () => {
    for (const c of Object.keys(AuditErrorCodes)) expect(auditErrorStatus[c as keyof typeof auditErrorStatus]).toBeGreaterThanOrEqual(400);
    expect(Object.keys(auditErrorStatus).sort()).toEqual(Object.keys(AuditErrorCodes).sort());
  });
});

describe('state as of T at the edges', () => {
  it('T before the first event is an empty state with the genesis digest (not an error), exported and re-imported', async () => {
    const dir = tmpDir();
    const clock = new FakeClock();
    const log = await EventLog.open({ dir, clock, logger: () => {} });
    try {
      const r = await log.append([createColl('c', 2), upsert('c', 'a', [1, 2])]);
      const before = r.ts - 1;
      const s = stateAsOf(log, before);
      expect(s.collections.size).toBe(0);
      expect(s.head.seq).toBe(0);
      expect(Buffer.from(s.head.hash).equals(Buffer.from(GENESIS_HASH))).toBe(true);
      const file = path.join(dir, 'empty.ndjson');
      const out = fs.createWriteStream(file);
      const sum = await exportStateAsOf(log, before, out);
      await new Promise<void>((res) => out.end(res));
      expect(sum).toMatchObject({ collections: 0, documents: 0 });
      const lines = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      expect(lines[0]).toMatchObject({ kind: 'header', format: 'kyrodb-state', version: 1, head: { seq: 0, ts_iso: null, hash: '0'.repeat(64) } });
      expect(lines[1]).toEqual({ kind: 'footer', collections: 0, documents: 0 });
      const back = await importState(file);
      expect(back.collections.size).toBe(0);
      // T = the commit ts includes the batch (ts ≤ T is inclusive).
      expect(stateAsOf(log, r.ts).collections.get('c')?.docs.size).toBe(1);
      // On an empty log, verify is fine and a digest is beyond the head.
      const empty = await EventLog.open({ dir: tmpDir(), logger: () => {} });
      expect(verifyDigest(empty)).toMatchObject({ ok: true, checked: 0 });
      expect(verifyDigest(empty, parseDigest(`1:${'00'.repeat(32)}`))).toMatchObject({ ok: false, seq: 1, problem: 'digest_beyond_head' });
      await empty.close();
    } finally {
      await log.close();
    }
  });

  it("the empty log's digest (0:<genesis>) verifies on the empty log and on every log grown from it; seq 0 with another hash is AUDIT_BAD_DIGEST", async () => {
    const log = await EventLog.open({ dir: tmpDir(), logger: () => {} });
    try {
      const d0 = formatDigest(log.head());
      expect(d0).toBe(`0:${'0'.repeat(64)}`);
      expect(verifyDigest(log, parseDigest(d0))).toMatchObject({ ok: true, extends: true, checked: 0 });
      await log.append([createColl('c', 1), upsert('c', 'a', [1])]);
      expect(verifyDigest(log, parseDigest(d0))).toMatchObject({ ok: true, extends: true, checked: 2 });
      expect(await verifyDigestAsync(log, parseDigest(d0))).toMatchObject({ ok: true, extends: true, checked: 2 });
      expect(() => parseDigest(`0:${'ab'.repeat(32)}`)).toThrow(expect.objectContaining({ code: 'AUDIT_BAD_DIGEST' }));
    } finally {
      await log.close();
    }
  });

  it('importState rejects files that do not follow the format, naming the line', async () => {
    const dir = tmpDir();
    const clock = new FakeClock();
    const log = await EventLog.open({ dir, clock, logger: () => {} });
    const r = await log.append([createColl('c', 2), upsert('c', 'a', [1, 2], { k: 'v' }), upsert('c', 'b', [3, 4])]);
    const file = path.join(dir, 'ok.ndjson');
    const out = fs.createWriteStream(file);
    await exportStateAsOf(log, r.ts, out);
    await new Promise<void>((res) => out.end(res));
    await log.close();
    const good = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
    expect(good.length).toBe(5);
    expect((await importState(file)).collections.get('c')?.docs.size).toBe(2);
    const cases: [string, string[]][] = [
      ['truncated (no footer)', good.slice(0, 4)],
      ['empty', []],
      ['a document dropped', [good[0]!, good[1]!, good[2]!, good[4]!]],
      ['not JSON', [good[0]!, '{oops', ...good.slice(1)]],
      ['header missing', good.slice(1)],
      ['unknown kind', [good[0]!, '{"kind":"mystery"}', ...good.slice(1)]],
      ['wrong version', [good[0]!.replace('"version":1', '"version":2'), ...good.slice(1)]],
      ['content after footer', [...good, good[2]!]],
      ['a vector of another dimension', [good[0]!, good[1]!, good[2]!.replace('"vector":[', '"vector":[7,'), good[3]!, good[4]!]],
      ['a value past float32 (1e999)', [good[0]!, good[1]!, good[2]!.replace(/"vector":\[[^,\]]+/, '"vector":[1e999'), good[3]!, good[4]!]],
      ['documents out of id order', [good[0]!, good[1]!, good[3]!, good[2]!, good[4]!]],
    ];
    for (const [name, lines] of cases) {
      const f = path.join(dir, `bad-${name.replace(/\W+/g, '_')}.ndjson`);
      fs.writeFileSync(f, lines.join('\n') + (lines.length ? '\n' : ''));
      await expect(importState(f), name).rejects.toMatchObject({ code: 'AUDIT_BAD_EXPORT' });
    }
  });
});

describe('the async replay and verify yield to the event loop between chunks', () => {
  it('setImmediate callbacks run during stateAsOfAsync / verifyDigestAsync (never with the sync versions)', async () => {
    const dir = tmpDir();
    const clock = new FakeClock();
    const log = await EventLog.open({ dir, clock, logger: () => {} });
    await log.append([createColl('c', 2)]);
    for (let i = 0; i < 39; i++) {
      clock.advance(1);
      await log.append([upsert('c', `d${i % 7}`, [i, 1])]);
    }
    let ticks = 0;
    let stop = false;
    const spin = (): void => {
      ticks += 1;
      if (!stop) setImmediate(spin);
    };
    const count = async (fn: () => Promise<unknown>): Promise<number> => {
      ticks = 0;
      stop = false;
      setImmediate(spin);
      await fn();
      stop = true;
      return ticks;
    };
    // 40 events in chunks of 5: at least 7 yields; an event loop turn runs `spin` at each.
    expect(await count(() => stateAsOfAsync(log, clock.nowMicros(), undefined, undefined, 5))).toBeGreaterThanOrEqual(7);
    expect(await count(() => verifyDigestAsync(log, undefined, undefined, 5))).toBeGreaterThanOrEqual(7);
    expect(await count(() => Promise.resolve(stateAsOf(log, clock.nowMicros())))).toBe(0);
    expect(await count(() => Promise.resolve(verifyDigest(log)))).toBe(0);
    await log.close();
  });

  it('verifyDigestAsync on a live log that appends while it runs: the segments are read again for records appended since', async () => {
    const dir = tmpDir();
    const clock = new FakeClock();
    const log = await EventLog.open({ dir, clock, logger: () => {} });
    await log.append([createColl('c', 2)]);
    for (let i = 0; i < 2000; i += 100) await log.append(Array.from({ length: 100 }, (_, j) => upsert('c', `d${i + j}`, [i + j, 1])));
    // Chunks of 1: the walk yields after every record, and each yield lets an append through.
    let appending = true;
    let appended = 0;
    const writer = (async () => {
      while (appending && appended < 200) {
        await log.append([upsert('c', `w${appended}`, [appended, 2])]);
        appended += 1;
      }
    })();
    const r = await verifyDigestAsync(log, undefined, undefined, 1);
    appending = false;
    await writer;
    expect(r).toMatchObject({ ok: true });
    // It verified records appended after it started (the ones its first read of the segment lacked).
    expect(appended).toBeGreaterThan(0);
    expect(r.ok && r.checked).toBeGreaterThan(2001);
    expect(verifyDigest(log)).toMatchObject({ ok: true, checked: 2001 + appended });
    await log.close();
  });
});

describe('docHistory', () => {
  it("lists a document's events with its collection's creates and drops since the create in force at its first event: a drop and re-create read off the list", async () => {
    const log = await EventLog.open({ dir: tmpDir(), clock: new FakeClock(), logger: () => {} });
    try {
      await log.append([createColl('c', 2)]); // 1
      await log.append([{ type: 'collection.dropped', collection: 'c', body: {} }]); // 2
      await log.append([createColl('c', 2)]); // 3
      await log.append([upsert('c', 'a', [1, 2]), upsert('c', 'b', [1, 2])]); // 4, 5
      await log.append([{ type: 'collection.dropped', collection: 'c', body: {} }]); // 6
      await log.append([createColl('c', 3)]); // 7
      await log.append([upsert('c', 'a', [1, 2, 3])]); // 8
      await log.append([{ type: 'vector.deleted', collection: 'c', body: { id: 'a' } }]); // 9
      await log.append([createColl('other', 2), upsert('other', 'a', [0, 1])]); // 10, 11
      expect(docHistory(log, 'c', 'a').map((e) => [e.seq, e.type])).toEqual([
        [3, 'collection.created'],
        [4, 'vector.upserted'],
        [6, 'collection.dropped'],
        [7, 'collection.created'],
        [8, 'vector.upserted'],
        [9, 'vector.deleted'],
      ]);
      expect(docHistory(log, 'c', 'b').map((e) => e.seq)).toEqual([3, 5, 6, 7]);
      expect(docHistory(log, 'c', 'nope')).toEqual([]);
      // A write into a collection that did not exist then: the events around it say so.
      await log.append([{ type: 'collection.dropped', collection: 'c', body: {} }]); // 12
      await log.append([upsert('c', 'z', [1, 2, 3])]); // 13
      expect(docHistory(log, 'c', 'z').map((e) => [e.seq, e.type])).toEqual([
        [7, 'collection.created'],
        [12, 'collection.dropped'],
        [13, 'vector.upserted'],
      ]);
    } finally {
      await log.close();
    }
  });
});
