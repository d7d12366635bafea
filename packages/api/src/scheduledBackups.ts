import type { EventLog } from '@kyrodb/log';
import { toHex } from '@kyrodb/log';
import type { BackupManager, BackupManifest } from '@kyrodb/backup';

type Level = 'info' | 'warn' | 'error';
export type ScheduleLogger = (level: Level, msg: string, fields?: Record<string, unknown>) => void;

/** What `ScheduledBackups` takes. */
export interface ScheduledBackupsOptions {
  manager: BackupManager;
  log: EventLog;
  logger: ScheduleLogger;
  /** backup.retention, applied after each scheduled backup. */
  retention: { hourly: number; daily: number; weekly: number; monthly: number };
}

/**
 * The backups `serve` takes on its cron schedules (`backup.full_backup_schedule`,
 * `backup.incremental_backup_schedule`), one at a time.
 *
 * Two schedules that fire together (the defaults, `0 2 * * *` and `0 * * * *`, both do at 02:00)
 * must not cost the full backup: a full one due while another backup runs is taken right after it,
 * and an incremental one due while another runs, or while a full one waits, is not taken (the one
 * under way or the full one about to start holds its events; the next tick takes what is newer).
 * Before, whichever fired second was skipped: the daily full one half of the time.
 *
 * Until the store holds a backup, an incremental has nothing to build on: the first scheduled
 * backup of a new store is a full one, whichever schedule fires first. Nothing written since the
 * newest backup: an incremental would hold no event (one a minute on an idle node, each listed
 * until retention removed it), so none is taken. After each backup, the retention policy.
 */
export class ScheduledBackups {
  private running: 'full' | 'incremental' | undefined;
  private fullWaiting = false;
  private stopped = false;
  private current: Promise<void> | undefined;

  constructor(private readonly o: ScheduledBackupsOptions) {}

  /**
   * A schedule fired. Resolves when the backups it started are done (at once when it was queued
   * behind another or not taken); never rejects.
   */
  async fire(type: 'full' | 'incremental'): Promise<void> {
    if (this.stopped) return;
    if (this.running !== undefined) {
      if (type === 'incremental') {
        this.o.logger('info', `scheduled incremental backup not taken: the ${this.running} backup under way${this.fullWaiting ? ' and the full one after it hold' : ' holds'} its events`);
        return;
      }
      if (this.fullWaiting || this.running === 'full') {
        this.o.logger('info', 'scheduled full backup not taken: a full backup is already under way or about to start');
        return;
      }
      this.o.logger('info', `scheduled full backup waits for the ${this.running} backup under way`);
      this.fullWaiting = true;
      return; // the run under way starts it when done
    }
    this.current = this.run(type);
    await this.current;
  }

  /** Resolves once no scheduled backup runs or waits. */
  async idle(): Promise<void> {
    while (this.current !== undefined && this.running !== undefined) await this.current;
  }

  /** No more backups start (the one under way finishes; see BackupManager.idle/abort). */
  stop(): void {
    this.stopped = true;
    this.fullWaiting = false;
  }

  private async run(type: 'full' | 'incremental'): Promise<void> {
    for (let next: 'full' | 'incremental' | undefined = type; next !== undefined && !this.stopped; ) {
      this.running = next;
      try {
        await this.take(next);
      } finally {
        this.running = undefined;
      }
      next = this.fullWaiting ? 'full' : undefined;
      this.fullWaiting = false;
    }
  }

  private async take(type: 'full' | 'incremental'): Promise<void> {
    const { manager, log, logger } = this.o;
    if (log.head().seq === 0) {
      logger('info', `scheduled ${type} backup skipped: the log is empty`);
      return;
    }
    try {
      // Marked in the description, not a tag: a tag makes a backup a named restore point that retention never deletes.
      const m = type === 'full' ? await manager.createFull({ description: 'scheduled' }) : await this.incrementalOrFirstFull();
      if (m === undefined) return;
      logger('info', `scheduled ${m.type} backup done`, { backup_id: m.backup_id, to_seq: m.to_seq });
      await this.applyRetention();
    } catch (err) {
      logger('error', `scheduled ${type} backup failed`, { error: err instanceof Error ? err.message : String(err), code: (err as { code?: unknown }).code });
    }
  }

  // A log that does not extend the newest backup is left to createIncremental to refuse (BACKUP_LOG_DIVERGED).
  private async incrementalOrFirstFull(): Promise<BackupManifest | undefined> {
    const { manager, log, logger } = this.o;
    // Scheduled incrementals listed the store outside any backup: with the store down they failed
    // every hour, logged, and never counted in backup_failure_total (the BackupFailing alert).
    const newest = (
      await manager.list().catch((err: unknown) => {
        manager.countFailure('incremental', err);
        throw err;
      })
    )[0];
    if (newest === undefined) {
      logger('info', 'scheduled incremental backup: the store holds no backup yet; taking a full one');
      return manager.createFull({ description: 'scheduled' });
    }
    const head = log.head();
    if (newest.to_seq === head.seq && newest.head_hash === toHex(head.hash)) {
      logger('info', 'scheduled incremental backup skipped: nothing written since the newest backup', { backup_id: newest.backup_id, to_seq: newest.to_seq });
      return undefined;
    }
    return manager.createIncremental({ description: 'scheduled' });
  }

  // The retention policy (backup.retention), as the sketch's backup manager applies it: never a
  // tagged backup, the newest, or what a kept one needs.
  private async applyRetention(): Promise<void> {
    const { manager, logger, retention } = this.o;
    try {
      const p = await manager.prune({ policy: retention });
      if (p.delete.length + p.deleteSegments.length + p.deleteIncomplete.length + p.deleteTagClaims.length + p.deleteParentClaims.length + p.deleteHistoryClaims.length > 0) logger('info', 'retention deleted backups outside backup.retention', { backups: p.delete, segments: p.deleteSegments.length, incomplete: p.deleteIncomplete, staleTagClaims: p.deleteTagClaims, parentClaims: p.deleteParentClaims, historyClaims: p.deleteHistoryClaims.length });
    } catch (err) {
      logger('error', 'retention after a scheduled backup failed; nothing more is deleted until the next one', { error: err instanceof Error ? err.message : String(err), code: (err as { code?: unknown }).code });
    }
  }
}
