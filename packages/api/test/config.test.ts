import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { defaultConfig, envNames, loadConfig, unknownConfigEnv } from '../src/config.js';

const root = path.resolve(import.meta.dirname, '../../..');

function tmpYaml(text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kyro-cfg-'));
  const f = path.join(dir, 'c.yaml');
  fs.writeFileSync(f, text);
  return f;
}

function errorOf(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    return err as { code: string; message: string };
  }
  throw new Error('expected an error');
}

describe('config', () => {
  it('embedded default: data in ./data, backups in ./backups, 127.0.0.1:7070, the sketch defaults', () => {
    const c = loadConfig({ env: {} });
    expect(c.server).toMatchObject({ host: '127.0.0.1', port: 7070, max_batch: 1000 });
    expect(c.storage.data_dir).toBe('./data');
    expect(c.backup.local_dir).toBe('./backups');
    expect(c.backup.full_backup_schedule).toBe('0 2 * * *');
    expect(c.error_recovery.wal).toEqual({ retry_attempts: 5, circuit_breaker_threshold: 3, circuit_breaker_timeout_seconds: 60 });
    expect(c.error_recovery.training.restart_backoff_seconds).toEqual([1, 2, 4, 8, 16]);
    expect(c.error_recovery.query).toEqual({ cache_timeout_ms: 10, hot_tier_timeout_ms: 50, cold_tier_timeout_ms: 1000 });
    expect(Object.isFrozen(c.server)).toBe(true);
  });

  it('config.example.yaml at the repo root loads and states exactly the defaults', () => {
    const file = path.join(root, 'config.example.yaml');
    const c = loadConfig({ file, env: {} });
    expect(c).toEqual(defaultConfig);
    // every default key is spelled out in the example
    const doc = parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    expect(Object.keys(doc).sort()).toEqual(Object.keys(defaultConfig).sort());
  });

  it('file < env < flags', () => {
    const f = tmpYaml('server:\n  port: 8000\n  host: 0.0.0.0\nstorage:\n  data_dir: /x\n');
    const c = loadConfig({ file: f, env: { KYRODB_SERVER_PORT: '9000', KYRODB_BACKUP_S3_ENABLED: 'true', KYRODB_ERROR_RECOVERY_WAL_RETRY_ATTEMPTS: '7' }, overrides: { 'storage.data_dir': '/y', 'server.host': undefined } });
    expect(c.server.port).toBe(9000);
    expect(c.server.host).toBe('0.0.0.0');
    expect(c.storage.data_dir).toBe('/y');
    expect(c.backup.s3.enabled).toBe(true);
    expect(c.error_recovery.wal.retry_attempts).toBe(7);
    expect(envNames()['KYRODB_BACKUP_CONTINUOUS_INTERVAL_MS']).toBe('backup.continuous.interval_ms');
  });

  it.each([
    ['server:\n  port: 70000\n', 'server.port', 'an integer in 0..65535'],
    ['server:\n  prot: 1\n', 'server.prot', 'unknown key'],
    ['backup:\n  full_backup_schedule: "every day"\n', 'backup.full_backup_schedule', 'cron'],
    ['backup:\n  incremental_backup_schedule: "0 0 31 2 *"\n', 'backup.incremental_backup_schedule', 'never run'],
    ['backup:\n  compression: gzip\n', 'backup.compression', 'one of zstd, none'],
    ['storage:\n  hot_tier_max_vectors: 0\n', 'storage.hot_tier_max_vectors', 'an integer in 1..'],
    ['storage:\n  hot_tier_max_bytes: 0\n', 'storage.hot_tier_max_bytes', 'an integer in 1..'],
    ['auth:\n  keys:\n    - { name: a, key: "12345678", roles: [root] }\n', 'auth.keys[0].roles', 'one of read, write, admin, audit'],
    ['error_recovery:\n  training:\n    restart_backoff_seconds: []\n', 'error_recovery.training.restart_backoff_seconds', 'non-empty list'],
    ['cache: 5\n', 'cache', 'mapping'],
    ['[1, 2]\n', '', 'mapping'],
    ['server: {port: 1\n', '', 'not valid YAML'],
  ])('a bad file names the key and the expected form: %j', (yaml, key, expected) => {
    const e = errorOf(() => loadConfig({ file: tmpYaml(yaml), env: {} }));
    expect(e.code).toBe('API_CONFIG_INVALID');
    expect(e.message).toContain(key);
    expect(e.message).toContain(expected);
  });

  it('a KYRODB_ variable of a config section that is no key (a typo) is reported with the section\'s names; other KYRODB_ variables are not', () => {
    const env = { KYRODB_SERVER_PROT: '8080', KYRODB_SERVER_PORT: '1', KYRODB_BACKUP_KEY: 'k', KYRODB_API_KEY: 'k', KYRODB_FAILPOINTS: '', KYRODB_KEEP_TMP: '1', KYRODB_ERROR_RECOVERY_WAL_RETRIES: '3' };
    const u = unknownConfigEnv(env);
    expect(u.map((x) => x.name)).toEqual(['KYRODB_ERROR_RECOVERY_WAL_RETRIES', 'KYRODB_SERVER_PROT']);
    expect(u[1]!.known).toContain('KYRODB_SERVER_PORT');
    expect(u[0]!.known).toContain('KYRODB_ERROR_RECOVERY_WAL_RETRY_ATTEMPTS');
    expect(unknownConfigEnv({ KYRODB_SERVER_PORT: '1' })).toEqual([]);
  });

  it('bad env and flag values name the key', () => {
    expect(errorOf(() => loadConfig({ env: { KYRODB_SERVER_PORT: 'eighty' } })).message).toMatch(/config env: KYRODB_SERVER_PORT \(server\.port\): expected an integer/);
    // Numbers in decimal only: Number() alone took 0x4396 as port 17302.
    for (const v of ['0x4396', '0b1', '0o17', '1_000']) expect(errorOf(() => loadConfig({ env: { KYRODB_SERVER_PORT: v } })).message, v).toMatch(/config env: KYRODB_SERVER_PORT \(server\.port\): expected an integer/);
    expect(loadConfig({ env: { KYRODB_SERVER_PORT: ' 8080 ' } }).server.port).toBe(8080);
    expect(loadConfig({ env: { KYRODB_BACKUP_S3_ENABLED: 'TRUE' } }).backup.s3.enabled).toBe(true);
    expect(errorOf(() => loadConfig({ env: {}, overrides: { 'server.port': -1 } })).message).toMatch(/config flag: server\.port/);
    // Values the code could not use are refused here, naming the key: a similarity of 0 (the
    // cache's own check failed later without naming it), a checkpoint interval past a timer's
    // longest delay (Node then fired it every millisecond: a checkpoint after nearly every write).
    expect(errorOf(() => loadConfig({ env: { KYRODB_CACHE_SIMILARITY_THRESHOLD: '0' } })).message).toMatch(/cache\.similarity_threshold/);
    // A capacity of 0 passed here, then failed the start with the cache's code, after the data dir was made.
    expect(errorOf(() => loadConfig({ env: { KYRODB_CACHE_CAPACITY: '0' } })).message).toMatch(/cache\.capacity/);
    expect(errorOf(() => loadConfig({ env: { KYRODB_CHECKPOINT_EVERY_SECS: '3000000' } })).message).toMatch(/checkpoint\.every_secs/);
    expect(loadConfig({ env: { KYRODB_CHECKPOINT_EVERY_SECS: '2147483' } }).checkpoint.every_secs).toBe(2147483);
  });

  it('an api key never appears in an error message', () => {
    const e = errorOf(() => loadConfig({ file: tmpYaml('auth:\n  keys:\n    - { name: a, key: "short", roles: [read] }\n'), env: {} }));
    expect(e.message).not.toContain('short');
    expect(e.message).toContain('auth.keys[0].key');
  });
});
