import fs from 'node:fs';
import path from 'node:path';
import { Cron } from 'croner';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { EventLog, Failpoints, LogError, type LogSink } from '@kyrodb/log';
import type { KyroConfig } from './config.js';
import { backupStoreUrl, dataDirOf } from './config.js';
import { LearnedPredictor, Projections, SemanticCache, TrainingSupervisor } from '@kyrodb/projections';
import { BackupError, BackupManager, ContinuousBackup, DISCARD_AFTER_ABORT_MS, loadKey, openObjectStore, recoverInterruptedRestore, withPreviousKeys } from '@kyrodb/backup';
import type { EncryptionKey, ObjectStore } from '@kyrodb/backup';
import { ensureSketchMetrics } from './metrics.js';
import { ScheduledBackups } from './scheduledBackups.js';

/** A structured log line. */
export type NodeLogger = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

/** Options of `startNode`. */
export interface StartNodeOptions {
  /** Failpoints for every component. Default Failpoints.fromEnv() (KYRODB_FAILPOINTS). */
  failpoints?: Failpoints;
  /** Serve POST /v1/admin/failpoints. Default: env KYRODB_TEST_FAILPOINTS_API === '1'. */
  failpointsApi?: boolean;
  /** Registry for every metric. Default a fresh one. */
  registry?: Registry;
  /** Where log lines go. Default JSON lines on stderr. */
  logger?: NodeLogger;
  /** Listen on host:port (default true). false = build the app only (tests use app.inject). */
  listen?: boolean;
  /** Run the cron-scheduled backups (default config.backup.enabled). */
  schedule?: boolean;
}

/** A running KyroDB node: log + projections + backups + HTTP app. */
export interface KyroNode {
  readonly app: FastifyInstance;
  readonly log: EventLog;
  readonly projections: Projections;
  readonly registry: Registry;
  readonly failpoints: Failpoints;
  /** `http://host:port` once listening. */
  readonly url: string | undefined;
  /** Graceful stop: refuse new requests, finish in-flight ones, stop schedules and continuous backup, checkpoint, close. */
  close(): Promise<void>;
}

/**
 * The object store the config names, with the S3 options from config. A local store's directory
 * is made by its first put, not here: reading (list, restore, verify) a mistyped path must not
 * leave a directory behind.
 */
export function openConfiguredStore(cfg: KyroConfig, url?: string): ObjectStore {
  const u = url ?? backupStoreUrl(cfg);
  const s3 = cfg.backup.s3;
  return openObjectStore(u, { region: s3.region, forcePathStyle: s3.force_path_style, ...(s3.endpoint !== null ? { endpoint: s3.endpoint } : {}) });
}

/**
 * The key new backups are encrypted with: undefined when `backup.encryption.enabled` is false,
 * else the key from `backup.encryption.key_file`, or from the env variable KYRODB_BACKUP_KEY
 * when no file is set. Enabled with neither is BACKUP_KEY_REQUIRED: a backup is never quietly
 * written in the clear when encryption was asked for.
 */
export function encryptionOf(cfg: KyroConfig): EncryptionKey | undefined {
  if (!cfg.backup.encryption.enabled) return undefined;
  // Written with the current key only, never a previous one.
  const { current, previous } = keysOf(cfg);
  if (current === undefined) throw new BackupError('BACKUP_KEY_REQUIRED', 'backup.encryption.enabled is true but no key is configured: set backup.encryption.key_file, or the key in KYRODB_BACKUP_KEY (64 hex characters or base64 of 32 bytes)');
  return withPreviousKeys(current, previous);
}

/**
 * The key encrypted backups are read with (restore, verify): from `backup.encryption.key_file`,
 * else KYRODB_BACKUP_KEY, whether or not new backups are encrypted (a backup taken before
 * encryption was turned off still needs its key), with the keys of
 * `backup.encryption.previous_key_files` it replaced, after `given` when there is one. Undefined
 * when none is set.
 */
export function decryptionKeyOf(cfg: KyroConfig, given?: EncryptionKey): EncryptionKey | undefined {
  const { current, previous } = keysOf(cfg);
  // `given` (a --key-file) comes first; the configured keys stay readable beside it.
  const ring = [given, current, ...previous].filter((k): k is EncryptionKey => k !== undefined);
  return ring[0] === undefined ? undefined : withPreviousKeys(ring[0], ring.slice(1));
}

function keysOf(cfg: KyroConfig): { current: EncryptionKey | undefined; previous: EncryptionKey[] } {
  const file = cfg.backup.encryption.key_file;
  return { current: loadKey(file !== null ? { file } : {}), previous: cfg.backup.encryption.previous_key_files.map((f) => loadKey({ file: f })!) };
}

/**
 * The semantic cache and its supervised training task from the config (`cache:`,
 * `error_recovery.training`), or undefined when `cache.enabled` is false. The caller starts and
 * stops `supervisor`.
 */
function openCache(cfg: KyroConfig, registry: Registry, failpoints: Failpoints, logger: NodeLogger): { cache: SemanticCache; supervisor: TrainingSupervisor } | undefined {
  if (!cfg.cache.enabled) return undefined;
  const c = cfg.cache;
  const training = { intervalSecs: c.training.interval_secs, minSamples: c.training.min_samples };
  const predictor = new LearnedPredictor();
  const cache = new SemanticCache({ options: { enabled: true, similarityThreshold: c.similarity_threshold, capacity: c.capacity, maxStalenessMs: c.max_staleness_ms, training }, registry, predictor });
  const t = cfg.error_recovery.training;
  // Its crashes and giving up are warnings and errors; a run completed (every interval) is not logged.
  const trainingLogger: LogSink = (level, msg, fields) => {
    if (level !== 'info') logger(level, msg, { component: 'training', ...fields });
  };
  const supervisor = new TrainingSupervisor({ accessLog: cache.accessLog, predictor, options: { maxRestarts: t.max_restarts, restartBackoffSeconds: [...t.restart_backoff_seconds] }, training, registry, failpoints, logger: trainingLogger });
  return { cache, supervisor };
}

const defaultLogger: NodeLogger = (level, msg, fields) => {
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level, component: 'api', msg, ...fields }) + '\n');
};

/**
 * After the shutdown timeout, how long answers to stopped backups get before the connections left
 * are cut: a stopped backup first tries DISCARD_AFTER_ABORT_MS to remove what it stored (with 1 s,
 * a POST /v1/backups waiting on a store that stopped answering was cut without an answer).
 */
const CUT_GRACE_MS = DISCARD_AFTER_ABORT_MS + 1000;
/** The least time a shutdown gives its checkpoint. */
const CHECKPOINT_MIN_MS = 1000;

/**
 * Opens the data dir as its writer (the writer lock: LOG_LOCKED if a server holds it), the
 * projections, the backup manager and schedules, and (unless `listen: false`) listens on
 * `server.host:server.port`.
 */
export async function startNode(cfg: KyroConfig, o: StartNodeOptions = {}): Promise<KyroNode> {
  const registry = o.registry ?? new Registry();
  const failpoints = o.failpoints ?? Failpoints.fromEnv();
  const logger = o.logger ?? defaultLogger;
  const dataDir = dataDirOf(cfg);
  const wal = cfg.error_recovery.wal;
  // A restore into this data dir that was killed part way may have moved it aside: put it back first.
  const recovery = await recoverInterruptedRestore(dataDir, (level, msg, fields) => logger(level, msg, { component: 'restore', ...fields }));
  // Between its two renames the path is missing (an open would make an empty log there), or holds a dir about to be replaced.
  if (recovery.swappingBy !== null) throw new LogError('LOG_LOCKED', `data dir ${dataDir} is being swapped in by a restore (process ${recovery.swappingBy}); start the server once the restore has finished`, { pid: recovery.swappingBy, dataDir });
  // What the config alone can refuse is refused before anything is made on disk.
  const store = openConfiguredStore(cfg);
  const enc = encryptionOf(cfg);
  const fresh = freshDirOf(dataDir);
  const log = await EventLog.open({
    dir: dataDir,
    registry,
    failpoints,
    wal: { retryAttempts: wal.retry_attempts, circuitBreakerThreshold: wal.circuit_breaker_threshold, circuitBreakerTimeoutMs: wal.circuit_breaker_timeout_seconds * 1000 },
    maxBatchEvents: Math.max(10_000, cfg.server.max_batch),
    logger: (level, msg, fields) => logger(level, msg, { component: 'log', ...fields }),
  });
  let projections: Projections | undefined;
  const crons: Cron[] = [];
  let continuous: ContinuousBackup | undefined;
  let supervisor: TrainingSupervisor | undefined;
  try {
    const q = cfg.error_recovery.query;
    const cache = openCache(cfg, registry, failpoints, logger);
    projections = await Projections.open({
      log,
      ...(cache !== undefined ? { cache: cache.cache } : {}),
      dataDir,
      registry,
      failpoints,
      checkpoint: { everyEvents: cfg.checkpoint.every_events, everySecs: cfg.checkpoint.every_secs, keepGenerations: cfg.checkpoint.keep_generations },
      query: { cacheTimeoutMs: q.cache_timeout_ms, hotTimeoutMs: q.hot_tier_timeout_ms, coldTimeoutMs: q.cold_tier_timeout_ms },
      hotTier: { maxVectors: cfg.storage.hot_tier_max_vectors, maxBytes: cfg.storage.hot_tier_max_bytes },
    });
    const proj = projections;
    if (cache !== undefined) {
      cache.supervisor.start();
      supervisor = cache.supervisor;
    }

    const manager = new BackupManager({ log, dataDir, store, registry, compression: cfg.backup.compression, ...(enc !== undefined ? { encryption: enc } : {}) });
    const backup: { manager: BackupManager; continuous?: ContinuousBackup } = { manager };
    if (cfg.backup.continuous.enabled) {
      continuous = new ContinuousBackup({ log, store, intervalMs: cfg.backup.continuous.interval_ms, registry, compression: cfg.backup.compression, ...(enc !== undefined ? { encryption: enc } : {}) });
      await continuous.start();
      backup.continuous = continuous;
    }
    let scheduled: ScheduledBackups | undefined;
    if (o.schedule ?? cfg.backup.enabled) {
      const r = cfg.backup.retention;
      const sched = new ScheduledBackups({ manager, log, logger, retention: { hourly: r.keep_hourly, daily: r.keep_daily, weekly: r.keep_weekly, monthly: r.keep_monthly } });
      scheduled = sched;
      const job = (type: 'full' | 'incremental') => (): Promise<void> => sched.fire(type);
      crons.push(new Cron(cfg.backup.full_backup_schedule, { protect: true }, job('full')));
      crons.push(new Cron(cfg.backup.incremental_backup_schedule, { protect: true }, job('incremental')));
    }
    ensureSketchMetrics(registry);

    // The HTTP server's modules (fastify and its plugins, ~0.1 s) load only for a node that serves: not for `restore` or `backup`.
    const { buildApp } = await import('./server.js');
    const app = await buildApp({
      config: cfg,
      log,
      projections: proj,
      registry,
      failpoints,
      backup,
      failpointsApi: o.failpointsApi ?? process.env['KYRODB_TEST_FAILPOINTS_API'] === '1',
      ...(cache !== undefined ? { training: () => cache.supervisor.status() } : {}),
    });
    let url: string | undefined;
    if (o.listen !== false) {
      await app.listen({ host: cfg.server.host, port: cfg.server.port });
      const addr = app.server.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : cfg.server.port;
      url = `http://${cfg.server.host.includes(':') ? `[${cfg.server.host}]` : cfg.server.host}:${port}`;
    }
    let closing: Promise<void> | undefined;
    const close = (): Promise<void> => {
      closing ??= (async () => {
        (app as unknown as { drain: () => void }).drain();
        for (const c of crons) c.stop();
        scheduled?.stop(); // a full backup waiting behind another does not start
        // In-flight requests and backups (a POST /v1/backups, a scheduled one) get the shutdown
        // timeout to finish; then backups are stopped (BACKUP_ABORTED: they remove what they
        // stored before the log closes), and the connections left are cut a moment later, so that
        // a POST /v1/backups still answers.
        const timeoutMs = cfg.server.shutdown_timeout_ms;
        const started = performance.now();
        const tAbort = setTimeout(() => manager.abort(), timeoutMs);
        const tCut = setTimeout(() => app.server.closeAllConnections(), timeoutMs + CUT_GRACE_MS);
        try {
          await app.close();
          await manager.idle();
        } finally {
          clearTimeout(tAbort);
          clearTimeout(tCut);
        }
        if (continuous !== undefined) await continuous.stop();
        if (supervisor !== undefined) await supervisor.stop();
        // The checkpoint waits for the cold tier to index every vector it has not yet: with a
        // large backlog that took minutes, past any supervisor's patience. It gets what is left of
        // the timeout (at least CHECKPOINT_MIN_MS); then it is given up (the log has every event:
        // the next start indexes them again from the last checkpoint).
        const checkpointing = proj.checkpoint();
        checkpointing.catch(() => undefined);
        let tCheckpoint: NodeJS.Timeout | undefined;
        const outcome = await Promise.race([
          checkpointing.then(
            () => 'done' as const,
            (err: unknown) => err,
          ),
          new Promise<'timeout'>((resolve) => (tCheckpoint = setTimeout(() => resolve('timeout'), Math.max(CHECKPOINT_MIN_MS, timeoutMs - (performance.now() - started))))),
        ]);
        clearTimeout(tCheckpoint);
        if (outcome === 'timeout') logger('warn', 'checkpoint at shutdown given up: the shutdown timeout passed while the cold tier indexed its backlog or saved its indexes; the next start indexes from the last checkpoint and the log', { lagEvents: proj.health().lagEvents, timeoutMs });
        else if (outcome !== 'done') logger('error', 'checkpoint at shutdown failed', { error: outcome instanceof Error ? outcome.message : String(outcome) });
        await proj.close();
        await checkpointing.catch(() => undefined); // settles once the cold worker is gone; its temp dir is removed
        await log.close();
      })();
      return closing;
    };
    return { app, log, projections: proj, registry, failpoints, url, close };
  } catch (err) {
    for (const c of crons) c.stop();
    if (continuous !== undefined) await continuous.stop().catch(() => undefined);
    if (supervisor !== undefined) await supervisor.stop().catch(() => undefined);
    if (projections !== undefined) await projections.close().catch(() => undefined);
    // A start refused (a port in use, an address not of this machine) leaves a fresh data dir as
    // it found it: no write was acknowledged, so nothing is lost.
    const aside = fresh !== undefined ? setAside(dataDir) : undefined;
    if (aside === undefined) await log.close();
    else await log.close().catch(() => undefined); // its last sync of the dir finds the path gone; all of it is removed
    if (fresh !== undefined && aside !== undefined) removeUnstarted(fresh, aside);
    throw err;
  }
}

/**
 * A data dir a start makes from nothing: missing (`made`: the first missing level of its path),
 * or empty (`stat`: its mode and owner, which it gets back).
 */
type FreshDir = { dir: string; made?: string; stat?: fs.Stats };

function freshDirOf(dataDir: string): FreshDir | undefined {
  const dir = path.resolve(dataDir);
  try {
    return fs.readdirSync(dir).length === 0 ? { dir, stat: fs.statSync(dir) } : undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return undefined;
  }
  let made = dir;
  while (path.dirname(made) !== made && !fs.existsSync(path.dirname(made))) made = path.dirname(made);
  return { dir, made };
}

/**
 * Renames a data dir this process made, still holding its writer lock (named after the path),
 * so that another server that takes the path once the lock is released starts a dir of its own,
 * which is never removed here. Undefined when it cannot be moved (a mount point): it stays.
 */
function setAside(dataDir: string): string | undefined {
  const aside = `${path.resolve(dataDir)}.unstarted-${process.pid}`;
  try {
    fs.renameSync(dataDir, aside);
    return aside;
  } catch {
    return undefined;
  }
}

function removeUnstarted(fresh: FreshDir, aside: string): void {
  try {
    fs.rmSync(aside, { recursive: true, force: true });
    if (fresh.stat !== undefined) {
      // It was an empty dir: it stays one, with its mode and owner.
      fs.mkdirSync(fresh.dir, { mode: fresh.stat.mode & 0o7777 });
      fs.chmodSync(fresh.dir, fresh.stat.mode & 0o7777);
      if (process.getuid?.() === 0) fs.chownSync(fresh.dir, fresh.stat.uid, fresh.stat.gid);
      return;
    }
    if (fresh.made === undefined || fresh.made === fresh.dir) return;
    // The parents this start made, bottom up; one that holds anything now is not ours to remove.
    for (let d = path.dirname(fresh.dir); d.length >= fresh.made.length; d = path.dirname(d)) fs.rmdirSync(d);
  } catch {
    // another process made it again, or holds something in it: left as it is
  }
}
