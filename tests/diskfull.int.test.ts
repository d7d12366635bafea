import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventLog } from '@kyrodb/log';
import { call, kyrodb, startServer, tmp, vectorFor } from './serverProcess.js';
import type { ServerProc } from './serverProcess.js';

/**
 * Whether this process may mount a tmpfs: a probe mount, unmounted at once (undefined) or why not.
 * The tests' own mounts are made in `beforeAll`: a mount made while the file is collected stayed
 * mounted when a `-t` filter left its describe without tests (vitest then runs no `afterAll`).
 */
function tmpfsRefusal(what: string): string | undefined {
  const probe = tmp('kyro-tmpfs-probe-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { stdio: 'pipe' });
    execFileSync('umount', [probe]);
    return undefined;
  } catch (err) {
    const why = `cannot mount a tmpfs (${(err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message}); ${what} needs root or CAP_SYS_ADMIN`;
    console.warn(`SKIPPED: ${why}`);
    return why;
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
}

const env = (dir: string): Record<string, string> => ({ KYRODB_BACKUP_ENABLED: 'false', KYRODB_BACKUP_LOCAL_DIR: path.join(dir, 'backups') });

async function breakerOpenInMetrics(url: string): Promise<boolean> {
  const m = await fetch(url + '/metrics').then((r) => r.text());
  return /wal_circuit_breaker_state\{state="open"\} 1/.test(m);
}

/**
 * Writes batches of 128-d vectors (ids v1, v2, …) into collection c until the disk is full and the
 * WAL breaker opens; returns the ids acknowledged and the first refused answer.
 */
async function fillUntilBreakerOpens(url: string): Promise<{ acked: string[]; full: Awaited<ReturnType<typeof call>> | undefined }> {
  let seed = 1;
  let full: Awaited<ReturnType<typeof call>> | undefined;
  const acked: string[] = [];
  for (let i = 0; i < 2000 && full === undefined; i++) {
    const batch = Array.from({ length: 20 }, () => ({ id: `v${seed}`, vector: vectorFor(seed++, 128) }));
    const r = await call(url, 'POST', '/v1/collections/c/vectors', { vectors: batch });
    if (r.status === 200) acked.push(...batch.map((b) => b.id));
    else full = r;
  }
  // keep the pressure on until the breaker opens (a smaller write may still fit meanwhile)
  for (let i = 0; i < 50 && full !== undefined && !(await breakerOpenInMetrics(url)); i++) {
    const batch = Array.from({ length: 20 }, () => ({ id: `v${seed}`, vector: vectorFor(seed++, 128) }));
    const r = await call(url, 'POST', '/v1/collections/c/vectors', { vectors: batch });
    if (r.status === 200) acked.push(...batch.map((b) => b.id));
    else expect(r.status).toBe(503);
  }
  return { acked, full };
}

describe('disk full: writes 503 + code, reads work, metrics show the breaker, admin reset resumes writes', { timeout: 240_000 }, () => {
  const servers: ServerProc[] = [];

  it('by failpoint (KYRODB_TEST_FAILPOINTS_API=1): ENOSPC on wal.append; health-check exits 6 while a breaker is open (the WAL one, then the cold one with /readyz 200)', async () => {
    const dir = tmp();
    const s = await startServer(['--data-dir', path.join(dir, 'data')], { ...env(dir), KYRODB_TEST_FAILPOINTS_API: '1' });
    servers.push(s);
    expect((await call(s.url, 'PUT', '/v1/collections/c', { dimension: 4, metric: 'l2' })).status).toBe(201);
    expect((await call(s.url, 'POST', '/v1/collections/c/vectors', { vectors: [{ id: 'a', vector: [1, 2, 3, 4] }] })).status).toBe(200);
    expect((await call(s.url, 'POST', '/v1/admin/failpoints', { name: 'wal.append', action: 'error(ENOSPC)' })).status).toBe(200);
    const head = (await call(s.url, 'GET', '/v1/audit/head')).json.seq;
    const w = await call(s.url, 'POST', '/v1/collections/c/vectors', { vectors: [{ id: 'b', vector: [1, 2, 3, 4] }] });
    expect(w.status).toBe(503);
    expect(w.json.error.code).toBe('WAL_DISK_FULL');
    expect(Number(w.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await call(s.url, 'GET', '/v1/collections/c/vectors/a')).status).toBe(200);
    expect((await call(s.url, 'POST', '/v1/collections/c/search', { vector: [1, 2, 3, 4], k: 1 })).json.results[0].id).toBe('a');
    expect(await breakerOpenInMetrics(s.url)).toBe(true);
    const hc = await kyrodb(['admin', 'health-check', '--url', s.url, '--json']);
    expect(hc.code).toBe(6);
    expect(JSON.parse(hc.stdout).breakers.wal).toBe('open');
    // "free space", then reset by hand
    expect((await call(s.url, 'POST', '/v1/admin/failpoints', { name: 'wal.append', action: 'off' })).status).toBe(200);
    const reset = await kyrodb(['admin', 'reset-circuit-breaker', '--name', 'wal', '--url', s.url]);
    expect(reset.code, reset.stderr).toBe(0);
    expect((await call(s.url, 'POST', '/v1/collections/c/vectors', { vectors: [{ id: 'b', vector: [1, 2, 3, 4] }] })).status).toBe(200);
    expect((await call(s.url, 'GET', '/v1/audit/head')).json.seq).toBe(head + 1);
    expect((await kyrodb(['admin', 'health-check', '--url', s.url])).code).toBe(0);
    // Ready, but the cold breaker open (searches answered by the hot tier alone): not healthy, exit 6.
    expect((await call(s.url, 'POST', '/v1/admin/failpoints', { name: 'projection.cold.search', action: '3*error(EIO)' })).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await call(s.url, 'POST', '/v1/collections/c/search', { vector: [1, 2, 3, 4], k: 1 })).json.degraded).toBe(true);
    expect((await call(s.url, 'GET', '/readyz')).status).toBe(200);
    const cold = await kyrodb(['admin', 'health-check', '--url', s.url]);
    expect([cold.code, cold.stderr.trim()]).toEqual([6, 'kyrodb: breaker open: cold']);
    expect(await s.stop()).toBe(0);
  });

  it('health-check exits 6 while the cold worker is down (crashing on every insert, its breaker closed), 0 once it is back', async () => {
    const dir = tmp();
    const s = await startServer(['--data-dir', path.join(dir, 'data')], { ...env(dir), KYRODB_TEST_FAILPOINTS_API: '1' });
    servers.push(s);
    expect((await call(s.url, 'PUT', '/v1/collections/c', { dimension: 4, metric: 'l2' })).status).toBe(201);
    expect((await call(s.url, 'POST', '/v1/admin/failpoints', { name: 'projection.cold.insert', action: 'panic' })).status).toBe(200);
    expect((await call(s.url, 'POST', '/v1/collections/c/vectors', { vectors: [{ id: 'a', vector: [1, 2, 3, 4] }] })).status).toBe(200);
    let hc = await kyrodb(['admin', 'health-check', '--url', s.url]);
    for (let i = 0; i < 100 && hc.code === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      hc = await kyrodb(['admin', 'health-check', '--url', s.url]);
    }
    expect([hc.code, hc.stderr.trim()]).toEqual([6, 'kyrodb: the cold tier is down (its worker is restarting): searches are answered by the hot tier alone']);
    expect(hc.stdout).toMatch(/breakers: .*cold=closed[\s\S]*cold tier: down/);
    expect((await call(s.url, 'POST', '/v1/admin/failpoints', { name: 'projection.cold.insert', action: 'off' })).status).toBe(200);
    for (let i = 0; i < 200 && hc.code !== 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      hc = await kyrodb(['admin', 'health-check', '--url', s.url]);
    }
    expect(hc.code, hc.stderr).toBe(0);
    expect((await call(s.url, 'POST', '/v1/collections/c/search', { vector: [1, 2, 3, 4], k: 1 })).json.results[0].id).toBe('a');
    expect(await s.stop()).toBe(0);
  });

  it('a server started with KYRODB_FAILPOINTS gets them (Failpoints.fromEnv)', async () => {
    const dir = tmp();
    const s = await startServer(['--data-dir', path.join(dir, 'data')], { ...env(dir), KYRODB_FAILPOINTS: 'wal.append=error(ENOSPC)' });
    servers.push(s);
    const r = await call(s.url, 'PUT', '/v1/collections/c', { dimension: 4, metric: 'l2' });
    expect(r.status).toBe(503);
    expect(r.json.error.code).toBe('WAL_DISK_FULL');
    expect((await call(s.url, 'POST', '/v1/admin/failpoints', { name: 'wal.append', action: 'off' })).status).toBe(404); // API off without KYRODB_TEST_FAILPOINTS_API
    expect(await s.stop()).toBe(0);
  });

  it('a passing WAL failure: once the breaker half-opens the server is ready again by itself, and the next write closes it', async () => {
    const dir = tmp();
    const s = await startServer(['--data-dir', path.join(dir, 'data')], { ...env(dir), KYRODB_FAILPOINTS: 'wal.append=1*error(ENOSPC)', KYRODB_ERROR_RECOVERY_WAL_CIRCUIT_BREAKER_TIMEOUT_SECONDS: '1' });
    servers.push(s);
    expect((await call(s.url, 'PUT', '/v1/collections/c', { dimension: 4, metric: 'l2' })).status).toBe(503);
    expect((await call(s.url, 'GET', '/readyz')).status).toBe(503); // open
    await new Promise((r) => setTimeout(r, 1500));
    // Half-open: the next write is the probe. A load balancer that routes by /readyz must send it
    // one (before: 503 until a write came some other way, so a node behind one never recovered).
    const ready = await call(s.url, 'GET', '/readyz');
    expect([ready.status, ready.json.wal]).toEqual([200, 'half_open']);
    const hc = await kyrodb(['admin', 'health-check', '--url', s.url]);
    expect(hc.code).toBe(0);
    expect(hc.stdout).toMatch(/^training: \w+, \d+ restarts/m); // as its --help says it prints
    expect((await call(s.url, 'PUT', '/v1/collections/c', { dimension: 4, metric: 'l2' })).status).toBe(201);
    expect((await call(s.url, 'GET', '/readyz')).json.wal).toBe('closed');
    expect(await s.stop()).toBe(0);
  });

  // A real ENOSPC on a small tmpfs (needs root / CAP_SYS_ADMIN to mount).
  const mnt = tmp('kyro-tmpfs-');
  const skipReason = tmpfsRefusal('a real ENOSPC');
  beforeAll(() => {
    if (skipReason === undefined) execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt], { stdio: 'pipe' });
  });
  afterAll(async () => {
    for (const s of servers) await s.stop('SIGKILL');
    if (skipReason === undefined) {
      try {
        execFileSync('umount', [mnt]);
      } catch {
        /* busy: a killed server */
      }
    }
    fs.rmSync(mnt, { recursive: true, force: true });
  });

  it.skipIf(skipReason !== undefined)(`for real on a 2 MiB tmpfs${skipReason ? ` — SKIPPED: ${skipReason}` : ''}`, async () => {
    const s = await startServer(['--data-dir', path.join(mnt, 'data')], env(tmp()));
    servers.push(s);
    expect((await call(s.url, 'PUT', '/v1/collections/c', { dimension: 128, metric: 'cosine' })).status).toBe(201);
    const { acked, full } = await fillUntilBreakerOpens(s.url);
    expect(full, 'the tmpfs never filled').toBeDefined();
    expect(full!.status).toBe(503);
    // lmdb reports a full tmpfs either as ENOSPC (WAL_DISK_FULL, breaker opens at once) or, when
    // the page write fails, as EIO (WAL_IO_ERROR, breaker opens after 3 consecutive failures).
    expect(['WAL_DISK_FULL', 'WAL_IO_ERROR', 'WAL_CIRCUIT_OPEN'], JSON.stringify(full!.json)).toContain(full!.json.error.code);
    expect(full!.headers.get('retry-after')).not.toBeNull();
    expect(await breakerOpenInMetrics(s.url)).toBe(true);
    const blocked = await call(s.url, 'POST', '/v1/collections/c/vectors', { vectors: [{ id: 'blocked', vector: vectorFor(424242, 128) }] });
    expect(blocked.status).toBe(503);
    expect(blocked.headers.get('retry-after')).not.toBeNull();
    expect((await call(s.url, 'GET', `/v1/collections/c/vectors/${acked[0]}`)).status).toBe(200);
    expect((await call(s.url, 'POST', '/v1/collections/c/search', { vector: vectorFor(1, 128), k: 1 })).json.results[0].id).toBe('v1');
    expect(await breakerOpenInMetrics(s.url)).toBe(true);
    // free space (grow the tmpfs), reset the breaker, writes resume
    execFileSync('mount', ['-o', 'remount,size=64m', mnt]);
    const reset = await kyrodb(['admin', 'reset-circuit-breaker', '--name', 'wal', '--url', s.url]);
    expect(reset.code, reset.stderr).toBe(0);
    const again = await call(s.url, 'POST', '/v1/collections/c/vectors', { vectors: [{ id: 'after', vector: vectorFor(99999, 128) }] });
    expect(again.status, JSON.stringify(again.json)).toBe(200);
    expect((await call(s.url, 'POST', '/v1/audit/verify', {})).json.ok).toBe(true);
    for (const id of acked.filter((_, i) => i % 25 === 0)) expect((await call(s.url, 'GET', `/v1/collections/c/vectors/${id}`)).status).toBe(200);
    expect(await s.stop()).toBe(0);
  });

  it.skipIf(skipReason !== undefined)(`SIGTERM while the disk is full: a clean exit (the checkpoint it cannot write is logged), and every acknowledged write there after restart${skipReason ? ` — SKIPPED: ${skipReason}` : ''}`, async () => {
    // On a disk of its own (the test above grew its tmpfs).
    const disk = tmp('kyro-tmpfs-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', disk], { stdio: 'pipe' });
    try {
      const data = path.join(disk, 'data');
      const s = await startServer(['--data-dir', data], env(tmp()));
      servers.push(s);
      expect((await call(s.url, 'PUT', '/v1/collections/c', { dimension: 128, metric: 'cosine' })).status).toBe(201);
      const { acked, full } = await fillUntilBreakerOpens(s.url);
      expect(full, 'the tmpfs never filled').toBeDefined();
      const head = (await call(s.url, 'GET', '/v1/audit/head')).json.seq as number;
      // The shutdown checkpoint cannot be written: logged, and the process still exits 0.
      expect(await s.stop(), s.stderr().slice(-2000)).toBe(0);
      expect(s.stderr()).toMatch(/checkpoint at shutdown failed/);
      expect(s.stderr()).not.toMatch(/Unhandled|ProjectionError: cold tier/);
      const cps = path.join(data, 'checkpoints');
      expect(fs.existsSync(cps) ? fs.readdirSync(cps).filter((n) => n.startsWith('.')) : [], 'temp dirs of the failed checkpoint').toEqual([]);
      // Started again on the same full disk: every acknowledged write is there.
      const again = await startServer(['--data-dir', data], env(tmp()));
      servers.push(again);
      expect((await call(again.url, 'GET', '/v1/audit/head')).json.seq).toBe(head);
      for (const id of acked.filter((_, i) => i % 25 === 0)) expect((await call(again.url, 'GET', `/v1/collections/c/vectors/${id}`)).status).toBe(200);
      expect(await again.stop()).toBe(0);
    } finally {
      execFileSync('umount', [disk]);
      fs.rmSync(disk, { recursive: true, force: true });
    }
  });
});

describe('the CLI on a full disk: exit 8, a message saying where and how much, nothing left half-written', { timeout: 120_000 }, () => {
  // A real full disk: a 1 MiB tmpfs (needs root / CAP_SYS_ADMIN to mount).
  const disk = tmp('kyro-tmpfs-');
  const skipReason = tmpfsRefusal('a real full disk');
  beforeAll(() => {
    if (skipReason === undefined) execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', disk], { stdio: 'pipe' });
  });
  afterAll(() => {
    if (skipReason === undefined) execFileSync('umount', [disk]);
    fs.rmSync(disk, { recursive: true, force: true });
  });
  const files = (d: string): string[] => fs.readdirSync(d, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name);

  it.skipIf(skipReason !== undefined)(`backup create onto a full store, restore onto a full disk${skipReason ? ` — SKIPPED: ${skipReason}` : ''}`, async () => {
    const dir = tmp();
    const dataDir = path.join(dir, 'data');
    const log = await EventLog.open({ dir: dataDir, logger: () => undefined });
    await log.append([{ type: 'collection.created', collection: 'c', body: { dimension: 128, metric: 'l2', hnsw: { M: 16, efConstruction: 100, efSearch: 50 } } }]);
    for (let i = 0; i < 3000; i += 500) await log.append(Array.from({ length: 500 }, (_, j) => ({ type: 'vector.upserted' as const, collection: 'c', body: { id: `v${i + j}`, vector: Float32Array.from(vectorFor(i + j, 128)) } })));
    await log.close();
    // ~1.7 MB of events onto a 1 MiB store: refused, and nothing of it stays on the disk.
    const b = await kyrodb(['backup', 'create', '--full', '--data-dir', dataDir, '--output', path.join(disk, 'backups')], { KYRODB_BACKUP_COMPRESSION: 'none' });
    expect(b.code, b.stderr).toBe(8);
    expect(b.stderr).toMatch(/BACKUP_NO_SPACE: writing backups\/.* to the backup store .*: the disk is full/);
    expect(files(disk)).toEqual([]);
    // Restoring a backup of it onto the 1 MiB disk: the dry run and the restore both refuse up front.
    const ok = await kyrodb(['backup', 'create', '--full', '--data-dir', dataDir, '--output', path.join(dir, 'backups')]);
    expect(ok.code, ok.stderr).toBe(0);
    for (const extra of [['--dry-run'], []]) {
      const r = await kyrodb(['restore', '--backup-id', 'latest', '--from', path.join(dir, 'backups'), '--data-dir', path.join(disk, 'data'), ...extra]);
      expect(r.code, r.stderr).toBe(8);
      expect(r.stderr).toMatch(/BACKUP_NO_SPACE: restoring into .*data needs at least [\d.]+ MB free in .*, but [\d.]+ (KB|MB) is free; nothing was changed/);
      expect(fs.existsSync(path.join(disk, 'data'))).toBe(false);
      expect(files(disk)).toEqual([]);
    }
    // The mount point itself as the target: refused up front (it cannot be renamed aside), nothing left beside it.
    const m = await kyrodb(['restore', '--backup-id', 'latest', '--from', path.join(dir, 'backups'), '--data-dir', disk, '--force']);
    expect([m.code, m.stderr]).toEqual([3, expect.stringContaining('is a mount point')]);
    expect(fs.readdirSync(path.dirname(disk)).filter((n) => n.startsWith(path.basename(disk) + '.'))).toEqual([]);
    // An audit export onto the full disk: AUDIT_NO_SPACE (it was the generic ERROR), where and how
    // much is free, and no partial file; the same export elsewhere is whole.
    const to = new Date(Date.now() - 1000).toISOString();
    for (const json of [false, true]) {
      const a = await kyrodb(['audit', 'replay', '--to', to, '--out', path.join(disk, 'state.ndjson'), '--data-dir', dataDir, ...(json ? ['--json'] : [])]);
      expect(a.code, a.stderr).toBe(8);
      expect(a.stderr).toMatch(/AUDIT_NO_SPACE: writing .*state\.ndjson: the disk is full \([\d.]+ (B|KB) free in .*\); nothing of it was kept/);
      if (json) expect(JSON.parse(a.stdout).error.code).toBe('AUDIT_NO_SPACE');
      expect(files(disk)).toEqual([]);
    }
    const whole = await kyrodb(['audit', 'replay', '--to', to, '--out', path.join(dir, 'state.ndjson'), '--data-dir', dataDir]);
    expect(whole.code, whole.stderr).toBe(0);
    expect(fs.statSync(path.join(dir, 'state.ndjson')).size).toBeGreaterThan(1024 * 1024);
  });
});
