import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { EventLog, FakeClock } from '@kyrodb/log';
import type { LogErrorCode } from '@kyrodb/log';
import { created, metricValue, openTestLog, quietLogger, upsert, waitFor, walSeqs } from './helpers.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const fast = { retryBaseDelayMs: 1, retryMaxDelayMs: 4 };

async function setup(wal: Record<string, number> = {}, clock?: FakeClock) {
  const t = await openTestLog({ wal: { ...fast, ...wal }, ...(clock ? { clock } : {}) });
  dirs.push(t.dir);
  await t.log.append([created('c', 3)]);
  await t.log.append([upsert('a', [1, 2, 3]), upsert('b', [4, 5, 6])]);
  return t;
}

function sameHead(a: { seq: number; hash: Uint8Array }, b: { seq: number; hash: Uint8Array }): boolean {
  return a.seq === b.seq && Buffer.from(a.hash).equals(Buffer.from(b.hash));
}

const table: [errno: string, code: LogErrorCode, type: string, attempts: number, breaker: string][] = [
  ['ENOSPC', 'WAL_DISK_FULL', 'disk_full', 1, 'open'],
  ['EIO', 'WAL_IO_ERROR', 'io_error', 5, 'closed'],
  ['EACCES', 'WAL_PERMISSION_DENIED', 'permission', 1, 'closed'],
  ['EDQUOT', 'WAL_QUOTA_EXCEEDED', 'quota', 1, 'closed'],
];

describe('WAL faults through the wal.append failpoint', () => {
  it.each(table)('error(%s) → %s; the log is exactly as before; classification and metrics', async (errno, code, type, attempts, breakerAfter) => {
    const { log, registry, failpoints, dir } = await setup();
    const before = log.head();
    failpoints.set('wal.append', `error(${errno})`);
    await expect(log.append([upsert('x', [0, 0, 1])])).rejects.toMatchObject({ code, details: { type, attempts } });
    expect(sameHead(log.head(), before)).toBe(true);
    expect(log.verify()).toMatchObject({ ok: true, checked: before.seq });
    expect(await metricValue(registry, 'wal_errors_total', { type })).toBe(attempts);
    expect(await metricValue(registry, 'wal_retry_attempts_total')).toBe(attempts - 1);
    expect(await metricValue(registry, 'wal_writes_total', { status: 'failure' })).toBe(1);
    expect(await metricValue(registry, 'wal_writes_total', { status: 'success' })).toBe(2);
    expect(await metricValue(registry, 'wal_circuit_breaker_state', { state: breakerAfter })).toBe(1);
    for (const other of ['disk_full', 'io_error', 'permission', 'quota'].filter((t) => t !== type)) expect(await metricValue(registry, 'wal_errors_total', { type: other })).toBe(0);

    // reads keep working
    expect([...log.read()].map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(log.docAsOf('c', 'a')?.seq).toBe(2);

    // the next good append gets the next seq (after a reset if the breaker opened)
    failpoints.clear('wal.append');
    if (breakerAfter === 'open') {
      await expect(log.append([upsert('y', [1, 1, 1])])).rejects.toMatchObject({ code: 'WAL_DISK_FULL' });
      log.resetBreaker();
    }
    const r = await log.append([upsert('y', [1, 1, 1])]);
    expect(r.firstSeq).toBe(before.seq + 1);
    expect(Buffer.from(r.events[0]!.prevHash).equals(Buffer.from(before.hash))).toBe(true);
    await log.close();
    const again = await EventLog.open({ dir, logger: quietLogger() });
    expect(again.verify()).toMatchObject({ ok: true, checked: before.seq + 1 });
    await again.close();
  });

  it('2*error(EIO) is retried with exponential backoff and succeeds on the 3rd attempt', async () => {
    const clock = new FakeClock();
    const { log, registry, failpoints } = await setup({ retryBaseDelayMs: 10, retryMaxDelayMs: 1000 }, clock);
    failpoints.set('wal.append', '2*error(EIO)');
    let done = false;
    const p = log.append([upsert('x', [0, 0, 1])]).finally(() => (done = true));
    await waitFor(() => clock.pendingSleeps === 1);
    clock.advance(9);
    await new Promise((r) => setTimeout(r, 5));
    expect(clock.pendingSleeps).toBe(1); // first backoff is 10 ms
    clock.advance(1);
    await waitFor(() => clock.pendingSleeps === 1); // second backoff
    clock.advance(19);
    await new Promise((r) => setTimeout(r, 5));
    expect(clock.pendingSleeps).toBe(1); // ... is 20 ms
    expect(done).toBe(false);
    clock.advance(1);
    const r = await p;
    expect(r.firstSeq).toBe(4);
    expect(await metricValue(registry, 'wal_retry_attempts_total')).toBe(2);
    expect(await metricValue(registry, 'wal_errors_total', { type: 'io_error' })).toBe(2);
    expect(await metricValue(registry, 'wal_writes_total', { status: 'success' })).toBe(3);
    expect(await metricValue(registry, 'wal_writes_total', { status: 'failure' })).toBe(0);
    expect(log.breaker.state).toBe('closed');
    expect([...log.read()].filter((e) => e.type === 'vector.upserted' && e.body.id === 'x').length).toBe(1);
    expect(log.verify().ok).toBe(true);
    await log.close();
  });

  it('disk full opens the breaker at once: appends fail fast with WAL_DISK_FULL, reads and tail keep working', async () => {
    const { log, failpoints, registry } = await setup();
    failpoints.set('wal.append', '1*error(ENOSPC)');
    await expect(log.append([upsert('x', [0, 0, 1])])).rejects.toMatchObject({ code: 'WAL_DISK_FULL' });
    expect(log.breaker.state).toBe('open');
    expect(failpoints.active).toBe(false); // the failpoint is spent: what follows is the breaker failing fast
    const err: unknown = await log.append([upsert('x', [0, 0, 1])]).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'WAL_DISK_FULL' });
    expect((err as { details: { retryAfterMs: number } }).details.retryAfterMs).toBeGreaterThan(0);
    expect(log.breakerStatus()).toMatchObject({ state: 'open', lastFailureType: 'disk_full' });
    expect(await metricValue(registry, 'wal_circuit_breaker_state', { state: 'open' })).toBe(1);
    expect(await metricValue(registry, 'wal_writes_total', { status: 'failure' })).toBe(2);
    expect(log.verify().ok).toBe(true);
    expect(log.get(3)?.seq).toBe(3);
    const tailed: number[] = [];
    const sub = log.tail(1).subscribe((e) => tailed.push(e.seq));
    await waitFor(() => tailed.length === 3);
    sub.unsubscribe();
    log.resetBreaker();
    expect(await metricValue(registry, 'wal_circuit_breaker_state', { state: 'closed' })).toBe(1);
    expect((await log.append([upsert('x', [0, 0, 1])])).firstSeq).toBe(4);
    await log.close();
  });

  it('appends queued behind the failure that opened the breaker fail fast without another attempt', async () => {
    const { log, failpoints, registry } = await setup();
    failpoints.set('wal.append', 'error(ENOSPC)');
    const first = log.append([upsert('x', [0, 0, 1])]).then(
      () => undefined,
      (e: unknown) => e,
    );
    await new Promise((r) => setImmediate(r)); // the first group is committing; the rest queue behind it
    const rest = Array.from({ length: 5 }, (_, i) =>
      log.append([upsert(`q${i}`, [0, 0, 1])]).then(
        () => undefined,
        (e: unknown) => e,
      ),
    );
    expect(await first).toMatchObject({ code: 'WAL_DISK_FULL' });
    for (const e of await Promise.all(rest)) expect(e).toMatchObject({ code: 'WAL_DISK_FULL', details: { reason: expect.stringContaining('disk full') as unknown } });
    // one attempt hit the disk; the others failed fast
    expect(await metricValue(registry, 'wal_errors_total', { type: 'disk_full' })).toBe(1);
    expect(await metricValue(registry, 'wal_writes_total', { status: 'failure' })).toBe(6);
    expect(log.head().seq).toBe(3);
    expect(log.verify().ok).toBe(true);
    await log.close();
  });

  it('3 consecutive failed appends open the breaker: WAL_CIRCUIT_OPEN; reset closes it', async () => {
    const { log, failpoints } = await setup({ retryAttempts: 1 });
    failpoints.set('wal.append', 'error(EIO)');
    for (let i = 0; i < 3; i++) await expect(log.append([upsert('x', [0, 0, 1])])).rejects.toMatchObject({ code: 'WAL_IO_ERROR' });
    expect(log.breaker.state).toBe('open');
    failpoints.clear('wal.append');
    await expect(log.append([upsert('x', [0, 0, 1])])).rejects.toMatchObject({ code: 'WAL_CIRCUIT_OPEN' });
    expect(log.head().seq).toBe(3);
    log.resetBreaker();
    expect(log.breaker.state).toBe('closed');
    expect((await log.append([upsert('x', [0, 0, 1])])).firstSeq).toBe(4);
    await log.close();
  });

  it('a success between failures resets the count (only consecutive failures open the breaker)', async () => {
    const { log, failpoints } = await setup({ retryAttempts: 1 });
    for (let i = 0; i < 4; i++) {
      failpoints.set('wal.append', '2*error(EACCES)');
      await expect(log.append([upsert('x', [0, 0, 1])])).rejects.toMatchObject({ code: 'WAL_PERMISSION_DENIED' });
      await expect(log.append([upsert('x', [0, 0, 1])])).rejects.toMatchObject({ code: 'WAL_PERMISSION_DENIED' });
      await log.append([upsert('x', [0, 0, 1])]);
    }
    expect(log.breaker.state).toBe('closed');
    expect(log.head().seq).toBe(7);
    await log.close();
  });

  it('with a FakeClock: open → half-open after the timeout → exactly one probe; success closes, failure re-opens', async () => {
    const clock = new FakeClock();
    const { log, failpoints, registry } = await setup({ retryAttempts: 1, circuitBreakerTimeoutMs: 60_000 }, clock);
    failpoints.set('wal.append', 'error(EIO)');
    for (let i = 0; i < 3; i++) await expect(log.append([upsert('x', [0, 0, 1])])).rejects.toMatchObject({ code: 'WAL_IO_ERROR' });
    expect(log.breaker.state).toBe('open');
    clock.advance(59_999);
    await expect(log.append([upsert('x', [0, 0, 1])])).rejects.toMatchObject({ code: 'WAL_CIRCUIT_OPEN', details: { retryAfterMs: 1 } });
    clock.advance(1);
    expect(log.breaker.state).toBe('half_open');
    expect(await metricValue(registry, 'wal_circuit_breaker_state', { state: 'half_open' })).toBe(1);
    // the probe fails (the failpoint is still armed): re-opened for another timeout
    await expect(log.append([upsert('x', [0, 0, 1])])).rejects.toMatchObject({ code: 'WAL_IO_ERROR' });
    expect(log.breaker.state).toBe('open');
    failpoints.clear('wal.append');
    clock.advance(60_000);
    // exactly one probe: a second append while the probe is in flight is refused
    const probe = log.append([upsert('p', [0, 0, 1])]);
    await expect(log.append([upsert('q', [0, 0, 1])])).rejects.toMatchObject({ code: 'WAL_CIRCUIT_OPEN' });
    expect((await probe).firstSeq).toBe(4);
    expect(log.breaker.state).toBe('closed');
    expect((await log.append([upsert('q', [0, 0, 1])])).firstSeq).toBe(5);
    await log.close();
  });
});

describe('reads during WAL recovery', () => {
  it('tails catching up and readers keep working while failed appends reopen the environment', async () => {
    const t = await openTestLog({ wal: { retryAttempts: 3, retryBaseDelayMs: 0, retryMaxDelayMs: 0, circuitBreakerThreshold: 1000 } });
    dirs.push(t.dir);
    const { log, failpoints } = t;
    await log.append([created('c', 3)]);
    for (let i = 0; i < 40; i++) await log.append(Array.from({ length: 50 }, (_, j) => upsert(`d${i}-${j}`, [i, j, 1])));
    const head = log.head().seq;
    const seen: number[] = [];
    let tailError: unknown;
    const sub = log.tail(1, { chunk: 5 }).subscribe({ next: (e) => seen.push(e.seq), error: (e: unknown) => (tailError = e) });
    let readerError: unknown;
    let reads = 0;
    const reader = setInterval(() => {
      try {
        reads += [...log.read(1 + (reads % head), 5 + (reads % head))].length > 0 ? 1 : 0;
        log.head();
        log.seqAtTime(Number.MAX_SAFE_INTEGER);
      } catch (err) {
        readerError = err;
      }
    }, 0);
    failpoints.set('wal.append', 'error(EIO)');
    for (let i = 0; i < 10; i++) await expect(log.append([upsert('x', [0, 0, 1])])).rejects.toMatchObject({ code: 'WAL_IO_ERROR' });
    failpoints.clearAll();
    await waitFor(() => seen.length >= head || tailError !== undefined);
    clearInterval(reader);
    sub.unsubscribe();
    expect(tailError).toBeUndefined();
    expect(readerError).toBeUndefined();
    expect(seen).toEqual(Array.from({ length: head }, (_, i) => i + 1));
    expect(reads).toBeGreaterThan(0);
    await log.close();
  });
});

describe('group commit pipelining', () => {
  it.each([true, false])('a failed group does not break the group sealed behind it (pipelineCommits=%s)', async (pipelineCommits) => {
    const t = await openTestLog({ wal: fast, pipelineCommits });
    dirs.push(t.dir);
    const { log, failpoints } = t;
    await log.append([created('c', 3)]);
    for (let round = 0; round < 5; round++) {
      const before = log.head();
      failpoints.set('wal.append', '1*error(EACCES)');
      const p1 = log.append([upsert('x', [0, 0, 1])]).then(
        () => undefined,
        (e: unknown) => e,
      );
      await new Promise((r) => setImmediate(r)); // the committer has taken [p1] and started its commit
      const p2 = log.append([upsert('y', [0, 1, 0]), upsert('y2', [0, 1, 1])]);
      const p3 = log.append([upsert('z', [1, 0, 0])]);
      expect(await p1).toMatchObject({ code: 'WAL_PERMISSION_DENIED' });
      const [r2, r3] = await Promise.all([p2, p3]);
      expect([r2.firstSeq, r2.lastSeq, r3.firstSeq]).toEqual([before.seq + 1, before.seq + 2, before.seq + 3]);
      expect(Buffer.from(r2.events[0]!.prevHash).equals(Buffer.from(before.hash))).toBe(true);
      expect(log.verify()).toMatchObject({ ok: true, checked: before.seq + 3 });
    }
    await log.close();
  });

  it('two groups in flight, the first one\'s flush fails after both are on disk: the second is cut back with it, and each lands exactly once', async () => {
    const { log, failpoints, registry, dir } = await setup();
    const before = log.head();
    // The first group's write waits, so the second is sealed and queued behind it; both are then
    // written and made durable, and the first one's flush is reported failed.
    failpoints.set('wal.append', '1*delay(40)');
    failpoints.set('wal.flush', '1*error(EIO)');
    const p1 = log.append([upsert('x', [0, 0, 1])]);
    await new Promise((r) => setImmediate(r)); // the committer has launched [p1]
    const p2 = log.append([upsert('y', [0, 1, 0]), upsert('y2', [0, 1, 1])]);
    const p3 = log.append([upsert('z', [1, 0, 0])]);
    const [r1, r2, r3] = await Promise.all([p1, p2, p3]);
    expect([r1.firstSeq, r2.firstSeq, r2.lastSeq, r3.firstSeq]).toEqual([before.seq + 1, before.seq + 2, before.seq + 3, before.seq + 4]);
    expect(Buffer.from(r2.events[0]!.prevHash).equals(Buffer.from(r1.events[0]!.hash))).toBe(true);
    expect(await metricValue(registry, 'wal_retry_attempts_total')).toBe(1);
    expect(failpoints.list()).toEqual({});
    // exactly once in the segments and in LMDB, and after a reopen
    expect(walSeqs(dir)).toEqual(Array.from({ length: before.seq + 4 }, (_, i) => i + 1));
    expect([...log.read(before.seq + 1)].flatMap((e) => (e.type === 'vector.upserted' ? [e.body.id] : []))).toEqual(['x', 'y', 'y2', 'z']);
    expect(log.verify()).toMatchObject({ ok: true, checked: before.seq + 4 });
    await log.close();
    const again = await EventLog.open({ dir, logger: quietLogger() });
    expect(again.verify()).toMatchObject({ ok: true, checked: before.seq + 4 });
    await again.close();
  });

  it('many concurrent writers: every append lands exactly once, in a gapless verified chain', async () => {
    const t = await openTestLog();
    dirs.push(t.dir);
    const { log } = t;
    await log.append([created('c', 3)]);
    const results = await Promise.all(
      Array.from({ length: 32 }, async (_, w) => {
        const seqs: number[] = [];
        for (let i = 0; i < 20; i++) seqs.push((await log.append([upsert(`w${w}-${i}`, [w, i, 1])])).firstSeq);
        return seqs;
      }),
    );
    const all = results.flat().sort((a, b) => a - b);
    expect(all).toEqual(Array.from({ length: 640 }, (_, i) => i + 2));
    expect(log.verify()).toMatchObject({ ok: true, checked: 641 });
    await log.close();
  });
});

describe('fsyncgate: a failed flush is never retried in place', () => {
  it('wal.flush = 1*error(EIO) after the frame was written: the segment is cut back, the batch written again, and it appears exactly once', async () => {
    const { log, failpoints, registry, dir } = await setup();
    failpoints.set('wal.flush', '1*error(EIO)');
    // several requests in one group commit
    const results = await Promise.all([log.append([upsert('x', [0, 0, 1]), upsert('y', [0, 1, 0])]), log.append([upsert('z', [1, 0, 0])])]);
    expect(results.map((r) => [r.firstSeq, r.lastSeq])).toEqual([
      [4, 5],
      [6, 6],
    ]);
    expect(await metricValue(registry, 'wal_errors_total', { type: 'io_error' })).toBe(1);
    // The bytes the kernel held after the failed sync were cut off, not trusted: one retry wrote them anew.
    expect(await metricValue(registry, 'wal_retry_attempts_total')).toBe(1);
    expect(walSeqs(dir)).toEqual([1, 2, 3, 4, 5, 6]);
    const ids = [...log.read()].flatMap((e) => (e.type === 'vector.upserted' ? [e.body.id] : []));
    expect(ids).toEqual(['a', 'b', 'x', 'y', 'z']);
    expect(log.verify()).toMatchObject({ ok: true, checked: 6 });
    expect((await log.append([upsert('w', [1, 1, 1])])).firstSeq).toBe(7);
    await log.close();
    const again = await EventLog.open({ dir, logger: quietLogger() });
    expect(again.verify()).toMatchObject({ ok: true, checked: 7 });
    expect(again.head().seq).toBe(7);
    await again.close();
  });

  it('wal.flush failing every time: the append rejects, and the unsynced frame is gone from the segments and LMDB after reopen', async () => {
    const { log, failpoints, dir } = await setup();
    const before = log.head();
    failpoints.set('wal.flush', 'error(EIO)');
    await expect(log.append([upsert('x', [0, 0, 1]), upsert('y', [0, 1, 0])])).rejects.toMatchObject({ code: 'WAL_IO_ERROR' });
    failpoints.clearAll();
    await log.close();
    const again = await EventLog.open({ dir, logger: quietLogger() });
    const head = again.head();
    const report = again.verify();
    expect(report.ok).toBe(true);
    if (report.ok) expect(report.head.seq).toBe(head.seq); // meta head = the chain's end
    // never synced, so cut off: nothing of the batch is in the segments or in LMDB
    expect(head.seq).toBe(before.seq);
    expect(walSeqs(dir)).toEqual([1, 2, 3]);
    const ids = [...again.read()].flatMap((e) => (e.type === 'vector.upserted' ? [e.body.id] : []));
    expect(ids).toEqual(['a', 'b']);
    expect((await again.append([upsert('w', [1, 1, 1])])).firstSeq).toBe(head.seq + 1);
    expect(again.verify().ok).toBe(true);
    await again.close();
  });
});
