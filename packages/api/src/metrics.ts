import { Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client';
import type { Registry } from 'prom-client';

/** The HTTP metrics of the server. */
export interface HttpMetrics {
  requests: Counter<'method' | 'route' | 'status'>;
  duration: Histogram<'method' | 'route'>;
}

/** Registers the HTTP metrics and prom-client's default process metrics on `registry`. */
export function registerHttpMetrics(registry: Registry): HttpMetrics {
  collectDefaultMetrics({ register: registry });
  return {
    requests: new Counter({ name: 'http_requests_total', help: 'HTTP requests answered, by method, route and status', labelNames: ['method', 'route', 'status'], registers: [registry] }),
    duration: new Histogram({ name: 'http_request_duration_seconds', help: 'HTTP request latency, seconds', labelNames: ['method', 'route'], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [registry] }),
  };
}

type Kind = 'counter' | 'gauge' | 'histogram';
/**
 * Every metric named in DESIGN.md and the sketch, with its type and labels. Components register
 * their own; `ensureSketchMetrics` registers an idle placeholder for any a missing component did
 * not (so dashboards and alert rules always resolve; a placeholder never moves).
 */
export const SKETCH_METRICS: readonly { name: string; kind: Kind; labels: string[]; help: string }[] = [
  { name: 'wal_writes_total', kind: 'counter', labels: ['status'], help: 'WAL appends by status' },
  { name: 'wal_errors_total', kind: 'counter', labels: ['type'], help: 'WAL errors by type' },
  { name: 'wal_circuit_breaker_state', kind: 'gauge', labels: ['state'], help: 'WAL breaker state (1 = current)' },
  { name: 'wal_retry_attempts_total', kind: 'counter', labels: [], help: 'WAL retry attempts' },
  { name: 'hnsw_corruption_detected_total', kind: 'counter', labels: [], help: 'corrupt HNSW checkpoints detected' },
  { name: 'hnsw_recovery_attempts_total', kind: 'counter', labels: ['result'], help: 'HNSW checkpoint recovery attempts' },
  { name: 'hnsw_snapshot_age_seconds', kind: 'gauge', labels: ['generation'], help: 'age of HNSW checkpoints' },
  { name: 'training_restarts_total', kind: 'counter', labels: [], help: 'training task restarts' },
  { name: 'training_restarts_exceeded_total', kind: 'counter', labels: [], help: 'training supervisor gave up' },
  { name: 'training_uptime_seconds', kind: 'gauge', labels: [], help: 'training task uptime' },
  { name: 'training_last_success_timestamp', kind: 'gauge', labels: [], help: 'last successful training, unix seconds' },
  { name: 'query_timeouts_total', kind: 'counter', labels: ['layer'], help: 'query layer timeouts' },
  { name: 'query_layer_circuit_breaker_state', kind: 'gauge', labels: ['layer', 'state'], help: 'query layer breaker state' },
  { name: 'query_degradation_total', kind: 'counter', labels: ['fallback_to'], help: 'degraded query answers' },
  { name: 'backup_success_total', kind: 'counter', labels: ['type'], help: 'successful backups' },
  { name: 'backup_failure_total', kind: 'counter', labels: ['type'], help: 'failed backups' },
  { name: 'backup_duration_seconds', kind: 'histogram', labels: ['type'], help: 'backup duration' },
  { name: 'backup_size_bytes', kind: 'gauge', labels: ['type'], help: 'backup size' },
  { name: 'restore_success_total', kind: 'counter', labels: [], help: 'successful restores' },
  { name: 'restore_failure_total', kind: 'counter', labels: [], help: 'failed restores' },
  { name: 'restore_duration_seconds', kind: 'histogram', labels: [], help: 'restore duration' },
  { name: 'pitr_success_total', kind: 'counter', labels: [], help: 'successful point-in-time restores' },
  { name: 'backup_continuous_lag_events', kind: 'gauge', labels: [], help: 'events committed but not yet shipped by continuous backup' },
  { name: 'backup_continuous_lag_seconds', kind: 'gauge', labels: [], help: 'age of the oldest unshipped event, seconds' },
];

/** Registers a placeholder for every sketch metric not yet on `registry`; returns the names it added. */
export function ensureSketchMetrics(registry: Registry): string[] {
  const added: string[] = [];
  for (const m of SKETCH_METRICS) {
    if (registry.getSingleMetric(m.name) !== undefined) continue;
    const cfg = { name: m.name, help: `${m.help} (placeholder: the component is not running)`, labelNames: m.labels, registers: [registry] };
    if (m.kind === 'counter') new Counter(cfg);
    else if (m.kind === 'gauge') new Gauge(cfg);
    else new Histogram(cfg);
    added.push(m.name);
  }
  return added;
}
