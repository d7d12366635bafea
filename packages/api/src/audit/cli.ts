import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { COLLECTION_NAME_RE, DOC_ID_RE, EventLog, isLogError, makeScratchDir, registerScratch, sweepDeadScratch } from '@kyrodb/log';
import { LATEST, formatBytes, freeBytes, isBackupError, loadKey, restore } from '@kyrodb/backup';
import { loadConfig } from '../config.js';
import { ApiError } from '../errors.js';
import { checkDataDir, noLogError } from '../dataDir.js';
import { decryptionKeyOf, openConfiguredStore } from '../node.js';
import type { LogHead } from '@kyrodb/log';
import { AuditError, isAuditError } from './errors.js';
import { formatDigest, parseDigest, verifyDigestAsync } from './digest.js';
import { docHistoryOrThrow, eventToJson, headToJson, searchAsOf } from './state.js';
import { isProjectionError, validateFilter } from '@kyrodb/projections';
import { exportStateAsOf } from './exportState.js';
import type { ExportProgress } from './exportState.js';
import { formatMicros, parseAsOf, presentMicros } from './time.js';

/** Exit codes of the audit commands. */
export const AUDIT_EXIT = Object.freeze({
  /** The chain verifies (and extends the digest); the command did its work. */
  OK: 0,
  /** Bad input: malformed digest or time, missing data dir, unknown option. */
  BAD_INPUT: 2,
  /** The chain does not verify or does not extend the digest (or LMDB is damaged); the message names the first bad seq. */
  CHAIN_BROKEN: 3,
  /**
   * The data dir's writer crashed and left acknowledged events LMDB lacks (LOG_RECOVERY_NEEDED):
   * a writer's open must apply them first. 3 as in every other kyrodb command (`query`, `backup create`).
   */
  RECOVERY_NEEDED: 3,
  /** The collection or document does not exist (at T). */
  NOT_FOUND: 4,
  /** The disk is full (writing `replay --out`). */
  NO_SPACE: 8,
});

const AUDIT_EXIT_HELP = `
Exit codes:
  0  done (verify: the chain verifies and extends the digest)
  1  unexpected failure
  2  bad input: a malformed digest or time, a --data-dir that is missing, a file or holds no
     log, an unknown option, a backup key missing or not the one the backup was encrypted with
  3  the chain does not verify or does not extend the digest, or the log's files are damaged;
     or the data dir needs a writer's open first (LOG_RECOVERY_NEEDED: its writer crashed and
     left events to apply; kyrodb serve, then stop it)
  4  collection, document or backup not found (history: it has no event)
  8  not enough disk space (replay --out)
  130, 143  interrupted by SIGINT, SIGTERM (CLI_INTERRUPTED): a partial --out file or a scratch
     copy of a backup is removed`;

// Backup errors that mean the backup's bytes or chain do not verify (exit 3), vs bad input (exit 2).
const BACKUP_TAMPERED = new Set(['BACKUP_CHECKSUM_MISMATCH', 'BACKUP_DECRYPT_FAILED', 'BACKUP_CORRUPT', 'BACKUP_CHAIN_GAP', 'BACKUP_CHAIN_BROKEN', 'BACKUP_VERIFY_FAILED', 'BACKUP_FILE_MISSING']);
const BACKUP_BAD_INPUT = new Set(['BACKUP_KEY_REQUIRED', 'BACKUP_KEY_INVALID', 'BACKUP_INVALID_URL', 'BACKUP_INVALID_ARGUMENT']);
const BACKUP_NOT_FOUND = new Set(['BACKUP_NOT_FOUND', 'BACKUP_MANIFEST_MISSING']);

/**
 * A backup that does not decrypt with the key given: a key not among those given (bad input, as a
 * missing key is) names the key id it needs; one that fails its GCM tag was altered (tampered).
 */
function wrongKey(err: unknown): boolean {
  return isBackupError(err, 'BACKUP_DECRYPT_FAILED') && err.details['keyId'] !== undefined;
}

/**
 * Reports a failure and sets the exit code: `kyrodb: CODE: message` on stderr, and with `--json`
 * also `{"error": {"code", "message"}}` on stdout, as the other kyrodb commands do.
 */
function fail(err: unknown, json: boolean | undefined): void {
  const message = err instanceof Error ? err.message : String(err);
  const configInvalid = err instanceof ApiError && err.code === 'API_CONFIG_INVALID'; // --config (audit verify --backup-id)
  // The search's own checks (filter, dimension, vector, collection) say it in audit's codes.
  const code = isProjectionError(err) ? (err.code === 'PROJ_UNKNOWN_COLLECTION' ? 'AUDIT_UNKNOWN_COLLECTION' : 'AUDIT_BAD_REQUEST') : isAuditError(err) || isLogError(err) || isBackupError(err) || configInvalid ? (err as { code: string }).code : 'ERROR';
  if (json === true) process.stdout.write(JSON.stringify({ error: { code, message } }) + '\n');
  process.stderr.write(`kyrodb: ${code}: ${message}\n`);
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  if (wrongKey(err)) process.exitCode = AUDIT_EXIT.BAD_INPUT;
  else if (isBackupError(err)) process.exitCode = BACKUP_TAMPERED.has(code) ? AUDIT_EXIT.CHAIN_BROKEN : BACKUP_BAD_INPUT.has(code) ? AUDIT_EXIT.BAD_INPUT : BACKUP_NOT_FOUND.has(code) ? AUDIT_EXIT.NOT_FOUND : code === 'BACKUP_NO_SPACE' ? AUDIT_EXIT.NO_SPACE : 1;
  else if (code === 'AUDIT_NO_SPACE') process.exitCode = AUDIT_EXIT.NO_SPACE;
  else if (code === 'AUDIT_UNKNOWN_COLLECTION' || code === 'AUDIT_DOC_NOT_FOUND') process.exitCode = AUDIT_EXIT.NOT_FOUND;
  else if (isProjectionError(err)) process.exitCode = AUDIT_EXIT.BAD_INPUT;
  else if (isLogError(err, 'LOG_STORE_CORRUPT') || isLogError(err, 'LOG_CHAIN_BROKEN') || isLogError(err, 'LOG_CORRUPT_RECORD')) process.exitCode = AUDIT_EXIT.CHAIN_BROKEN;
  else if (isLogError(err, 'LOG_RECOVERY_NEEDED')) process.exitCode = AUDIT_EXIT.RECOVERY_NEEDED;
  else if (errno === 'ENOSPC' || errno === 'EDQUOT') process.exitCode = AUDIT_EXIT.NO_SPACE;
  else process.exitCode = isAuditError(err) || configInvalid || isLogError(err, 'LOG_CLOSED') || isLogError(err, 'LOG_FORMAT_VERSION') ? AUDIT_EXIT.BAD_INPUT : 1;
}

/**
 * Where `replay --out` writes. A regular file (new, or replaced, keeping its permissions) is
 * written beside itself under a temp name and renamed over it once complete, so a failed export
 * never leaves half a file; a symlink's target is written that way (the link stays, dangling or
 * not); a FIFO or device is written in place, as it is; `/dev/stdout` (`/dev/fd/N`,
 * `/proc/self/fd/N`) is this process's own stream, written where it is (a file it was redirected
 * to is appended to, never replaced). A directory, a loop of symlinks and a file in the data dir
 * (the audit commands only read it) are refused before anything is read.
 */
function outputTarget(out: string, dataDir: string | undefined): { path: string; direct: boolean; fd?: number; mode?: number } {
  const fd = ownStream(out);
  if (fd !== undefined) return { path: out, direct: true, fd };
  let st: fs.Stats | undefined;
  let target: string;
  try {
    st = fs.statSync(out, { throwIfNoEntry: false });
    target = st !== undefined ? fs.realpathSync(out) : linkTarget(out);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new AuditError('AUDIT_BAD_REQUEST', `--out ${out}: a loop of symlinks`);
    throw err;
  }
  if (st?.isDirectory() === true) throw new AuditError('AUDIT_BAD_REQUEST', `--out ${out} is a directory; give a file`);
  if (st !== undefined && !st.isFile()) return { path: out, direct: true };
  if (dataDir !== undefined) {
    const data = realOrSelf(dataDir);
    const parent = realOrSelf(path.dirname(target));
    if (parent === data || parent.startsWith(data + path.sep)) throw new AuditError('AUDIT_BAD_REQUEST', `--out ${out} is inside the data dir ${dataDir}, which the audit commands only read; write the export elsewhere`);
  }
  return { path: target, direct: false, ...(st !== undefined ? { mode: st.mode & 0o7777 } : {}) };
}

/** The fd of this process's own stream a path names (`/dev/stdout`: 1), or undefined. */
function ownStream(out: string): number | undefined {
  if (out === '/dev/stdout') return 1;
  if (out === '/dev/stderr') return 2;
  const m = /^\/(?:dev|proc\/self|proc\/(\d+))\/fd\/(\d+)$/.exec(out);
  if (m === null || (m[1] !== undefined && Number(m[1]) !== process.pid)) return undefined;
  return Number(m[2]);
}

/** Where a path that does not resolve leads: the target of its (dangling) symlinks, else itself. */
function linkTarget(out: string): string {
  let p = path.resolve(out);
  for (let hops = 0; hops < 40; hops++) {
    const l = fs.lstatSync(p, { throwIfNoEntry: false });
    if (l === undefined || !l.isSymbolicLink()) return p;
    p = path.resolve(path.dirname(p), fs.readlinkSync(p));
  }
  throw Object.assign(new Error(`too many symlinks at ${out}`), { code: 'ELOOP' });
}

function realOrSelf(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

/** A collection name (and document id) within the documented rules, else AUDIT_BAD_REQUEST (exit 2). */
function checkNames(collection: string, id?: string): void {
  if (!COLLECTION_NAME_RE.test(collection)) throw new AuditError('AUDIT_BAD_REQUEST', `--collection ${JSON.stringify(collection)}: a collection name is 1-64 of A-Z a-z 0-9 _ - starting with a letter or digit`);
  if (id !== undefined && !DOC_ID_RE.test(id)) throw new AuditError('AUDIT_BAD_REQUEST', `--doc-id ${JSON.stringify(id)}: a document id is 1-256 printable ASCII characters without whitespace, /, ?, # or %`);
}

/**
 * Runs `fn` on the log of `dataDir` opened read-only. A dir that is missing, a file or holds no
 * log is bad input naming `setting` (the flag that gave it), as the other kyrodb commands say it.
 */
async function withLog<T>(dataDir: string, fn: (log: EventLog) => Promise<T> | T, setting = '--data-dir'): Promise<T> {
  dataDir = checkDataDir(path.resolve(dataDir), setting, true); // named in full, as the other commands name it
  // Read-only: no writer lock, so this works offline and beside a running server.
  let log: EventLog;
  try {
    log = await EventLog.open({ dir: dataDir, readOnly: true, logger: () => {} });
  } catch (err) {
    throw noLogError(err, dataDir, setting);
  }
  try {
    return await fn(log);
  } finally {
    await log.close();
  }
}

/**
 * The head digest. Plain, stdout is the digest line alone, so that `$(kyrodb audit head …)` is a
 * digest `audit verify --digest` takes; its seq and ts, for the reader, go to stderr.
 */
function printHead(h: LogHead, json: boolean): void {
  if (json) process.stdout.write(JSON.stringify({ ...headToJson(h), digest: formatDigest(h) }) + '\n');
  else {
    process.stdout.write(`${formatDigest(h)}\n`);
    process.stderr.write(`seq  ${h.seq}\nts   ${h.seq === 0 ? '-' : formatMicros(h.ts)} (${h.ts})\n`);
  }
}

/**
 * Adds `audit verify|head|replay|history` to a commander program. Every command opens the log
 * read-only (works offline and beside a running server). Exit codes: `AUDIT_EXIT` (0 ok,
 * 2 bad input, 3 chain broken / digest not extended, 1 anything else).
 *
 * `audit verify --backup-id ID --store URL` restores the backup into a scratch dir with
 * @kyrodb/backup's `restore` (which checks every checksum and the chain) and verifies there;
 * a backup whose files or chain do not verify exits 3 too.
 */
export function registerAuditCommands(program: Command): Command {
  const audit = program.command('audit').description('audit the log: verify the hash chain against digests, read history, export the state as of an instant');
  // Usage errors (unknown option, missing argument) are bad input: exit 2. Commander has printed
  // the message on stderr; with --json it is also CLI_USAGE on stdout, as in the other commands.
  audit.exitOverride((err) => {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') process.exit(0);
    if (process.argv.includes('--json')) process.stdout.write(JSON.stringify({ error: { code: 'CLI_USAGE', message: err.message.replace(/^error: /, '') } }) + '\n');
    process.exit(AUDIT_EXIT.BAD_INPUT);
  });

  audit
    .command('verify')
    .description('verify the whole hash chain, that the write-ahead segments hold the same records, and with --digest that the log extends an earlier digest; exit 0 ok, 3 naming the first bad seq (or a damaged LMDB), 2 bad input')
    .option('--data-dir <dir>', 'data dir of the log (opened read-only)')
    .option('--backup-id <id>', 'verify a backup instead (an id, a tag, or "latest": the one reaching the highest seq): restore it into a scratch dir (needs --store), then verify there')
    .option('--store <url>', 'object store of the backup: file:///abs/path or s3://bucket/prefix (an S3 endpoint, region and path style from backup.s3 of --config or KYRODB_BACKUP_S3_*)')
    .option('--config <file>', 'config file (YAML) whose backup.s3 and backup.encryption settings reach the store and decrypt the backup')
    .option('--key-file <file>', "encryption key of the backup, read beside the config's keys (backup.encryption: key_file, previous_key_files; else $KYRODB_BACKUP_KEY)")
    .option('--digest <SEQ:HASH>', 'an earlier digest (from `audit head` or GET /v1/audit/head)')
    .option('--json', 'print the result as JSON')
    .action(async (o: { dataDir?: string; backupId?: string; store?: string; config?: string; keyFile?: string; digest?: string; json?: boolean }) => {
      let scratch: { dir: string; release: () => void } | undefined;
      try {
        const digest = o.digest === undefined ? undefined : parseDigest(o.digest);
        if ((o.dataDir === undefined) === (o.backupId === undefined)) throw new AuditError('AUDIT_BAD_REQUEST', 'give either --data-dir DIR or --backup-id ID --store URL');
        if (o.backupId !== undefined && o.store === undefined) throw new AuditError('AUDIT_BAD_REQUEST', '--backup-id needs --store URL');
        let dataDir = o.dataDir!;
        let backupId: string | undefined;
        if (o.backupId !== undefined) {
          // The backup is restored exactly as `kyrodb restore` would (every checksum and the chain
          // checked), into a scratch dir nobody else uses; then its log is verified like any other.
          scratch = makeScratchDir(os.tmpdir(), 'kyrodb-audit-backup-');
          dataDir = path.join(scratch.dir, 'data');
          // The store and the key as the other commands reach them: an S3 store needs its endpoint
          // (s3rver, MinIO), and until this read the config it could only reach AWS itself.
          const cfg = loadConfig({ file: o.config });
          const encryption = decryptionKeyOf(cfg, o.keyFile !== undefined ? loadKey({ file: o.keyFile }) : undefined);
          const restored = await restore({ store: openConfiguredStore(cfg, o.store), dataDir, backupId: o.backupId, ...(encryption !== undefined ? { encryption } : {}) });
          // The backup verified by its id (a tag or `latest` resolved), as `backup verify` names it.
          backupId = restored.backupId ?? o.backupId;
        }
        await withLog(dataDir, async (log) => {
          const tty = process.stderr.isTTY && o.json !== true;
          const bar = tty ? new cliProgress.SingleBar({ format: 'verify [{bar}] {value}/{total} events', stream: process.stderr }, cliProgress.Presets.shades_classic) : undefined;
          if (bar) bar.start(log.head().seq, 0);
          // In chunks that let a SIGINT or SIGTERM end it (CLI_INTERRUPTED), not after the whole log.
          const r = await verifyDigestAsync(log, digest, bar ? (seq, head) => { bar.setTotal(head); bar.update(seq); } : undefined);
          bar?.stop();
          // A tag given keeps its name beside the id (`latest` names no backup for later).
          const tag = backupId !== undefined && o.backupId !== backupId && o.backupId !== LATEST ? o.backupId : undefined;
          const source = backupId !== undefined ? { backup_id: backupId, ...(tag !== undefined ? { tag } : {}) } : {};
          if (r.ok) {
            if (o.json === true) process.stdout.write(JSON.stringify({ ok: true, extends: r.extends, checked: r.checked, head: headToJson(r.head), digest: formatDigest(r.head), ...source }) + '\n');
            else process.stdout.write(`ok: ${r.checked} events verified${backupId !== undefined ? ` in backup ${backupId}${backupId !== o.backupId ? ` (${o.backupId})` : ''}` : ''}, the write-ahead segments hold the same records${digest ? `; the log extends digest ${formatDigest(digest)}` : ''}\nhead ${formatDigest(r.head)}\n`);
            process.exitCode = AUDIT_EXIT.OK;
          } else {
            if (o.json === true) process.stdout.write(JSON.stringify({ ok: false, seq: r.seq, problem: r.problem, message: r.message, checked: r.checked, ...source }) + '\n');
            else process.stdout.write(`FAILED at seq ${r.seq}: ${r.problem}: ${r.message}\n`);
            process.exitCode = AUDIT_EXIT.CHAIN_BROKEN;
          }
        }, backupId !== undefined ? `the restored copy of backup ${backupId}` : '--data-dir');
      } catch (err) {
        fail(err, o.json);
      } finally {
        scratch?.release();
      }
    });

  audit
    .command('head')
    .description('print the head digest (SEQ:HASH) to keep for a later verify: stdout is the digest line alone (its seq and ts go to stderr), so `audit verify --digest "$(kyrodb audit head --data-dir D)"` works; --json: {seq, ts, ts_iso, hash, digest}')
    .requiredOption('--data-dir <dir>', 'data dir of the log')
    .option('--json', 'print as JSON')
    .action(async (o: { dataDir: string; json?: boolean }) => {
      try {
        await withLog(o.dataDir, (log) => printHead(log.head(), o.json === true));
      } catch (err) {
        fail(err, o.json);
      }
    });

  audit
    .command('replay')
    .description('export the state as of an instant (all events with ts <= T) as kyrodb-state NDJSON, with the head digest at T')
    .requiredOption('--to <T>', 'ISO-8601 with timezone, or integer microseconds; not in the future')
    .requiredOption('--out <file>', 'output file (NDJSON; written whole or not at all), or a FIFO or device such as /dev/stdout')
    .requiredOption('--data-dir <dir>', 'data dir of the log')
    .option('--json', 'print the summary as JSON')
    .action(async (o: { to: string; out: string; dataDir: string; json?: boolean }) => {
      try {
        const target = outputTarget(o.out, o.dataDir);
        await withLog(o.dataDir, async (log) => {
          const t = parseAsOf(o.to, presentMicros(log));
          // Beside the target, named with this pid: one a killed replay left there is removed now.
          const partial = `.${path.basename(target.path)}.partial-`;
          if (!target.direct) sweepDeadScratch(path.dirname(target.path), partial);
          const tmp = target.direct ? target.path : path.join(path.dirname(target.path), `${partial}${process.pid}`);
          const unregister = target.direct ? () => undefined : registerScratch(tmp);
          let fd: number;
          try {
            fd = target.fd ?? fs.openSync(tmp, 'w', target.mode);
            if (target.mode !== undefined) fs.fchmodSync(fd, target.mode); // the file it replaces keeps who may read it
          } catch (err) {
            throw new AuditError('AUDIT_BAD_REQUEST', `cannot write ${o.out}: ${err instanceof Error ? err.message : String(err)}`);
          }
          const out = fs.createWriteStream(tmp, { fd, autoClose: target.fd === undefined });
          let writeError: Error | undefined;
          out.on('error', (err: Error) => {
            writeError = err;
          });
          const bar = process.stdout.isTTY && o.json !== true && target.fd !== 1 ? new cliProgress.SingleBar({ format: '{phase} [{bar}] {value}/{total}' }, cliProgress.Presets.shades_classic) : undefined;
          let phase = '';
          const onProgress = bar
            ? (p: ExportProgress): void => {
                if (p.phase !== phase) {
                  if (phase !== '') bar.stop();
                  phase = p.phase;
                  bar.start(p.total, 0, { phase: p.phase === 'replay' ? 'replay events' : 'write docs   ' });
                }
                bar.update(p.done);
              }
            : undefined;
          try {
            const s = await exportStateAsOf(log, t, out, onProgress !== undefined ? { onProgress } : {});
            out.end();
            await finished(out);
            if (writeError !== undefined) throw writeError;
            if (!target.direct) fs.renameSync(tmp, target.path);
            bar?.stop();
            const summary = { out: o.out, as_of: formatMicros(t), as_of_micros: t, head: headToJson(s.head), digest: formatDigest(s.head), collections: s.collections, documents: s.documents, bytes: s.bytes };
            // Written to a FIFO or device (/dev/stdout), the export owns stdout: the summary goes to stderr.
            const say = target.direct ? process.stderr : process.stdout;
            if (o.json === true) say.write(JSON.stringify(summary) + '\n');
            else say.write(`wrote ${o.out}: state as of ${summary.as_of}, ${s.collections} collections, ${s.documents} documents, ${s.bytes} bytes\nhead at T ${summary.digest}\n`);
          } catch (err) {
            bar?.stop();
            out.destroy();
            // The free space is what the write met, read before the partial file goes.
            const errno = (err as NodeJS.ErrnoException).code;
            const dir = path.dirname(target.path);
            const free = errno === 'ENOSPC' || errno === 'EDQUOT' ? freeBytes(dir) : undefined;
            if (!target.direct) fs.rmSync(tmp, { force: true });
            if (errno === 'ENOSPC' || errno === 'EDQUOT') {
              const why = errno === 'EDQUOT' ? 'the disk quota is exceeded' : 'the disk is full';
              throw new AuditError('AUDIT_NO_SPACE', `writing ${o.out}: ${why} (${free === undefined ? 'free space unknown' : `${formatBytes(free)} free`} in ${dir}); nothing of it was kept`, { path: target.path, freeBytes: free ?? null }, { cause: err });
            }
            throw err;
          } finally {
            unregister();
          }
        });
      } catch (err) {
        fail(err, o.json);
      }
    });

  audit
    .command('history')
    .description("print every event of one document, oldest first (seq, ts, type, actor), with its collection's creates and drops since its first")
    .requiredOption('--collection <name>', 'collection name')
    .requiredOption('--doc-id <id>', 'document id')
    .requiredOption('--data-dir <dir>', 'data dir of the log')
    .option('--json', 'print NDJSON events (full bodies, hashes)')
    .action(async (o: { collection: string; docId: string; dataDir: string; json?: boolean }) => {
      try {
        checkNames(o.collection, o.docId);
        await withLog(o.dataDir, (log) => {
          for (const e of docHistoryOrThrow(log, o.collection, o.docId)) {
            if (o.json === true) process.stdout.write(JSON.stringify(eventToJson(e)) + '\n');
            else process.stdout.write(`${e.seq}\t${formatMicros(e.ts)}\t${e.type}\t${e.actor ?? '-'}\n`);
          }
        });
      } catch (err) {
        fail(err, o.json);
      }
    });

  audit
    .command('search')
    .description('exact nearest-neighbour search of a collection as of an instant (brute force over the state at T, same scoring as the server)')
    .requiredOption('--collection <name>', 'collection name')
    .requiredOption('--vector <json>', 'query vector as a JSON array of numbers')
    .option('--k <n>', 'number of results', '10')
    .option('--filter <json>', 'metadata filter (JSON), as in the search API')
    .option('--as-of <T>', 'ISO-8601 with timezone or integer microseconds; default now')
    .requiredOption('--data-dir <dir>', 'data dir of the log')
    .option('--json', 'print JSON (the default: this command always prints JSON; failures as {"error": {"code", "message"}} too)')
    .action(async (o: { collection: string; vector: string; k: string; filter?: string; asOf?: string; dataDir: string; json?: boolean }) => {
      try {
        let vec: unknown;
        let filter: unknown;
        try {
          vec = JSON.parse(o.vector);
          filter = o.filter === undefined ? undefined : JSON.parse(o.filter);
        } catch {
          throw new AuditError('AUDIT_BAD_REQUEST', '--vector and --filter must be JSON');
        }
        if (!Array.isArray(vec) || vec.length === 0 || !vec.every((x) => typeof x === 'number' && Number.isFinite(x))) throw new AuditError('AUDIT_BAD_REQUEST', '--vector must be a non-empty JSON array of finite numbers');
        checkNames(o.collection);
        const k = Number(o.k);
        if (!Number.isInteger(k) || k < 1 || k > 10_000) throw new AuditError('AUDIT_BAD_REQUEST', '--k must be an integer in 1..10000');
        await withLog(o.dataDir, (log) => {
          const now = presentMicros(log);
          const t = o.asOf === undefined ? now : parseAsOf(o.asOf, now);
          const r = searchAsOf(log, o.collection, { vector: Float32Array.from(vec as number[]), k, ...(filter !== undefined ? { filter: validateFilter(filter) } : {}) }, t);
          if (r === undefined) throw new AuditError('AUDIT_UNKNOWN_COLLECTION', `collection ${o.collection} did not exist at ${formatMicros(t)}`);
          process.stdout.write(JSON.stringify({ as_of: formatMicros(t), as_of_micros: t, head: headToJson(r.head), results: r.results }) + '\n');
        });
      } catch (err) {
        fail(err, true); // this command's output is JSON whatever the flag
      }
    });

  for (const c of [audit, ...audit.commands]) c.addHelpText('after', AUDIT_EXIT_HELP);
  return audit;
}
