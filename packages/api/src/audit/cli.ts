import fs from 'node:fs';
import { finished } from 'node:stream/promises';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { EventLog, isLogError, systemClock } from '@kyrodb/log';
import type { LogHead } from '@kyrodb/log';
import { isAuditError } from './errors.js';
import { formatDigest, parseDigest, verifyDigest } from './digest.js';
import { eventToJson, headToJson } from './state.js';
import { exportStateAsOf } from './exportState.js';
import type { ExportProgress } from './exportState.js';
import { formatMicros, parseAsOf } from './time.js';

/** Exit codes of the audit commands. */
export const AUDIT_EXIT = Object.freeze({
  /** The chain verifies (and extends the digest); the command did its work. */
  OK: 0,
  /** Bad input: malformed digest or time, missing data dir, unknown option. */
  BAD_INPUT: 2,
  /** The chain does not verify or does not extend the digest; the message names the first bad seq. */
  CHAIN_BROKEN: 3,
});

function fail(err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  const code = isAuditError(err) || isLogError(err) ? (err as { code: string }).code : 'ERROR';
  process.stderr.write(`error: ${code}: ${message}\n`);
  process.exitCode = isAuditError(err) || isLogError(err, 'LOG_CLOSED') || isLogError(err, 'LOG_FORMAT_VERSION') ? AUDIT_EXIT.BAD_INPUT : 1;
}

async function withLog<T>(dataDir: string, fn: (log: EventLog) => Promise<T> | T): Promise<T> {
  // Read-only: no writer lock, so this works offline and beside a running server.
  const log = await EventLog.open({ dir: dataDir, readOnly: true, logger: () => {} });
  try {
    return await fn(log);
  } finally {
    await log.close();
  }
}

function printHead(h: LogHead, json: boolean): void {
  if (json) process.stdout.write(JSON.stringify({ ...headToJson(h), digest: formatDigest(h) }) + '\n');
  else process.stdout.write(`${formatDigest(h)}\nseq  ${h.seq}\nts   ${h.seq === 0 ? '-' : formatMicros(h.ts)} (${h.ts})\n`);
}

/**
 * Adds `audit verify|head|replay|history` to a commander program. Every command opens the log
 * read-only (works offline and beside a running server). Exit codes: `AUDIT_EXIT` (0 ok,
 * 2 bad input, 3 chain broken / digest not extended, 1 anything else).
 *
 * Not (yet) here: `audit verify --backup-id ID --store URL` — @kyrodb/backup's `restore` was not
 * available when this was written; restore the backup with `kyrodb restore` into a scratch dir
 * and run `audit verify --data-dir` on it.
 */
export function registerAuditCommands(program: Command): Command {
  const audit = program.command('audit').description('audit the log: verify the hash chain against digests, read history, export the state as of an instant');
  // Usage errors (unknown option, missing argument) are bad input: exit 2.
  audit.exitOverride((err) => {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') process.exit(0);
    process.exit(AUDIT_EXIT.BAD_INPUT);
  });

  audit
    .command('verify')
    .description('verify the whole hash chain and, with --digest, that the log extends an earlier digest; exit 0 ok, 3 naming the first bad seq, 2 bad input')
    .requiredOption('--data-dir <dir>', 'data dir of the log')
    .option('--digest <SEQ:HASH>', 'an earlier digest (from `audit head` or GET /v1/audit/head)')
    .option('--json', 'print the result as JSON')
    .action(async (o: { dataDir: string; digest?: string; json?: boolean }) => {
      try {
        const digest = o.digest === undefined ? undefined : parseDigest(o.digest);
        await withLog(o.dataDir, (log) => {
          const tty = process.stderr.isTTY && o.json !== true;
          const bar = tty ? new cliProgress.SingleBar({ format: 'verify [{bar}] {value}/{total} events', stream: process.stderr }, cliProgress.Presets.shades_classic) : undefined;
          if (bar) bar.start(log.head().seq, 0);
          const r = verifyDigest(log, digest, bar ? (seq, head) => { bar.setTotal(head); bar.update(seq); } : undefined);
          bar?.stop();
          if (r.ok) {
            if (o.json === true) process.stdout.write(JSON.stringify({ ok: true, extends: r.extends, checked: r.checked, head: headToJson(r.head), digest: formatDigest(r.head) }) + '\n');
            else process.stdout.write(`ok: ${r.checked} events verified${digest ? `; the log extends digest ${formatDigest(digest)}` : ''}\nhead ${formatDigest(r.head)}\n`);
            process.exitCode = AUDIT_EXIT.OK;
          } else {
            if (o.json === true) process.stdout.write(JSON.stringify({ ok: false, seq: r.seq, problem: r.problem, message: r.message, checked: r.checked }) + '\n');
            else process.stdout.write(`FAILED at seq ${r.seq}: ${r.problem}: ${r.message}\n`);
            process.exitCode = AUDIT_EXIT.CHAIN_BROKEN;
          }
        });
      } catch (err) {
        fail(err);
      }
    });

  audit
    .command('head')
    .description('print the head digest (SEQ:HASH) to keep for a later verify')
    .requiredOption('--data-dir <dir>', 'data dir of the log')
    .option('--json', 'print as JSON')
    .action(async (o: { dataDir: string; json?: boolean }) => {
      try {
        await withLog(o.dataDir, (log) => printHead(log.head(), o.json === true));
      } catch (err) {
        fail(err);
      }
    });

  audit
    .command('replay')
    .description('export the state as of an instant (all events with ts <= T) as kyrodb-state NDJSON, with the head digest at T')
    .requiredOption('--to <T>', 'ISO-8601 with timezone, or integer microseconds; not in the future')
    .requiredOption('--out <file>', 'output file (NDJSON)')
    .requiredOption('--data-dir <dir>', 'data dir of the log')
    .option('--json', 'print the summary as JSON')
    .action(async (o: { to: string; out: string; dataDir: string; json?: boolean }) => {
      try {
        await withLog(o.dataDir, async (log) => {
          const t = parseAsOf(o.to, Math.max(systemClock.nowMicros(), log.head().ts));
          const tmp = `${o.out}.partial`;
          const out = fs.createWriteStream(tmp);
          const bar = process.stdout.isTTY && o.json !== true ? new cliProgress.SingleBar({ format: '{phase} [{bar}] {value}/{total}' }, cliProgress.Presets.shades_classic) : undefined;
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
            const s = await exportStateAsOf(log, t, out, onProgress);
            out.end();
            await finished(out);
            fs.renameSync(tmp, o.out);
            bar?.stop();
            const summary = { out: o.out, as_of: formatMicros(t), as_of_micros: t, head: headToJson(s.head), digest: formatDigest(s.head), collections: s.collections, documents: s.documents, bytes: s.bytes };
            if (o.json === true) process.stdout.write(JSON.stringify(summary) + '\n');
            else process.stdout.write(`wrote ${o.out}: state as of ${summary.as_of}, ${s.collections} collections, ${s.documents} documents, ${s.bytes} bytes\nhead at T ${summary.digest}\n`);
          } catch (err) {
            bar?.stop();
            out.destroy();
            fs.rmSync(tmp, { force: true });
            throw err;
          }
        });
      } catch (err) {
        fail(err);
      }
    });

  audit
    .command('history')
    .description("print every event of one document, oldest first (seq, ts, type, actor)")
    .requiredOption('--collection <name>', 'collection name')
    .requiredOption('--doc-id <id>', 'document id')
    .requiredOption('--data-dir <dir>', 'data dir of the log')
    .option('--json', 'print NDJSON events (full bodies, hashes)')
    .action(async (o: { collection: string; docId: string; dataDir: string; json?: boolean }) => {
      try {
        await withLog(o.dataDir, (log) => {
          const events = log.history(o.collection, o.docId);
          for (const e of events) {
            if (o.json === true) process.stdout.write(JSON.stringify(eventToJson(e)) + '\n');
            else process.stdout.write(`${e.seq}\t${formatMicros(e.ts)}\t${e.type}\t${e.actor ?? '-'}\n`);
          }
          if (events.length === 0 && o.json !== true) process.stderr.write(`no events for ${o.collection}/${o.docId}\n`);
        });
      } catch (err) {
        fail(err);
      }
    });

  return audit;
}
