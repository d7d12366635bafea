import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { call, startServer, tmp } from './serverProcess.js';
import type { ServerProc } from './serverProcess.js';

// The server's wall clock steps while it runs: a VM resumed after a suspend or migrated, an NTP
// step, an operator's `date -s`. A real step of the server's wall clock (and only of it) comes
// from libfaketime (Debian's `faketime`; ./scripts/test.sh installs it where it can): its offset
// file is read on every clock call, and the monotonic clock is left alone, as it is in a real
// step. Event timestamps are the instants point-in-time restore and audits are asked about, so
// they must follow the wall clock, not the clock the process started with.
const LIBFAKETIME = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/faketime/libfaketime.so.1'].find((p) => fs.existsSync(p));
if (LIBFAKETIME === undefined) console.warn('clockStep.int.test.ts: libfaketime is not installed (apt-get install faketime), so the wall-clock step tests are SKIPPED');

const HOUR_US = 3600 * 1_000_000;
const nowUs = (): number => Date.now() * 1000;

describe.skipIf(LIBFAKETIME === undefined)('a step of the server\'s wall clock (libfaketime)', { timeout: 60_000 }, () => {
  const dir = tmp();
  const offsetFile = path.join(dir, 'faketime-offset');
  let server: ServerProc | undefined;
  afterAll(async () => {
    await server?.stop('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  /** Moves the server's wall clock `seconds` away from the real one (the next clock call sees it). */
  const setOffset = async (seconds: number): Promise<void> => {
    fs.writeFileSync(offsetFile, `${seconds >= 0 ? '+' : ''}${seconds}\n`);
    await new Promise((r) => setTimeout(r, 50));
  };
  const write = async (url: string, id: string): Promise<number> => {
    const w = await call(url, 'POST', '/v1/collections/c/vectors', { vectors: [{ id, vector: [1, 0] }] });
    expect(w.status, JSON.stringify(w.json)).toBe(200);
    return w.json.tsMicros as number;
  };

  const faketimeEnv = (extra: Record<string, string> = {}): Record<string, string> => ({
    LD_PRELOAD: LIBFAKETIME!,
    FAKETIME_TIMESTAMP_FILE: offsetFile,
    FAKETIME_NO_CACHE: '1',
    FAKETIME_DONT_FAKE_MONOTONIC: '1',
    KYRODB_BACKUP_ENABLED: 'false',
    KYRODB_BACKUP_LOCAL_DIR: path.join(dir, 'backups'),
    ...extra,
  });

  it('event timestamps follow the step, as-of answers stay right, and they never go backwards', async () => {
    await setOffset(0);
    server = await startServer(['--data-dir', path.join(dir, 'data')], faketimeEnv());
    const { url } = server;
    expect((await call(url, 'PUT', '/v1/collections/c', { dimension: 2, metric: 'l2' })).status).toBe(201);
    const tsA = await write(url, 'a');
    expect(Math.abs(tsA - nowUs())).toBeLessThan(10_000_000);

    // The server's wall clock jumps an hour ahead (as after an hour's suspend).
    await setOffset(3600);
    const tsB = await write(url, 'b');
    const lagUs = nowUs() + HOUR_US - tsB; // how far b's ts is behind the server's wall clock
    expect(lagUs, `b was stamped ${(lagUs / 1e6).toFixed(1)} s behind the server's wall clock`).toBeLessThan(10_000_000);
    expect(lagUs).toBeGreaterThan(-10_000_000);

    // Half an hour before the server's "now", b was not written yet: the state then holds a only.
    const halfHourAgo = nowUs() + HOUR_US / 2;
    const atHalf = await call(url, 'GET', `/v1/collections/c/vectors/b?asOf=${halfHourAgo}`);
    expect(atHalf.status, JSON.stringify(atHalf.json)).toBe(404);
    const headHalf = await call(url, 'GET', `/v1/audit/head?asOf=${halfHourAgo}`);
    expect(headHalf.status).toBe(200);
    expect(headHalf.json.seq).toBe(2);
    // Half a second after b, 200 ms before the server's "now": a past instant, holding b.
    await new Promise((r) => setTimeout(r, 700));
    const justNow = nowUs() + HOUR_US - 200_000;
    const atNow = await call(url, 'GET', `/v1/collections/c/vectors/b?asOf=${justNow}`);
    expect(atNow.status, JSON.stringify(atNow.json)).toBe(200);

    // The wall clock steps back two hours: timestamps never decrease (the log's order is time order).
    await setOffset(-3600);
    const tsC = await write(url, 'c');
    expect(tsC).toBeGreaterThanOrEqual(tsB);
    // Until the clock passes c's ts, later writes get it too: an answer as of it could still change,
    // so it is refused as not yet past; the µs before it is history.
    expect((await call(url, 'GET', `/v1/audit/head?asOf=${tsC}`)).status).toBe(422);
    const before = await call(url, 'GET', `/v1/audit/head?asOf=${tsC - 1}`);
    expect([before.status, before.json.seq]).toEqual([200, tsC === tsB ? 2 : 3]);
    expect(await write(url, 'd')).toBe(tsC);
    expect((await call(url, 'GET', `/v1/audit/head?asOf=${tsC - 1}`)).json).toEqual(before.json);
    const verify = await call(url, 'POST', '/v1/audit/verify', {});
    expect(verify.json.ok).toBe(true);
  });

  it('an open circuit breaker half-opens after its timeout when the wall clock stepped back meanwhile', async () => {
    await server?.stop('SIGKILL');
    await setOffset(0);
    server = await startServer(['--data-dir', path.join(dir, 'data2')], faketimeEnv({ KYRODB_TEST_FAILPOINTS_API: '1', KYRODB_ERROR_RECOVERY_WAL_CIRCUIT_BREAKER_TIMEOUT_SECONDS: '1' }));
    const { url } = server;
    expect((await call(url, 'PUT', '/v1/collections/c', { dimension: 2, metric: 'l2' })).status).toBe(201);
    await write(url, 'a');
    expect((await call(url, 'POST', '/v1/admin/failpoints', { name: 'wal.append', action: 'error(ENOSPC)' })).status).toBe(200);
    const refused = await call(url, 'POST', '/v1/collections/c/vectors', { vectors: [{ id: 'b', vector: [0, 1] }] });
    expect([refused.status, refused.json.error?.code]).toEqual([503, 'WAL_DISK_FULL']);
    expect((await call(url, 'POST', '/v1/admin/failpoints', { name: 'wal.append', action: 'off' })).status).toBe(200);
    // The disk has room again, and the wall clock steps back two hours while the breaker is open.
    await setOffset(-7200);
    await new Promise((r) => setTimeout(r, 1500));
    const retried = await call(url, 'POST', '/v1/collections/c/vectors', { vectors: [{ id: 'b', vector: [0, 1] }] });
    expect(retried.status, `${JSON.stringify(retried.json)} retry-after ${String(retried.headers.get('retry-after'))}`).toBe(200);
    expect((await call(url, 'GET', '/v1/collections/c/vectors/b')).status).toBe(200);
  });
});
