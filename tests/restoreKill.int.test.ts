// A `kyrodb restore` killed with SIGKILL part way, for real. The failpoints only hold the restore
// at the spot (`wal.import`: before its first frames are written; `restore.swap`: between the
// two renames of the swap, where the data dir has been moved aside; `restore.cleanup`: the new
// data dir in place, before the replaced one is deleted); the kill is a real one.
// After it, the data dir must be as it was, and what the dead restore left must be cleaned up by
// the next restore or server start, by themselves.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventLog, toHex, type EventInput } from '@kyrodb/log';
import { BackupManager, LocalDirStore } from '@kyrodb/backup';
import { CLI, call, kyrodb, startServer, tmp, vectorFor } from './serverProcess.js';
import type { ServerProc } from './serverProcess.js';

/** A data dir of `n` upserts of 16-d vectors (seeds from `seed`); its head. */
async function makeLog(dir: string, n: number, seed: number): Promise<{ seq: number; hash: string }> {
  const log = await EventLog.open({ dir, logger: () => undefined });
  try {
    await log.append([{ type: 'collection.created', collection: 'c', body: { dimension: 16, metric: 'l2', hnsw: { M: 16, efConstruction: 100, efSearch: 50 } } }]);
    for (let i = 0; i < n; i += 500) {
      const batch: EventInput[] = [];
      for (let j = i; j < Math.min(n, i + 500); j++) batch.push({ type: 'vector.upserted', collection: 'c', body: { id: `v${j}`, vector: Float32Array.from(vectorFor(seed + j, 16)) } });
      await log.append(batch);
    }
    const h = log.head();
    return { seq: h.seq, hash: toHex(h.hash) };
  } finally {
    await log.close();
  }
}

/** SHA-256 over every file path and content under `dir`. */
function hashDir(dir: string): string {
  const h = createHash('sha256');
  for (const f of (fs.readdirSync(dir, { recursive: true }) as string[]).sort()) {
    const p = path.join(dir, f);
    if (!fs.statSync(p).isFile()) continue;
    h.update(f + '\0');
    h.update(fs.readFileSync(p));
  }
  return h.digest('hex');
}

/** Starts `kyrodb restore …` with `failpoints` armed, waits until `ready()` holds, then SIGKILLs it. */
async function killRestoreWhen(args: string[], failpoints: string, ready: () => boolean): Promise<void> {
  const proc = spawn(process.execPath, [CLI, 'restore', ...args], { env: { ...process.env, KYRODB_FAILPOINTS: failpoints }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const end = Date.now() + 60_000;
  while (!ready()) {
    if (proc.exitCode !== null) throw new Error(`the restore ended (${proc.exitCode}) before the kill:\n${err}`);
    if (Date.now() > end) throw new Error(`the restore never reached the point to kill it at:\n${err}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  proc.kill('SIGKILL');
  await exited;
  expect(proc.signalCode).toBe('SIGKILL');
}

describe('a restore killed with SIGKILL part way', { timeout: 180_000 }, () => {
  const root = tmp();
  const backups = path.join(root, 'backups');
  let backupHead: { seq: number; hash: string };
  const servers: ServerProc[] = [];
  afterAll(async () => {
    for (const s of servers) await s.stop('SIGKILL');
  });
  const leftovers = (dataDir: string): string[] => fs.readdirSync(path.dirname(dataDir)).filter((n) => n.startsWith(path.basename(dataDir) + '.'));

  // The backup every case restores: 4000 events of its own.
  beforeAll(async () => {
    const src = path.join(root, 'source');
    backupHead = await makeLog(src, 4000, 1);
    const log = await EventLog.open({ dir: src, readOnly: true, logger: () => undefined });
    try {
      await new BackupManager({ log, dataDir: src, store: new LocalDirStore(backups), logger: () => undefined }).createFull();
    } finally {
      await log.close();
    }
  });

  it('while importing: the data dir is untouched; the next restore removes the dead staging dir and completes', async () => {
    const target = path.join(root, 'a', 'data');
    const own = await makeLog(target, 300, 50_000);
    const before = hashDir(target);
    const staging = (): string[] => leftovers(target).filter((n) => n.includes('.restore-staging-'));
    await killRestoreWhen(['--backup-id', 'latest', '--from', backups, '--data-dir', target, '--force'], 'wal.import=delay(60000)', () => staging().some((n) => fs.existsSync(path.join(path.dirname(target), n, 'log.mdb'))));
    expect(hashDir(target)).toBe(before);
    expect(staging()).toHaveLength(1); // what the dead restore wrote
    expect(own.seq).toBe(301);
    const again = await kyrodb(['restore', '--backup-id', 'latest', '--from', backups, '--data-dir', target, '--force', '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/removed 1 staging dir\(s\) of restores into .* that were stopped part way/);
    expect(JSON.parse(again.stdout)).toMatchObject({ seq: backupHead.seq, headHash: backupHead.hash });
    expect(leftovers(target)).toEqual([]);
  });

  it('between the two renames of the swap (no data dir at that moment): the server started next puts the data dir back', async () => {
    const target = path.join(root, 'b', 'data');
    const own = await makeLog(target, 300, 90_000);
    await killRestoreWhen(['--backup-id', 'latest', '--from', backups, '--data-dir', target, '--force'], 'restore.swap=delay(60000)', () => !fs.existsSync(target));
    // The kill left the data dir moved aside, the verified staging dir, and the swap's marker.
    expect(fs.existsSync(target)).toBe(false);
    expect(leftovers(target).map((n) => n.replace(/-[\dTZ]+(-\d+)?$/, ''))).toEqual(expect.arrayContaining(['data.pre-restore', 'data.restore-staging', 'data.restore-swap.json']));
    // Readers meanwhile say why there is no data dir and what puts it back (they said only "no data dir"), and change nothing.
    const aside = leftovers(target).sort();
    for (const args of [['audit', 'head', '--data-dir', target], ['query', '--data-dir', target, '--collection', 'c', '--doc-id', 'v1'], ['backup', 'create', '--full', '--data-dir', target, '--output', path.join(root, 'b', 'backups')]]) {
      const r = await kyrodb(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(/a restore into it was stopped while swapping data dirs \(.*data\.restore-swap\.json records it\), and the data dir is at .*data\.pre-restore-\S+: `kyrodb restore` or `kyrodb serve` with this data dir moves it back/);
    }
    expect(leftovers(target).sort()).toEqual(aside);
    const s = await startServer(['--data-dir', target], { KYRODB_BACKUP_ENABLED: 'false', KYRODB_BACKUP_LOCAL_DIR: path.join(root, 'b', 'backups') });
    servers.push(s);
    const head = await call(s.url, 'GET', '/v1/audit/head');
    expect([head.json.seq, head.json.hash]).toEqual([own.seq, own.hash]);
    expect((await call(s.url, 'GET', '/v1/collections/c/vectors/v299')).status).toBe(200);
    expect(s.stderr()).toMatch(/stopped in the middle of swapping data dirs: the data dir it had moved aside is back/);
    expect(await s.stop()).toBe(0);
    expect(leftovers(target)).toEqual([]);
    const log = await EventLog.open({ dir: target, readOnly: true, logger: () => undefined });
    try {
      expect(toHex(log.head().hash)).toBe(own.hash);
    } finally {
      await log.close();
    }
  });

  it('a server started while a restore swaps dirs is refused (it had opened an empty log where the data dir was moved aside); the restore completes', async () => {
    const target = path.join(root, 'd', 'data');
    await makeLog(target, 300, 150_000);
    const proc = spawn(process.execPath, [CLI, 'restore', '--backup-id', 'latest', '--from', backups, '--data-dir', target, '--force', '--json'], { env: { ...process.env, KYRODB_FAILPOINTS: 'restore.swap=delay(4000)' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
    const end = Date.now() + 60_000;
    while (fs.existsSync(target)) {
      if (proc.exitCode !== null || Date.now() > end) throw new Error(`the restore never reached its swap (exit ${String(proc.exitCode)})`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const serve = await kyrodb(['serve', '--data-dir', target, '--port', '0'], { KYRODB_BACKUP_ENABLED: 'false', KYRODB_BACKUP_LOCAL_DIR: path.join(root, 'd', 'backups') });
    expect(serve.code, serve.stderr).toBe(3);
    expect(serve.stderr).toMatch(/LOG_LOCKED: data dir .*data is being swapped in by a restore \(process \d+\); start the server once the restore has finished/);
    expect(fs.existsSync(target)).toBe(false); // no empty log made in its place
    expect(await exited).toBe(0);
    expect(JSON.parse(out)).toMatchObject({ seq: backupHead.seq, headHash: backupHead.hash });
    expect(leftovers(target)).toEqual([]);
  });

  it('while deleting the data dir it replaced: the new one is in place, and the server started next removes the rest of the old one', async () => {
    const target = path.join(root, 'c', 'data');
    await makeLog(target, 300, 120_000);
    const marker = `${target}.restore-swap.json`;
    await killRestoreWhen(['--backup-id', 'latest', '--from', backups, '--data-dir', target, '--force'], 'restore.cleanup=delay(60000)', () => fs.existsSync(marker) && fs.readFileSync(marker, 'utf8').includes('"verified":true'));
    expect(leftovers(target).map((n) => n.replace(/-[\dTZ]+$/, ''))).toEqual(expect.arrayContaining(['data.pre-restore', 'data.restore-swap.json']));
    const s = await startServer(['--data-dir', target], { KYRODB_BACKUP_ENABLED: 'false', KYRODB_BACKUP_LOCAL_DIR: path.join(root, 'c', 'backups') });
    servers.push(s);
    const head = await call(s.url, 'GET', '/v1/audit/head');
    expect([head.json.seq, head.json.hash]).toEqual([backupHead.seq, backupHead.hash]);
    expect(s.stderr()).toMatch(/stopped while deleting the data dir it replaced: the rest of it is removed/);
    expect(await s.stop()).toBe(0);
    expect(leftovers(target)).toEqual([]); // the old copy used to stay, full size, for good
  });
});
