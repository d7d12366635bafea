import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, startServer, tmp } from './serverProcess.js';

// `yaml` is a dependency of @kyrodb/api (not of this test package): resolve it from there.
const { parse } = createRequire(path.join(ROOT, 'packages/api/package.json'))('yaml') as { parse: (text: string) => unknown };
import type { ServerProc } from './serverProcess.js';

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  annotations?: { summary?: string };
}

const PROMQL_WORDS = new Set(['rate', 'irate', 'increase', 'sum', 'max', 'min', 'avg', 'count', 'by', 'without', 'on', 'ignoring', 'and', 'or', 'unless', 'bool', 'offset', 'histogram_quantile', 'max_over_time', 'delta', 'deriv', 'abs', 'time', 'vector', 'scalar']);

/** Metric names in a PromQL expression: identifiers that are not functions/keywords, label names or durations. */
export function metricNames(expr: string): string[] {
  const noLabels = expr.replace(/\{[^}]*\}/g, '').replace(/\[[^\]]*\]/g, '').replace(/"[^"]*"/g, '');
  const names = noLabels.match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? [];
  return [...new Set(names.filter((n) => !PROMQL_WORDS.has(n)))];
}

describe('deploy/alerts.yml', { timeout: 240_000 }, () => {
  const doc = parse(fs.readFileSync(path.join(ROOT, 'deploy/alerts.yml'), 'utf8')) as { groups: { name: string; rules: Rule[] }[] };
  const rules = doc.groups.flatMap((g) => g.rules);
  let server: ServerProc | undefined;
  afterAll(async () => {
    await server?.stop('SIGKILL');
  });

  it('is well-formed: groups of rules, each with alert, expr and a summary; the sketch rules and continuous-backup lag are there', () => {
    expect(doc.groups.length).toBeGreaterThan(0);
    for (const r of rules) {
      expect(r.alert).toMatch(/^[A-Za-z][A-Za-z0-9]*$/);
      expect(typeof r.expr).toBe('string');
      expect(r.annotations?.summary).toBeTruthy();
      if (r.for !== undefined) expect(r.for).toMatch(/^\d+[smhd]$/);
      // balanced brackets
      for (const [o, c] of [['(', ')'], ['{', '}'], ['[', ']']]) expect(r.expr.split(o!).length, r.expr).toBe(r.expr.split(c!).length);
    }
    expect(rules.map((r) => r.alert)).toEqual(expect.arrayContaining(['WalCircuitBreakerOpen', 'HnswCorruptionDetected', 'TrainingTaskRestartsHigh', 'TrainingSupervisorGaveUp', 'HnswCheckpointsFailing', 'BackupFailing', 'ContinuousBackupLagging']));
  });

  it("every metric named in an expression exists on a running server's /metrics", async () => {
    const dir = tmp();
    server = await startServer(['--data-dir', path.join(dir, 'data')], { KYRODB_BACKUP_ENABLED: 'false', KYRODB_BACKUP_LOCAL_DIR: path.join(dir, 'backups') });
    const text = await fetch(server.url + '/metrics').then((r) => r.text());
    const exposed = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
    const names = rules.flatMap((r) => metricNames(r.expr));
    expect(names).toContain('wal_circuit_breaker_state');
    for (const n of names) expect(exposed.has(n), `${n} is not on /metrics`).toBe(true);
    expect(await server.stop()).toBe(0);
    server = undefined;
  });

  it('a crashing training task: its crashes and giving up are in the server log, and the training rules\' conditions are met', async () => {
    const dir = tmp();
    const config = path.join(dir, 'kyrodb.yaml');
    fs.writeFileSync(config, 'cache: { training: { interval_secs: 1, min_samples: 1 } }\nerror_recovery: { training: { max_restarts: 3, restart_backoff_seconds: [1] } }\n');
    server = await startServer(['--config', config, '--data-dir', path.join(dir, 'data')], { KYRODB_BACKUP_ENABLED: 'false', KYRODB_BACKUP_LOCAL_DIR: path.join(dir, 'backups'), KYRODB_FAILPOINTS: 'training.rmi=panic' });
    const url = server.url;
    await fetch(`${url}/v1/collections/c`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ dimension: 2, metric: 'l2' }) });
    await fetch(`${url}/v1/collections/c/vectors`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ vectors: [{ id: 'a', vector: [1, 0] }] }) });
    const value = (text: string, name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    let text = '';
    for (let i = 0; i < 300 && !(value(text, 'training_restarts_exceeded_total') > 0); i++) {
      await fetch(`${url}/v1/collections/c/search`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ vector: [i % 7, 1], k: 1 }) });
      await new Promise((r) => setTimeout(r, 100));
      text = await fetch(url + '/metrics').then((r) => r.text());
    }
    // TrainingTaskRestartsHigh (increase over 15m > 2) and TrainingSupervisorGaveUp (> 0) both hold.
    expect(value(text, 'training_restarts_total')).toBe(3);
    expect(value(text, 'training_restarts_exceeded_total')).toBe(1);
    expect(server.stderr()).toMatch(/"component":"training".*training task crashed \(restart 1 of 3/);
    expect(server.stderr()).toMatch(/"level":"error".*"component":"training".*giving up, the cache falls back to LRU/);
    expect(await server.stop()).toBe(0);
    server = undefined;
  });
});
