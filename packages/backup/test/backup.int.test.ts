import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { EventLog, Failpoints, encodeFrame, listSegments, readSegments, segmentName, toHex, walDirOf } from '@kyrodb/log';
import { BackupManager, ContinuousBackup, LocalDirStore, isBackupError, loadKey, parseKey, restore, withPreviousKeys, type ObjectStore } from '@kyrodb/backup';
import { Projections } from '@kyrodb/projections';
import { created, del, fill, filledLog, hashDir, openLog, quietLogger, S3Server, s3Store, siblings, tempDir, until, upsert, vec } from './helpers.js';

const s3 = new S3Server();
beforeAll(async () => {
  await s3.start();
});
afterAll(async () => {
  await s3.stop();
});

const KEY = parseKey('11'.repeat(32));

async function metric(r: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await r.getMetricsAsJSON()).find((x) => x.name === name);
  const v = (m?.values as { value: number; labels: Record<string, string> }[] | undefined)?.find((s) => Object.entries(labels).every(([k, x]) => s.labels[k] === x));
  return v?.value ?? 0;
}

describe.each([
  ['local, zstd, plain', (): ObjectStore => new LocalDirStore(tempDir() + '/store'), 'zstd' as const, undefined],
  ['local, none, encrypted', (): ObjectStore => new LocalDirStore(tempDir() + '/store'), 'none' as const, KEY],
  ['s3rver, zstd, encrypted', (): ObjectStore => s3Store(s3.endpoint, `bk-${Math.random().toString(36).slice(2)}`), 'zstd' as const, KEY],
])('full + incremental backup and restore: %s', (_n, makeStore, compression, encryption) => {
  it('restores exactly events 1..S with the same hashes and vector count; incrementals chain', async () => {
    const { log, dir } = await openLog();
    await log.append([created('c', 8)]);
    await fill(log, 1200, { ids: 700, batch: 97 });
    await log.append([del('d3'), del('d4')]);
    const store = makeStore();
    const registry = new Registry();
    const mgr = new BackupManager({ log, dataDir: dir, store, registry, compression, ...(encryption ? { encryption } : {}), eventsPerFile: 500, logger: quietLogger() });
    const full = await mgr.createFull({ tag: 'before-migration', description: 'first' });
    expect(full.type).toBe('full');
    expect(full.to_seq).toBe(log.head().seq);
    expect(full.head_hash).toBe(toHex(log.head().hash));
    expect(full.vector_count).toBe(698);
    expect(full.files.filter((f) => f.kind === 'events')).toHaveLength(3);
    expect(full.encryption).toEqual(encryption ? { algorithm: 'aes-256-gcm', key_id: encryption.keyId } : null);
    await fill(log, 300, { ids: 1000, seed: 600 }); // some overwrite, some new
    await log.append([del('d0'), created('other', 4), upsert('o1', 1, 'other', 4)]);
    const inc = await mgr.createIncremental();
    expect(inc.parent).toBe(full.backup_id);
    expect(inc.from_seq).toBe(full.to_seq + 1);
    expect(inc.prev_hash).toBe(full.head_hash);
    const inc2 = await mgr.createIncremental(); // nothing new: an empty incremental
    expect(inc2.event_count).toBe(0);
    const listed = await mgr.list();
    expect(listed.map((m) => m.backup_id)).toEqual([inc2.backup_id, inc.backup_id, full.backup_id]);
    expect(listed.find((m) => m.tag === 'before-migration')?.description).toBe('first');
    // The live count the manifest claims, by replay of the source log.
    const live = new Map<string, Set<string>>();
    for (const e of log.read()) {
      if (e.type === 'collection.created') live.set(e.collection, new Set());
      else if (e.type === 'collection.dropped') live.delete(e.collection);
      else if (e.type === 'vector.upserted') live.get(e.collection)?.add(e.body.id);
      else live.get(e.collection)?.delete(e.body.id);
    }
    expect(inc.vector_count).toBe([...live.values()].reduce((n, s) => n + s.size, 0));

    const v = await mgr.verify('latest', { deep: true });
    expect(v).toMatchObject({ ok: true, chain: [full.backup_id, inc.backup_id, inc2.backup_id] });
    expect(v.deep?.probeHits).toBe(v.deep?.probes);
    expect(v.deep?.indexProbeHits).toBe(v.deep?.probes);
    // The restored write-ahead segments (what a crash rebuilds LMDB from) hold the whole chain.
    expect(v.deep?.segmentEvents).toBe(log.head().seq);

    const target = path.join(tempDir(), 'restored');
    const r = await restore({ store, dataDir: target, registry, ...(encryption ? { encryption } : {}) });
    expect(r.seq).toBe(log.head().seq);
    const back = await EventLog.open({ dir: target, readOnly: true });
    const a = [...log.readRecords()].map((x) => x.record.toString('hex'));
    const b = [...back.readRecords()].map((x) => x.record.toString('hex'));
    expect(b).toEqual(a);
    expect(back.verify().ok).toBe(true);
    await back.close();
    // By tag: the full backup only.
    const t2 = path.join(tempDir(), 'bytag');
    const rt = await restore({ store, dataDir: t2, tag: 'before-migration', ...(encryption ? { encryption } : {}) });
    expect(rt.seq).toBe(full.to_seq);
    expect(rt.vectorCount).toBe(698);
    expect(await metric(registry, 'backup_success_total', { type: 'full' })).toBe(1);
    expect(await metric(registry, 'backup_success_total', { type: 'incremental' })).toBe(2);
    expect(await metric(registry, 'restore_success_total')).toBe(1);
    await log.close();
  });
});

describe('incremental backup of documents with long histories', () => {
  it('counts each document it touches from its last write before the range, never replaying its whole history; the counts are right', async () => {
    const { log, dir } = await openLog();
    await log.append([created('c', 8)]);
    await fill(log, 2000, { ids: 40, batch: 200 }); // 40 documents, 50 writes each
    await log.append([del('d3'), created('c', 8)]); // a delete, and a repeated create (changes nothing)
    const store = new LocalDirStore(tempDir());
    await new BackupManager({ log, dataDir: dir, store, logger: quietLogger() }).createFull();
    await fill(log, 40, { ids: 40, seed: 5000 }); // every document once more; d3 comes back
    // The log as the incremental sees it, but a document's history (not its collection's) is off limits.
    const histories: string[] = [];
    const guarded = new Proxy(log, {
      get(target, prop) {
        if (prop === 'history') {
          return (c: string, id: string, before?: number) => {
            if (id !== '') histories.push(id);
            return target.history(c, id, before);
          };
        }
        const v: unknown = Reflect.get(target, prop, target);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const inc = await new BackupManager({ log: guarded, dataDir: dir, store, logger: quietLogger() }).createIncremental();
    expect(histories).toEqual([]);
    expect(inc.vector_count).toBe(40);
    expect(inc.collections).toEqual({ c: 40 });
    const r = await restore({ store, dataDir: path.join(tempDir(), 'data') });
    expect(r.vectorCount).toBe(40);
    await log.close();
  });
});

describe('backup details', () => {
  it('the codec worker (large jobs) writes the same files and restores the same data as inline', async () => {
    // Small write-ahead segments: a full backup reads them (two buffers, reused), and its files
    // of 250 events start and end inside their frames and segments.
    const { log, dir } = await openLog(undefined, 32 * 1024);
    await log.append([created('c', 8), created('o', 4)]);
    await fill(log, 900, { ids: 500, batch: 61 });
    await log.append([del('d1'), del('d2'), upsert('x', 1, 'o', 4), upsert('bad-dim', 2, 'o', 8)]);
    await fill(log, 300, { ids: 700, seed: 77 });
    expect(listSegments(walDirOf(dir)).length).toBeGreaterThan(4);
    const mid = log.get(Math.floor(log.head().seq / 2))!.ts;
    const backup = async (codecThread: 'inline' | 'worker', encryption?: typeof KEY): Promise<{ store: ObjectStore; m: Awaited<ReturnType<BackupManager['createFull']>> }> => {
      const store = new LocalDirStore(tempDir() + '/store');
      const mgr = new BackupManager({ log, dataDir: dir, store, eventsPerFile: 250, codecThread, ...(encryption ? { encryption } : {}), logger: quietLogger() });
      return { store, m: await mgr.createFull() };
    };
    const inline = await backup('inline');
    const worker = await backup('worker');
    expect(worker.m.files.map((f) => [f.key.split('/').pop(), f.size, f.sha256])).toEqual(inline.m.files.map((f) => [f.key.split('/').pop(), f.size, f.sha256]));
    expect([worker.m.vector_count, worker.m.collections]).toEqual([inline.m.vector_count, inline.m.collections]);
    const live = new Map<string, Set<string>>();
    for (const e of log.read()) {
      if (e.type === 'collection.created') live.set(e.collection, new Set());
      else if (e.type === 'vector.upserted' && e.body.vector.length === (e.collection === 'c' ? 8 : 4)) live.get(e.collection)?.add(e.body.id);
      else if (e.type === 'vector.deleted') live.get(e.collection)?.delete(e.body.id);
    }
    expect(worker.m.collections).toEqual({ c: live.get('c')!.size, o: live.get('o')!.size });
    const records = [...log.readRecords()].map((x) => x.record.toString('hex'));
    for (const codecThread of ['inline', 'worker'] as const) {
      const target = path.join(tempDir(), 'r');
      const r = await restore({ store: worker.store, dataDir: target, codecThread });
      expect([r.seq, r.headHash, r.vectorCount]).toEqual([log.head().seq, toHex(log.head().hash), inline.m.vector_count]);
      expect(r.phasesMs.import).toBeGreaterThan(0);
      const back = await EventLog.open({ dir: target, readOnly: true });
      expect([...back.readRecords()].map((x) => x.record.toString('hex'))).toEqual(records);
      await back.close();
    }
    const pitr = await Promise.all((['inline', 'worker'] as const).map((codecThread) => restore({ store: inline.store, dataDir: path.join(tempDir(), 'p'), pointInTime: mid, codecThread })));
    expect(pitr[1]).toMatchObject({ seq: pitr[0]!.seq, headHash: pitr[0]!.headHash, vectorCount: pitr[0]!.vectorCount, headTs: pitr[0]!.headTs });
    expect(pitr[0]!.seq).toBe(log.seqAtTime(mid));
    // Encrypted through the worker both ways.
    const enc = await backup('worker', KEY);
    const r = await restore({ store: enc.store, dataDir: path.join(tempDir(), 'e'), encryption: KEY, codecThread: 'worker' });
    expect([r.seq, r.vectorCount]).toEqual([log.head().seq, inline.m.vector_count]);
    await log.close();
  });

  it('a file larger than a write-ahead frame: its frames are built in its own bytes, one after another, inline and through the worker', async () => {
    // ~9k events of 512 dims (~2.2 KB each, ~20 MB): one events file, opened into three frames of ~8 MiB in place.
    const { log, dir } = await openLog();
    await log.append([created('c', 512)]);
    await fill(log, 9000, { dim: 512, ids: 7000, batch: 500 });
    await log.append([del('d3'), del('d4')]);
    const records = [...log.readRecords()].map((x) => x.record.toString('hex'));
    const mid = log.get(5000)!.ts;
    for (const compression of ['zstd', 'none'] as const) {
      const store = new LocalDirStore(tempDir() + '/store');
      const m = await new BackupManager({ log, dataDir: dir, store, compression, logger: quietLogger() }).createFull();
      expect(m.files.filter((f) => f.kind === 'events').length).toBe(1);
      for (const codecThread of ['inline', 'worker'] as const) {
        const target = path.join(tempDir(), 'r');
        const r = await restore({ store, dataDir: target, codecThread });
        expect([r.seq, r.headHash, r.vectorCount]).toEqual([log.head().seq, toHex(log.head().hash), 6998]);
        const back = await EventLog.open({ dir: target, readOnly: true });
        expect([...back.readRecords()].map((x) => x.record.toString('hex'))).toEqual(records);
        await back.close();
        // The write-ahead segments hold every record: each frame's CRC (taken piece by piece as the
        // frame was built) verifies, else the reading stops at that frame.
        expect([...readSegments(walDirOf(target), 1)].map((x) => Buffer.from(x.record).toString('hex'))).toEqual(records);
        // A point in time inside the file: the frames stop at it.
        const p = await restore({ store, dataDir: path.join(tempDir(), 'p'), pointInTime: mid, codecThread });
        expect(p.seq).toBe(log.seqAtTime(mid));
      }
    }
    await log.close();
  });

  it('through the worker, later sources are decompressed into the memory of earlier ones once the import is done with them, and read into memory the worker is done with; every record arrives intact', async () => {
    // 40k events of 128 dims in files of 2500 (~1.6 MB decompressed, ~1.3 MB stored: enough to be reused):
    // imports of 12.5k records span several files, so a file's memory goes back to the worker
    // while later files are still to be opened. A file reused too early would show as records
    // from another file (or empty ones) in LMDB and in the write-ahead segments.
    const { log, dir } = await openLog();
    await log.append([created('c', 128)]);
    await fill(log, 40_000, { dim: 128, ids: 30_000, batch: 2000 });
    const records = [...log.readRecords()].map((x) => x.record.toString('hex'));
    const store = new LocalDirStore(tempDir() + '/store');
    const m = await new BackupManager({ log, dataDir: dir, store, eventsPerFile: 2500, logger: quietLogger() }).createFull();
    expect(m.files.filter((f) => f.kind === 'events').length).toBe(17);
    for (const codecThread of ['worker', 'inline'] as const) {
      const target = path.join(tempDir(), 'r');
      const r = await restore({ store, dataDir: target, codecThread });
      expect([r.seq, r.headHash, r.vectorCount]).toEqual([log.head().seq, toHex(log.head().hash), m.vector_count]);
      if (codecThread === 'worker') {
        expect(r.reused.bodies).toBeGreaterThan(0);
        expect(r.reused.reads).toBeGreaterThan(0);
      } else expect(r.reused).toEqual({ bodies: 0, reads: 0 });
      const back = await EventLog.open({ dir: target, readOnly: true });
      expect([...back.readRecords()].map((x) => x.record.toString('hex'))).toEqual(records);
      expect(back.verify({}).ok).toBe(true);
      await back.close();
      expect([...readSegments(walDirOf(target), 1)].map((x) => Buffer.from(x.record).toString('hex'))).toEqual(records);
    }
    await log.close();
  });

  it('copies the newest checkpoint ≤ S and restores it into checkpoints/<seq>/', async () => {
    const { log, dir } = await openLog();
    await log.append([created('c', 8)]);
    await fill(log, 50);
    for (const [seq, body] of [[10, 'ten'], [40, 'forty'], [999, 'future']] as const) {
      fs.mkdirSync(path.join(dir, 'checkpoints', String(seq), 'sub'), { recursive: true });
      fs.writeFileSync(path.join(dir, 'checkpoints', String(seq), 'catalog.json'), body);
      fs.writeFileSync(path.join(dir, 'checkpoints', String(seq), 'sub', 'index.bin'), Buffer.alloc(1000, seq));
    }
    const store = new LocalDirStore(tempDir());
    const mgr = new BackupManager({ log, dataDir: dir, store, logger: quietLogger() });
    const m = await mgr.createFull();
    expect(m.checkpoint_seq).toBe(40);
    const target = path.join(tempDir(), 'r');
    const r = await restore({ store, dataDir: target });
    expect(r.checkpointSeq).toBe(40);
    expect(fs.readFileSync(path.join(target, 'checkpoints', '40', 'catalog.json'), 'utf8')).toBe('forty');
    expect(fs.readFileSync(path.join(target, 'checkpoints', '40', 'sub', 'index.bin')).equals(Buffer.alloc(1000, 40))).toBe(true);
    await log.close();
  });

  it('the checkpoint is copied beside the import: kept only when ≤ the restored seq; a damaged one is left out with a warning, never failing the restore', async () => {
    const { log, dir } = await openLog();
    await log.append([created('c', 8)]);
    await fill(log, 60, { batch: 1 });
    const T = log.get(20)!.ts;
    const atT = log.seqAtTime(T);
    expect(atT).toBeLessThan(40);
    fs.mkdirSync(path.join(dir, 'checkpoints', '40'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'checkpoints', '40', 'index.bin'), Buffer.alloc(5000, 7));
    const storeDir = tempDir();
    const store = new LocalDirStore(storeDir);
    const m = await new BackupManager({ log, dataDir: dir, store, logger: quietLogger() }).createFull();
    expect(m.checkpoint_seq).toBe(40);
    // PITR to before the checkpoint: restored without it, and no checkpoints dir is left behind.
    const early = path.join(tempDir(), 'early');
    const re = await restore({ store, dataDir: early, pointInTime: T });
    expect([re.seq, re.checkpointSeq]).toEqual([atT, null]);
    expect(fs.existsSync(path.join(early, 'checkpoints'))).toBe(false);
    // A flipped byte in the checkpoint: the full restore has every event without it, and says so; the early PITR does not need it.
    const cpFile = path.join(storeDir, ...m.files.find((f) => f.kind === 'checkpoint')!.key.split('/'));
    const b = fs.readFileSync(cpFile);
    b[3]! ^= 0x10;
    fs.writeFileSync(cpFile, b);
    for (const codecThread of ['inline', 'worker'] as const) {
      const root = tempDir();
      const warned: string[] = [];
      const r = await restore({ store, dataDir: path.join(root, 'data'), codecThread, logger: (_l, msg) => warned.push(msg) });
      expect([r.seq, r.headHash, r.checkpointSeq]).toEqual([m.to_seq, m.head_hash, null]);
      expect(warned.join('\n')).toMatch(/the backup's checkpoint \(seq 40\) cannot be used: .*SHA-256.*Restored without it/);
      expect(fs.readdirSync(root)).toEqual(['data']);
      expect(fs.existsSync(path.join(root, 'data', 'checkpoints'))).toBe(false);
    }
    expect((await new BackupManager({ log, dataDir: dir, store, logger: quietLogger() }).verify(m.backup_id)).code).toBe('BACKUP_CHECKSUM_MISMATCH');
    const early2 = await restore({ store, dataDir: path.join(tempDir(), 'early2'), pointInTime: T });
    expect([early2.seq, early2.checkpointSeq]).toEqual([atT, null]);
    await log.close();
  });

  it('backs up from a read-only log while the writer keeps appending', async () => {
    const { log, dir } = await openLog();
    await log.append([created('c', 8)]);
    await fill(log, 500);
    // another reader of the data dir sees acknowledged appends once the writer applied them, a few ms later
    const ro = await EventLog.open({ dir, readOnly: true, logger: () => undefined });
    await until(() => ro.head().seq === 501);
    const store = new LocalDirStore(tempDir());
    const mgr = new BackupManager({ log: ro, dataDir: dir, store, logger: quietLogger(), eventsPerFile: 100 });
    const writing = fill(log, 500, { seed: 1000 });
    const m = await mgr.createFull();
    await writing;
    await until(() => ro.head().seq === log.head().seq);
    expect(m.to_seq).toBeGreaterThanOrEqual(501);
    const v = await mgr.verify(m.backup_id);
    expect(v.ok).toBe(true);
    expect(toHex(log.get(m.to_seq)!.hash)).toBe(m.head_hash);
    const inc = await mgr.createIncremental();
    expect(inc.to_seq).toBe(log.head().seq);
    await ro.close();
    await log.close();
  });

  it('a long incremental (≥ 50k events) is read from the write-ahead segments, from inside a segment, and restores exactly', async () => {
    const { log, dir } = await openLog(undefined, 1024 * 1024);
    await log.append([created('c', 8)]);
    await fill(log, 10_003, { ids: 4_000, batch: 997 });
    const store = new LocalDirStore(tempDir());
    const mgr = new BackupManager({ log, dataDir: dir, store, eventsPerFile: 7_000, logger: quietLogger() });
    const full = await mgr.createFull();
    await fill(log, 52_000, { ids: 30_000, seed: 5_000, batch: 1_000 });
    await log.append([del('d7'), del('d5001')]);
    const inc = await mgr.createIncremental();
    expect(inc.from_seq).toBe(full.to_seq + 1);
    expect(inc.event_count).toBeGreaterThanOrEqual(50_000);
    expect(listSegments(walDirOf(dir)).length).toBeGreaterThan(3);
    // Its first record is inside a segment (frames before it in that segment are skipped).
    expect(listSegments(walDirOf(dir))).not.toContain(inc.from_seq);
    const ids = new Set<string>();
    for (const e of log.read()) if (e.type === 'vector.upserted') ids.add(e.body.id);
    else if (e.type === 'vector.deleted') ids.delete(e.body.id);
    expect(inc.vector_count).toBe(ids.size);
    const target = path.join(tempDir(), 'r');
    const r = await restore({ store, dataDir: target });
    expect([r.seq, r.headHash, r.vectorCount]).toEqual([log.head().seq, toHex(log.head().hash), ids.size]);
    const back = await EventLog.open({ dir: target, readOnly: true });
    const a = [...back.readRecords()].map((x) => x.record.toString('hex'));
    const b = [...log.readRecords()].map((x) => x.record.toString('hex'));
    expect(a.length).toBe(b.length);
    expect(a.every((x, i) => x === b[i])).toBe(true);
    await back.close();
    await log.close();
  }, 120_000);

  it('a data dir whose write-ahead segments and LMDB disagree at the head is not backed up: BACKUP_CHAIN_BROKEN, nothing stored', async () => {
    const { log, dir } = await openLog();
    await log.append([created('c', 8)]);
    await fill(log, 300, { batch: 50 });
    const head = log.head();
    await log.close();
    // The last record rewritten in the segments (its stored hash changed; the frames' CRCs made good).
    const wal = walDirOf(dir);
    const records = [...readSegments(wal, 1)].map((r) => Buffer.from(r.record));
    expect(records).toHaveLength(head.seq);
    records[records.length - 1]![40]! ^= 0xff;
    const file = path.join(wal, segmentName(listSegments(wal)[0]!));
    const size = fs.statSync(file).size;
    const frames = Buffer.concat([encodeFrame(records.slice(0, -1), 1), encodeFrame(records.slice(-1), head.seq)]);
    fs.writeFileSync(file, Buffer.concat([frames, Buffer.alloc(size - frames.length)]));
    const ro = await EventLog.open({ dir, readOnly: true, logger: () => undefined });
    const storeDir = tempDir();
    const mgr = new BackupManager({ log: ro, dataDir: dir, store: new LocalDirStore(storeDir), logger: quietLogger() });
    await expect(mgr.createFull()).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_CHAIN_BROKEN') && (e as Error).message.includes(`seq ${head.seq}`));
    expect(await new LocalDirStore(storeDir).list('')).toEqual([]);
    await ro.close();
  });

  it('restore refuses a target in use, a data dir without force, and anything that is not a data dir even with force; a dry run refuses the same', async () => {
    const { log, dir } = await filledLog(20);
    const storeDir = tempDir();
    const store = new LocalDirStore(storeDir);
    await new BackupManager({ log, dataDir: dir, store, logger: quietLogger() }).createFull();
    const refuses = async (dataDir: string, code: string, opts: { force?: boolean } = {}): Promise<void> => {
      for (const dryRun of [true, false]) await expect(restore({ store, dataDir, dryRun, ...opts })).rejects.toSatisfy((e) => isBackupError(e, code as never));
    };
    // In use: the source dir itself is held by this process's writer lock... by pid; use a child-held lock file.
    const inUse = path.join(tempDir(), 'inuse');
    fs.mkdirSync(inUse);
    fs.writeFileSync(path.join(inUse, 'kyrodb.lock'), String(process.ppid));
    const before = hashDir(inUse);
    await refuses(inUse, 'BACKUP_TARGET_IN_USE', { force: true });
    expect(hashDir(inUse)).toBe(before);
    // A live writer whose lock file was deleted by hand: still in use (its lock socket is bound).
    fs.rmSync(path.join(dir, 'kyrodb.lock'));
    await refuses(dir, 'BACKUP_TARGET_IN_USE', { force: true });
    // A dir of other files, or a file: never replaced, with or without force.
    const other = path.join(tempDir(), 'other');
    fs.mkdirSync(other);
    fs.writeFileSync(path.join(other, 'keep.txt'), 'mine');
    await refuses(other, 'BACKUP_TARGET_NOT_DATA_DIR');
    await refuses(other, 'BACKUP_TARGET_NOT_DATA_DIR', { force: true });
    expect(fs.readdirSync(other)).toEqual(['keep.txt']);
    const file = path.join(tempDir(), 'a-file');
    fs.writeFileSync(file, 'mine');
    await refuses(file, 'BACKUP_TARGET_NOT_DATA_DIR', { force: true });
    expect(fs.readFileSync(file, 'utf8')).toBe('mine');
    // Another program's data dir with a wal/ of its own (Prometheus has one) is not a KyroDB data dir.
    const prom = path.join(tempDir(), 'prometheus');
    fs.mkdirSync(path.join(prom, 'wal'), { recursive: true });
    fs.writeFileSync(path.join(prom, 'wal', '00000001'), 'theirs');
    fs.writeFileSync(path.join(prom, 'thesis.txt'), 'precious');
    await refuses(prom, 'BACKUP_TARGET_NOT_DATA_DIR', { force: true });
    fs.rmSync(path.join(prom, 'thesis.txt'));
    await refuses(prom, 'BACKUP_TARGET_NOT_DATA_DIR', { force: true }); // wal/00000001 is not a segment
    expect(fs.readFileSync(path.join(prom, 'wal', '00000001'), 'utf8')).toBe('theirs');
    // The backup store itself, a dir inside it, or a dir holding it.
    const storeBefore = hashDir(storeDir);
    await refuses(storeDir, 'BACKUP_TARGET_NOT_DATA_DIR', { force: true });
    await refuses(path.join(storeDir, 'restored'), 'BACKUP_TARGET_NOT_DATA_DIR', { force: true });
    await refuses(path.dirname(storeDir), 'BACKUP_TARGET_NOT_DATA_DIR', { force: true });
    expect(hashDir(storeDir)).toBe(storeBefore);
    // A data dir: refused without force; with force replaced, the previous dir kept only on request.
    const existing = path.join(tempDir(), 'existing');
    await restore({ store, dataDir: existing });
    const old = hashDir(existing);
    await refuses(existing, 'BACKUP_TARGET_EXISTS');
    expect(hashDir(existing)).toBe(old);
    const r = await restore({ store, dataDir: existing, force: true, keepPrevious: true });
    expect(r.previousDir).not.toBeNull();
    expect(hashDir(r.previousDir!)).toBe(old);
    // A data dir holding a file KyroDB does not write is not replaced either.
    fs.writeFileSync(path.join(existing, 'notes.txt'), 'mine');
    await refuses(existing, 'BACKUP_TARGET_NOT_DATA_DIR', { force: true });
    fs.rmSync(path.join(existing, 'notes.txt'));
    expect(siblings(existing).filter((s) => s.includes('staging'))).toEqual([]);
    // Through a symlink: the dir it points at is restored; the link stays a link.
    const link = path.join(tempDir(), 'link');
    fs.symlinkSync(existing, link);
    const viaLink = await restore({ store, dataDir: link, force: true });
    expect(viaLink.dataDir).toBe(fs.realpathSync(existing));
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    // Dry run: prints the plan, touches nothing.
    const dry = path.join(tempDir(), 'dry');
    const d = await restore({ store, dataDir: dry, dryRun: true });
    expect(d.plan).toContain('Restore backup');
    expect(d.exact).toBe(true);
    expect(d.vectorCount).toBe(20);
    expect(fs.existsSync(dry)).toBe(false);
    await log.close();
  });

  it('a data dir that appears at the target during a restore is not replaced without force: a server acknowledged writes there, or another restore finished first', async () => {
    const { log, dir } = await filledLog(20);
    const store = new LocalDirStore(tempDir());
    await new BackupManager({ log, dataDir: dir, store, logger: quietLogger() }).createFull();
    await log.close();
    const slowly = (): Failpoints => {
      const f = new Failpoints();
      f.set('wal.import', '1*delay(1500)');
      return f;
    };
    const staged = (target: string): boolean => siblings(target).some((n) => n.includes('staging'));
    // A server starts on the empty target while the restore imports, and acknowledges a write.
    const target = path.join(tempDir(), 'target');
    const restoring = restore({ store, dataDir: target, failpoints: slowly() });
    await until(() => staged(target), 10_000, 'the staging dir');
    const server = await EventLog.open({ dir: target });
    await server.append([created('theirs', 4)]);
    await server.close();
    const theirs = hashDir(target);
    await expect(restoring).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_TARGET_EXISTS') && /created during the restore/.test((e as Error).message));
    expect(hashDir(target)).toBe(theirs);
    expect(siblings(target)).toEqual([]);
    // With force, it is replaced (and kept aside on request).
    const forced = await restore({ store, dataDir: target, force: true, keepPrevious: true });
    expect(forced.seq).toBe(21);
    expect(hashDir(forced.previousDir!)).toBe(theirs);
    // Two restores into one new target at once: the first to finish is kept, the other refused.
    const twice = path.join(tempDir(), 'twice');
    const first = restore({ store, dataDir: twice, failpoints: slowly() });
    first.catch(() => undefined);
    await until(() => staged(twice), 10_000, 'the first staging dir');
    expect((await restore({ store, dataDir: twice })).seq).toBe(21);
    const second = hashDir(twice);
    await expect(first).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_TARGET_EXISTS'));
    expect(hashDir(twice)).toBe(second);
    expect(siblings(twice)).toEqual([]);
  });

  it('two copies of a data dir gone their own ways, taking incrementals on one parent at once: one is refused (BACKUP_LOG_DIVERGED) and stores nothing', async () => {
    const { log: a } = await filledLog(20);
    const storeDir = tempDir();
    const store = new LocalDirStore(storeDir);
    const full = await new BackupManager({ log: a, dataDir: 'a', store, logger: quietLogger() }).createFull();
    const dirB = path.join(tempDir(), 'b');
    await restore({ store, dataDir: dirB });
    const b = await EventLog.open({ dir: dirB, logger: () => undefined });
    await fill(a, 30, { seed: 100 });
    await fill(b, 30, { seed: 900 });
    const results = await Promise.allSettled([a, b].map((log) => new BackupManager({ log, dataDir: 'x', store, logger: quietLogger() }).createIncremental()));
    const ok = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(ok).toHaveLength(1);
    expect(refused).toHaveLength(1);
    expect(isBackupError(refused[0]!.reason, 'BACKUP_LOG_DIVERGED')).toBe(true);
    expect((refused[0]!.reason as Error).message).toMatch(new RegExp(`incremental backup .* holds another history from seq ${full.to_seq + 1} on`));
    // The store holds the full and the one incremental: nothing of the refused one.
    const mgr = new BackupManager({ log: a, dataDir: 'a', store, logger: quietLogger() });
    const listed = await mgr.list();
    expect(listed.map((m) => m.type).sort()).toEqual(['full', 'incremental']);
    expect((await store.list('backups/')).filter((k) => !listed.some((m) => k.startsWith(`backups/${m.backup_id}/`)))).toEqual([]);
    const winner = (ok[0] as PromiseFulfilledResult<{ head_hash: string }>).value;
    const r = await restore({ store, dataDir: path.join(tempDir(), 'r') });
    expect(r.headHash).toBe(winner.head_hash);
    // One history claim: the incremental's that won.
    expect(await store.list('history/')).toEqual([`history/${String(full.to_seq + 1).padStart(16, '0')}`]);
    await a.close();
    await b.close();
  });

  it('tags: one restore point each, on full and incremental backups; a bad or taken tag is refused, stores nothing and is not a failed backup', async () => {
    const { log, dir } = await filledLog(20);
    const storeDir = tempDir();
    const registry = new Registry();
    const mgr = new BackupManager({ log, dataDir: dir, store: new LocalDirStore(storeDir), registry, logger: quietLogger() });
    const full = await mgr.createFull({ tag: 'v1.0', description: 'first' });
    await fill(log, 5, { seed: 9 });
    const inc = await mgr.createIncremental({ tag: 'pre-migration', description: 'before the schema change' });
    expect([inc.tag, inc.description]).toEqual(['pre-migration', 'before the schema change']);
    // Retention never deletes a tagged incremental (nor the full it needs).
    const plan = await mgr.prune({ retentionDays: 0, dryRun: true, now: Date.now() + 400 * 86_400_000 });
    expect(plan.delete).toEqual([]);
    const restored = await restore({ store: new LocalDirStore(storeDir), dataDir: path.join(tempDir(), 'r'), tag: 'pre-migration' });
    expect(restored.seq).toBe(inc.to_seq);
    const before = hashDir(storeDir);
    for (const [tag, code] of [
      ['', 'BACKUP_INVALID_ARGUMENT'],
      ['latest', 'BACKUP_INVALID_ARGUMENT'],
      [full.backup_id, 'BACKUP_INVALID_ARGUMENT'],
      ['has space', 'BACKUP_INVALID_ARGUMENT'],
      ['x'.repeat(129), 'BACKUP_INVALID_ARGUMENT'],
      ['v1.0', 'BACKUP_TAG_EXISTS'],
      ['pre-migration', 'BACKUP_TAG_EXISTS'],
    ] as const) {
      await expect(mgr.createFull({ tag })).rejects.toSatisfy((e) => isBackupError(e, code));
      await expect(mgr.createIncremental({ tag })).rejects.toSatisfy((e) => isBackupError(e, code));
    }
    expect(hashDir(storeDir)).toBe(before);
    expect(await metric(registry, 'backup_failure_total')).toBe(0);
    // Two at once with the same tag: one takes it.
    const both = await Promise.allSettled([mgr.createFull({ tag: 'race' }), mgr.createIncremental({ tag: 'race' })]);
    expect(both.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(both.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : [])).every((e) => isBackupError(e, 'BACKUP_TAG_EXISTS'))).toBe(true);
    expect((await mgr.list()).filter((m) => m.tag === 'race')).toHaveLength(1);
    await log.close();
  });

  it('a log that does not hold the store\'s history (restored to an earlier point, then written) is never backed up into it', async () => {
    const { log, dir } = await filledLog(10);
    const storeDir = tempDir();
    const store = new LocalDirStore(storeDir);
    const registry = new Registry();
    const mgr = new BackupManager({ log, dataDir: dir, store, registry, logger: quietLogger() });
    const full = await mgr.createFull();
    await fill(log, 10, { seed: 3 });
    const inc = await mgr.createIncremental();
    await log.close();
    // Restored to the full backup's point, then written to: a second history from seq 12 on.
    const earlier = path.join(tempDir(), 'earlier');
    await restore({ store, dataDir: earlier, backupId: full.backup_id });
    const b = await EventLog.open({ dir: earlier });
    const bm = new BackupManager({ log: b, dataDir: earlier, store, registry, logger: quietLogger() });
    const before = hashDir(storeDir);
    // Even before it is written to, it is shorter than what the store holds.
    await expect(bm.createFull()).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_LOG_DIVERGED'));
    await b.append([upsert('fork', 99)]);
    await expect(bm.createFull()).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_LOG_DIVERGED'));
    await expect(bm.createIncremental()).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_LOG_DIVERGED'));
    // `since` the full's end picks the full as parent, which this log does extend: still refused.
    await expect(bm.createIncremental({ since: full.to_ts })).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_LOG_DIVERGED'));
    expect(hashDir(storeDir)).toBe(before);
    // A real problem: counted, so the BackupFailing alert fires.
    expect([await metric(registry, 'backup_failure_total', { type: 'full' }), await metric(registry, 'backup_failure_total', { type: 'incremental' })]).toEqual([2, 2]);
    // A point-in-time restore from the store still gives the original history.
    const pit = await restore({ store, dataDir: path.join(tempDir(), 'pit'), pointInTime: inc.to_ts });
    expect([pit.seq, pit.headHash]).toEqual([inc.to_seq, inc.head_hash]);
    // A fresh store takes it.
    const fresh = await new BackupManager({ log: b, dataDir: earlier, store: new LocalDirStore(tempDir()), logger: quietLogger() }).createFull();
    expect(fresh.to_seq).toBe(full.to_seq + 1);
    await b.close();
  });

  it('after the encryption key is rotated (or encryption turned off), backups and continuous backup go on in the same store', async () => {
    const { log, dir } = await filledLog(20);
    const storeDir = tempDir();
    const store = new LocalDirStore(storeDir);
    const k1 = parseKey('21'.repeat(32));
    await new BackupManager({ log, dataDir: dir, store, encryption: k1, logger: quietLogger() }).createFull();
    await fill(log, 10, { seed: 5 });
    // Continuous segments past the backup, under the old key.
    const c1 = new ContinuousBackup({ log, store, intervalMs: 20, encryption: k1, logger: quietLogger() });
    await c1.start();
    await c1.waitForShipped(log.head().seq);
    await c1.stop();
    for (const key of [parseKey('42'.repeat(32)), undefined]) {
      await fill(log, 5, { seed: 9 });
      const mgr = new BackupManager({ log, dataDir: dir, store, ...(key ? { encryption: key } : {}), logger: quietLogger() });
      expect((await mgr.createIncremental()).to_seq).toBe(log.head().seq);
      expect((await mgr.createFull()).to_seq).toBe(log.head().seq);
      const c = new ContinuousBackup({ log, store, intervalMs: 20, ...(key ? { encryption: key } : {}), logger: quietLogger() });
      await c.start();
      await fill(log, 3, { seed: 11 });
      await c.waitForShipped(log.head().seq);
      expect(c.status().state).toBe('running');
      await c.stop();
    }
    await log.close();
  });

  it('a restore whose chain spans a key rotation (a full and segments under the old key, segments under the new) needs both keys: the new key with the old as previous restores every event', async () => {
    const { log, dir } = await filledLog(20);
    const storeDir = tempDir();
    const store = new LocalDirStore(storeDir);
    const k1 = parseKey('21'.repeat(32));
    const k2 = parseKey('42'.repeat(32));
    await new BackupManager({ log, dataDir: dir, store, encryption: k1, logger: quietLogger() }).createFull();
    for (const key of [k1, withPreviousKeys(k2, [k1])]) {
      await fill(log, 10, { seed: key === k1 ? 5 : 6 });
      const c = new ContinuousBackup({ log, store, intervalMs: 20, encryption: key, logger: quietLogger() });
      await c.start();
      await c.waitForShipped(log.head().seq);
      expect(c.status().state).toBe('running');
      await c.stop();
    }
    const head = log.head();
    await log.close();
    const pointInTime = head.ts;
    const wrong = path.join(tempDir(), 'k2-only');
    // The dry run needs the same keys as the restore (the full's manifest names k1, the segments' first bytes k1 and k2).
    for (const [encryption, code, needs] of [[k2, 'BACKUP_DECRYPT_FAILED', k1], [undefined, 'BACKUP_KEY_REQUIRED', k1], [k1, 'BACKUP_DECRYPT_FAILED', k2]] as const) {
      await expect(restore({ store, dataDir: wrong, pointInTime, encryption, dryRun: true })).rejects.toSatisfy((e) => isBackupError(e, code) && (e as Error).message.includes(`key id ${needs.keyId}`));
    }
    expect((await restore({ store, dataDir: wrong, pointInTime, encryption: withPreviousKeys(k2, [k1]), dryRun: true })).seq).toBe(head.seq);
    await expect(restore({ store, dataDir: wrong, pointInTime, encryption: k2 })).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_DECRYPT_FAILED') && (e as Error).message.includes(k1.keyId));
    expect(fs.existsSync(wrong)).toBe(false);
    const target = path.join(tempDir(), 'both');
    const r = await restore({ store, dataDir: target, pointInTime, encryption: withPreviousKeys(k2, [k1, k2]) });
    expect(r.seq).toBe(head.seq);
    const back = await EventLog.open({ dir: target, readOnly: true, logger: () => undefined });
    expect(toHex(back.head().hash)).toBe(toHex(head.hash));
    await back.close();
  });

  it('abort: a running backup stops at its next file, what it stored is removed, later ones are refused; not a failed backup', async () => {
    const { log, dir } = await filledLog(3000, { batch: 500 });
    const storeDir = tempDir();
    const registry = new Registry();
    const mgr = new BackupManager({ log, dataDir: dir, store: new LocalDirStore(storeDir), registry, eventsPerFile: 100, logger: quietLogger() });
    let files = 0;
    const stopping = new BackupManager({
      log,
      dataDir: dir,
      store: new LocalDirStore(storeDir),
      registry,
      eventsPerFile: 100,
      logger: quietLogger(),
      onProgress: () => {
        if (++files === 3) stopping.abort();
      },
    });
    await expect(stopping.createFull()).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_ABORTED'));
    await stopping.idle();
    expect(files).toBeGreaterThanOrEqual(3);
    expect(files).toBeLessThan(30); // stopped well before its 31 files
    expect(fs.existsSync(path.join(storeDir, 'backups')) ? fs.readdirSync(path.join(storeDir, 'backups')) : []).toEqual([]);
    await expect(stopping.createIncremental()).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_ABORTED'));
    expect(await metric(registry, 'backup_failure_total')).toBe(0);
    // Another manager of the same store is not stopped.
    expect((await mgr.createFull()).to_seq).toBe(3001);
    await log.close();
  });

  it('a point-in-time dry run says its figures are bounds: seq at most, vectors unknown', async () => {
    const { log, dir } = await filledLog(10);
    const store = new LocalDirStore(tempDir());
    const full = await new BackupManager({ log, dataDir: dir, store, logger: quietLogger() }).createFull();
    await log.close();
    const d = await restore({ store, dataDir: path.join(tempDir(), 'd'), pointInTime: full.from_ts, dryRun: true });
    expect([d.exact, d.seq, d.vectorCount]).toEqual([false, full.to_seq, null]);
    expect(d.plan).toMatch(/Point-in-time restore to \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z/);
    expect(d.plan).toContain(`at most seq ${full.to_seq}`);
    // T falls inside the full backup: its events are not counted in the space (it said "0 B" alone).
    expect(d.plan).toMatch(/space: needs at least \S+ B? ?in .*, more for the events read from the backup the point in time falls in/);
  });

  it('keys: hex, base64 and key files; the key id is in the manifest', () => {
    const dir = tempDir();
    const hex = 'ab'.repeat(32);
    const k1 = parseKey(hex);
    const k2 = parseKey(Buffer.from(hex, 'hex').toString('base64'));
    expect(k2.keyId).toBe(k1.keyId);
    fs.writeFileSync(path.join(dir, 'key'), hex + '\n');
    expect(loadKey({ file: path.join(dir, 'key') })?.keyId).toBe(k1.keyId);
    expect(loadKey({ env: { KYRODB_BACKUP_KEY: hex } })?.keyId).toBe(k1.keyId);
    expect(loadKey({ env: {} })).toBeUndefined();
    expect(() => parseKey('abcd')).toThrow(expect.objectContaining({ code: 'BACKUP_KEY_INVALID' }) as Error);
    // 32 raw bytes are a key; 32 bytes of text are text (a passphrase, a hex key cut short) and refused.
    const raw = Buffer.from(hex, 'hex');
    fs.writeFileSync(path.join(dir, 'raw'), raw);
    expect(loadKey({ file: path.join(dir, 'raw') })?.keyId).toBe(k1.keyId);
    const invalid = (m: RegExp): Error => expect.objectContaining({ code: 'BACKUP_KEY_INVALID', message: expect.stringMatching(m) as unknown }) as Error;
    for (const [cut, said] of [[32, /key file .*t32: .*32 hex characters; if backups were written with this file as 32 raw bytes .*xxd -p -c 32 /], [43, /key file .*t43: .*43 hex characters$/]] as const) {
      fs.writeFileSync(path.join(dir, `t${cut}`), hex.slice(0, cut));
      expect(() => loadKey({ file: path.join(dir, `t${cut}`) })).toThrow(invalid(said));
    }
    fs.writeFileSync(path.join(dir, 'phrase'), 'correct horse battery staple 123');
    expect(() => loadKey({ file: path.join(dir, 'phrase') })).toThrow(invalid(/key file .*phrase: the backup key must be 32 bytes/));
    // The variable is named when its value is no key.
    expect(() => loadKey({ env: { KYRODB_BACKUP_KEY: hex.slice(0, 40) } })).toThrow(invalid(/^KYRODB_BACKUP_KEY: .*40 hex characters/));
    expect(() => loadKey({ env: { KYRODB_BACKUP_KEY: Buffer.alloc(24, 7).toString('base64') } })).toThrow(invalid(/^KYRODB_BACKUP_KEY: .*this base64 is 24 bytes/));
  });

  it("an incremental counts a document by its events before the range, never by the range's own", async () => {
    const { log, dir } = await openLog();
    await log.append([created('c', 8), upsert('a', 1)]);
    const mgr = new BackupManager({ log, dataDir: dir, store: new LocalDirStore(tempDir()), logger: quietLogger() });
    expect((await mgr.createFull()).vector_count).toBe(1);
    // The range opens with a new document, then a live one leaves and comes back, and a deleted one comes back.
    await log.append([upsert('b', 2), del('a'), upsert('a', 3)]);
    const inc = await mgr.createIncremental();
    expect([inc.vector_count, inc.collections]).toEqual([2, { c: 2 }]);
    await log.append([del('b')]);
    await log.append([upsert('b', 4), upsert('e', 5)]);
    expect((await mgr.createIncremental()).vector_count).toBe(3);
    await log.close();
  });

  it('an incremental refuses a log that no longer extends its parent, and needs a parent', async () => {
    const { log, dir } = await openLog();
    await log.append([created('c', 8)]);
    const store = new LocalDirStore(tempDir());
    const mgr = new BackupManager({ log, dataDir: dir, store, logger: quietLogger() });
    await expect(mgr.createIncremental()).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_NOT_FOUND'));
    await mgr.createFull();
    const { log: other, dir: odir } = await openLog();
    await other.append([created('zzz', 8)]);
    await other.append([created('yyy', 8)]);
    const m2 = new BackupManager({ log: other, dataDir: odir, store, logger: quietLogger() });
    await expect(m2.createIncremental()).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_LOG_DIVERGED'));
    await other.close();
    await log.close();
  });

  it('a backup pruned between the listing and the read of its manifest is not listed, and the listing does not fail', async () => {
    const { log, dir } = await filledLog(10);
    const storeDir = tempDir();
    const first = await new BackupManager({ log, dataDir: dir, store: new LocalDirStore(storeDir), logger: quietLogger() }).createFull();
    await fill(log, 5, { seed: 3 });
    const second = await new BackupManager({ log, dataDir: dir, store: new LocalDirStore(storeDir), logger: quietLogger() }).createFull();
    // A real local store; a prune (another process) removes the first backup's manifest right
    // after this one lists the keys.
    class PrunedMeanwhile extends LocalDirStore {
      override async list(prefix: string): Promise<string[]> {
        const keys = await super.list(prefix);
        if (prefix === 'backups/') await super.delete(`backups/${first.backup_id}/manifest.json`);
        return keys;
      }
    }
    const listed = await new BackupManager({ log, dataDir: dir, store: new PrunedMeanwhile(storeDir), logger: quietLogger() }).list();
    expect(listed.map((m) => m.backup_id)).toEqual([second.backup_id]);
    await log.close();
  });

  it('verify --deep passes a healthy backup of an ip collection, where a longer vector outscores the vector itself', async () => {
    const { log, dir } = await openLog();
    await log.append([created('emb', 2, 'ip')]);
    await log.append([
      { type: 'vector.upserted', collection: 'emb', body: { id: 'short', vector: Float32Array.of(1, 0) } },
      { type: 'vector.upserted', collection: 'emb', body: { id: 'long', vector: Float32Array.of(2, 0) } },
      { type: 'vector.upserted', collection: 'emb', body: { id: 'up', vector: Float32Array.of(0, 1) } },
    ]);
    const mgr = new BackupManager({ log, dataDir: dir, store: new LocalDirStore(tempDir()), logger: quietLogger() });
    const m = await mgr.createFull();
    const v = await mgr.verify(m.backup_id, { deep: true, probes: 3 });
    expect(v).toMatchObject({ ok: true, deep: { probes: 3, probeHits: 3, indexProbeHits: 3 } });
    await log.close();
  });

  /** A log of 400 upserts (300 ids, 8-d cosine) and a real projections checkpoint of it (the projections still open). */
  const logWithCheckpoint = async (): Promise<{ log: EventLog; dir: string; proj: Projections; cp: { seq: number; dir: string } }> => {
    const { log, dir } = await openLog();
    await log.append([created('c', 8, 'cosine')]);
    await fill(log, 400, { ids: 300 });
    const proj = await Projections.open({ log, dataDir: dir, checkpoint: { everyEvents: 0, everySecs: 0 }, logger: () => undefined });
    return { log, dir, proj, cp: await proj.checkpoint() };
  };

  it('checkpoint files larger than a part are stored in parts and restored byte for byte (a file past 2 GiB failed the backup)', async () => {
    const { log, dir, proj, cp } = await logWithCheckpoint();
    await proj.close();
    const store = new LocalDirStore(tempDir());
    const mgr = new BackupManager({ log, dataDir: dir, store, logger: quietLogger(), checkpointPartBytes: 4096 });
    const m = await mgr.createFull();
    const parts = m.files.filter((f) => f.kind === 'checkpoint' && f.offset !== undefined);
    expect(parts.length).toBeGreaterThan(2);
    expect(parts.every((f) => f.raw_size! <= 4096)).toBe(true);
    const target = path.join(tempDir(), 'r');
    await restore({ store, dataDir: target });
    const src = path.join(dir, 'checkpoints', cp.dir.split(path.sep).at(-1)!);
    const dst = path.join(target, 'checkpoints', cp.dir.split(path.sep).at(-1)!);
    for (const n of fs.readdirSync(src)) expect(fs.readFileSync(path.join(dst, n)).equals(fs.readFileSync(path.join(src, n))), n).toBe(true);
    expect((await mgr.verify(m.backup_id, { deep: true, probes: 10 })).ok).toBe(true);
    const back = await EventLog.open({ dir: target, logger: () => undefined });
    const p2 = await Projections.open({ log: back, dataDir: target, checkpoint: { everyEvents: 0, everySecs: 0 }, logger: () => undefined });
    expect(p2.health().lastCheckpointSeq).toBe(cp.seq);
    await p2.close();
    await back.close();
    await log.close();
  });

  it('a real projections checkpoint travels with a full backup, and the restored data dir loads it', async () => {
    const { log, dir, proj, cp } = await logWithCheckpoint();
    await fill(log, 50, { seed: 5000 });
    const store = new LocalDirStore(tempDir());
    const progress: { phase: string; done: number; total: number }[] = [];
    const mgr = new BackupManager({ log, dataDir: dir, store, logger: quietLogger(), onProgress: (p) => progress.push(p) });
    const m = await mgr.createFull();
    await proj.close();
    expect(m.checkpoint_seq).toBe(cp.seq);
    progress.length = 0;
    const v = await mgr.verify(m.backup_id, { deep: true, probes: 20 });
    expect(v).toMatchObject({ ok: true, deep: { segmentEvents: m.to_seq, probes: 20, probeHits: 20, indexProbeHits: 20 } });
    // The probes ask the index once it has absorbed the events after the checkpoint, not before
    // (then a busy server's backup, its checkpoint far behind, failed as the hot tier answered alone).
    expect(progress.filter((p) => p.phase === 'index').at(-1)).toEqual({ phase: 'index', done: m.to_seq, total: m.to_seq });
    const target = path.join(tempDir(), 'r');
    await restore({ store, dataDir: target });
    const back = await EventLog.open({ dir: target, logger: () => undefined });
    const p2 = await Projections.open({ log: back, dataDir: target, checkpoint: { everyEvents: 0, everySecs: 0 }, logger: () => undefined });
    expect(p2.health().lastCheckpointSeq).toBe(cp.seq);
    expect(p2.applied()).toBe(m.to_seq);
    const hit = await p2.search('c', { vector: vec(5010, 8), k: 1 });
    expect(hit.results[0]?.id).toBe('d5010');
    await p2.close();
    await back.close();
    await log.close();
  });

  it('prune: dry run deletes nothing; a real run deletes the plan (manifest first), keeps tags and parents', async () => {
    const { log, dir } = await openLog();
    await log.append([created('c', 8)]);
    const store = new LocalDirStore(tempDir());
    let now = Date.UTC(2026, 0, 1);
    const mgr = new BackupManager({ log, dataDir: dir, store, logger: quietLogger(), now: () => now });
    const made: string[] = [];
    for (let d = 0; d < 12; d++) {
      await fill(log, 10, { seed: d * 10 });
      const m = d % 4 === 0 ? await mgr.createFull(d === 0 ? { tag: 'genesis' } : {}) : await mgr.createIncremental();
      made.push(m.backup_id);
      now += 86_400_000;
    }
    const dry = await mgr.prune({ retentionDays: 3, dryRun: true, now });
    expect(dry.dryRun).toBe(true);
    expect(dry.delete.length).toBeGreaterThan(0);
    expect(dry.deletedObjects).toBe(0);
    expect((await mgr.list()).length).toBe(12);
    const objects = (await store.list('backups/')).length;
    const real = await mgr.prune({ retentionDays: 3, now });
    expect(real.delete).toEqual(dry.delete);
    expect(real.deletedObjects).toBe(objects - (await store.list('backups/')).length); // objects, each manifest and file, not backups
    expect(real.deletedObjects).toBeGreaterThan(real.delete.length);
    const left = (await mgr.list()).map((m) => m.backup_id);
    expect(left).toContain(made[0]); // tagged
    for (const id of real.delete) expect(await store.list(`backups/${id}/`)).toEqual([]);
    for (const id of left) expect((await mgr.verify(id)).ok).toBe(true); // every kept backup still restores: its chain is intact
    await log.close();
  });
});
