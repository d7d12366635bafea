import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Cron } from 'croner';
import { ApiError } from './errors.js';

// The YAML parser is loaded only when a config file is read: it costs ~35 ms of a process start,
// and a `kyrodb` command run on flags and the environment alone never needs it.
let yamlModule: typeof import('yaml') | undefined;
function yaml(): typeof import('yaml') {
  return (yamlModule ??= createRequire(import.meta.url)('yaml') as typeof import('yaml'));
}

/** A role an API key can hold. `admin` implies every other role. */
export type Role = 'read' | 'write' | 'admin' | 'audit';
/** The roles, for validation. */
export const ROLES: readonly Role[] = ['read', 'write', 'admin', 'audit'];

/** One API key: `name` becomes the `actor` of the events it writes. */
export interface ApiKeyConfig {
  name: string;
  key: string;
  roles: Role[];
}

/** The whole configuration (DESIGN.md §4; the sketch's keys keep the sketch's defaults). */
export interface KyroConfig {
  server: {
    /** Bind address. Default 127.0.0.1. */
    host: string;
    /** TCP port; 0 = any free port. Default 7070. */
    port: number;
    /** Largest number of vectors in one write batch (413 above). Default 1000. */
    max_batch: number;
    /** Largest request body, bytes (413 above). Default 64 MiB. */
    body_limit_bytes: number;
    /**
     * Largest metadata of one document, bytes of its JSON text (UTF-8, as the request wrote it
     * re-serialized without spaces); a write over it is 400 API_INVALID_METADATA and writes
     * nothing. Keeps every answer that carries metadata (search hits, log pages) bounded. Default 64 KiB.
     */
    max_metadata_bytes: number;
    /** How long graceful shutdown waits for in-flight requests, ms. Default 10 000. */
    shutdown_timeout_ms: number;
  };
  storage: {
    /** The data dir (relative paths are relative to the working directory). Default ./data. */
    data_dir: string;
    /** Vectors plus tombstones the hot tier holds (and events the HNSW index is behind by) before writes get 429 API_BACKPRESSURE. Default 100000. */
    hot_tier_max_vectors: number;
    /** Bytes of vector data (4 per dimension) the hot tier holds before writes get 429 API_BACKPRESSURE: bounds an exact hot search's time at any dimension. Default 64 MiB. */
    hot_tier_max_bytes: number;
  };
  backup: {
    /** Run the scheduled backups inside `serve`. Default true. */
    enabled: boolean;
    /** Where backups go when s3 is off (`--output` overrides). Default ./backups. */
    local_dir: string;
    /** Cron schedule of full backups. Default "0 2 * * *" (daily 02:00). */
    full_backup_schedule: string;
    /** Cron schedule of incremental backups. Default "0 * * * *" (hourly). */
    incremental_backup_schedule: string;
    /** Continuous shipping of the log tail to the backup store. */
    continuous: { enabled: boolean; interval_ms: number };
    /** Grandfather-father-son retention used by `backup prune` without --retention-days. */
    retention: { keep_hourly: number; keep_daily: number; keep_weekly: number; keep_monthly: number };
    /** Compression of backup files. Default zstd. */
    compression: 'zstd' | 'none';
    /**
     * AES-256-GCM encryption of new backup files (`enabled`); the key from key_file, else
     * KYRODB_BACKUP_KEY (see node.ts `encryptionOf`). `previous_key_files`: keys it replaced,
     * still read (restores across a rotation), never written with.
     */
    encryption: { enabled: boolean; key_file: string | null; previous_key_files: string[] };
    /** S3 (or compatible) store; credentials come from the AWS SDK's usual chain. */
    s3: { enabled: boolean; bucket: string; region: string; prefix: string; endpoint: string | null; force_path_style: boolean };
  };
  /** The hybrid semantic cache (a layer of the tiered query). */
  cache: {
    /** Serve similar recent queries from the cache. Default true. */
    enabled: boolean;
    /** Minimum cosine similarity between query vectors for a cached answer, (0, 1]. Default 0.99. */
    similarity_threshold: number;
    /** Cached answers kept. Default 10 000. */
    capacity: number;
    /** Opt-in staleness: serve an answer this many ms after its collection changed; 0 = never stale. Default 0. */
    max_staleness_ms: number;
    /** The learned admission predictor's training task: every `interval_secs` (default 60) once `min_samples` (default 100) accesses are logged. */
    training: { interval_secs: number; min_samples: number };
  };
  /** Cold-tier checkpoints: after `every_events` events (default 100 000) or `every_secs` (default 300); keep `keep_generations` (default 10). */
  checkpoint: { every_events: number; every_secs: number; keep_generations: number };
  /** API keys; none = no auth (bind 127.0.0.1 then). */
  auth: { keys: ApiKeyConfig[] };
  /** The sketch's error-recovery settings, with the sketch's defaults. */
  error_recovery: {
    /** WAL: attempts per retryable error (5), consecutive failures that open the breaker (3), seconds it stays open (60). */
    wal: { retry_attempts: number; circuit_breaker_threshold: number; circuit_breaker_timeout_seconds: number };
    /** Training supervisor: restarts before giving up (10) and the backoff schedule in seconds ([1, 2, 4, 8, 16], last repeats). */
    training: { max_restarts: number; restart_backoff_seconds: number[] };
    /** Per-layer query timeouts, ms: cache 10, hot tier 50, cold tier 1000. */
    query: { cache_timeout_ms: number; hot_tier_timeout_ms: number; cold_tier_timeout_ms: number };
  };
}

/** The embedded default: data in ./data, backups in ./backups, HTTP on 127.0.0.1:7070. */
export const defaultConfig: KyroConfig = deepFreeze({
  server: { host: '127.0.0.1', port: 7070, max_batch: 1000, body_limit_bytes: 64 * 1024 * 1024, max_metadata_bytes: 64 * 1024, shutdown_timeout_ms: 10_000 },
  storage: { data_dir: './data', hot_tier_max_vectors: 100_000, hot_tier_max_bytes: 64 * 1024 * 1024 },
  backup: {
    enabled: true,
    local_dir: './backups',
    full_backup_schedule: '0 2 * * *',
    incremental_backup_schedule: '0 * * * *',
    continuous: { enabled: false, interval_ms: 1000 },
    retention: { keep_hourly: 24, keep_daily: 7, keep_weekly: 4, keep_monthly: 12 },
    compression: 'zstd',
    encryption: { enabled: false, key_file: null, previous_key_files: [] },
    s3: { enabled: false, bucket: 'kyrodb-backups', region: 'us-west-2', prefix: 'prod', endpoint: null, force_path_style: false },
  },
  cache: { enabled: true, similarity_threshold: 0.99, capacity: 10_000, max_staleness_ms: 0, training: { interval_secs: 60, min_samples: 100 } },
  checkpoint: { every_events: 100_000, every_secs: 300, keep_generations: 10 },
  auth: { keys: [] },
  error_recovery: {
    wal: { retry_attempts: 5, circuit_breaker_threshold: 3, circuit_breaker_timeout_seconds: 60 },
    training: { max_restarts: 10, restart_backoff_seconds: [1, 2, 4, 8, 16] },
    query: { cache_timeout_ms: 10, hot_tier_timeout_ms: 50, cold_tier_timeout_ms: 1000 },
  },
} satisfies KyroConfig);

// ------------------------------------------------------------------ leaf validators

type Leaf = { kind: 'int'; min: number; max: number } | { kind: 'number'; min: number; max: number } | { kind: 'string'; nullable?: boolean; oneOf?: readonly string[]; cron?: boolean; nonEmpty?: boolean } | { kind: 'bool' } | { kind: 'intList'; min: number; max: number } | { kind: 'stringList' } | { kind: 'keys' };

const int = (min: number, max: number): Leaf => ({ kind: 'int', min, max });
const MAX_INT = Number.MAX_SAFE_INTEGER;

/** The form of every leaf key (path joined by dots). */
const LEAVES: Readonly<Record<string, Leaf>> = {
  'server.host': { kind: 'string', nonEmpty: true },
  'server.port': int(0, 65535),
  'server.max_batch': int(1, 100_000),
  'server.body_limit_bytes': int(1024, 2 ** 31),
  'server.max_metadata_bytes': int(2, 2 ** 31),
  'server.shutdown_timeout_ms': int(0, 3_600_000),
  'storage.data_dir': { kind: 'string', nonEmpty: true },
  'storage.hot_tier_max_vectors': int(1, MAX_INT),
  'storage.hot_tier_max_bytes': int(1, MAX_INT),
  'backup.enabled': { kind: 'bool' },
  'backup.local_dir': { kind: 'string', nonEmpty: true },
  'backup.full_backup_schedule': { kind: 'string', cron: true },
  'backup.incremental_backup_schedule': { kind: 'string', cron: true },
  'backup.continuous.enabled': { kind: 'bool' },
  'backup.continuous.interval_ms': int(10, 3_600_000),
  'backup.retention.keep_hourly': int(0, 100_000),
  'backup.retention.keep_daily': int(0, 100_000),
  'backup.retention.keep_weekly': int(0, 100_000),
  'backup.retention.keep_monthly': int(0, 100_000),
  'backup.compression': { kind: 'string', oneOf: ['zstd', 'none'] },
  'backup.encryption.enabled': { kind: 'bool' },
  'backup.encryption.key_file': { kind: 'string', nullable: true },
  'backup.encryption.previous_key_files': { kind: 'stringList' },
  'backup.s3.enabled': { kind: 'bool' },
  'backup.s3.bucket': { kind: 'string', nonEmpty: true },
  'backup.s3.region': { kind: 'string', nonEmpty: true },
  'backup.s3.prefix': { kind: 'string' },
  'backup.s3.endpoint': { kind: 'string', nullable: true },
  'backup.s3.force_path_style': { kind: 'bool' },
  'cache.enabled': { kind: 'bool' },
  'cache.similarity_threshold': { kind: 'number', min: 1e-6, max: 1 }, // (0, 1]: 0 would serve any cached answer
  'cache.capacity': int(1, 100_000_000),
  'cache.max_staleness_ms': int(0, MAX_INT),
  'cache.training.interval_secs': int(1, 86_400),
  'cache.training.min_samples': int(1, MAX_INT),
  'checkpoint.every_events': int(1, MAX_INT),
  'checkpoint.every_secs': int(1, 2_147_483), // a timer's longest delay (~24.8 days); beyond it Node fires it every ms
  'checkpoint.keep_generations': int(1, 1000),
  'auth.keys': { kind: 'keys' },
  'error_recovery.wal.retry_attempts': int(1, 100),
  'error_recovery.wal.circuit_breaker_threshold': int(1, 1000),
  'error_recovery.wal.circuit_breaker_timeout_seconds': { kind: 'number', min: 0, max: 86_400 },
  'error_recovery.training.max_restarts': int(0, 10_000),
  'error_recovery.training.restart_backoff_seconds': { kind: 'intList', min: 0, max: 86_400 },
  'error_recovery.query.cache_timeout_ms': int(1, 600_000),
  'error_recovery.query.hot_tier_timeout_ms': int(1, 600_000),
  'error_recovery.query.cold_tier_timeout_ms': int(1, 600_000),
};

function describe(leaf: Leaf): string {
  switch (leaf.kind) {
    case 'int':
      return `an integer in ${leaf.min}..${leaf.max}`;
    case 'number':
      return `a number in ${leaf.min}..${leaf.max}`;
    case 'bool':
      return 'true or false';
    case 'intList':
      return `a non-empty list of integers in ${leaf.min}..${leaf.max}`;
    case 'stringList':
      return 'a list of non-empty strings';
    case 'keys':
      return `a list of {name, key, roles: [${ROLES.join('|')}]}`;
    case 'string':
      if (leaf.oneOf) return `one of ${leaf.oneOf.join(', ')}`;
      if (leaf.cron) return 'a cron expression such as "0 2 * * *"';
      return leaf.nullable ? 'a string or null' : leaf.nonEmpty ? 'a non-empty string' : 'a string';
  }
}

function bad(where: string, key: string, leaf: Leaf | undefined, got: unknown, extra?: string): never {
  const expected = leaf ? describe(leaf) : 'nothing (unknown key)';
  const shown = where === 'env' ? `${envNameOf(key)} (${key})` : key;
  throw new ApiError('API_CONFIG_INVALID', `config ${where}: ${shown}: expected ${expected}, got ${JSON.stringify(got) ?? String(got)}${extra ? ` (${extra})` : ''}`, { key });
}

function checkLeaf(where: string, key: string, leaf: Leaf, v: unknown): unknown {
  switch (leaf.kind) {
    case 'int':
      if (typeof v !== 'number' || !Number.isInteger(v) || v < leaf.min || v > leaf.max) bad(where, key, leaf, v);
      return v;
    case 'number':
      if (typeof v !== 'number' || !Number.isFinite(v) || v < leaf.min || v > leaf.max) bad(where, key, leaf, v);
      return v;
    case 'bool':
      if (typeof v !== 'boolean') bad(where, key, leaf, v);
      return v;
    case 'intList':
      if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= leaf.min && x <= leaf.max)) bad(where, key, leaf, v);
      return [...(v as number[])];
    case 'stringList':
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x.trim() !== '')) bad(where, key, leaf, v);
      return [...(v as string[])];
    case 'string': {
      if (v === null && leaf.nullable) return null;
      if (typeof v !== 'string') bad(where, key, leaf, v);
      if (leaf.nonEmpty && v.trim() === '') bad(where, key, leaf, v);
      if (leaf.oneOf && !leaf.oneOf.includes(v)) bad(where, key, leaf, v);
      if (leaf.cron) {
        let next: Date | null = null;
        try {
          const c = new Cron(v, { paused: true });
          next = c.nextRun();
          c.stop();
        } catch (err) {
          bad(where, key, leaf, v, err instanceof Error ? err.message : String(err));
        }
        // Accepted, it would leave backups off without a word.
        if (next === null) bad(where, key, leaf, v, 'no date matches it: it would never run');
      }
      return v;
    }
    case 'keys': {
      if (!Array.isArray(v)) bad(where, key, leaf, v);
      const names = new Set<string>();
      const secrets = new Set<string>();
      return v.map((k: unknown, i: number) => {
        const at = `${key}[${i}]`;
        if (typeof k !== 'object' || k === null || Array.isArray(k)) bad(where, at, leaf, k);
        const o = k as Record<string, unknown>;
        for (const f of Object.keys(o)) if (!['name', 'key', 'roles'].includes(f)) bad(where, `${at}.${f}`, undefined, o[f]);
        if (typeof o['name'] !== 'string' || !/^[\x21-\x7e]{1,128}$/.test(o['name'])) bad(where, `${at}.name`, { kind: 'string', nonEmpty: true }, o['name'], '1-128 printable characters');
        if (typeof o['key'] !== 'string' || o['key'].length < 8) bad(where, `${at}.key`, { kind: 'string', nonEmpty: true }, '<redacted>', 'at least 8 characters');
        const roles = o['roles'];
        if (!Array.isArray(roles) || roles.length === 0 || !roles.every((r) => typeof r === 'string' && (ROLES as readonly string[]).includes(r))) bad(where, `${at}.roles`, { kind: 'string', oneOf: ROLES }, roles, 'a non-empty list');
        if (names.has(o['name'])) bad(where, `${at}.name`, leaf, o['name'], 'duplicate name');
        if (secrets.has(o['key'])) bad(where, `${at}.key`, leaf, '<redacted>', 'duplicate key');
        names.add(o['name']);
        secrets.add(o['key']);
        return { name: o['name'], key: o['key'], roles: [...(roles as Role[])] };
      });
    }
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Merges `src` into `dst` (a deep copy of the defaults), validating every key on the way. */
function mergeValidated(where: string, dst: Record<string, unknown>, src: unknown, prefix: string): void {
  if (!isObject(src)) {
    if (prefix === '') throw new ApiError('API_CONFIG_INVALID', `config ${where}: expected a mapping at the top level, got ${JSON.stringify(src)}`, { key: '' });
    bad(where, prefix.slice(0, -1), undefined, src, 'expected a mapping');
  }
  for (const [k, v] of Object.entries(src)) {
    const key = prefix + k;
    const leaf = LEAVES[key];
    if (leaf !== undefined) {
      dst[k] = checkLeaf(where, key, leaf, v);
      continue;
    }
    const child = dst[k];
    if (!isObject(child)) throw new ApiError('API_CONFIG_INVALID', `config ${where}: unknown key ${key}; known keys here: ${Object.keys(dst).join(', ')}`, { key });
    if (v === null || v === undefined) continue; // an empty section keeps its defaults
    if (!isObject(v)) throw new ApiError('API_CONFIG_INVALID', `config ${where}: ${key}: expected a mapping with keys ${Object.keys(child).join(', ')}, got ${JSON.stringify(v)}`, { key });
    mergeValidated(where, child, v, key + '.');
  }
}

/** The env variable that sets a config key: `server.port` → `KYRODB_SERVER_PORT`. */
export function envNameOf(key: string): string {
  return 'KYRODB_' + key.replace(/\./g, '_').toUpperCase();
}

/** Every leaf path by its env var name. */
export function envNames(): Record<string, string> {
  return Object.fromEntries(Object.keys(LEAVES).map((p) => [envNameOf(p), p]));
}

/** KYRODB_ variables that are not config keys but are read elsewhere (never warned about). */
const OTHER_ENV = new Set(['KYRODB_BACKUP_KEY', 'KYRODB_API_KEY', 'KYRODB_FAILPOINTS', 'KYRODB_TEST_FAILPOINTS_API']);

/**
 * Variables of `env` named like a config key of a known section (`KYRODB_SERVER_…`) that are
 * none (a typo such as `KYRODB_SERVER_PROT`), each with the section's valid names: they would
 * otherwise be ignored without a word.
 */
export function unknownConfigEnv(env: NodeJS.ProcessEnv = process.env): { name: string; known: string[] }[] {
  const names = Object.keys(envNames());
  const sections = Object.keys(defaultConfig).map((s) => `KYRODB_${s.toUpperCase()}_`);
  const out: { name: string; known: string[] }[] = [];
  for (const name of Object.keys(env).sort()) {
    if (env[name] === undefined || OTHER_ENV.has(name) || names.includes(name)) continue;
    const section = sections.find((p) => name.startsWith(p));
    if (section !== undefined) out.push({ name, known: names.filter((n) => n.startsWith(section)) });
  }
  return out;
}

/**
 * A number written in decimal (`8080`, `-1`, `0.5`, `1e3`; spaces around are ignored), or
 * undefined: `Number()` alone also takes `0x1F` and `0b1`, so KYRODB_SERVER_PORT=0x4396 was port 17302.
 */
function decimal(raw: string): number | undefined {
  const t = raw.trim();
  return /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/.test(t) ? Number(t) : undefined;
}

function parseEnvValue(name: string, path_: string, raw: string): unknown {
  const leaf = LEAVES[path_]!;
  switch (leaf.kind) {
    case 'int':
    case 'number':
      return decimal(raw) ?? raw;
    case 'bool': {
      const b = raw.trim().toLowerCase();
      return b === 'true' || b === '1' ? true : b === 'false' || b === '0' ? false : raw;
    }
    case 'intList':
      return raw.split(',').map((s) => decimal(s) ?? NaN);
    case 'stringList':
      return raw.trim() === '' ? [] : raw.split(',').map((s) => s.trim());
    case 'keys':
      try {
        return JSON.parse(raw) as unknown;
      } catch {
        throw new ApiError('API_CONFIG_INVALID', `config env ${name}: expected a JSON list of {name, key, roles}`, { key: path_ });
      }
    case 'string':
      return leaf.nullable && (raw === '' || raw === 'null') ? null : raw;
  }
}

function setPath(o: Record<string, unknown>, dotted: string, v: unknown): void {
  const parts = dotted.split('.');
  let cur = o;
  for (const p of parts.slice(0, -1)) {
    if (!isObject(cur[p])) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1]!] = v;
}

/** Where a config comes from: a YAML file, the environment, and flags (each overriding the one before). */
export interface LoadConfigOptions {
  /** A YAML file; absent = the embedded default. */
  file?: string | undefined;
  /** Environment (KYRODB_SECTION_KEY overrides). Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Overrides from flags as dotted paths, e.g. `{'server.port': 8080}`. Undefined values are ignored. */
  overrides?: Record<string, unknown>;
}

/**
 * Loads, merges (defaults ← file ← env ← flags) and validates the config; returns it frozen.
 * Throws ApiError `API_CONFIG_INVALID` naming the bad key path and the expected form.
 */
export function loadConfig(o: LoadConfigOptions = {}): KyroConfig {
  const cfg = structuredClone(defaultConfig) as unknown as Record<string, unknown>;
  if (o.file !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(o.file, 'utf8');
    } catch (err) {
      throw new ApiError('API_CONFIG_INVALID', `config file ${o.file} cannot be read: ${(err as Error).message}`, { key: '' });
    }
    let doc: unknown;
    try {
      doc = yaml().parse(text);
    } catch (err) {
      throw new ApiError('API_CONFIG_INVALID', `config file ${o.file} is not valid YAML: ${(err as Error).message}`, { key: '' });
    }
    if (doc !== null && doc !== undefined) mergeValidated(`file ${o.file}`, cfg, doc, '');
  }
  const env = o.env ?? process.env;
  const fromEnv: Record<string, unknown> = {};
  for (const [name, p] of Object.entries(envNames())) {
    const raw = env[name];
    if (raw !== undefined) setPath(fromEnv, p, parseEnvValue(name, p, raw));
  }
  mergeValidated('env', cfg, fromEnv, '');
  const fromFlags: Record<string, unknown> = {};
  for (const [p, v] of Object.entries(o.overrides ?? {})) if (v !== undefined) setPath(fromFlags, p, v);
  mergeValidated('flag', cfg, fromFlags, '');
  return deepFreeze(cfg as unknown as KyroConfig);
}

/** The data dir as an absolute path. */
export function dataDirOf(cfg: KyroConfig, cwd = process.cwd()): string {
  return path.resolve(cwd, cfg.storage.data_dir);
}

/** The backup store URL the config points at: s3://bucket/prefix when s3 is enabled, else file://<abs local_dir>. */
export function backupStoreUrl(cfg: KyroConfig, cwd = process.cwd()): string {
  if (cfg.backup.s3.enabled) return `s3://${cfg.backup.s3.bucket}/${cfg.backup.s3.prefix}`.replace(/\/+$/, '');
  return pathToFileURL(path.resolve(cwd, cfg.backup.local_dir)).href;
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
