import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { EventLog } from '@kyrodb/log';
import { BackupManager, LocalDirStore } from '@kyrodb/backup';
import { ScheduledBackups } from '../src/scheduledBackups.js';
import { tmpDir } from './helpers.js';

// The scheduler with a real log and a real backup manager on a local store: two schedules that
// fire together (the defaults both fire at 02:00) must not cost the full backup.
/** The types of the scheduled backups taken, in order, from their log lines. */
const done = (lines: string[]): string[] => lines.flatMap((l) => /^info scheduled (full|incremental) backup done$/.exec(l)?.[1] ?? []);

describe('scheduled backups that fire together', () => {
  let log: EventLog | undefined;
  afterEach(async () => {
    await log?.close();
    log = undefined;
  });

  const setUp = async (): Promise<{ sched: ScheduledBackups; manager: BackupManager; lines: string[]; write: (i: number) => Promise<void>; registry: Registry; backupsDir: string }> => {
    const dir = tmpDir();
    const dataDir = path.join(dir, 'data');
    log = await EventLog.open({ dir: dataDir, logger: () => {} });
    const l = log;
    const registry = new Registry();
    const manager = new BackupManager({ log: l, dataDir, store: new LocalDirStore(path.join(dir, 'backups')), registry });
    const lines: string[] = [];
    const sched = new ScheduledBackups({ manager, log: l, logger: (level, msg) => lines.push(`${level} ${msg}`), retention: { hourly: 24, daily: 7, weekly: 4, monthly: 12 } });
    await l.append([{ type: 'collection.created', collection: 'c', body: { dimension: 2, metric: 'l2', hnsw: { M: 16, efConstruction: 100, efSearch: 50 } } }]);
    const write = async (i: number): Promise<void> => {
      await l.append([{ type: 'vector.upserted', collection: 'c', body: { id: `d${i}`, vector: new Float32Array([i, 1]) } }]);
    };
    return { sched, manager, lines, write, registry, backupsDir: path.join(dir, 'backups') };
  };

  it('an incremental first, then the full: both are taken, the full after it, holding every event', async () => {
    const { sched, manager, lines, write } = await setUp();
    await sched.fire('full');
    await write(1);
    const inc = sched.fire('incremental');
    const full = sched.fire('full'); // the same tick: waits for the incremental
    await Promise.all([inc, full]);
    await sched.idle();
    // (Retention keeps the newest of each hour: the list holds the last full one.)
    expect(done(lines)).toEqual(['full', 'incremental', 'full']);
    expect((await manager.list())[0]).toMatchObject({ type: 'full', to_seq: log!.head().seq });
    expect(lines).toContain('info scheduled full backup waits for the incremental backup under way');
    expect(lines.filter((l) => l.startsWith('warn') || l.startsWith('error'))).toEqual([]);
  });

  it('the full first, then an incremental: the full is taken, the incremental is not (the full holds its events)', async () => {
    const { sched, manager, lines, write } = await setUp();
    await sched.fire('full');
    await write(1);
    const full = sched.fire('full');
    const inc = sched.fire('incremental');
    await Promise.all([full, inc]);
    await sched.idle();
    expect(done(lines)).toEqual(['full', 'full']);
    expect((await manager.list())[0]).toMatchObject({ type: 'full', to_seq: log!.head().seq });
    expect(lines.some((l) => l.startsWith('info scheduled incremental backup not taken: the full backup under way holds its events'))).toBe(true);
  });

  it('after stop, nothing starts: not a full one waiting behind another', async () => {
    const { sched, lines, write } = await setUp();
    await sched.fire('full');
    await write(1);
    const inc = sched.fire('incremental');
    void sched.fire('full'); // waits behind the incremental
    sched.stop();
    await inc;
    await sched.idle();
    await sched.fire('full');
    expect(done(lines)).toEqual(['full', 'incremental']);
  });

  it('a scheduled incremental that cannot read its store counts in backup_failure_total (the BackupFailing alert)', async () => {
    const { sched, lines, write, registry, backupsDir } = await setUp();
    await sched.fire('full');
    await write(1);
    const failures = async (type: string): Promise<number> => (await registry.getSingleMetric('backup_failure_total')!.get()).values.find((v) => v.labels['type'] === type)?.value ?? 0;
    expect(await failures('incremental')).toBe(0);
    // The store's dir replaced by a file: listing it fails (ENOTDIR), as with S3 down.
    fs.rmSync(backupsDir, { recursive: true });
    fs.writeFileSync(backupsDir, '');
    await sched.fire('incremental');
    await sched.idle();
    expect(lines.some((l) => l.startsWith('error scheduled incremental backup failed'))).toBe(true);
    expect(await failures('incremental')).toBe(1); // before: 0
  });
});
