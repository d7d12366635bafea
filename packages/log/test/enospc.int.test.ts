import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { EventLog, classifyWalError, failpointError, refineByFreeSpace } from '@kyrodb/log';
import type { EventInput } from '@kyrodb/log';
import { created, metricValue, openTestLog, quietLogger, randomVector, tempDir, waitFor } from './helpers.js';

// A real ENOSPC: the test mounts its own 1 MiB tmpfs (needs root / CAP_SYS_ADMIN).
const dir = tempDir('kyro-enospc-');
// a second one for the run with the LMDB apply thread
const dir2 = tempDir('kyro-enospc-thread-');
function mountTmpfs(at: string, options: string): void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', at], { stdio: 'pipe' });
}
/**
 * Whether this process may mount a tmpfs: a probe mount, unmounted at once (undefined) or why not.
 * The tests' own mounts are made in `beforeAll`: a mount made while the file is collected stayed
 * mounted when a `-t` filter left its describe without tests (vitest then runs no `afterAll`).
 */
function tmpfsRefusal(): string | undefined {
  const probe = tempDir('kyro-tmpfs-probe-');
  try {
    mountTmpfs(probe, 'size=64k');
    execFileSync('umount', [probe]);
    return undefined;
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    return `cannot mount a tmpfs (${stderr || (err as Error).message}); a real ENOSPC needs root or CAP_SYS_ADMIN`;
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
}
const skipReason = tmpfsRefusal();
const mounted = skipReason === undefined;
if (!mounted) console.warn(`SKIPPED real ENOSPC tests: ${skipReason}`);

function batch(n: number, from: number): EventInput[] {
  return Array.from({ length: n }, (_, i) => ({ type: 'vector.upserted' as const, collection: 'c', body: { id: `d${from + i}`, vector: randomVector(128) } }));
}

describe('a real disk full (tmpfs)', () => {
  beforeAll(() => {
    if (!mounted) return;
    mountTmpfs(dir, 'size=1m');
    mountTmpfs(dir2, 'size=1m');
  });
  afterAll(() => {
    if (mounted) for (const d of [dir, dir2]) execFileSync('umount', [d]);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(dir2, { recursive: true, force: true });
  });

  it.skipIf(!mounted)(`an I/O error on a file system that is out of space is classified disk_full, not retried as io_error${mounted ? '' : ` — SKIPPED: ${skipReason}`}`, () => {
    const eio = failpointError('test', 'EIO');
    expect(classifyWalError(refineByFreeSpace(eio, dir, 600))).toBe('io_error');
    const st = fs.statfsSync(dir);
    const filler = path.join(dir, 'almost-full.bin');
    fs.writeFileSync(filler, Buffer.alloc(st.bavail * st.bsize - 4096, 1));
    try {
      const refined = refineByFreeSpace(eio, dir, 600);
      expect(classifyWalError(refined)).toBe('disk_full');
      expect((refined as Error).cause).toBe(eio);
    } finally {
      fs.rmSync(filler);
    }
    expect(refineByFreeSpace(eio, dir, 600)).toBe(eio);
  });

  it.skipIf(!mounted).each([
    ['on the writer thread', 'off', dir],
    ['with the LMDB apply thread', 'on', dir2],
  ] as const)(`fills a 1 MiB tmpfs until WAL_DISK_FULL (%s); the log is as before; after space is freed and the breaker reset, appends resume${mounted ? '' : ` — SKIPPED: ${skipReason}`}`, async (_name, applyThread, dir) => {
    // a filler file we can delete later to free space
    const filler = path.join(dir, 'filler.bin');
    fs.writeFileSync(filler, Buffer.alloc(256 * 1024, 7));
    const { log, registry } = await openTestLog({ dir, applyThread, wal: { retryBaseDelayMs: 1, retryMaxDelayMs: 2 } });
    await log.append([created('c', 128)]);
    if (applyThread === 'on') await waitFor(() => log.applyThreadStatus.state === 'running');
    let n = 0;
    let failure: unknown;
    let before = log.head();
    for (let i = 0; i < 10_000 && failure === undefined; i++) {
      before = log.head();
      try {
        await log.append(batch(10, n));
        n += 10;
      } catch (err) {
        failure = err;
      }
    }
    expect(failure).toMatchObject({ name: 'LogError', code: 'WAL_DISK_FULL', details: { type: 'disk_full' } });
    expect(n).toBeGreaterThan(100);
    if (applyThread === 'on') expect(log.applyThreadStatus.batches).toBeGreaterThan(0);

    // exactly as before: same head, the chain verifies, nothing of the failed batch is there
    const head = log.head();
    expect(head.seq).toBe(before.seq);
    expect(Buffer.from(head.hash).equals(Buffer.from(before.hash))).toBe(true);
    expect(log.verify()).toMatchObject({ ok: true, checked: before.seq });
    expect(log.get(before.seq + 1)).toBeUndefined();
    expect(await metricValue(registry, 'wal_errors_total', { type: 'disk_full' })).toBe(1);
    expect(log.breaker.state).toBe('open');
    // fails fast while open; reads work
    await expect(log.append(batch(1, n))).rejects.toMatchObject({ code: 'WAL_DISK_FULL' });
    expect([...log.read(before.seq - 2)].map((e) => e.seq)).toEqual([before.seq - 2, before.seq - 1, before.seq]);

    // a second reader sees the same on-disk state
    const ro = await EventLog.open({ dir, readOnly: true, logger: quietLogger() });
    expect(ro.verify()).toMatchObject({ ok: true, checked: before.seq });
    await ro.close();

    // free space, reset the breaker: appends resume at the next seq
    fs.rmSync(filler);
    log.resetBreaker();
    const r = await log.append(batch(10, n));
    expect(r.firstSeq).toBe(before.seq + 1);
    expect(Buffer.from(r.events[0]!.prevHash).equals(Buffer.from(before.hash))).toBe(true);
    await log.close();

    // and a remount with more space: everything is there after reopen
    execFileSync('mount', ['-o', 'remount,size=8m', dir]);
    const again = await EventLog.open({ dir, logger: quietLogger() });
    expect(again.verify()).toMatchObject({ ok: true, checked: before.seq + 10 });
    for (let i = 0; i < 20; i++) await again.append(batch(10, n + 10 + i * 10));
    expect(again.verify()).toMatchObject({ ok: true, checked: before.seq + 210 });
    await again.close();
  });
});

describe('a data dir on a read-only file system (tmpfs mounted ro)', () => {
  const ro = tempDir('kyro-rofs-');
  beforeAll(() => {
    if (mounted) mountTmpfs(ro, 'size=1m,ro');
  });
  afterAll(() => {
    if (mounted) execFileSync('umount', [ro]);
    fs.rmSync(ro, { recursive: true, force: true });
  });
  it.skipIf(!mounted)(`opening a new data dir there names the read-only file system (Node's recursive mkdir says ENOENT)${mounted ? '' : ` — SKIPPED: ${skipReason}`}`, async () => {
    await expect(EventLog.open({ dir: path.join(ro, 'a', 'data'), logger: quietLogger() })).rejects.toMatchObject({ code: 'EROFS', message: expect.stringMatching(/read-only file system, mkdir .*\/a'/) as unknown });
  });
});
