#!/usr/bin/env node
/**
 * The `kyrodb` command line: `serve`, `backup …`, `restore`, `admin …`, `query`, `audit …`.
 * Exit codes are `EXIT` (documented in `--help`).
 */
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Command, Option } from 'commander';
import cliProgress from 'cli-progress';
import { EventLog, Failpoints, lockHolder, writerRunning } from '@kyrodb/log';
import type { KyroConfig } from './config.js';
import { dataDirOf, envNameOf, loadConfig, unknownConfigEnv } from './config.js';
import { BackupManager, findBackup, manifestKey, restore, seqSpan, verifySegmentChain } from '@kyrodb/backup';
import type { EncryptionKey, ObjectStore, ProgressFn, PruneResult, SegmentChainReport } from '@kyrodb/backup';
import { ApiError } from './errors.js';
import { checkDataDir, dirState, noLogError } from './dataDir.js';
import { exitInterrupted, installInterruptHandlers, interruptedBy, onInterrupt } from './interrupt.js';
import { checkId, checkName, checkUrlId } from './names.js';
import { decryptionKeyOf, encryptionOf, openConfiguredStore, startNode } from './node.js';
import { microsToIso, parseIsoMicros } from './time.js';
import { collectionLiveAt, headAtSeq, headToJson, parseAsOf, parseInstant, presentMicros, registerAuditCommands } from './audit/index.js';

// The AWS SDK warns on every S3 command that its releases after January 2027 will need Node 22.
// This build pins its SDK release, so the warning does not concern its users; set the variable to
// "false" to see it again.
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';

/** Exit codes of every `kyrodb` command. */
export const EXIT = Object.freeze({
  /** Done. For health-check: the server is ready. */
  OK: 0,
  /** An unexpected failure (the message says what). */
  FAILURE: 1,
  /** Bad usage, bad config or bad input (unknown option, bad timestamp, invalid config key). */
  USAGE: 2,
  /** The data dir is held by a running server (restore, or a second serve), or the target exists without --force. */
  LOCKED: 3,
  /** The backup, collection or document does not exist. */
  NOT_FOUND: 4,
  /** A verification failed: backup checksum or chain, restore check. */
  VERIFY_FAILED: 5,
  /** The server cannot be reached, or it is not ready / a breaker is open (health-check); the backup store fails after its retries. */
  UNAVAILABLE: 6,
  /** The feature is not supported for this store or configuration (e.g. `backup urls` of a local store: API_NOT_AVAILABLE). */
  NOT_AVAILABLE: 7,
  /** Not enough disk space: a full disk or an exceeded quota (the message says where, and how much is free). */
  NO_SPACE: 8,
});

const EXIT_HELP = `
Exit codes:
  0  done (health-check: ready)
  1  unexpected failure
  2  bad usage, config or input (the message names the key or flag; an API key missing,
     unknown or without the role; an as-of time in the future; a data dir or backup
     directory that is a file; a missing data dir to read; a port in use)
  3  the data dir is held by a running server or needs a writer's open first (LOG_RECOVERY_NEEDED:
     its writer crashed), or a target is refused (restore: a data dir
     without --force, or not a KyroDB data dir; backup create: the tag is in use)
  4  backup, collection or document not found
  5  verification failed (checksums, hash chain, restore check)
  6  server unreachable, or not ready / breaker open (health-check); the backup store
     cannot be reached or fails after its retries (BACKUP_STORE_ERROR)
  7  not supported for this store or configuration (API_NOT_AVAILABLE: e.g. backup urls of a
     local store, which has no presigned URLs)
  8  not enough disk space (the message says where, how much is free and, for a restore, needed)
  130, 143  interrupted by SIGINT, SIGTERM (CLI_INTERRUPTED; not serve, which stops gracefully):
     what it was writing is removed (a backup's objects, scratch dirs, a restore's staging dir;
     a restore stopped while swapping dirs is undone by the next restore or serve)
Environment: KYRODB_<SECTION>_<KEY> overrides config keys (e.g. KYRODB_SERVER_PORT=8080),
KYRODB_API_KEY is sent by admin/query commands, KYRODB_FAILPOINTS arms failpoints (testing).`;

/** `restore --s3 s3://bucket/prefix/backup_<id>` names a backup (an id as `newBackupId` makes them). */
const BACKUP_URL_RE = /^(s3:\/\/.+)\/backup_(\d{8}T\d{6}Z-(?:full|incr)-[0-9a-f]+)$/;

interface CommonOpts {
  config?: string;
  dataDir?: string;
  json?: boolean;
}

/**
 * A usage error a command finds itself (flags that must or must not go together, a flag's value
 * out of range): CLI_USAGE, exit 2, as commander's own (an unknown option, a missing argument).
 * API_CONFIG_INVALID stays for settings, which a config file or variable can give too.
 */
function usageError(message: string): Error & { code: 'CLI_USAGE' } {
  return Object.assign(new Error(message), { code: 'CLI_USAGE' as const });
}

function exitCodeFor(err: unknown): number {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string') return EXIT.FAILURE;
  if (code === 'CLI_USAGE') return EXIT.USAGE;
  // A backup's own objects that are damaged or missing: it does not verify (before the `_INVALID` of bad input).
  if (code.startsWith('BACKUP_MANIFEST_') || code === 'BACKUP_FILE_MISSING') return EXIT.VERIFY_FAILED;
  // An API key missing, unknown or without the role is the caller's configuration; a future as-of time is bad input.
  if (code === 'API_CONFIG_INVALID' || code === 'API_INVALID_TIMESTAMP' || code === 'API_UNAUTHORIZED' || code === 'API_FORBIDDEN' || code === 'AUDIT_TIME_IN_FUTURE' || code.endsWith('_REQUIRED') || code.endsWith('_INVALID') || code.includes('_INVALID_') || code.startsWith('AUDIT_BAD')) return EXIT.USAGE;
  if (code === 'LOG_LOCKED' || code === 'LOG_RECOVERY_NEEDED' || code.endsWith('_LOCKED') || code.endsWith('_EXISTS') || code.endsWith('_IN_USE') || code === 'BACKUP_TARGET_NOT_DATA_DIR') return EXIT.LOCKED;
  if (code.endsWith('NOT_FOUND') || code.includes('UNKNOWN')) return EXIT.NOT_FOUND;
  if (code.includes('CHECKSUM') || code.includes('DIVERGED') || code.includes('CORRUPT') || code.includes('CHAIN') || code.includes('VERIFY') || code.includes('MISMATCH') || code === 'BACKUP_DECRYPT_FAILED') return EXIT.VERIFY_FAILED;
  if (code === 'API_SERVER_UNREACHABLE' || code === 'BACKUP_STORE_ERROR') return EXIT.UNAVAILABLE;
  if (code === 'API_NOT_AVAILABLE') return EXIT.NOT_AVAILABLE;
  if (code === 'BACKUP_NO_SPACE' || code === 'WAL_DISK_FULL' || code === 'WAL_QUOTA_EXCEEDED') return EXIT.NO_SPACE;
  return EXIT.FAILURE;
}

/** Exits for a verify that did not pass: by its code as every command does, else 5 (did not verify). */
function exitForFailedVerify(code: string | undefined): never {
  const c = exitCodeFor({ code });
  process.exit(c === EXIT.FAILURE ? EXIT.VERIFY_FAILED : c);
}

/** `backup verify --segments`: reads and checks every continuous segment (see verifySegmentChain); exit 5 with a gap, an overlap or a bad segment. */
async function verifySegmentsCommand(store: ObjectStore, key: EncryptionKey | undefined, json: boolean | undefined): Promise<void> {
  const bar = progress(json, 'verify segments');
  let rep: SegmentChainReport;
  try {
    rep = await verifySegmentChain(store, { ...(key !== undefined ? { encryption: key } : {}), ...(bar.onProgress ? { onProgress: bar.onProgress } : {}) });
  } finally {
    bar.stop();
  }
  const range = rep.firstSeq === null ? 'none read' : `seqs ${rep.firstSeq}..${rep.lastSeq}, ${microsToIso(rep.firstTs!)} .. ${microsToIso(rep.lastTs!)}`;
  const what = `${rep.read} of ${rep.segments} segment${rep.segments === 1 ? '' : 's'} read, ${rep.events} events (${range})${rep.continues !== undefined ? `, continuing backup ${rep.continues}` : ''}`;
  const problems = [
    ...(rep.code !== undefined ? [`${rep.code}: ${rep.message ?? ''}`] : []),
    ...rep.gaps.map((g) => `seqs ${g.from}..${g.to} held by no segment or backup`),
    ...rep.overlaps.map((x) => `${x.a} overlaps ${x.b}`),
  ];
  const code = rep.code ?? (rep.gaps.length > 0 ? 'BACKUP_CHAIN_GAP' : rep.overlaps.length > 0 ? 'BACKUP_CORRUPT' : undefined);
  out(json, rep.ok ? rep : { ...rep, error: { code, message: problems.join('; ') } }, rep.ok ? `segments: OK (${what})` : `segments: FAILED (${what})\n${problems.map((p) => `  ${p}`).join('\n')}`);
  if (!rep.ok) exitForFailedVerify(code);
}

function fail(err: unknown, json: boolean | undefined): never {
  const code = (err as { code?: unknown } | undefined)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (interruptedBy() !== undefined) exitInterrupted(message); // stopped by a signal: that is the outcome
  if (json) process.stdout.write(JSON.stringify({ error: { code: typeof code === 'string' ? code : 'ERROR', message } }) + '\n');
  process.stderr.write(`kyrodb: ${typeof code === 'string' ? code + ': ' : ''}${message}\n`);
  process.exit(exitCodeFor(err));
}

function configFrom(o: CommonOpts, extra: Record<string, unknown> = {}): KyroConfig {
  const cfg = loadConfig({ file: o.config, overrides: { 'storage.data_dir': o.dataDir, ...extra } });
  for (const u of unknownConfigEnv()) process.stderr.write(`kyrodb: warning: ${u.name} is not a config variable and is ignored (this section's: ${u.known.join(', ')})\n`);
  return cfg;
}

/** Which setting gave a config key its value, for messages: a flag, the env variable, or the key (in the config file). */
function settingName(o: CommonOpts, key: string, flag: string | undefined): string {
  if (flag !== undefined) return flag;
  if (process.env[envNameOf(key)] !== undefined) return envNameOf(key);
  return o.config !== undefined ? `${key} (in ${o.config})` : key;
}

function dataDirKey(o: CommonOpts): string {
  return settingName(o, 'storage.data_dir', o.dataDir !== undefined ? '--data-dir' : undefined);
}

/**
 * The config's data dir, checked before anything opens it (`checkDataDir`): one that is a file,
 * or a missing one for commands that only read it (`mustExist`), is bad input naming the setting.
 */
function checkedDataDir(cfg: KyroConfig, o: CommonOpts, mustExist: boolean): string {
  return checkDataDir(dataDirOf(cfg), dataDirKey(o), mustExist);
}

/** The config's data dir opened read-only; a dir that holds no log is bad input naming the setting (exit 2), as in the audit commands. */
async function openReadOnly(cfg: KyroConfig, o: CommonOpts): Promise<EventLog> {
  const dir = checkedDataDir(cfg, o, true);
  try {
    return await EventLog.open({ dir, readOnly: true, logger: () => undefined });
  } catch (err) {
    throw noLogError(err, dir, dataDirKey(o));
  }
}

/**
 * The backup store the options and config name. A local store path that is a file (or lies in
 * one) is bad input naming the setting; a missing one is fine (a local store's dir is made by its
 * first backup), but a reading command warns that it finds nothing there.
 */
function checkedStore(cfg: KyroConfig, o: CommonOpts & { output?: string; from?: string }, url: string | undefined, reading: boolean): ReturnType<typeof openConfiguredStore> {
  const store = openConfiguredStore(cfg, url);
  if (store.url.startsWith('file://')) {
    const dir = fileURLToPath(store.url);
    const key = settingName(o, 'backup.local_dir', o.output !== undefined ? '--output' : o.from !== undefined ? '--from' : undefined);
    const state = dirState(dir);
    if (state === 'notDir') throw new ApiError('API_CONFIG_INVALID', `${key}: the backup directory ${dir} is not a directory (a file is in the way)`);
    if (state === 'missing' && reading) process.stderr.write(`kyrodb: warning: ${key}: there is no backup directory at ${dir} (nothing has been backed up there)\n`);
  }
  return store;
}

/** A server URL from --url: http(s) only; anything else is bad input naming the flag (exit 2), not "unreachable". */
function checkedUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw usageError(`--url: expected a server URL such as http://127.0.0.1:7070, got ${JSON.stringify(url)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw usageError(`--url: expected an http:// or https:// URL, got ${JSON.stringify(url)}`);
  return url;
}

/** Listen errors that are the config's (a port in use, an address this host does not have): bad config naming the key (exit 2). */
function listenConfigError(err: unknown, cfg: KyroConfig, o: CommonOpts & { host?: string; port?: string }): ApiError | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  const where = `${cfg.server.host}:${cfg.server.port}`;
  const portKey = settingName(o, 'server.port', o.port !== undefined ? '--port' : undefined);
  if (code === 'EADDRINUSE') return new ApiError('API_CONFIG_INVALID', `${portKey}: ${where} is already in use (another kyrodb serve, or another program); pick another port with --port or server.port`);
  if (code === 'EACCES') return new ApiError('API_CONFIG_INVALID', `${portKey}: not allowed to listen on ${where} (ports below 1024 need privileges)`);
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME') return new ApiError('API_CONFIG_INVALID', `${settingName(o, 'server.host', o.host !== undefined ? '--host' : undefined)}: cannot listen on ${JSON.stringify(cfg.server.host)} (${String(code)}: not an address of this machine)`);
  return undefined;
}

function out(json: boolean | undefined, value: unknown, human: string): void {
  process.stdout.write((json ? JSON.stringify(value) : human) + '\n');
}

/** A progress callback drawing a bar when stdout is a terminal (and not --json); no-op otherwise. */
function progress(json: boolean | undefined, label: string): { onProgress: ProgressFn | undefined; stop: () => void } {
  if (json || !process.stdout.isTTY) return { onProgress: undefined, stop: () => undefined };
  const bar = new cliProgress.SingleBar({ format: `${label} [{bar}] {percentage}% | {value}/{total} {phase}`, hideCursor: true }, cliProgress.Presets.shades_classic);
  let started = false;
  return {
    onProgress: ({ phase, done, total }) => {
      if (!started) {
        bar.start(Math.max(1, total), 0, { phase });
        started = true;
      }
      bar.setTotal(Math.max(1, total));
      bar.update(done, { phase });
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
}

function common(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'YAML config file (default: the embedded default config)')
    .option('--data-dir <dir>', 'data directory (overrides storage.data_dir)')
    .option('--json', 'print JSON for scripts')
    .addHelpText('after', EXIT_HELP);
}

function defaultUrl(cfg: KyroConfig): string {
  const host = cfg.server.host === '0.0.0.0' || cfg.server.host === '::' ? '127.0.0.1' : cfg.server.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${cfg.server.port}`;
}

async function http(url: string, method: string, p: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const headers: Record<string, string> = {};
  const key = process.env['KYRODB_API_KEY'];
  if (key !== undefined && key !== '') headers['authorization'] = `Bearer ${key}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    // The URL's own path is kept (a server behind a proxy's prefix): `p` is joined to it.
    res = await fetch(url.replace(/\/+$/, '') + p, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  } catch (err) {
    throw new ApiError('API_SERVER_UNREACHABLE', `cannot reach ${url}: ${err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err)}`);
  }
  const text = await res.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text) as unknown;
  } catch {
    /* not JSON */
  }
  return { status: res.status, json };
}

function httpError(r: { status: number; json: unknown }): Error {
  const e = (r.json as { error?: { code?: string; message?: string } } | undefined)?.error;
  const err = new Error(e?.message ?? `HTTP ${r.status}`) as Error & { code?: string };
  if (e?.code !== undefined) err.code = e.code;
  return err;
}

/** A retention result as people read it: what is kept and why, what is (or would be) deleted. */
function pruneText(r: PruneResult): string {
  const lines = [`retention${r.dryRun ? ' (dry run: nothing deleted)' : ''}: keep ${r.keep.length} backup(s); ${r.dryRun ? 'would delete' : 'deleted'} ${r.delete.length} backup(s), ${r.deleteSegments.length} segment(s), ${r.deleteIncomplete.length} incomplete backup(s), ${r.deleteTagClaims.length} stale tag claim(s), ${r.deleteParentClaims.length} parent claim(s), ${r.deleteHistoryClaims.length} history claim(s)${r.dryRun ? (r.sweptTempFiles > 0 ? `, ${r.sweptTempFiles} temp file(s) of killed uploads` : '') : ` (${r.deletedObjects} objects${r.sweptTempFiles > 0 ? `, ${r.sweptTempFiles} temp files` : ''})`}`];
  for (const k of r.keep) lines.push(`  keep    ${k.backup_id}  (${k.reasons.join(', ')})`);
  for (const id of r.delete) lines.push(`  delete  ${id}`);
  for (const key of r.deleteSegments) lines.push(`  delete  segment ${key}`);
  for (const id of r.deleteIncomplete) lines.push(`  delete  incomplete ${id} (no manifest)`);
  for (const key of r.deleteTagClaims) lines.push(`  delete  stale tag claim ${key}`);
  for (const key of r.deleteParentClaims) lines.push(`  delete  parent claim ${key} (its backup completed, or was killed a day ago)`);
  return lines.join('\n');
}

/** Builds the `kyrodb` program (exported for tests). */
export function buildProgram(): Command {
  const program = new Command('kyrodb')
    .description('KyroDB: an event-sourced vector database. The log is the database.')
    .version('0.1.0')
    .showHelpAfterError()
    .addHelpText('after', EXIT_HELP);
  program.exitOverride((err) => {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version' || err.exitCode === 0) process.exit(0);
    // Commander has printed the message and usage on stderr; a script that asked for --json gets
    // the error as every other failure gives it, on stdout.
    if (process.argv.includes('--json')) process.stdout.write(JSON.stringify({ error: { code: 'CLI_USAGE', message: err.message.replace(/^error: /, '') } }) + '\n');
    process.exit(EXIT.USAGE);
  });

  // ------------------------------------------------------------------ serve
  common(program.command('serve').description('run the HTTP server (holds the writer lock on the data dir; runs scheduled and continuous backups)'))
    .option('--host <host>', 'bind address (overrides server.host)')
    .option('--port <n>', 'TCP port, 0 = any free port (overrides server.port)')
    .action(async (o: CommonOpts & { host?: string; port?: string }) => {
      try {
        const port = o.port === undefined ? undefined : /^\d+$/.test(o.port) ? Number(o.port) : NaN;
        if (Number.isNaN(port)) throw usageError(`--port: expected an integer in 0..65535, got ${JSON.stringify(o.port)}`);
        const cfg = configFrom(o, { 'server.host': o.host, 'server.port': port });
        checkedDataDir(cfg, o, false);
        if (cfg.backup.enabled || cfg.backup.continuous.enabled) checkedStore(cfg, o, undefined, false);
        let node: Awaited<ReturnType<typeof startNode>>;
        try {
          node = await startNode(cfg);
        } catch (err) {
          throw listenConfigError(err, cfg, o) ?? err;
        }
        let stopping = false;
        const stop = (sig: string): void => {
          if (stopping) {
            process.stderr.write(`kyrodb: ${sig} again, exiting now\n`);
            process.exit(EXIT.FAILURE);
          }
          stopping = true;
          process.stderr.write(`kyrodb: ${sig}: shutting down (finishing in-flight requests, checkpointing)\n`);
          node.close().then(
            () => process.exit(EXIT.OK),
            (err: unknown) => {
              process.stderr.write(`kyrodb: shutdown failed: ${err instanceof Error ? err.message : String(err)}\n`);
              process.exit(EXIT.FAILURE);
            },
          );
        };
        process.on('SIGTERM', () => stop('SIGTERM'));
        process.on('SIGINT', () => stop('SIGINT'));
        // Only once the handlers are in: a supervisor that signals as soon as it reads this line
        // (a test, a quick restart) killed the process outright, with no checkpoint, when the
        // signal beat the two lines above.
        out(o.json, { event: 'listening', url: node.url, dataDir: dataDirOf(cfg), pid: process.pid }, `kyrodb listening on ${node.url} (data dir ${dataDirOf(cfg)}, pid ${process.pid})`);
      } catch (err) {
        fail(err, o.json);
      }
    });

  // ------------------------------------------------------------------ backup
  const backup = program.command('backup').description('create, list, verify and prune backups (works online: opens the log read-only)').addHelpText('after', EXIT_HELP);
  const storeOpts = (c: Command): Command => common(c).option('--output <dir>', 'backup directory (overrides backup.local_dir)').option('--s3 <url>', 'S3 store URL s3://bucket/prefix (overrides the config)');
  const storeUrl = (o: { output?: string; s3?: string }): string | undefined => (o.s3 !== undefined ? o.s3.replace(/\/+$/, '') : o.output !== undefined ? pathToFileURL(path.resolve(o.output)).href : undefined);

  storeOpts(backup.command('create').description('create a full or incremental backup now'))
    .addOption(new Option('--full', 'a full backup').conflicts('incremental'))
    .addOption(new Option('--incremental', 'an incremental backup (events since the last backup)').conflicts('full'))
    .option('--since <T>', 'incremental: build on the newest backup that ends at or before this instant, ISO-8601 with a zone or integer µs since the epoch (default: the newest backup)')
    .option('--tag <tag>', 'a tag to restore by, unique in the store (1-128 letters, digits, . _ - : @ +, starting with a letter or digit); retention never deletes a tagged backup')
    .option('--description <text>', 'free text kept in the manifest')
    .action(async (o: CommonOpts & { full?: boolean; incremental?: boolean; since?: string; tag?: string; description?: string; output?: string; s3?: string }) => {
      let log: EventLog | undefined;
      const bar = progress(o.json, 'backup');
      try {
        if (!o.full && !o.incremental) throw usageError('backup create: give --full or --incremental');
        if (o.full && o.since !== undefined) throw usageError('backup create: --since picks the parent of an incremental; a full backup has none');
        const since = o.since !== undefined ? parseIsoMicros(o.since, '--since') : undefined;
        const cfg = configFrom(o);
        const store = checkedStore(cfg, o, storeUrl(o), false);
        log = await openReadOnly(cfg, o);
        const enc = encryptionOf(cfg);
        const mgr = new BackupManager({ log, dataDir: dataDirOf(cfg), store, compression: cfg.backup.compression, ...(enc ? { encryption: enc } : {}), ...(bar.onProgress ? { onProgress: bar.onProgress } : {}) });
        const named = { ...(o.tag !== undefined ? { tag: o.tag } : {}), ...(o.description !== undefined ? { description: o.description } : {}) };
        // Interrupted, it stops at once (see BackupManager.abort) and removes what it stored (claims too).
        onInterrupt(async () => {
          mgr.abort('interrupted');
          await mgr.idle();
        });
        const m = o.full ? await mgr.createFull(named) : await mgr.createIncremental({ ...named, ...(since !== undefined ? { since } : {}) });
        bar.stop();
        out(o.json, m, `backup ${m.backup_id} (${m.type}) ${seqSpan(m.from_seq, m.to_seq)}, ${m.vector_count} vectors, in ${store.url}`);
      } catch (err) {
        bar.stop();
        fail(err, o.json);
      } finally {
        await log?.close();
      }
    });

  storeOpts(backup.command('list').description('list backups, newest first'))
    .option('--before <T>', 'only backups created before this instant: ISO-8601 with a zone or integer µs since the epoch')
    .action(async (o: CommonOpts & { before?: string; output?: string; s3?: string }) => {
      try {
        const before = o.before !== undefined ? parseIsoMicros(o.before, '--before') : undefined;
        const cfg = configFrom(o);
        const store = checkedStore(cfg, o, storeUrl(o), true);
        const mgr = new BackupManager({ log: undefined as unknown as EventLog, dataDir: dataDirOf(cfg), store });
        const list = await mgr.list(before !== undefined ? { before } : {});
        out(o.json, list, list.length === 0 ? 'no backups' : list.map((m) => `${m.backup_id}  ${m.type.padEnd(11)} ${m.created}  ${seqSpan(m.from_seq, m.to_seq)}  ${m.vector_count} vectors${m.tag ? `  tag=${m.tag}` : ''}`).join('\n'));
      } catch (err) {
        fail(err, o.json);
      }
    });

  storeOpts(backup.command('urls').description("presigned download URLs of a backup's manifest and files (S3 stores): a copy or restore elsewhere needs no credentials"))
    .requiredOption('--backup-id <id>', 'backup id, tag, or "latest" (an incremental also needs its parents\' files: see its "parent")')
    .option('--expires-in <seconds>', 'how long the URLs work, 1..604800 (S3 signs for at most 7 days)', '3600')
    .action(async (o: CommonOpts & { backupId: string; expiresIn: string; output?: string; s3?: string }) => {
      try {
        const secs = Number(o.expiresIn);
        if (!Number.isInteger(secs) || secs < 1 || secs > 604_800) throw usageError(`--expires-in: expected a whole number of seconds in 1..604800 (7 days), got ${JSON.stringify(o.expiresIn)}`);
        const cfg = configFrom(o);
        const store = checkedStore(cfg, o, storeUrl(o), true);
        if (store.presignGet === undefined) throw new ApiError('API_NOT_AVAILABLE', `presigned URLs need an S3 store; ${store.url} is a directory, whose files can be copied as they are`);
        const m = findBackup(await new BackupManager({ log: undefined as unknown as EventLog, dataDir: dataDirOf(cfg), store }).list(), o.backupId);
        if (m === undefined) throw Object.assign(new Error(`no backup ${o.backupId} in ${store.url}`), { code: 'BACKUP_NOT_FOUND' });
        const expires = new Date(Date.now() + secs * 1000).toISOString();
        const sign = store.presignGet.bind(store);
        const files = [
          { key: manifestKey(m.backup_id), kind: 'manifest', url: await sign(manifestKey(m.backup_id), secs) },
          ...(await Promise.all(m.files.map(async (f) => ({ key: f.key, kind: f.kind, size: f.size, sha256: f.sha256, url: await sign(f.key, secs) })))),
        ];
        const report = { backup_id: m.backup_id, type: m.type, parent: m.parent, expires, files };
        out(o.json, report, [`backup ${m.backup_id} (${m.type}${m.parent !== null ? `, parent ${m.parent}` : ''}): ${files.length} file${files.length === 1 ? '' : 's'}, URLs valid until ${expires}`, ...files.map((f) => `${f.key}\n  ${f.url}`)].join('\n'));
      } catch (err) {
        fail(err, o.json);
      }
    });

  storeOpts(backup.command('verify').description('verify a backup: checksums and hash chain (--deep: restore into a temp dir and compare); or, with --segments, the continuous-backup segments'))
    .option('--backup-id <id>', 'backup id, tag, or "latest"')
    .option('--segments', 'verify the continuous-backup segments instead: read each one, check its checksums and the hash chain through all of them (and to the backup they continue), and report overlaps and seqs no segment or backup holds')
    .option('--deep', 'also restore into a temp dir: its event count, head hash, vector count and write-ahead segments must match the backup, and recall probes must find their vectors')
    .option('--scratch-dir <dir>', 'where --deep restores (default: the system temp dir, $TMPDIR); it needs a little over twice the backup\'s events\' bytes free')
    .action(async (o: CommonOpts & { backupId?: string; segments?: boolean; deep?: boolean; scratchDir?: string; output?: string; s3?: string }) => {
      try {
        if ((o.backupId === undefined) === (o.segments !== true)) throw usageError('give either --backup-id <id> or --segments');
        if (o.segments === true && (o.deep === true || o.scratchDir !== undefined)) throw usageError('--deep and --scratch-dir verify a backup (--backup-id), not --segments');
        const cfg = configFrom(o);
        const store = checkedStore(cfg, o, storeUrl(o), true);
        const key = decryptionKeyOf(cfg);
        if (o.segments === true) {
          await verifySegmentsCommand(store, key, o.json);
          return;
        }
        const backupId = o.backupId!;
        const mgr = new BackupManager({ log: undefined as unknown as EventLog, dataDir: dataDirOf(cfg), store, ...(key !== undefined ? { encryption: key } : {}) });
        const rep = await mgr.verify(backupId, o.deep ? { deep: true, ...(o.scratchDir !== undefined ? { scratchDir: path.resolve(o.scratchDir) } : {}) } : {});
        // `rep.backupId` is the backup verified (`latest` or a tag resolved to its id).
        const named = rep.backupId !== backupId ? `${rep.backupId} (${backupId})` : rep.backupId;
        // A failed one also carries `error` in the shape every command's --json failure has.
        out(o.json, rep.ok ? rep : { ...rep, error: { code: rep.code, message: rep.message } }, rep.ok ? `backup ${named}: OK (${rep.events} events in ${rep.files} file${rep.files === 1 ? '' : 's'}, chain ${rep.chain.join(' → ')}${rep.deep !== undefined ? `; restored and probed: ${rep.deep.indexProbeHits} of ${rep.deep.probes} found by the index` : ''})` : `backup ${named}: FAILED ${rep.code ?? ''}: ${rep.message ?? ''}`);
        // Exit codes as for every other command: an id no backup has is not found (4), a store that
        // does not answer is unavailable (6), a key not given is bad input (2); a backup that does
        // not check out did not verify (5). A store down gave 5 here, read as a damaged backup.
        if (!rep.ok) exitForFailedVerify(rep.code);
      } catch (err) {
        fail(err, o.json);
      }
    });

  storeOpts(backup.command('prune').description('delete backups outside the retention (config backup.retention, or --retention-days); prints the plan'))
    .option('--retention-days <n>', 'keep backups younger than N days (and what they need)')
    .option('--dry-run', 'print the plan only')
    .action(async (o: CommonOpts & { retentionDays?: string; dryRun?: boolean; output?: string; s3?: string }) => {
      try {
        if (o.retentionDays !== undefined && !/^\d+$/.test(o.retentionDays)) throw usageError(`--retention-days: expected a non-negative integer, got ${JSON.stringify(o.retentionDays)}`);
        const cfg = configFrom(o);
        const store = checkedStore(cfg, o, storeUrl(o), true);
        const mgr = new BackupManager({ log: undefined as unknown as EventLog, dataDir: dataDirOf(cfg), store });
        const r = cfg.backup.retention;
        const res = await mgr.prune({
          ...(o.retentionDays !== undefined ? { retentionDays: Number(o.retentionDays) } : { policy: { hourly: r.keep_hourly, daily: r.keep_daily, weekly: r.keep_weekly, monthly: r.keep_monthly } }),
          dryRun: o.dryRun === true,
        });
        out(o.json, res, pruneText(res));
      } catch (err) {
        fail(err, o.json);
      }
    });

  // ------------------------------------------------------------------ restore
  common(program.command('restore').description('restore a data dir from backups (refuses while a server holds the data dir)'))
    .option('--backup-id <id>', 'restore this backup, by id or tag (and its incremental parents); "latest" = the one reaching the highest seq')
    .option('--point-in-time <T>', 'restore every event with ts <= this instant: ISO-8601 with a zone or integer µs since the epoch (past the newest backed-up event: up to it)')
    .option('--tag <tag>', 'restore the newest backup with this tag')
    .option('--s3 <url>', 'S3 store URL (s3://bucket/prefix, or …/backup_<id> to name the backup)')
    .option('--from <dir>', 'backup directory (overrides backup.local_dir)')
    .option('--dry-run', 'print the restore plan only')
    .option('--force', 'replace an existing KyroDB data dir (kept aside until the new one verifies, then deleted); never a dir of other files')
    .action(async (o: CommonOpts & { backupId?: string; pointInTime?: string; tag?: string; s3?: string; from?: string; dryRun?: boolean; force?: boolean }) => {
      const bar = progress(o.json, 'restore');
      try {
        const pit = o.pointInTime !== undefined ? parseIsoMicros(o.pointInTime, '--point-in-time') : undefined;
        let url = o.s3 !== undefined ? o.s3.replace(/\/+$/, '') : o.from !== undefined ? pathToFileURL(path.resolve(o.from)).href : undefined;
        let backupId = o.backupId;
        const m = url !== undefined ? BACKUP_URL_RE.exec(url) : null;
        if (m !== null && backupId === undefined) {
          url = m[1]!;
          backupId = m[2]!;
        }
        const targets = [backupId !== undefined, pit !== undefined, o.tag !== undefined].filter(Boolean).length;
        if (targets === 0) throw usageError('restore: give --backup-id, --point-in-time or --tag');
        // Never one of them quietly ignored: each names a different state.
        if (targets > 1) throw usageError(`restore: give only one of --backup-id${m !== null && o.backupId === undefined ? ' (the --s3 URL names backup ' + backupId + ')' : ''}, --point-in-time and --tag`);
        const cfg = configFrom(o);
        const dataDir = dataDirOf(cfg);
        const holder = lockHolder(dataDir);
        if (holder !== undefined || writerRunning(dataDir)) {
          throw Object.assign(new Error(`the data dir ${dataDir} is held by a running server (${holder !== undefined ? `pid ${holder}` : 'its lock file is missing'}); stop it before restoring`), { code: 'LOG_LOCKED' });
        }
        const store = checkedStore(cfg, o, url, true);
        const enc = decryptionKeyOf(cfg);
        const rep = await restore({
          store,
          dataDir,
          ...(backupId !== undefined ? { backupId } : {}),
          ...(o.tag !== undefined ? { tag: o.tag } : {}),
          ...(pit !== undefined ? { pointInTime: pit } : {}),
          dryRun: o.dryRun === true,
          force: o.force === true,
          ...(enc ? { encryption: enc } : {}),
          ...(bar.onProgress ? { onProgress: bar.onProgress } : {}),
          failpoints: Failpoints.fromEnv(),
          logger: (level, msg) => process.stderr.write(`kyrodb: ${level === 'warn' ? 'warning: ' : ''}${msg}\n`),
        });
        bar.stop();
        // The plan alone did not say that it was done: a dry run prints only the plan.
        const done = `restored ${rep.events} event${rep.events === 1 ? '' : 's'} (head ${rep.seq}, ${rep.headHash.slice(0, 16)}…) into ${rep.dataDir} in ${(rep.durationMs / 1000).toFixed(1)} s`;
        out(o.json, rep, o.dryRun === true ? rep.plan : `${rep.plan}\n${done}`);
      } catch (err) {
        bar.stop();
        fail(err, o.json);
      }
    });

  // ------------------------------------------------------------------ admin
  const admin = program.command('admin').description('talk to a running server').addHelpText('after', EXIT_HELP);
  const urlOpt = (c: Command): Command => common(c).option('--url <url>', 'server URL (default: from config server.host/port)');
  urlOpt(admin.command('reset-circuit-breaker').description('close a circuit breaker by hand (after freeing disk space, say)'))
    .addOption(new Option('--name <name>', 'which breaker').choices(['wal', 'cold', 'hot', 'cache']).makeOptionMandatory())
    .action(async (o: CommonOpts & { name: string; url?: string }) => {
      try {
        const url = o.url !== undefined ? checkedUrl(o.url) : defaultUrl(configFrom(o));
        const r = await http(url, 'POST', `/v1/admin/circuit-breakers/${o.name}/reset`);
        if (r.status !== 200) throw httpError(r);
        out(o.json, r.json, `breaker ${o.name}: ${(r.json as { state?: string }).state ?? 'reset'}`);
      } catch (err) {
        fail(err, o.json);
      }
    });
  urlOpt(admin.command('health-check').description('print breakers, projections lag, training and continuous-backup status; exit 0 when ready with no breaker open and the cold tier up, 6 otherwise')).action(async (o: CommonOpts & { url?: string }) => {
    try {
      const url = o.url !== undefined ? checkedUrl(o.url) : defaultUrl(configFrom(o));
      const h = await http(url, 'GET', '/v1/admin/health');
      if (h.status !== 200) throw httpError(h);
      const ready = await http(url, 'GET', '/readyz');
      const body = { ready: ready.status === 200, ...(h.json as Record<string, unknown>) };
      const hj = h.json as { breakers?: Record<string, string>; projections?: { lagEvents?: number; searchChannel?: string }; head?: { seq?: number }; training?: { state?: string; restartsTotal?: number; gaveUp?: boolean; lastError?: string } | null; continuousBackup?: { state?: string; shippedSeq?: number; lagEvents?: number; lastError?: string } | null };
      const tr = hj.training;
      const trLine = tr ? `\ntraining: ${tr.gaveUp === true ? 'gave up' : (tr.state ?? '?')}, ${tr.restartsTotal ?? 0} restarts${tr.lastError !== undefined ? ` (${tr.lastError})` : ''}` : '';
      const cb = hj.continuousBackup;
      const cbLine = cb ? `\ncontinuous backup: ${cb.state ?? '?'}, shipped seq ${cb.shippedSeq ?? '?'}, lag ${cb.lagEvents ?? '?'} events${cb.lastError !== undefined ? ` (${cb.lastError})` : ''}` : '';
      // The cold worker down (crashed, restarting): its breaker never sees a failure then, yet
      // searches are answered by the hot tier alone, as with the breaker open.
      const coldDown = hj.projections?.searchChannel === 'down';
      out(o.json, body, `ready: ${body.ready}\nhead seq: ${hj.head?.seq ?? '?'}\nprojections lag: ${hj.projections?.lagEvents ?? '?'} events\nbreakers: ${Object.entries(hj.breakers ?? {}).map(([k, v]) => `${k}=${v}`).join(' ')}${coldDown ? '\ncold tier: down (restarting)' : ''}${trLine}${cbLine}`);
      // Ready but with a breaker open (the cold tier: searches answered by the hot tier alone,
      // `degraded`) is not healthy either, as the exit codes say: it exited 0.
      const open = Object.entries(hj.breakers ?? {}).filter(([, v]) => v === 'open').map(([k]) => k);
      if (!body.ready || open.length > 0 || coldDown) {
        if (o.json !== true && open.length > 0) process.stderr.write(`kyrodb: breaker${open.length > 1 ? 's' : ''} open: ${open.join(', ')}\n`);
        if (o.json !== true && coldDown) process.stderr.write('kyrodb: the cold tier is down (its worker is restarting): searches are answered by the hot tier alone\n');
        process.exit(EXIT.UNAVAILABLE);
      }
    } catch (err) {
      fail(err, o.json);
    }
  });

  // ------------------------------------------------------------------ query
  common(program.command('query').description('read a document (live, or as of an instant) from the data dir read-only, or from a server with --url'))
    .requiredOption('--doc-id <id>', 'document id')
    .requiredOption('--collection <name>', 'collection')
    .option('--as-of <T>', 'the value as of this instant: ISO-8601 with a zone or integer µs, not in the future')
    .option('--url <url>', 'ask a running server instead of reading the data dir')
    .action(async (o: CommonOpts & { docId: string; collection: string; asOf?: string; url?: string }) => {
      let log: EventLog | undefined;
      try {
        if (o.asOf !== undefined) parseInstant(o.asOf); // malformed (AUDIT_BAD_TIME): exit 2 before anything is read
        // Names the server would refuse (API_INVALID_NAME) are bad input here too, not "not found".
        checkName(o.collection);
        checkId(o.docId, '--doc-id');
        let doc: Record<string, unknown>;
        if (o.url !== undefined) {
          checkedUrl(o.url);
          // "." and ".." cannot be asked for in a URL (fetch resolves them away); the data dir can still be read.
          checkUrlId(o.docId, '--doc-id');
          const q = o.asOf !== undefined ? `?asOf=${encodeURIComponent(o.asOf)}` : '';
          const r = await http(o.url, 'GET', `/v1/collections/${encodeURIComponent(o.collection)}/vectors/${encodeURIComponent(o.docId)}${q}`);
          if (r.status !== 200) throw httpError(r);
          doc = r.json as Record<string, unknown>;
        } else {
          const cfg = configFrom(o);
          log = await openReadOnly(cfg, o);
          // The as-of rule, as the server applies it: a future instant is refused (AUDIT_TIME_IN_FUTURE).
          const asOf = o.asOf !== undefined ? parseAsOf(o.asOf, presentMicros(log)) : undefined;
          const e = log.docAsOf(o.collection, o.docId, asOf);
          if (e === undefined && !collectionLiveAt(log, o.collection, asOf ?? presentMicros(log))) throw new ApiError('API_COLLECTION_NOT_FOUND', `collection ${o.collection} does not exist${o.asOf ? ` at ${o.asOf}` : ''}`);
          if (e === undefined) throw new ApiError('API_DOC_NOT_FOUND', `document ${o.docId} does not exist in ${o.collection}${o.asOf ? ` at ${o.asOf}` : ''}`);
          doc = { id: e.body.id, vector: Array.from(e.body.vector), ...(e.body.metadata !== undefined ? { metadata: e.body.metadata } : {}), seq: e.seq, ts: microsToIso(e.ts), tsMicros: e.ts };
          if (asOf !== undefined) doc['head'] = headToJson(headAtSeq(log, log.seqAtTime(asOf))); // as the server's as-of answer
        }
        out(o.json, doc, JSON.stringify(doc, null, 2));
      } catch (err) {
        fail(err, o.json);
      } finally {
        await log?.close();
      }
    });

  registerAuditCommands(program);
  return program;
}

const isMain = process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  // A reader that goes away (`kyrodb … | head`) is not a failure of the command: once stdout's
  // pipe is closed, what is left to print has no reader, so the command exits 0 then (`serve`
  // keeps serving: its output is only its start line). Without this, the EPIPE was an unhandled
  // error and a stack trace.
  const serving = process.argv.includes('serve');
  if (!serving) installInterruptHandlers(process.argv.includes('--json'));
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    if (!serving) process.exit(EXIT.OK);
  });
  await buildProgram().parseAsync(process.argv);
}
