import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { EventLog, toHex } from '@kyrodb/log';
import { BackupManager, CONTINUOUS_CURSOR, ContinuousBackup, LocalDirStore, decodeSegment, decodeObject, isBackupError, loadSegments, parseKey, restore, verifySegments, withPreviousKeys, type ObjectStore } from '@kyrodb/backup';
import { created, FaultProxy, fill, filledLog, hashDir, openLog, quietLogger, S3Server, s3Store, tempDir, until } from './helpers.js';

async function gauge(r: Registry, name: string): Promise<number> {
  const m = (await r.getMetricsAsJSON()).find((x) => x.name === name);
  return (m?.values[0]?.value) ?? 0;
}

/** Every record in the store's segments, in key order, must be exactly the log's records 1..head. */
async function expectSegmentsEqualLog(store: ObjectStore, log: EventLog): Promise<void> {
  const rep = await verifySegments(store);
  expect(rep).toMatchObject({ ok: true, gaps: [], overlaps: [], missing: [] });
  expect(rep.contiguousTo).toBe(log.head().seq);
  const got: string[] = [];
  for (const s of await loadSegments(store)) {
    const seg = decodeSegment(decodeObject(await store.get(s.key), undefined, s.key), s.key);
    for (const e of seg.entries) got.push(e.record.toString('hex'));
  }
  expect(got).toEqual([...log.readRecords()].map((r) => r.record.toString('hex')));
}

/** A first life of continuous backup: creates collection c, writes `events` upserts, ships them all and stops. */
async function shipFirstLife(log: EventLog, store: ObjectStore, events: number, maxBatchEvents: number): Promise<void> {
  const cb = new ContinuousBackup({ log, store, intervalMs: 20, maxBatchEvents, logger: quietLogger() });
  await cb.start();
  await log.append([created('c', 8)]);
  await fill(log, events, { batch: 50 });
  await cb.waitForShipped(log.head().seq);
  await cb.stop();
}

describe('continuous backup', () => {
  it('ships every event once, resumes after a restart with no gap or overlap, and PITR replays segments', async () => {
    const { log } = await openLog();
    const store = new LocalDirStore(tempDir());
    const registry = new Registry();
    let cb = new ContinuousBackup({ log, store, intervalMs: 20, maxBatchEvents: 150, registry, logger: quietLogger() });
    await cb.start();
    await log.append([created('c', 8)]);
    const stamps: number[] = [];
    for (let i = 0; i < 8; i++) {
      await fill(log, 60, { seed: i * 1000, ids: 100 });
      stamps.push(log.head().ts);
      await new Promise((r) => setTimeout(r, 5));
    }
    await cb.waitForShipped(log.head().seq);
    expect(cb.status()).toMatchObject({ shippedSeq: log.head().seq, lagEvents: 0 });
    expect(log.getCursor<{ seq: number }>('backup.continuous')?.seq).toBe(log.head().seq);
    await cb.stop();
    await fill(log, 333, { seed: 9000 }); // written while continuous backup is down
    cb = new ContinuousBackup({ log, store, intervalMs: 20, maxBatchEvents: 150, registry, logger: quietLogger() });
    expect(await cb.resumePosition()).toBe(log.head().seq - 333);
    await cb.start();
    await cb.waitForShipped(log.head().seq);
    await cb.stop();
    await expectSegmentsEqualLog(store, log);
    // PITR from segments alone, at each recorded instant: exactly the prefix with ts ≤ T.
    for (const T of [stamps[0]!, stamps[3]!, stamps[7]!]) {
      const target = path.join(tempDir(), 'pitr');
      const r = await restore({ store, dataDir: target, pointInTime: T });
      expect(r.seq).toBe(log.seqAtTime(T));
      expect(r.headHash).toBe(toHex(log.get(r.seq)!.hash));
    }
    await log.close();
  });

  it('a damaged cursors.json does not stop the log from opening; continuous backup resumes from its store with no gap or overlap', async () => {
    const { log, dir } = await openLog();
    const store = new LocalDirStore(tempDir());
    await shipFirstLife(log, store, 400, 150);
    await log.close();
    fs.writeFileSync(path.join(dir, 'cursors.json'), '{"backup.continuous": {"seq": 4'); // torn by something outside
    const lines: string[] = [];
    const reopened = await EventLog.open({ dir, logger: (level, msg) => lines.push(`${level} ${msg}`) });
    expect(lines.join('\n')).toMatch(/cursors\.json is damaged .* moved aside to .*cursors\.json\.damaged-/);
    expect(reopened.getCursor('backup.continuous')).toBeUndefined();
    await fill(reopened, 300, { seed: 5000, batch: 50 });
    const cb = new ContinuousBackup({ log: reopened, store, intervalMs: 20, maxBatchEvents: 150, logger: quietLogger() });
    expect(await cb.resumePosition()).toBe(401);
    await cb.start();
    await cb.waitForShipped(reopened.head().seq);
    await cb.stop();
    await expectSegmentsEqualLog(store, reopened);
    await reopened.close();
  });

  it('a log shipped to one store, then another (a changed prefix), then the first again: each store ends up with every event, no gap', async () => {
    const { log, dir } = await openLog();
    const a = new LocalDirStore(tempDir());
    const b = new LocalDirStore(tempDir());
    const life = async (store: ObjectStore, seed: number): Promise<void> => {
      const cb = new ContinuousBackup({ log, store, intervalMs: 20, maxBatchEvents: 100, logger: quietLogger() });
      await cb.start();
      await fill(log, 120, { seed, batch: 40 });
      await cb.waitForShipped(log.head().seq);
      expect(cb.status()).toMatchObject({ state: 'running', lagEvents: 0 });
      await cb.stop();
    };
    await log.append([created('c', 8)]);
    await life(a, 1);
    // b is empty: it gets the log from seq 1 (before: from after a's position, events 1..121 never in b)
    await life(b, 2000);
    await expectSegmentsEqualLog(b, log);
    // back to a: from where a ends (before: after b's position, a gap in a)
    await life(a, 4000);
    await expectSegmentsEqualLog(a, log);
    // A store whose early segments went (pruned: a full backup holds them) resumes after that backup.
    const c = new LocalDirStore(tempDir());
    const full = await new BackupManager({ log, dataDir: dir, store: c, logger: quietLogger() }).createFull();
    expect(await new ContinuousBackup({ log, store: c, logger: quietLogger() }).resumePosition()).toBe(full.to_seq);
    await log.close();
  });

  it('works from a read-only log (cursor object in the store) while another handle writes', async () => {
    const { log, dir } = await openLog();
    await log.append([created('c', 8)]);
    const ro = await EventLog.open({ dir, readOnly: true, logger: () => undefined });
    const store = new LocalDirStore(tempDir());
    const cb = new ContinuousBackup({ log: ro, store, intervalMs: 20, pollMs: 10, logger: quietLogger() });
    await cb.start();
    await fill(log, 400, { batch: 37 });
    await until(() => cb.status().shippedSeq === log.head().seq, 20_000, 'shipping from a read-only log');
    await cb.stop();
    expect((await store.list('continuous/')).length).toBe(1);
    const cb2 = new ContinuousBackup({ log: ro, store, logger: quietLogger() });
    expect(await cb2.resumePosition()).toBe(log.head().seq);
    await expectSegmentsEqualLog(store, log);
    await ro.close();
    await log.close();
  });
});

describe('continuous backup of a backlog', () => {
  it('holds one batch in memory, not the backlog: with the first upload held, catching up 12k events of 1024 dims adds no more than a few MB of memory; every event then ships, in segments of at most maxBatchEvents', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const { log } = await openLog();
    await log.append([created('c', 1024)]);
    await fill(log, 12_000, { dim: 1024, batch: 500 }); // ~49 MB of vectors
    const inner = new LocalDirStore(tempDir());
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let entered = false;
    const store: ObjectStore = {
      url: inner.url,
      put: async (k, b, o) => {
        if (k.startsWith('segments/') && !entered) {
          entered = true;
          await held;
        }
        await inner.put(k, b, o);
      },
      get: (k) => inner.get(k),
      head: (k) => inner.head(k),
      list: (p) => inner.list(p),
      delete: (k) => inner.delete(k),
    };
    // The JS heap and the memory behind typed arrays (vectors, Buffers), after a full collection.
    const used = (): number => {
      gc();
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    const before = used();
    const cb = new ContinuousBackup({ log, store, intervalMs: 10, maxBatchEvents: 500, logger: quietLogger() });
    await cb.start();
    await until(() => entered, 10_000, 'the first segment upload');
    // Time for a reader that buffers the backlog to take it all (a tail catches up 1000 events a turn).
    await new Promise((r) => setTimeout(r, 1000));
    const grown = used() - before;
    // The tail used to deliver every event, decoded, into buffers queued behind the held upload: ~60 MB here.
    expect(grown, `memory grew ${(grown / 1e6).toFixed(1)} MB while the first upload was held`).toBeLessThan(15e6);
    release();
    await cb.waitForShipped(log.head().seq);
    await cb.stop();
    const segs = await loadSegments(inner);
    expect(Math.max(...segs.map((x) => x.last_seq - x.first_seq + 1))).toBeLessThanOrEqual(500);
    await expectSegmentsEqualLog(inner, log);
    await log.close();
  }, 120_000);
});

describe('continuous backup segment bounds', () => {
  it('a backlog ships in segments as large as maxBatchBytes allows (one record past it at most), back to back, every event once', async () => {
    const { log } = await openLog();
    await log.append([created('c', 8)]);
    await fill(log, 3000, { batch: 250 });
    const store = new LocalDirStore(tempDir());
    const cap = 32 * 1024;
    const cb = new ContinuousBackup({ log, store, intervalMs: 60_000, maxBatchBytes: cap, logger: quietLogger() });
    await cb.start();
    // An interval of a minute: only full segments go out at once; the last (short) one waits for it.
    await until(() => log.head().seq - cb.status().shippedSeq < 300, 10_000, 'the backlog but its last, partial segment');
    await cb.stop();
    const segs = await loadSegments(store);
    for (const sg of segs) {
      const seg = decodeSegment(decodeObject(await store.get(sg.key), undefined, sg.key), sg.key);
      const bytes = seg.entries.reduce((n, e) => n + e.record.byteLength, 0);
      const last = seg.entries.at(-1)!.record.byteLength;
      if (sg !== segs.at(-1)) expect(bytes >= cap && bytes - last < cap, `${sg.key}: ${bytes} bytes`).toBe(true);
    }
    expect(segs.length).toBeGreaterThan(3);
    // Everything but a last, partial segment went out without waiting for the minute.
    expect(segs.at(-1)!.last_seq).toBeGreaterThan(log.head().seq - 300);
    const rest = new ContinuousBackup({ log, store, intervalMs: 10, maxBatchBytes: cap, logger: quietLogger() });
    await rest.start();
    await rest.waitForShipped(log.head().seq);
    await rest.stop();
    await expectSegmentsEqualLog(store, log);
    await log.close();
  });
});

describe('continuous backup refuses a store whose history the log does not extend', () => {
  it('a shorter or different log on the same store → BACKUP_LOG_DIVERGED, nothing shipped', async () => {
    const { isBackupError } = await import('@kyrodb/backup');
    const { log } = await openLog();
    const store = new LocalDirStore(tempDir());
    const cb = new ContinuousBackup({ log, store, intervalMs: 10, logger: quietLogger() });
    await cb.start();
    await log.append([created('c', 8)]);
    await fill(log, 100);
    await cb.waitForShipped(log.head().seq);
    await cb.stop();
    const before = await store.list('');
    const { log: shorter } = await openLog();
    await shorter.append([created('c', 8)]);
    await expect(new ContinuousBackup({ log: shorter, store, logger: quietLogger() }).start()).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_LOG_DIVERGED'));
    const { log: other } = await openLog();
    await other.append([created('zz', 8)]);
    await fill(other, 150, { collection: 'zz' });
    await expect(new ContinuousBackup({ log: other, store, logger: quietLogger() }).start()).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_LOG_DIVERGED'));
    expect(await store.list('')).toEqual(before);
    await shorter.close();
    await other.close();
    await log.close();
  });

  it('a restored copy shipping beside its original to one store: one of the two stops (BACKUP_LOG_DIVERGED) before any of its history is stored; the store restores to the other\'s head', async () => {
    const store = new LocalDirStore(tempDir());
    const { log: a } = await openLog();
    const ca = new ContinuousBackup({ log: a, store, intervalMs: 20, logger: quietLogger() });
    await ca.start();
    await a.append([created('c', 8)]);
    await fill(a, 50);
    await ca.waitForShipped(a.head().seq);
    const shared = a.head().seq;
    // B: the store restored to its end, started beside A with the same store (its start check passes: it extends the store).
    const dirB = path.join(tempDir(), 'b');
    await restore({ store, dataDir: dirB, pointInTime: Date.now() * 1000 });
    const b = await EventLog.open({ dir: dirB, logger: () => undefined });
    expect(toHex(b.head().hash)).toBe(toHex(a.head().hash));
    const cb = new ContinuousBackup({ log: b, store, intervalMs: 20, logger: quietLogger() });
    await cb.start();
    // Both write their own events, side by side.
    await Promise.all([fill(a, 300, { seed: 1000, batch: 10 }), fill(b, 300, { seed: 5000, batch: 10 })]);
    const settled = (c: ContinuousBackup, log: EventLog): boolean => c.status().state === 'failed' || c.status().shippedSeq === log.head().seq;
    await until(() => settled(ca, a) && settled(cb, b), 20_000, 'both shippers to settle');
    const pairs = [
      { c: ca, log: a },
      { c: cb, log: b },
    ];
    const failed = pairs.filter((p) => p.c.status().state === 'failed');
    expect(failed.length).toBeGreaterThanOrEqual(1); // both, at most, when their claims cross
    for (const f of failed) expect(f.c.status().lastError).toMatch(new RegExp(`holds another history from seq ${shared + 1} on`));
    const winner = pairs.find((p) => p.c.status().state === 'running');
    // One history in the store: no overlap, and a restore of its end is the winner's log (or the shared part).
    const rep = await verifySegments(store);
    expect(rep).toMatchObject({ ok: true, gaps: [], overlaps: [], missing: [] });
    const end = winner?.log.head() ?? { seq: shared, hash: a.getRecord(shared)!.subarray(32, 64) };
    expect(rep.contiguousTo).toBe(end.seq);
    const r = await restore({ store, dataDir: path.join(tempDir(), 'r'), pointInTime: Date.now() * 1000 });
    expect([r.seq, r.headHash]).toEqual([end.seq, toHex(end.hash)]);
    await ca.stop();
    await cb.stop();
    await a.close();
    await b.close();
  });

  it('another segment\'s bytes under the newest segment\'s key: BACKUP_CORRUPT naming both ranges, not read as another history', async () => {
    const { log } = await openLog();
    const store = new LocalDirStore(tempDir());
    await shipFirstLife(log, store, 200, 50);
    const segs = await loadSegments(store);
    expect(segs.length).toBeGreaterThan(2);
    const newest = segs[segs.length - 1]!;
    const first = segs[0]!;
    const file = path.join(store.root, ...newest.key.split('/'));
    fs.writeFileSync(file, await store.get(first.key));
    const err = await new ContinuousBackup({ log, store, logger: quietLogger() }).start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isBackupError(err, 'BACKUP_CORRUPT'), String(err)).toBe(true);
    expect((err as Error).message).toContain(`${newest.key} holds seqs ${first.first_seq}..${first.last_seq}, its key says ${newest.first_seq}..${newest.last_seq}`);
    await log.close();
  });

  it('a store holding only a full backup (continuous turned on later): a data dir restored to an earlier point and written to is refused; the log the backup came from ships', async () => {
    const { log, dir } = await openLog();
    const store = new LocalDirStore(tempDir());
    await log.append([created('c', 8)]);
    await fill(log, 120);
    const mid = log.head();
    await fill(log, 120, { seed: 2 });
    await new BackupManager({ log, dataDir: dir, store, logger: quietLogger() }).createFull();
    const restoredDir = path.join(tempDir(), 'restored');
    expect((await restore({ store, dataDir: restoredDir, pointInTime: mid.ts })).seq).toBe(mid.seq);
    const restored = await EventLog.open({ dir: restoredDir, logger: () => undefined });
    await restored.append([created('after', 8)]);
    const before = await store.list('');
    await expect(new ContinuousBackup({ log: restored, store, logger: quietLogger() }).start()).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_LOG_DIVERGED'));
    expect(await store.list('')).toEqual(before);
    await restored.close();
    const cb = new ContinuousBackup({ log, store, intervalMs: 10, logger: quietLogger() });
    await cb.start();
    await cb.waitForShipped(log.head().seq);
    expect(cb.status().state).toBe('running');
    await cb.stop();
    await log.close();
  });
});

describe('a store whose newest segment is encrypted with a key not given', () => {
  it('a data dir restored to an earlier point and written to is refused (the seq alone passed); the log that shipped it (its cursor vouches) ships on', async () => {
    const k1 = parseKey('31'.repeat(32));
    const k2 = parseKey('32'.repeat(32));
    const { log, dir } = await openLog();
    const store = new LocalDirStore(tempDir());
    await log.append([created('c', 8)]);
    await fill(log, 60);
    const mid = log.head();
    await fill(log, 60, { seed: 2 });
    const first = new ContinuousBackup({ log, store, intervalMs: 10, encryption: k1, logger: quietLogger() });
    await first.start();
    await first.waitForShipped(log.head().seq);
    await first.stop();
    const restoredDir = path.join(tempDir(), 'restored');
    expect((await restore({ store, dataDir: restoredDir, pointInTime: mid.ts, encryption: k1 })).seq).toBe(mid.seq);
    const restored = await EventLog.open({ dir: restoredDir, logger: () => undefined });
    // Written past the store's head: the seq check alone let this history in beside the old one.
    await fill(restored, 200, { seed: 3 });
    const before = await store.list('');
    for (const [key, code] of [[k2, 'BACKUP_DECRYPT_FAILED'], [undefined, 'BACKUP_KEY_REQUIRED']] as const) {
      const refused = (e: unknown): boolean => isBackupError(e, code) && /cannot check that this log holds the history in the store/.test(e.message);
      await expect(new ContinuousBackup({ log: restored, store, encryption: key, logger: quietLogger() }).start()).rejects.toSatisfy(refused);
      await expect(new BackupManager({ log: restored, dataDir: restoredDir, store, encryption: key, logger: quietLogger() }).createFull()).rejects.toSatisfy(refused);
    }
    // With the key it needs, the check reads the segment and names the split.
    await expect(new ContinuousBackup({ log: restored, store, encryption: withPreviousKeys(k2, [k1]), logger: quietLogger() }).start()).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_LOG_DIVERGED'));
    expect(await store.list('')).toEqual(before);
    await restored.close();
    // A backup beside the shipper: a segment stored, its cursor not written yet. The check waits for it.
    const cursor = log.getCursor<{ seq: number; hash: string; store: string }>(CONTINUOUS_CURSOR)!;
    expect(cursor.seq).toBe(log.head().seq);
    await log.setCursor(CONTINUOUS_CURSOR, { ...cursor, seq: mid.seq, hash: toHex(mid.hash) });
    const late = setTimeout(() => void log.setCursor(CONTINUOUS_CURSOR, cursor), 300);
    expect((await new BackupManager({ log, dataDir: dir, store, encryption: k2, logger: quietLogger() }).createFull()).to_seq).toBe(log.head().seq);
    clearTimeout(late);
    // The log that shipped those segments, its key rotated out of the config: its cursor vouches.
    await fill(log, 30, { seed: 4 });
    const again = new ContinuousBackup({ log, store, intervalMs: 10, encryption: k2, logger: quietLogger() });
    await again.start();
    await again.waitForShipped(log.head().seq);
    expect(again.status().state).toBe('running');
    await again.stop();
    expect((await new BackupManager({ log, dataDir: dir, store, encryption: k2, logger: quietLogger() }).createFull()).to_seq).toBe(log.head().seq);
    await log.close();
  });
});

describe('continuous backup through a faulty S3 (fault-injecting proxy in front of s3rver)', () => {
  const s3 = new S3Server();
  let proxy: FaultProxy;
  beforeAll(async () => {
    await s3.start();
    proxy = new FaultProxy(() => s3.port);
    await proxy.start();
  });
  afterAll(async () => {
    await proxy.stop();
    await s3.stop();
  });

  it('S3 down when it starts: start resolves, writes go on and lag shows; once S3 answers it resumes where the store ends, nothing lost or duplicated', async () => {
    const { log } = await openLog();
    const store = s3Store(s3.endpoint, 'down-at-start', { requestTimeoutMs: 2000, retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 20 } });
    await shipFirstLife(log, store, 300, 100);
    const shippedBefore = log.head().seq;

    await s3.stop();
    await fill(log, 200, { seed: 9000, batch: 50 });
    const registry = new Registry();
    const lines: string[] = [];
    const cb = new ContinuousBackup({ log, store, intervalMs: 20, maxBatchEvents: 100, registry, retryBaseDelayMs: 20, retryMaxDelayMs: 100, logger: quietLogger(lines) });
    await cb.start(); // S3 is down: this resolves, the pipeline keeps trying
    // Until the store answers, this data dir's cursor says how far it shipped there (the lag
    // counted every event of the log before).
    expect(cb.status()).toMatchObject({ state: 'resuming', shippedSeq: shippedBefore, lagEvents: 200 });
    expect(cb.status().lastError).toBeDefined();
    expect(lines.join('\n')).toContain('cannot read its store');
    await fill(log, 100, { seed: 9500, batch: 50 });
    await until(async () => (await gauge(registry, 'backup_continuous_lag_events')) === log.head().seq - shippedBefore, 10_000, 'lag to count the events past the cursor');
    await s3.start(s3.port);
    await cb.waitForShipped(log.head().seq);
    expect(cb.status()).toMatchObject({ state: 'running', lagEvents: 0 });
    expect(cb.status().lastError).toBeUndefined();
    await cb.stop();
    expect(cb.status().state).toBe('stopped');
    await expectSegmentsEqualLog(store, log);

    // A store that turns out, once it answers, to hold another history: nothing is shipped to it.
    const { log: other } = await openLog();
    await other.append([created('c', 8)]);
    await fill(other, 50, { seed: 123 });
    await s3.stop();
    const refused: string[] = [];
    const wrong = new ContinuousBackup({ log: other, store, intervalMs: 20, retryBaseDelayMs: 20, retryMaxDelayMs: 100, logger: quietLogger(refused) });
    await wrong.start();
    // No cursor of its own for this store: every event waits.
    expect(wrong.status()).toMatchObject({ state: 'resuming', shippedSeq: 0, lagEvents: other.head().seq });
    await s3.start(s3.port);
    await until(() => wrong.status().state === 'failed', 10_000, 'the refusal');
    expect(wrong.status().lastError).toMatch(/does not extend/);
    expect(refused.join('\n')).toContain('continuous backup stopped');
    await wrong.stop();
    await expectSegmentsEqualLog(store, log); // still exactly the first log's events
    store.destroy();
    await other.close();
    await log.close();
  });

  it('retries 500/503/dropped connections/latency, falls behind while S3 is down, catches up; nothing lost or duplicated', async () => {
    const { log, dir } = await openLog();
    const store = s3Store(proxy.endpoint, 'cont', { requestTimeoutMs: 2000, retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 50 } });
    const registry = new Registry();
    const cb = new ContinuousBackup({ log, store, intervalMs: 30, maxBatchEvents: 200, registry, retryBaseDelayMs: 20, retryMaxDelayMs: 200, logger: quietLogger() });
    await cb.start();
    await log.append([created('c', 8)]);
    proxy.faults = { errorRate: 0.25, dropRate: 0.1, latencyMs: 15 };
    proxy.script = ['error', 'drop', 'ok', 'error', 'error', 'drop'];
    await fill(log, 1500, { batch: 50, ids: 800 });
    await cb.waitForShipped(log.head().seq);
    expect(proxy.counts.errors).toBeGreaterThan(0);
    expect(proxy.counts.drops).toBeGreaterThan(0);
    proxy.faults = { errorRate: 0, dropRate: 0, latencyMs: 0 };

    // The server goes away: writes continue, backup falls behind, lag shows it.
    await s3.stop();
    const before = log.head().seq;
    await fill(log, 500, { seed: 7000, batch: 50 });
    await until(async () => (await gauge(registry, 'backup_continuous_lag_events')) >= 500, 10_000, 'lag to show');
    await until(() => cb.status().lagSeconds > 0.3, 10_000, 'lag seconds to grow');
    expect(cb.status()).toMatchObject({ state: 'resuming', shippedSeq: before }); // as health reports it
    expect(cb.status().lastError).toBeDefined();
    expect(await gauge(registry, 'backup_upload_retries_total')).toBeGreaterThan(0);
    await s3.start(s3.port);
    await cb.waitForShipped(log.head().seq);
    expect(cb.status()).toMatchObject({ state: 'running', lagEvents: 0, lagSeconds: 0 });
    expect(await gauge(registry, 'backup_continuous_lag_events')).toBe(0);
    await cb.stop();
    await expectSegmentsEqualLog(store, log);

    // Full + incremental through the same faulty path also land intact.
    proxy.faults = { errorRate: 0.2, dropRate: 0.05, latencyMs: 5 };
    // (a store with the default-like 8 attempts: at 25 % faults, 3 attempts per request fail a many-request backup too often)
    const patient = s3Store(proxy.endpoint, 'cont', { requestTimeoutMs: 2000, retry: { attempts: 8, baseDelayMs: 10, maxDelayMs: 100 } });
    const mgr = new BackupManager({ log, dataDir: dir, store: patient, eventsPerFile: 300, logger: quietLogger() });
    const full = await mgr.createFull();
    proxy.faults = { errorRate: 0, dropRate: 0, latencyMs: 0 };
    expect((await mgr.verify(full.backup_id)).ok).toBe(true);

    // A restore through the same faults: its downloads retry, and it lands intact.
    const target = path.join(tempDir(), 'data');
    const own = await EventLog.open({ dir: target, logger: () => undefined });
    await own.append([created('mine', 4)]);
    await own.close();
    const targetBefore = hashDir(target);
    proxy.faults = { errorRate: 0.2, dropRate: 0.05, latencyMs: 5 };
    const errorsBefore = proxy.counts.errors + proxy.counts.drops;
    const staged = path.join(tempDir(), 'staged');
    const r = await restore({ store: patient, dataDir: staged, backupId: full.backup_id });
    expect([r.seq, r.headHash, r.vectorCount]).toEqual([full.to_seq, full.head_hash, full.vector_count]);
    expect(proxy.counts.errors + proxy.counts.drops).toBeGreaterThan(errorsBefore);
    proxy.faults = { errorRate: 0, dropRate: 0, latencyMs: 0 };
    // S3 gone for good: the restore fails once its retries run out (BACKUP_STORE_ERROR), and the
    // data dir it would have replaced is untouched, nothing of the attempt left beside it.
    await s3.stop();
    await expect(restore({ store: patient, dataDir: target, backupId: full.backup_id, force: true })).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_STORE_ERROR'));
    expect(hashDir(target)).toBe(targetBefore);
    expect(fs.readdirSync(path.dirname(target))).toEqual(['data']);
    await s3.start(s3.port);
    patient.destroy();
    store.destroy();
    await log.close();
  });

  it('a store slower than the interval: what commits during an upload goes into the next segment, so the backlog stays one segment instead of a queue of small ones', async () => {
    const { log } = await openLog();
    const s3 = s3Store(proxy.endpoint, 'slow-store', { requestTimeoutMs: 5000 });
    const landed: { key: string; at: number }[] = [];
    const store: ObjectStore = { url: s3.url, put: async (k, b, o) => { await s3.put(k, b, o); if (k.startsWith('segments/')) landed.push({ key: k, at: Date.now() }); }, get: (k) => s3.get(k), head: (k) => s3.head(k), list: (p) => s3.list(p), delete: (k) => s3.delete(k) };
    const cb = new ContinuousBackup({ log, store, intervalMs: 20, maxBatchEvents: 10_000, logger: quietLogger() });
    await cb.start();
    await log.append([created('c', 8)]);
    await cb.waitForShipped(log.head().seq);
    // Each segment now takes three requests (claim, its read-back, the segment) of >= 120 ms: an
    // upload lasts ~18 intervals. Writes keep coming every ~20 ms for 1.5 s.
    proxy.faults = { errorRate: 0, dropRate: 0, latencyMs: 120 };
    const end = Date.now() + 1500;
    let writes = 0;
    while (Date.now() < end) {
      await fill(log, 10, { seed: writes * 10, batch: 10 });
      writes += 1;
      await new Promise((r) => setTimeout(r, 20));
    }
    const lastWrite = Date.now();
    const head = log.head().seq;
    await cb.waitForShipped(head);
    proxy.faults = { errorRate: 0, dropRate: 0, latencyMs: 0 };
    await cb.stop();
    // Once the writes stop, at most the upload in flight and one holding everything since remain
    // (one more if the last commits reached the tail after that one started). A queue of one
    // small segment per interval left ~70 to upload one after another.
    const after = landed.filter((l) => l.at >= lastWrite).length;
    expect(after, `${landed.length} segments for ${writes} writes; ${after} landed after the last write`).toBeLessThanOrEqual(3);
    expect(landed.length).toBeLessThan(writes / 3);
    await expectSegmentsEqualLog(store, log);
    s3.destroy();
    await log.close();
  }, 120_000);

  it('a store that answers every request with 503: BACKUP_STORE_ERROR names the HTTP status, even for a HEAD (no body to name the error)', async () => {
    const store = s3Store(proxy.endpoint, 'five-oh-three', { retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 10 } });
    proxy.faults = { errorRate: 1, dropRate: 0, latencyMs: 0 };
    try {
      for (const op of [() => store.head('x'), () => store.list('backups/'), () => store.put('x', Buffer.from('y'))]) {
        await expect(op()).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_STORE_ERROR') && /failed \(HTTP 50[03]\)/.test((e as Error).message));
      }
    } finally {
      proxy.faults = { errorRate: 0, dropRate: 0, latencyMs: 0 };
      store.destroy();
    }
  });

  it('a store that takes connections but never answers: a request ends at its timeout (BACKUP_STORE_ERROR), and stopping cancels an upload in flight', async () => {
    const { log } = await openLog();
    // Requests are held 60 s at the proxy, as by a stopped or black-holed server.
    proxy.faults = { errorRate: 0, dropRate: 0, latencyMs: 60_000 };
    const quick = s3Store(proxy.endpoint, 'silent', { requestTimeoutMs: 300, retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 20 } });
    const listed = quick.list('backups/').then(
      () => 'answered',
      (e: unknown) => (isBackupError(e, 'BACKUP_STORE_ERROR') ? 'BACKUP_STORE_ERROR' : String(e)),
    );
    // (before: the timeout only logged a warning, and the list waited for the proxy's 60 s)
    expect(await Promise.race([listed, new Promise((r) => setTimeout(() => r('still waiting after 20 s'), 20_000))])).toBe('BACKUP_STORE_ERROR');
    proxy.faults = { errorRate: 0, dropRate: 0, latencyMs: 0 };

    // Shipping while S3 answers; then it stops answering with an upload in flight, and the pipeline is stopped.
    const store = s3Store(proxy.endpoint, 'silent', { requestTimeoutMs: 30_000 });
    const cb = new ContinuousBackup({ log, store, intervalMs: 20, maxBatchEvents: 100, logger: quietLogger() });
    await cb.start();
    await log.append([created('c', 8)]);
    await fill(log, 200, { batch: 50 });
    await cb.waitForShipped(log.head().seq);
    proxy.faults = { errorRate: 0, dropRate: 0, latencyMs: 60_000 };
    const requests = proxy.counts.requests;
    await fill(log, 100, { seed: 500, batch: 50 });
    await until(() => proxy.counts.requests > requests, 10_000, 'an upload to be in flight');
    const stopped = cb.stop().then(() => 'stopped');
    expect(await Promise.race([stopped, new Promise((r) => setTimeout(() => r('stop still waiting after 10 s'), 10_000))])).toBe('stopped');
    proxy.faults = { errorRate: 0, dropRate: 0, latencyMs: 0 };
    // The next start ships what was cut off: the store ends up with every event once.
    const again = new ContinuousBackup({ log, store, intervalMs: 20, maxBatchEvents: 100, logger: quietLogger() });
    await again.start();
    await again.waitForShipped(log.head().seq);
    await again.stop();
    await expectSegmentsEqualLog(store, log);
    quick.destroy();
    store.destroy();
    await log.close();
  });

  it('a backup against a store that stops answering: abort (a server shutting down) ends it with BACKUP_ABORTED and lets idle() resolve without waiting out the requests; a later backup is whole', async () => {
    const { log, dir } = await filledLog(300);
    const store = s3Store(proxy.endpoint, 'abort-hang', { requestTimeoutMs: 60_000, retry: { attempts: 5, baseDelayMs: 10, maxDelayMs: 20 } });
    const lines: string[] = [];
    const mgr = new BackupManager({ log, dataDir: dir, store, eventsPerFile: 100, logger: quietLogger(lines) });
    // Requests are held 60 s at the proxy (each would then retry): the backup waits on its first.
    proxy.faults = { errorRate: 0, dropRate: 0, latencyMs: 60_000 };
    const requests = proxy.counts.requests;
    const backup = mgr.createFull().then(
      () => 'completed',
      (e: unknown) => (isBackupError(e, 'BACKUP_ABORTED') ? 'BACKUP_ABORTED' : String(e)),
    );
    await until(() => proxy.counts.requests > requests, 10_000, 'a request in flight');
    mgr.abort();
    // (before: the backup, and idle() with it, waited for each request's 60 s, retries, then as long again to remove what it stored)
    const ended = Promise.all([backup, mgr.idle()]).then(([b]) => b);
    expect(await Promise.race([ended, new Promise((r) => setTimeout(() => r('still waiting after 15 s'), 15_000))])).toBe('BACKUP_ABORTED');
    expect(lines.join('\n')).toMatch(/the objects of the stopped backup \S+ were not all removed within 2000 ms/);
    await expect(mgr.createFull()).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_ABORTED')); // stopped for good
    proxy.faults = { errorRate: 0, dropRate: 0, latencyMs: 0 };
    // Nothing of the stopped one is listed; a new manager's backup is whole.
    const next = new BackupManager({ log, dataDir: dir, store, eventsPerFile: 100, logger: quietLogger() });
    expect(await next.list()).toEqual([]);
    const full = await next.createFull();
    expect((await next.verify(full.backup_id)).ok).toBe(true);
    store.destroy();
    await log.close();
  }, 60_000);
});

describe('point-in-time restore over a chain with a gap', () => {
  it('takes an older full backup\'s chain when the newest one stops at a gap; a dry run refuses what the restore refuses', async () => {
    const { log, dir } = await openLog();
    const store = new LocalDirStore(tempDir());
    const mgr = new BackupManager({ log, dataDir: dir, store, logger: quietLogger() });
    await log.append([created('c', 8)]);
    await fill(log, 99, { batch: 33 });
    const a = await mgr.createFull(); // 1..100
    await new Promise((r) => setTimeout(r, 2));
    await fill(log, 50, { seed: 100, batch: 25 });
    const b = await mgr.createFull(); // 1..150, the newest full: nothing builds on it
    await fill(log, 50, { seed: 200, batch: 25 });
    const inc = await mgr.createIncremental({ since: a.to_ts }); // 101..200, on a
    expect([inc.parent, inc.from_seq, inc.to_seq]).toEqual([a.backup_id, 101, 200]);
    const cb = new ContinuousBackup({ log, store, intervalMs: 20, maxBatchEvents: 40, logger: quietLogger() });
    await cb.start();
    await fill(log, 100, { seed: 300, batch: 20 });
    await cb.waitForShipped(log.head().seq);
    await cb.stop();
    expect(b.to_seq).toBe(150);
    // T after the incremental: b's chain stops at 150 (a gap, then segments from 201); a's goes on.
    for (const seq of [180, 250, log.head().seq]) {
      const T = log.get(seq)!.ts;
      const dry = await restore({ store, dataDir: path.join(tempDir(), 'dry'), pointInTime: T, dryRun: true });
      expect(dry.plan).not.toContain('WARNING');
      const r = await restore({ store, dataDir: path.join(tempDir(), 'pitr'), pointInTime: T });
      expect([r.seq, r.headHash]).toEqual([log.seqAtTime(T), toHex(log.get(log.seqAtTime(T))!.hash)]);
    }
    // A segment in the middle removed by hand: every chain stops at its gap. A T after the gap's
    // start is refused, by the dry run too (before: it printed a plan and a warning, exit 0); a T
    // before it is restored, dry run or not.
    const segs = await loadSegments(store);
    const gone = segs[Math.floor(segs.length / 2)]!;
    await store.delete(gone.key);
    for (const dryRun of [true, false]) {
      await expect(restore({ store, dataDir: path.join(tempDir(), 'pitr'), pointInTime: log.get(log.head().seq)!.ts, dryRun })).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_CHAIN_GAP'));
      await expect(restore({ store, dataDir: path.join(tempDir(), 'pitr'), pointInTime: log.get(gone.first_seq)!.ts, dryRun })).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_CHAIN_GAP'));
      const T = log.get(gone.first_seq - 1)!.ts - 1; // before the last event ahead of the gap (a batch's events share a ts)
      const before = await restore({ store, dataDir: path.join(tempDir(), 'pitr'), pointInTime: T, dryRun });
      if (!dryRun) expect(before.seq).toBe(log.seqAtTime(T));
    }
    await log.close();
  });
});
