import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BackupManager, LocalDirStore, decodeSegment, isBackupError, parseKey, restore, sha256Hex, type BackupErrorCode, type BackupManifest } from '@kyrodb/backup';
import { checkRecord } from '@kyrodb/log';
import { created, fill, hashDir, openLog, quietLogger, siblings, tempDir } from './helpers.js';

const KEY = parseKey('22'.repeat(32));
const WRONG = parseKey('33'.repeat(32));

interface Fixture {
  storeDir: string;
  store: LocalDirStore;
  full: BackupManifest;
  inc: BackupManifest;
}

async function fixture(o: { encrypted?: boolean; compression?: 'zstd' | 'none' } = {}): Promise<Fixture> {
  const { log, dir } = await openLog();
  await log.append([created('c', 8)]);
  await fill(log, 600, { ids: 400 });
  const storeDir = tempDir();
  const store = new LocalDirStore(storeDir);
  const mgr = new BackupManager({ log, dataDir: dir, store, eventsPerFile: 200, logger: quietLogger(), compression: o.compression ?? 'zstd', ...(o.encrypted === true ? { encryption: KEY } : {}) });
  const full = await mgr.createFull();
  await fill(log, 100, { seed: 5000 });
  const inc = await mgr.createIncremental();
  await log.close();
  return { storeDir, store, full, inc };
}

function file(f: Fixture, key: string): string {
  return path.join(f.storeDir, ...key.split('/'));
}

/** A target that exists with content (restored over with force) and one that does not exist. */
/** Writes `b` as the full backup's file `i` and records its SHA-256 in the manifest, so only deeper checks can catch what was changed. */
function writeWithChecksum(f: Fixture, i: number, b: Buffer): void {
  fs.writeFileSync(file(f, f.full.files[i]!.key), b);
  const mk = file(f, `backups/${f.full.backup_id}/manifest.json`);
  const m = JSON.parse(fs.readFileSync(mk, 'utf8')) as BackupManifest;
  m.files[i]!.sha256 = sha256Hex(b);
  fs.writeFileSync(mk, JSON.stringify(m));
}

function targets(): { existing: string; absent: string } {
  const root = tempDir();
  const existing = path.join(root, 'data');
  fs.mkdirSync(path.join(existing, 'checkpoints', '0000000000000001'), { recursive: true });
  fs.writeFileSync(path.join(existing, 'log.mdb'), 'precious');
  fs.writeFileSync(path.join(existing, 'checkpoints', '0000000000000001', 'x'), 'y');
  return { existing, absent: path.join(root, 'absent') };
}

async function expectRefused(f: Fixture, code: BackupErrorCode, o: { backupId?: string; key?: typeof KEY } = {}): Promise<void> {
  const mgr = new BackupManager({ log: undefined as never, dataDir: '/nonexistent', store: f.store, logger: quietLogger(), ...(o.key ? { encryption: o.key } : {}) });
  const v = await mgr.verify(o.backupId ?? f.inc.backup_id);
  expect(v.ok).toBe(false);
  expect(v.code).toBe(code);
  const { existing, absent } = targets();
  const before = hashDir(existing);
  const common = { store: f.store, ...(o.key ? { encryption: o.key } : {}), backupId: o.backupId ?? f.inc.backup_id };
  await expect(restore({ ...common, dataDir: existing, force: true })).rejects.toSatisfy((e) => isBackupError(e, code));
  await expect(restore({ ...common, dataDir: absent })).rejects.toSatisfy((e) => isBackupError(e, code));
  // The same through the codec worker (large restores): the error crosses the thread with its code.
  await expect(restore({ ...common, dataDir: existing, force: true, codecThread: 'worker' })).rejects.toSatisfy((e) => isBackupError(e, code));
  expect(hashDir(existing)).toBe(before);
  expect(fs.existsSync(absent)).toBe(false);
  expect(siblings(existing)).toEqual([]); // no staging or pre-restore dirs left behind
}

describe('bad backups are refused with a code naming the problem; the data dir is untouched', () => {
  it('a flipped byte → BACKUP_CHECKSUM_MISMATCH', async () => {
    const f = await fixture();
    const k = f.full.files[1]!.key;
    const b = fs.readFileSync(file(f, k));
    b[Math.floor(b.length / 2)]! ^= 0x01;
    fs.writeFileSync(file(f, k), b);
    await expectRefused(f, 'BACKUP_CHECKSUM_MISMATCH');
  });

  it('a truncated file → BACKUP_CHECKSUM_MISMATCH', async () => {
    const f = await fixture({ encrypted: true });
    const k = f.inc.files[0]!.key;
    const b = fs.readFileSync(file(f, k));
    fs.writeFileSync(file(f, k), b.subarray(0, b.length - 7));
    await expectRefused(f, 'BACKUP_CHECKSUM_MISMATCH', { key: KEY });
  });

  it('a missing file → BACKUP_FILE_MISSING', async () => {
    const f = await fixture();
    fs.rmSync(file(f, f.full.files[2]!.key));
    await expectRefused(f, 'BACKUP_FILE_MISSING');
  });

  it('a missing manifest → BACKUP_MANIFEST_MISSING (and the backup is not listed)', async () => {
    const f = await fixture();
    fs.rmSync(file(f, `backups/${f.inc.backup_id}/manifest.json`));
    await expectRefused(f, 'BACKUP_MANIFEST_MISSING');
    const mgr = new BackupManager({ log: undefined as never, dataDir: '/x', store: f.store, logger: quietLogger() });
    expect((await mgr.list()).map((m) => m.backup_id)).toEqual([f.full.backup_id]);
  });

  it('a damaged manifest → that backup is BACKUP_MANIFEST_INVALID; every other backup still lists, verifies and restores; retention deletes nothing', async () => {
    const f = await fixture();
    // A second, independent full backup: the damaged incremental is not in its chain.
    const { log, dir } = await openLog();
    await log.append([created('d', 8)]);
    await fill(log, 50, { collection: 'd', seed: 77 });
    // (Backed up elsewhere and copied in: a backup of another history is refused in this store.)
    const otherDir = tempDir();
    const other = await new BackupManager({ log, dataDir: dir, store: new LocalDirStore(otherDir), logger: quietLogger() }).createFull();
    await log.close();
    fs.cpSync(path.join(otherDir, 'backups', other.backup_id), file(f, `backups/${other.backup_id}`), { recursive: true });
    fs.writeFileSync(file(f, `backups/${f.inc.backup_id}/manifest.json`), '{"backup_id": "half-written');
    await expectRefused(f, 'BACKUP_MANIFEST_INVALID');
    const lines: string[] = [];
    const mgr = new BackupManager({ log: undefined as never, dataDir: '/x', store: f.store, logger: quietLogger(lines) });
    expect((await mgr.list()).map((m) => m.backup_id).sort()).toEqual([f.full.backup_id, other.backup_id].sort());
    expect(lines.join('\n')).toContain(`backup ${f.inc.backup_id} cannot be used`);
    expect((await mgr.verify(f.full.backup_id)).ok).toBe(true);
    const restored = await restore({ store: f.store, dataDir: path.join(tempDir(), 'data'), backupId: other.backup_id });
    expect([restored.seq, restored.headHash]).toEqual([other.to_seq, other.head_hash]);
    // Its range and parent are unknown, so retention would not know what it needs: it refuses, with nothing deleted.
    const before = hashDir(f.storeDir);
    await expect(mgr.prune({ retentionDays: 0 })).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_MANIFEST_INVALID'));
    expect(hashDir(f.storeDir)).toBe(before);
  });

  it('a wrong key → BACKUP_DECRYPT_FAILED; no key → BACKUP_KEY_REQUIRED', async () => {
    const f = await fixture({ encrypted: true });
    await expectRefused(f, 'BACKUP_DECRYPT_FAILED', { key: WRONG });
    await expectRefused(f, 'BACKUP_KEY_REQUIRED');
  });

  it('a broken incremental chain: parent gone → BACKUP_CHAIN_GAP', async () => {
    const f = await fixture();
    fs.rmSync(path.join(f.storeDir, 'backups', f.full.backup_id), { recursive: true });
    await expectRefused(f, 'BACKUP_CHAIN_GAP');
  });

  it('a broken incremental chain: hash link altered → BACKUP_CHAIN_BROKEN', async () => {
    const f = await fixture();
    const mk = file(f, `backups/${f.inc.backup_id}/manifest.json`);
    const m = JSON.parse(fs.readFileSync(mk, 'utf8')) as BackupManifest;
    m.prev_hash = 'ff'.repeat(32);
    fs.writeFileSync(mk, JSON.stringify(m));
    await expectRefused(f, 'BACKUP_CHAIN_BROKEN');
  });

  it('an altered record with its checksum recomputed is still caught by the hash chain → BACKUP_CHAIN_BROKEN', async () => {
    const f = await fixture({ compression: 'none' });
    const fk = f.full.files[1]!;
    const b = fs.readFileSync(file(f, fk.key));
    b[b.length - 20]! ^= 0x40; // inside the last record's payload (its vector bytes)
    writeWithChecksum(f, 1, b);
    await expectRefused(f, 'BACKUP_CHAIN_BROKEN');
  });

  it('an altered record re-hashed to a hash of its own no longer links to the next → BACKUP_CHAIN_BROKEN', async () => {
    // Each record then verifies by itself (the codec's check passes); only the link check at the import can refuse it.
    const f = await fixture({ compression: 'none' });
    const fk = f.full.files[1]!;
    const b = fs.readFileSync(file(f, fk.key));
    const rec = decodeSegment(b).entries[100]!.record; // a view into b, mid-file
    rec[rec.length - 4]! ^= 0x40; // a vector byte
    createHash('sha256').update(rec.subarray(0, 32)).update(rec.subarray(64)).digest().copy(rec, 32);
    expect(() => checkRecord(rec)).not.toThrow();
    writeWithChecksum(f, 1, b);
    await expectRefused(f, 'BACKUP_CHAIN_BROKEN');
  });

  it('an unknown backup id → BACKUP_NOT_FOUND', async () => {
    const f = await fixture();
    await expectRefused(f, 'BACKUP_NOT_FOUND', { backupId: 'nope' });
  });
});

describe('segment chains with holes', () => {
  it('verifySegments reports gaps, overlaps and missing objects; PITR across a gap is BACKUP_CHAIN_GAP and the target is untouched', async () => {
    const { ContinuousBackup, verifySegments, loadSegments } = await import('@kyrodb/backup');
    const { log } = await openLog();
    await log.append([created('c', 8)]);
    const storeDir = tempDir();
    const store = new LocalDirStore(storeDir);
    const cb = new ContinuousBackup({ log, store, intervalMs: 5, maxBatchEvents: 50, logger: quietLogger() });
    await cb.start();
    await fill(log, 400, { batch: 50 });
    await cb.waitForShipped(log.head().seq);
    await cb.stop();
    const segs = await loadSegments(store);
    expect(segs.length).toBeGreaterThanOrEqual(4);
    const hole = segs[2]!;
    fs.rmSync(file({ storeDir } as Fixture, hole.key));
    // An overlapping extra segment (what a buggy writer would leave): copy of the last one under a wider key.
    const last = segs[segs.length - 1]!;
    const rep = await verifySegments(store);
    expect(rep.ok).toBe(false);
    expect(rep.gaps).toEqual([{ from: hole.first_seq, to: hole.last_seq }]);
    expect(rep.contiguousTo).toBe(segs[1]!.last_seq);
    const overlapKey = `segments/${String(last.first_seq - 1).padStart(16, '0')}-${String(last.last_seq).padStart(16, '0')}`;
    await store.put(overlapKey, Buffer.from('x'));
    expect((await verifySegments(store)).overlaps.length).toBeGreaterThan(0);
    await store.delete(overlapKey);
    const { existing } = targets();
    const before = hashDir(existing);
    // T after the hole: refused. T before it: fine.
    await expect(restore({ store, dataDir: existing, force: true, pointInTime: log.head().ts })).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_CHAIN_GAP'));
    expect(hashDir(existing)).toBe(before);
    expect(siblings(existing)).toEqual([]);
    // (T = the ts of the last event before the hole is refused too: the missing events may share it.)
    const early = log.get(segs[1]!.last_seq)!.ts - 1;
    const ok = await restore({ store, dataDir: path.join(tempDir(), 'ok'), pointInTime: early });
    expect(ok.seq).toBe(log.seqAtTime(early));
    await log.close();
  });

  it('progress callbacks report phases with done ≤ total', async () => {
    const { log, dir } = await openLog();
    await log.append([created('c', 8)]);
    await fill(log, 300);
    const seen: { phase: string; done: number; total: number }[] = [];
    const store = new LocalDirStore(tempDir());
    const mgr = new BackupManager({ log, dataDir: dir, store, eventsPerFile: 100, logger: quietLogger(), onProgress: (p) => seen.push(p) });
    await mgr.createFull();
    await restore({ store, dataDir: path.join(tempDir(), 'r'), onProgress: (p) => seen.push(p) });
    expect(new Set(seen.map((p) => p.phase))).toEqual(new Set(['events', 'download', 'import']));
    for (const p of seen) expect(p.done).toBeLessThanOrEqual(p.total);
    expect(seen.filter((p) => p.phase === 'events').at(-1)).toEqual({ phase: 'events', done: 301, total: 301 });
    await log.close();
  });
});
