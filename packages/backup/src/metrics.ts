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

/** Gets or registers the metrics on `registry`. */
export function backupMetrics(registry: Registry): BackupMetrics {
  const r = [registry];
  return {
    success: once(registry, 'backup_success_total', () => new Counter({ name: 'backup_success_total', help: 'Backups completed, by type', labelNames: ['type'], registers: r })),
    failure: once(registry, 'backup_failure_total', () => new Counter({ name: 'backup_failure_total', help: 'Backups failed, by type', labelNames: ['type'], registers: r })),
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
