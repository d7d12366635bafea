import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

function once<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/** The backup metrics of DESIGN.md §3, on a registry passed in (shared safely by several components). */
export interface BackupMetrics {
  success: Counter<'type'>;
  failure: Counter<'type'>;
  duration: Histogram<'type'>;
  size: Gauge<'type'>;
  restoreSuccess: Counter;
  restoreFailure: Counter;
  restoreDuration: Histogram;
  pitrSuccess: Counter;
  lagEvents: Gauge;
  lagSeconds: Gauge;
  segmentsShipped: Counter;
  uploadRetries: Counter;
}

const buckets = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800];

/**
 * A counter by backup type, its series for both types present at 0 from the start: a series
 * that first appears at 1 shows no increase to `rate()`, and the BackupFailing alert
 * (`rate(backup_failure_total[1h]) > 0`) would miss the first failure.
 */
function byType(name: string, help: string, r: Registry[]): Counter<'type'> {
  const c = new Counter({ name, help, labelNames: ['type'], registers: r });
  for (const type of ['full', 'incremental']) c.inc({ type }, 0);
  return c;
}

/** Gets or registers the metrics on `registry`. */
export function backupMetrics(registry: Registry): BackupMetrics {
  const r = [registry];
  return {
    success: once(registry, 'backup_success_total', () => byType('backup_success_total', 'Backups completed, by type', r)),
    failure: once(registry, 'backup_failure_total', () => byType('backup_failure_total', 'Backups failed, by type', r)),
    duration: once(registry, 'backup_duration_seconds', () => new Histogram({ name: 'backup_duration_seconds', help: 'Backup duration, by type', labelNames: ['type'], buckets, registers: r })),
    size: once(registry, 'backup_size_bytes', () => new Gauge({ name: 'backup_size_bytes', help: 'Stored size of the last backup, by type', labelNames: ['type'], registers: r })),
    restoreSuccess: once(registry, 'restore_success_total', () => new Counter({ name: 'restore_success_total', help: 'Restores completed', registers: r })),
    restoreFailure: once(registry, 'restore_failure_total', () => new Counter({ name: 'restore_failure_total', help: 'Restores failed (the data dir was left as it was)', registers: r })),
    restoreDuration: once(registry, 'restore_duration_seconds', () => new Histogram({ name: 'restore_duration_seconds', help: 'Restore duration', buckets, registers: r })),
    pitrSuccess: once(registry, 'pitr_success_total', () => new Counter({ name: 'pitr_success_total', help: 'Point-in-time restores completed', registers: r })),
    lagEvents: once(registry, 'backup_continuous_lag_events', () => new Gauge({ name: 'backup_continuous_lag_events', help: 'Committed events not yet shipped by continuous backup', registers: r })),
    lagSeconds: once(registry, 'backup_continuous_lag_seconds', () => new Gauge({ name: 'backup_continuous_lag_seconds', help: 'Age of the oldest unshipped event, seconds', registers: r })),
    segmentsShipped: once(registry, 'backup_continuous_segments_total', () => new Counter({ name: 'backup_continuous_segments_total', help: 'Segments shipped by continuous backup', registers: r })),
    uploadRetries: once(registry, 'backup_upload_retries_total', () => new Counter({ name: 'backup_upload_retries_total', help: 'Upload attempts retried after a failure', registers: r })),
  };
}
