import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BackupManager, LocalDirStore, isBackupError, restore } from '@kyrodb/backup';
import type { BackupManifest, PruneResult } from '@kyrodb/backup';
import { Failpoints, type EventLog } from '@kyrodb/log';
import { fill, filledLog, quietLogger, tempDir } from './helpers.js';

const HOUR = 3_600_000;
/** One hourly slot and nothing else: retention keeps the newest backup (and its parents), no other. */
const NEWEST_ONLY = { policy: { hourly: 1, daily: 0, weekly: 0, monthly: 0 } };

/**
 * An old full backup F1 and a newer F2, two hours apart; events after both. An incremental
 * taken `since` F1 builds on F1, which retention would delete (it keeps F2 only).
 */
async function twoFulls(): Promise<{ log: EventLog; dir: string; storeDir: string; f1: BackupManifest; f2: BackupManifest; clock: { now: number } }> {
  const { log, dir } = await filledLog(40);
  const storeDir = tempDir();
  const clock = { now: Date.UTC(2026, 10, 28, 8) };
  const mgr = new BackupManager({ log, dataDir: dir, store: new LocalDirStore(storeDir), logger: quietLogger(), now: () => clock.now });
  const f1 = await mgr.createFull();
  await fill(log, 30, { seed: 100 });
  clock.now += 2 * HOUR;
  const f2 = await mgr.createFull();
  await fill(log, 20, { seed: 200 });
  clock.now += 10 * 60_000;
  return { log, dir, storeDir, f1, f2, clock };
}

/** The incremental restores (its chain is whole) to the head it recorded. */
async function restores(storeDir: string, inc: BackupManifest): Promise<void> {
  const r = await restore({ store: new LocalDirStore(storeDir), dataDir: path.join(tempDir(), 'r'), backupId: inc.backup_id });
  expect([r.seq, r.headHash]).toEqual([inc.to_seq, inc.head_hash]);
}

/**
 * `backup prune` beside `backup create --incremental --since <an older full>` deleted the
 * incremental's parent: the incremental exited 0, and its restore failed BACKUP_CHAIN_GAP. An
 * incremental now claims its parent in the store before it uploads (`parents/<parent>/<id>`),
 * retention keeps a claimed parent, a prune looks again after it removed manifests and puts back
 * any a backup taken meanwhile needs, and the incremental checks its chain once its manifest is
 * written: it fails, leaving nothing, rather than complete without its parent.
 */
describe('prune beside an incremental backup', () => {
  it('a prune while the incremental uploads keeps its parent (claimed); the incremental restores', async () => {
    const { log, dir, storeDir, f1, f2, clock } = await twoFulls();
    const pruner = new BackupManager({ log, dataDir: dir, store: new LocalDirStore(storeDir), logger: quietLogger(), now: () => clock.now });
    let pruned: PruneResult | undefined;
    class PruneDuringUpload extends LocalDirStore {
      override async put(key: string, body: Buffer): Promise<void> {
        if (pruned === undefined && /^backups\/[^/]+-incr-[^/]+\/events/.test(key)) pruned = await pruner.prune(NEWEST_ONLY);
        return super.put(key, body);
      }
    }
    const mgr = new BackupManager({ log, dataDir: dir, store: new PruneDuringUpload(storeDir), logger: quietLogger(), now: () => clock.now });
    const inc = await mgr.createIncremental({ since: f1.to_ts });
    expect(inc.parent).toBe(f1.backup_id);
    expect(pruned).toBeDefined();
    expect(pruned!.delete).toEqual([]);
    expect(pruned!.keep.find((k) => k.backup_id === f1.backup_id)?.reasons.join()).toMatch(/parent of .*under way/);
    expect((await pruner.list()).map((m) => m.backup_id).sort()).toEqual([f1.backup_id, f2.backup_id, inc.backup_id].sort());
    expect((await pruner.verify(inc.backup_id)).ok).toBe(true);
    await restores(storeDir, inc);
    // Its claim is gone once it completed; a later prune keeps F1 as the incremental's parent.
    expect(await new LocalDirStore(storeDir).list('parents/')).toEqual([]);
    const later = await pruner.prune(NEWEST_ONLY);
    expect(later.delete).toEqual([f2.backup_id]);
    await restores(storeDir, inc);
    await log.close();
  });

  it('a prune that planned before the incremental began puts back the parent it deleted; the incremental restores', async () => {
    const { log, dir, storeDir, f1, clock } = await twoFulls();
    const mgr = new BackupManager({ log, dataDir: dir, store: new LocalDirStore(storeDir), logger: quietLogger(), now: () => clock.now });
    let inc: BackupManifest | undefined;
    class IncrementalMeanwhile extends LocalDirStore {
      override async delete(key: string): Promise<void> {
        // The plan is made (F1 goes); before its first delete, the whole incremental runs.
        if (inc === undefined) inc = await mgr.createIncremental({ since: f1.to_ts });
        return super.delete(key);
      }
    }
    const pruner = new BackupManager({ log, dataDir: dir, store: new IncrementalMeanwhile(storeDir), logger: quietLogger(), now: () => clock.now });
    const res = await pruner.prune(NEWEST_ONLY);
    expect(inc?.parent).toBe(f1.backup_id);
    expect(res.delete).toEqual([]);
    expect(res.keep.find((k) => k.backup_id === f1.backup_id)?.reasons.join()).toMatch(/parent of .*taken during the prune/);
    expect((await mgr.list()).map((m) => m.backup_id)).toContain(f1.backup_id);
    expect((await mgr.verify(inc!.backup_id)).ok).toBe(true);
    await restores(storeDir, inc!);
    await log.close();
  });

  it('two prunes at once: the second finds the parent without its manifest (the first is putting it back) and leaves its files', async () => {
    const { log, dir, storeDir, f1, clock } = await twoFulls();
    const mgr = new BackupManager({ log, dataDir: dir, store: new LocalDirStore(storeDir), logger: quietLogger(), now: () => clock.now });
    const second = new BackupManager({ log, dataDir: dir, store: new LocalDirStore(storeDir), logger: quietLogger(), now: () => clock.now });
    let inc: BackupManifest | undefined;
    let secondRes: PruneResult | undefined;
    class Interleaved extends LocalDirStore {
      override async delete(key: string): Promise<void> {
        if (inc === undefined) inc = await mgr.createIncremental({ since: f1.to_ts });
        await super.delete(key);
        // F1's manifest just went: a second prune runs now, to which F1 is an incomplete backup (any age deletes it).
        if (key === `backups/${f1.backup_id}/manifest.json`) secondRes = await second.prune({ ...NEWEST_ONLY, incompleteAfterMs: 0 });
      }
    }
    const first = new BackupManager({ log, dataDir: dir, store: new Interleaved(storeDir), logger: quietLogger(), now: () => clock.now });
    const res = await first.prune(NEWEST_ONLY);
    expect(secondRes?.deleteIncomplete).toEqual([]); // F1's files stay: the incremental listed now builds on it
    expect(res.delete).toEqual([]);
    expect((await mgr.verify(inc!.backup_id)).ok).toBe(true);
    await restores(storeDir, inc!);
    await log.close();
  });

  it('a prune deletes the chosen parent before the claim is seen: the incremental chooses again from what the store holds, and restores', async () => {
    const { log, dir, storeDir, f1, f2, clock } = await twoFulls();
    const plain = new LocalDirStore(storeDir);
    let removed = false;
    class PrunedAtClaim extends LocalDirStore {
      override async put(key: string, body: Buffer): Promise<void> {
        // Its choice is deleted before the claim is seen (a prune that planned before it, a person).
        if (!removed && key.startsWith('parents/')) {
          removed = true;
          for (const k of await plain.list(`backups/${f2.backup_id}/`)) await plain.delete(k);
        }
        return super.put(key, body);
      }
    }
    const mgr = new BackupManager({ log, dataDir: dir, store: new PrunedAtClaim(storeDir), logger: quietLogger(), now: () => clock.now });
    const inc = await mgr.createIncremental();
    expect(removed).toBe(true);
    expect(inc.parent).toBe(f1.backup_id);
    expect(await plain.list('parents/')).toEqual([]);
    expect((await mgr.verify(inc.backup_id)).ok).toBe(true);
    await restores(storeDir, inc);
    // With --since and nothing left that ends by then, it says so.
    removed = false;
    const err: unknown = await new BackupManager({ log, dataDir: dir, store: new (class extends LocalDirStore {
      override async put(key: string, body: Buffer): Promise<void> {
        if (!removed && key.startsWith('parents/')) {
          removed = true;
          for (const id of [f1.backup_id, inc.backup_id]) for (const k of await plain.list(`backups/${id}/`)) await plain.delete(k);
        }
        return super.put(key, body);
      }
    })(storeDir), logger: quietLogger(), now: () => clock.now }).createIncremental({ since: inc.to_ts }).catch((e: unknown) => e);
    expect(isBackupError(err, 'BACKUP_NOT_FOUND'), String(err)).toBe(true);
    expect(String(err)).toContain('no backup ends at or before');
    expect(await plain.list('parents/')).toEqual([]);
    await log.close();
  });

  it.each([
    ['all of it', (k: string) => k !== ''],
    ['its events files (its manifest stays)', (k: string) => k.includes('/events')],
  ])('a parent deleted under the incremental by anything else (%s): the incremental fails BACKUP_NOT_FOUND and leaves nothing', async (_what, doomed) => {
    const { log, dir, storeDir, f1, f2, clock } = await twoFulls();
    const plain = new LocalDirStore(storeDir);
    class ParentRemovedMeanwhile extends LocalDirStore {
      override async put(key: string, body: Buffer): Promise<void> {
        await super.put(key, body);
        // Right after the incremental's manifest is written: F1 goes, as a tool that knows no claims would remove it.
        if (/^backups\/[^/]+-incr-[^/]+\/manifest\.json$/.test(key)) for (const k of (await plain.list(`backups/${f1.backup_id}/`)).filter(doomed)) await plain.delete(k);
      }
    }
    const mgr = new BackupManager({ log, dataDir: dir, store: new ParentRemovedMeanwhile(storeDir), logger: quietLogger(), now: () => clock.now });
    const err: unknown = await mgr.createIncremental({ since: f1.to_ts }).catch((e: unknown) => e);
    expect(isBackupError(err, 'BACKUP_NOT_FOUND'), String(err)).toBe(true);
    expect(String(err)).toContain(f1.backup_id);
    expect((await mgr.list()).map((m) => m.backup_id).filter((id) => id !== f1.backup_id)).toEqual([f2.backup_id]);
    expect((await plain.list('backups/')).filter((k) => k.includes('-incr-'))).toEqual([]);
    expect(await plain.list('parents/')).toEqual([]);
    await log.close();
  });
});

describe('prune beside a restore', () => {
  it('keeps what the restore reads (it claims the backup its chain ends at) until the restore is done; then it goes', async () => {
    const { log, dir, storeDir, f1, clock } = await twoFulls();
    const pruner = new BackupManager({ log, dataDir: dir, store: new LocalDirStore(storeDir), logger: quietLogger(), now: () => clock.now });
    const failpoints = new Failpoints();
    failpoints.set('wal.import', '1*delay(1500)');
    const target = path.join(tempDir(), 'r');
    const restoring = restore({ store: new LocalDirStore(storeDir), dataDir: target, backupId: f1.backup_id, failpoints });
    restoring.catch(() => undefined);
    // While it imports: f1 is claimed, so the prune keeps it.
    const deadline = Date.now() + 10_000;
    while (!fs.readdirSync(path.dirname(target)).some((n) => n.includes('staging')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const during = await pruner.prune(NEWEST_ONLY);
    expect(during.delete).toEqual([]);
    expect(during.keep.find((k) => k.backup_id === f1.backup_id)?.reasons.join()).toMatch(/parent of \d{8}T\d{6}Z-restore-[0-9a-f]{6}, under way/);
    const r = await restoring;
    expect([r.seq, r.headHash]).toEqual([f1.to_seq, f1.head_hash]);
    // Done: its claim is gone, and retention deletes f1.
    expect((await new LocalDirStore(storeDir).list('parents/')).filter((k) => k.includes('-restore-'))).toEqual([]);
    expect((await pruner.prune(NEWEST_ONLY)).delete).toEqual([f1.backup_id]);
    await log.close();
  });
});

describe('a backup deleted while it is verified', () => {
  it('is BACKUP_NOT_FOUND (exit 4), not a damaged backup (BACKUP_FILE_MISSING, exit 5)', async () => {
    const { log, dir, storeDir, f1 } = await twoFulls();
    // Retention beside the verify: the backup goes, whole, once the verify has listed it.
    class DeletedMidway extends LocalDirStore {
      override async get(key: string): Promise<Buffer> {
        if (key.startsWith(`backups/${f1.backup_id}/events`)) for (const k of await this.list(`backups/${f1.backup_id}/`)) await this.delete(k);
        return super.get(key);
      }
    }
    const rep = await new BackupManager({ log, dataDir: dir, store: new DeletedMidway(storeDir), logger: quietLogger() }).verify(f1.backup_id);
    expect(rep.ok).toBe(false);
    expect(rep.code).toBe('BACKUP_NOT_FOUND');
    expect(rep.message).toMatch(new RegExp(`backup ${f1.backup_id} was deleted while it was verified`));
    await log.close();
  });
});
