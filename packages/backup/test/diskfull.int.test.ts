// Backups and restores on a disk that fills up, for real: small tmpfs mounts (root or
// CAP_SYS_ADMIN; without them these tests are skipped and say so). A full disk must end in
// BACKUP_NO_SPACE with nothing half-written left behind: no temp file or object of a failed
// backup (which would keep the disk full), no partial restore, the target data dir untouched.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EventLog, type EventInput } from '@kyrodb/log';
import { Registry } from 'prom-client';
import { BackupManager, ContinuousBackup, LocalDirStore, freeBytes, isBackupError, manifestKey, restore, restoreSpaceNeeded, planRestore, loadManifests, loadSegments, verifySegments } from '@kyrodb/backup';
import { toHex } from '@kyrodb/log';
import { hashDir, openLog, quietLogger, quietLogLogger, tempDir, until } from './helpers.js';

const mounts: string[] = [];
function mountTmpfs(sizeKb: number): string | { skip: string } {
  const dir = tempDir('kyro-tmpfs-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeKb}k`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    return { skip: `cannot mount a tmpfs (${(err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message}); a real full disk needs root or CAP_SYS_ADMIN` };
  }
  mounts.push(dir);
  return dir;
}
function resize(dir: string, sizeKb: number): void {
  execFileSync('mount', ['-o', `remount,size=${sizeKb}k`, dir], { stdio: 'pipe' });
}
function unmount(m: string): void {
  try {
    execFileSync('umount', [m], { stdio: 'pipe' });
  } catch {
    /* busy */
  }
  fs.rmSync(m, { recursive: true, force: true });
  mounts.splice(mounts.indexOf(m), 1);
}
afterAll(() => {
  for (const m of [...mounts]) unmount(m);
});

/** Every file under `dir`, relative (temp files included: a store lists none of them). */
function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

/**
 * `n` upserts of 64-d vectors whose components take few values: their records compress about
 * tenfold with zstd, so a compressed backup's stored size is far below what a restore writes.
 */
async function fillCompressible(log: EventLog, n: number): Promise<void> {
  await log.append([{ type: 'collection.created', collection: 'c', body: { dimension: 64, metric: 'l2', hnsw: { M: 16, efConstruction: 100, efSearch: 50 } } }]);
  for (let i = 0; i < n; i += 500) {
    const batch: EventInput[] = [];
    for (let j = i; j < Math.min(n, i + 500); j++) {
      const v = new Float32Array(64);
      for (let k = 0; k < 64; k++) v[k] = ((j + k) % 4) / 2;
      batch.push({ type: 'vector.upserted', collection: 'c', body: { id: `d${j}`, vector: v } });
    }
    await log.append(batch);
  }
}

// A probe, unmounted at once: a mount made while the file is collected stayed mounted when a `-t`
// filter left no test to run (vitest then runs no `afterAll`). Each test mounts its own disk.
const probe = mountTmpfs(64);
const skip = typeof probe === 'string' ? undefined : probe.skip;
if (typeof probe === 'string') unmount(probe);
if (skip !== undefined) console.warn(`SKIPPED real disk-full backup/restore tests: ${skip}`);
const title = (t: string): string => (skip === undefined ? t : `${t} — SKIPPED: ${skip}`);

describe('backup and restore on a full disk (real tmpfs)', { timeout: 120_000 }, () => {
  it.skipIf(skip !== undefined)(title('a local store on a read-only file system: a put names EROFS (Node\'s recursive mkdir says ENOENT there)'), async () => {
    const disk = mountTmpfs(64) as string;
    execFileSync('mount', ['-o', 'remount,ro', disk], { stdio: 'pipe' });
    const store = new LocalDirStore(path.join(disk, 'backups'));
    await expect(store.put('segments/0000000000000001-0000000000000002', Buffer.from('x'))).rejects.toMatchObject({ code: 'EROFS', message: expect.stringContaining('read-only file system') as unknown });
  });

  it.skipIf(skip !== undefined)(title('a backup onto a full local store: BACKUP_NO_SPACE, nothing of it left (no temp file, no object), and the next backup with room completes'), async () => {
    const storeDir = mountTmpfs(1024) as string;
    const { log, dir } = await openLog();
    try {
      await fillCompressible(log, 6000); // ~2 MB of records
      const lines: string[] = [];
      // Files of 1000 events (~390 KB): two fit, the third fails, so the failed backup had stored some.
      const mgr = new BackupManager({ log, dataDir: dir, store: new LocalDirStore(storeDir), compression: 'none', eventsPerFile: 1000, logger: quietLogger(lines) });
      const err = await mgr.createFull().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isBackupError(err, 'BACKUP_NO_SPACE'), String(err)).toBe(true);
      expect((err as Error).message).toMatch(/disk is full/);
      // Nothing of the failed backup stays to keep the disk full: no temp file, no object, nothing listed.
      expect(filesUnder(storeDir)).toEqual([]);
      expect(freeBytes(storeDir)).toBeGreaterThan(900 * 1024);
      expect(await mgr.list()).toEqual([]);
      expect((await loadManifests(new LocalDirStore(storeDir))).incomplete).toEqual([]);
      // With room, the next backup completes and restores.
      resize(storeDir, 8 * 1024);
      const m = await mgr.createFull();
      expect(m.to_seq).toBe(6001);
      expect(m.files.every((f) => f.kind !== 'events' || (f.raw_size ?? 0) >= f.size)).toBe(true);
      const target = path.join(tempDir(), 'data');
      const rep = await restore({ store: new LocalDirStore(storeDir), dataDir: target, backupId: m.backup_id });
      expect([rep.seq, rep.headHash, rep.vectorCount]).toEqual([6001, m.head_hash, 6000]);
    } finally {
      await log.close();
    }
  });

  it.skipIf(skip !== undefined)(title('a restore onto a disk too small: refused before anything is written (and by the dry run); when the check cannot see it coming, it runs out mid-way and leaves the target untouched; with room it completes'), async () => {
    // The backup: 6000 events (~2.3 MB of records, ~0.3 MB stored compressed), on the normal disk.
    const { log, dir } = await openLog();
    const storeDir = tempDir();
    const store = new LocalDirStore(storeDir);
    let m;
    try {
      await fillCompressible(log, 6000);
      m = await new BackupManager({ log, dataDir: dir, store, compression: 'zstd', logger: quietLogger() }).createFull();
    } finally {
      await log.close();
    }
    const files = m.files.filter((f) => f.kind === 'events');
    expect(files.reduce((n, f) => n + f.size, 0)).toBeLessThan(files.reduce((n, f) => n + f.raw_size!, 0) / 4);
    const needed = restoreSpaceNeeded(planRestore({ manifests: [m], segments: await loadSegments(store) }, { backupId: m.backup_id }));
    expect(needed).toBeGreaterThan(4 * 1024 * 1024); // twice the records

    // The target: a small data dir of its own on a 3 MiB tmpfs.
    const disk = mountTmpfs(3 * 1024) as string;
    const target = path.join(disk, 'data');
    const own = await EventLog.open({ dir: target, logger: quietLogLogger });
    await fillCompressible(own, 20);
    await own.close();
    const before = hashDir(target);
    const staging = (): string[] => fs.readdirSync(disk).filter((n) => n !== 'data');

    // 1. Refused up front, the dry run too: the manifest's raw sizes say it cannot fit.
    for (const dryRun of [true, false]) {
      const err = await restore({ store, dataDir: target, backupId: m.backup_id, force: true, dryRun }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isBackupError(err, 'BACKUP_NO_SPACE'), String(err)).toBe(true);
      expect((err as { details: { neededBytes: number; freeBytes: number } }).details).toMatchObject({ neededBytes: needed });
      expect((err as { details: { freeBytes: number } }).details.freeBytes).toBeLessThan(needed);
      expect((err as Error).message).toMatch(/nothing was changed/);
      expect(hashDir(target)).toBe(before);
      expect(staging()).toEqual([]);
    }

    // A deep verify that would restore onto that disk: not a bad backup (no report), BACKUP_NO_SPACE.
    const mgr = new BackupManager({ log, dataDir: dir, store, logger: quietLogger() });
    await expect(mgr.verify(m.backup_id, { deep: true, scratchDir: disk })).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_NO_SPACE'));
    expect(staging()).toEqual([]);
    expect(await mgr.verify(m.backup_id, { deep: true, scratchDir: tempDir() })).toMatchObject({ ok: true, deep: { events: 6001 } });

    // 2. A backup written before raw sizes were recorded: the check counts its stored (compressed)
    // size, lets it start, and the disk fills mid-way. The target is untouched, the partial restore gone.
    const mk = path.join(storeDir, ...manifestKey(m.backup_id).split('/'));
    const raw = JSON.parse(fs.readFileSync(mk, 'utf8')) as { files: { raw_size?: number }[] };
    for (const f of raw.files) delete f.raw_size;
    fs.writeFileSync(mk, JSON.stringify(raw));
    const freeBefore = freeBytes(disk)!;
    const err = await restore({ store, dataDir: target, backupId: m.backup_id, force: true }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isBackupError(err, 'BACKUP_NO_SPACE'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/ran out of space .* is untouched and the partial restore was removed/);
    expect(hashDir(target)).toBe(before);
    expect(staging()).toEqual([]);
    expect(freeBytes(disk)).toBe(freeBefore);

    // 3. With room, the same restore completes over the old data dir.
    resize(disk, 16 * 1024);
    const rep = await restore({ store, dataDir: target, backupId: m.backup_id, force: true });
    expect([rep.seq, rep.headHash, rep.vectorCount]).toEqual([6001, m.head_hash, 6000]);
    expect(staging()).toEqual([]);
  });

  it.skipIf(skip !== undefined)(title('continuous backup onto a full local store: uploads fail and retry without piling up temp files, lag shows it; with room it catches up with no gap or duplicate'), async () => {
    const disk = mountTmpfs(512) as string;
    const { log } = await openLog();
    const store = new LocalDirStore(disk);
    const registry = new Registry();
    const lines: string[] = [];
    const cb = new ContinuousBackup({ log, store, compression: 'none', intervalMs: 20, maxBatchEvents: 1000, retryBaseDelayMs: 10, retryMaxDelayMs: 40, registry, logger: quietLogger(lines) });
    try {
      await cb.start();
      await fillCompressible(log, 4000); // ~1.5 MB of records onto 512 KiB
      await until(() => lines.filter((l) => l.includes('upload failed')).length >= 5, 30_000, 'uploads failing on the full disk');
      const stuck = cb.status();
      expect(stuck.lagEvents).toBeGreaterThan(0);
      expect(stuck.lastError).toMatch(/disk is full/);
      // Each failed attempt removed its temp file: at most the one being written now.
      expect(filesUnder(disk).filter((f) => f.includes('.tmp-')).length).toBeLessThanOrEqual(1);
      resize(disk, 8 * 1024);
      await cb.waitForShipped(log.head().seq);
      expect(cb.status()).toMatchObject({ shippedSeq: log.head().seq, lagEvents: 0 });
    } finally {
      await cb.stop();
    }
    expect(filesUnder(disk).filter((f) => f.includes('.tmp-'))).toEqual([]);
    expect(await verifySegments(store)).toMatchObject({ ok: true, gaps: [], overlaps: [], missing: [], contiguousTo: log.head().seq });
    const r = await restore({ store, dataDir: path.join(tempDir(), 'pitr'), pointInTime: log.head().ts });
    expect([r.seq, r.headHash]).toEqual([log.head().seq, toHex(log.head().hash)]);
    await log.close();
  });
});
