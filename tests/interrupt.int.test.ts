import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventLog } from '@kyrodb/log';
import { CLI, kyrodb, tmp } from './serverProcess.js';

const EVENTS = 600_000;

/** Runs the CLI; once `ready()` holds (polled every 10 ms), sends `signal`; resolves with the exit code and output. */
function interrupt(args: string[], ready: (pid: number) => boolean, signal: NodeJS.Signals, env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string; signalled: boolean }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let signalled = false;
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const poll = setInterval(() => {
      if (signalled || !ready(proc.pid!)) return;
      signalled = true;
      proc.kill(signal);
    }, 10);
    proc.on('exit', (code) => {
      clearInterval(poll);
      resolve({ code, stdout, stderr, signalled });
    });
  });
}

/** Entries of `dir` (none when it is missing). */
function ls(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

/** The pid of a process that has exited (what a `kill -9`ed command leaves its name with). */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '0']).pid;
}

/**
 * SIGINT or SIGTERM to a CLI command (not serve): before, it exited silently (the shell's 130)
 * and left what it was making for good: `audit replay` its `.FILE.partial-<pid>`, `backup verify
 * --deep` its `kyrodb-verify-*` copy, `audit verify --backup-id` its `kyrodb-audit-backup-*`
 * copy, `backup create` its objects. Now each is removed, the command says CLI_INTERRUPTED and
 * exits 130 / 143; and what a killed one left is removed by the next run of its kind.
 */
describe('interrupted commands', { timeout: 240_000 }, () => {
  const root = tmp('kyro-interrupt-');
  const data = path.join(root, 'data');
  const store = path.join(root, 'store');
  beforeAll(async () => {
    const log = await EventLog.open({ dir: data, logger: () => undefined });
    await log.append([{ type: 'collection.created', collection: 'c', body: { dimension: 8, metric: 'l2', hnsw: { M: 16, efConstruction: 100, efSearch: 50 } } }]);
    for (let i = 0; i < EVENTS; i += 2000) {
      await log.append(Array.from({ length: 2000 }, (_, j) => ({ type: 'vector.upserted' as const, collection: 'c', body: { id: `d${i + j}`, vector: Float32Array.from({ length: 8 }, (_, k) => Math.sin(i + j + k)) } })));
    }
    await log.close();
  }, 120_000);
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('audit replay: the partial --out file is removed, exit 130; a dead run\'s partial file is swept by the next run', async () => {
    const dir = path.join(root, 'replay');
    fs.mkdirSync(dir);
    const out = path.join(dir, 'state.ndjson');
    const leftover = path.join(dir, `.state.ndjson.partial-${deadPid()}`);
    fs.writeFileSync(leftover, 'what a killed replay left');
    const to = new Date(Date.now() - 1000).toISOString();
    const r = await interrupt(['audit', 'replay', '--to', to, '--out', out, '--data-dir', data, '--json'], (pid) => fs.existsSync(path.join(dir, `.state.ndjson.partial-${pid}`)), 'SIGINT');
    expect(r.signalled).toBe(true);
    expect([r.code, JSON.parse(r.stdout.trim().split('\n').at(-1)!).error.code]).toEqual([130, 'CLI_INTERRUPTED']);
    expect(r.stderr).toMatch(/removed 1 scratch or partial file/);
    expect(ls(dir)).toEqual([]); // the leftover swept when it began, its own partial file removed, no state.ndjson
    // Uninterrupted, it writes the file (and nothing else).
    const done = await kyrodb(['audit', 'replay', '--to', to, '--out', out, '--data-dir', data]);
    expect(done.code, done.stderr).toBe(0);
    expect(ls(dir)).toEqual(['state.ndjson']);
  });

  it('backup create: SIGTERM stops it at its next file and removes its objects, exit 143; a later backup and prune see nothing of it', async () => {
    const r = await interrupt(['backup', 'create', '--full', '--data-dir', data, '--output', store], () => ls(path.join(store, 'backups')).length > 0, 'SIGTERM');
    expect(r.signalled).toBe(true);
    expect(r.code, r.stderr).toBe(143);
    expect(r.stderr).toMatch(/CLI_INTERRUPTED: interrupted by SIGTERM: the backup was stopped before it completed \(interrupted\); what it stored is removed/);
    expect(ls(path.join(store, 'backups'))).toEqual([]);
    const list = await kyrodb(['backup', 'list', '--output', store, '--json']);
    expect(JSON.parse(list.stdout)).toEqual([]);
    const made = await kyrodb(['backup', 'create', '--full', '--data-dir', data, '--output', store, '--json']);
    expect(made.code, made.stderr).toBe(0);
  });

  it('restore: the staging dir is removed, exit 130; the data dir it would replace is untouched', async () => {
    const target = path.join(root, 'restored');
    const r = await interrupt(['restore', '--backup-id', 'latest', '--from', store, '--data-dir', target], (pid) => ls(root).some((n) => n.startsWith('restored.restore-staging-') && n.endsWith(`-${pid}`)), 'SIGINT');
    expect(r.signalled).toBe(true);
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toContain('CLI_INTERRUPTED');
    expect(ls(root).filter((n) => n.startsWith('restored'))).toEqual([]);
  });

  it('backup verify --deep: its scratch copy is removed, exit 130; a dead run\'s copy is swept by the next run', async () => {
    const scratch = path.join(root, 'scratch');
    fs.mkdirSync(path.join(scratch, `kyrodb-verify-${deadPid()}-abcdef`, 'data'), { recursive: true });
    const mine = (pid: number): boolean => ls(scratch).some((n) => n.startsWith(`kyrodb-verify-${pid}-`));
    const r = await interrupt(['backup', 'verify', '--backup-id', 'latest', '--deep', '--scratch-dir', scratch, '--output', store], mine, 'SIGINT');
    expect(r.signalled).toBe(true);
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toContain('CLI_INTERRUPTED');
    expect(ls(scratch)).toEqual([]);
  });

  it('audit verify: a signal while it walks the chain ends it (exit 130, one JSON document: the error), not after the whole log', async () => {
    const holdsLog = (pid: number): boolean => {
      try {
        return fs.readdirSync(`/proc/${pid}/fd`).some((fd) => {
          try {
            return fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === path.join(data, 'log.mdb');
          } catch {
            return false;
          }
        });
      } catch {
        return false;
      }
    };
    const r = await interrupt(['audit', 'verify', '--data-dir', data, '--json'], holdsLog, 'SIGINT');
    expect(r.signalled).toBe(true);
    expect(r.code, r.stderr).toBe(130);
    expect(r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { error?: { code: string } }).error?.code)).toEqual(['CLI_INTERRUPTED']);
  });

  it('audit verify --backup-id: its scratch restore is removed, exit 130', async () => {
    const tmpdir = path.join(root, 'tmpdir');
    fs.mkdirSync(tmpdir);
    const r = await interrupt(['audit', 'verify', '--backup-id', 'latest', '--store', `file://${store}`], (pid) => ls(tmpdir).some((n) => n.startsWith(`kyrodb-audit-backup-${pid}-`)), 'SIGINT', { TMPDIR: tmpdir });
    expect(r.signalled).toBe(true);
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toContain('CLI_INTERRUPTED');
    expect(ls(tmpdir)).toEqual([]);
  });
});
