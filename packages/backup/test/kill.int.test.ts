import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventLog } from '@kyrodb/log';
import { BackupManager, ContinuousBackup, LocalDirStore, decodeObject, decodeSegment, loadSegments, verifySegments } from '@kyrodb/backup';
import { created, fill, openLog, quietLogger, S3Server, s3Store, tempDir, until } from './helpers.js';

const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'backupChild.ts');

function child(args: string[]): { proc: ChildProcess; lines: string[]; exited: Promise<void> } {
  const proc = spawn(process.execPath, ['--conditions=@kyrodb/source', '--import', 'tsx', fixture, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let buf = '';
  proc.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
  });
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((r) => proc.on('exit', () => r()));
  // Every exit but our SIGKILL is noted, a clean one too (a continuous backup that stops, e.g. on a refusal, exits 0).
  proc.on('exit', (code, sig) => {
    if (sig !== 'SIGKILL') lines.push(`exit ${code} ${sig} ${err}`);
  });
  return { proc, lines, exited };
}

describe('a backup process killed with SIGKILL mid-upload', () => {
  const s3 = new S3Server();
  beforeAll(async () => {
    await s3.start();
  });
  afterAll(async () => {
    await s3.stop();
  });

  it('full backup: the half-uploaded backup is never listed or used; the next run completes', async () => {
    const { log, dir } = await openLog();
    await log.append([created('c', 8)]);
    await fill(log, 3000, { batch: 250 });
    const storeDir = tempDir();
    const c = child(['full', dir, storeDir]);
    await until(() => c.lines.filter((l) => l.startsWith('put ')).length >= 3 || c.lines.some((l) => l.startsWith('exit')), 60_000, 'three puts');
    c.proc.kill('SIGKILL');
    await c.exited;
    expect(c.lines.some((l) => l.startsWith('done'))).toBe(false);
    const store = new LocalDirStore(storeDir);
    const mgr = new BackupManager({ log, dataDir: dir, store, logger: quietLogger() });
    const keys = await store.list('backups/');
    expect(keys.length).toBeGreaterThanOrEqual(3);
    const halfId = keys[0]!.split('/')[1]!;
    expect(await mgr.list()).toEqual([]);
    expect((await mgr.verify(halfId)).code).toBe('BACKUP_MANIFEST_MISSING');
    const again = child(['full', dir, storeDir]);
    await again.exited;
    expect(again.lines.find((l) => l.startsWith('done'))).toBeDefined();
    const listed = await mgr.list();
    expect(listed).toHaveLength(1);
    expect(listed[0]!.to_seq).toBe(log.head().seq);
    expect((await mgr.verify('latest')).ok).toBe(true);

    // Prune removes what the killed backup left once it is older than a day (a younger one may
    // still be uploading), and temp files of puts whose process is gone (a live one's stay).
    const tmpOf = (pid: number): string => path.join(storeDir, 'backups', halfId, `events-x.tmp-${pid}-0a1b2c3d`);
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    fs.writeFileSync(tmpOf(Number(dead.stdout)), 'partial');
    fs.writeFileSync(tmpOf(process.ppid), 'in flight');
    expect((await mgr.prune({ dryRun: true })).deleteIncomplete).toEqual([]);
    const later = Date.now() + 2 * 86_400_000;
    const plan = await mgr.prune({ now: later, dryRun: true });
    expect(plan.deleteIncomplete).toEqual([halfId]);
    expect(plan.sweptTempFiles).toBeGreaterThanOrEqual(1); // what the real run removes (a dry run said 0, then the run removed them)
    expect(fs.existsSync(tmpOf(Number(dead.stdout)))).toBe(true);
    expect(await store.list(`backups/${halfId}/`)).not.toEqual([]);
    // A dir a killed prune left empty goes too.
    fs.mkdirSync(path.join(storeDir, 'backups', '20260101T000000Z-full-abcdef'), { recursive: true });
    const res = await mgr.prune({ now: later });
    expect(res.deleteIncomplete).toEqual([halfId]);
    expect(res.sweptTempFiles).toBe(plan.sweptTempFiles);
    expect(await store.list(`backups/${halfId}/`)).toEqual([]);
    expect(fs.existsSync(path.join(storeDir, 'backups', '20260101T000000Z-full-abcdef'))).toBe(false);
    const tmpLeft = (fs.readdirSync(storeDir, { recursive: true }) as string[]).filter((f) => f.includes('.tmp-'));
    expect(tmpLeft).toEqual([path.join('backups', halfId, `events-x.tmp-${process.ppid}-0a1b2c3d`)]);
    expect((await mgr.list()).map((m) => m.backup_id)).toEqual([listed[0]!.backup_id]);
    expect((await mgr.verify('latest')).ok).toBe(true);
    await log.close();
  });

  it('continuous backup started while S3 is down: its process stays up, retrying, and ships everything once S3 answers', async () => {
    const { log, dir } = await openLog();
    await log.append([created('c', 8)]);
    await fill(log, 120, { batch: 40 });
    await s3.stop();
    const prefix = `down-${Date.now()}`;
    const c = child(['continuous', dir, s3.endpoint, prefix]);
    let gone = false;
    void c.exited.then(() => (gone = true));
    try {
      await until(() => c.lines.includes('started') || gone, 60_000, 'child start');
      expect(c.lines).toContain('started');
    } finally {
      await s3.start(s3.port);
    }
    const store = s3Store(s3.endpoint, prefix);
    // A process that exited (with only a retry timer left, once) never ships: this times out.
    await until(async () => (await verifySegments(store)).contiguousTo === log.head().seq, 60_000, 'shipped once S3 answers');
    expect(gone).toBe(false);
    c.proc.kill('SIGKILL');
    await c.exited;
    store.destroy();
    await log.close();
  }, 150_000);

  it('continuous backup: killed while the writer keeps going, the next run resumes with no gap or duplicate', async () => {
    const { log, dir } = await openLog();
    await log.append([created('c', 8)]);
    const prefix = `kill-${Date.now()}`;
    let c = child(['continuous', dir, s3.endpoint, prefix]);
    await until(() => c.lines.includes('started') || c.lines.some((l) => l.startsWith('exit')), 60_000, 'child start');
    expect(c.lines).toContain('started');
    let stop = false;
    const writer = (async () => {
      let i = 0;
      while (!stop) {
        await fill(log, 40, { seed: i * 40, batch: 40 });
        i += 1;
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    for (let round = 0; round < 3; round++) {
      const seen = c.lines.filter((l) => l.startsWith('put segments/')).length;
      // On a time-out, what the child said besides its puts (its warnings and errors, an exit) is in the message.
      await until(() => c.lines.filter((l) => l.startsWith('put segments/')).length >= seen + 3, 60_000, `segments shipped in round ${round}`).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}; the child said: ${c.lines.filter((l) => !l.startsWith('put ')).join(' | ')}`);
      });
      c.proc.kill('SIGKILL');
      await c.exited;
      c = child(['continuous', dir, s3.endpoint, prefix]);
      await until(() => c.lines.includes('started'), 60_000, 'child restart');
    }
    stop = true;
    await writer;
    const store = s3Store(s3.endpoint, prefix);
    await until(async () => (await verifySegments(store)).contiguousTo === log.head().seq, 60_000, 'catch-up after the last restart').catch(async (e: unknown) => {
      throw new Error(`${(e as Error).message} (head ${log.head().seq}, store to ${(await verifySegments(store)).contiguousTo}); the child said: ${c.lines.filter((l) => !l.startsWith('put ')).join(' | ')}`);
    });
    c.proc.kill('SIGKILL');
    await c.exited;
    const rep = await verifySegments(store);
    expect(rep).toMatchObject({ ok: true, gaps: [], overlaps: [], missing: [] });
    const got: string[] = [];
    for (const s of await loadSegments(store)) for (const e of decodeSegment(decodeObject(await store.get(s.key), undefined, s.key)).entries) got.push(e.record.toString('hex'));
    expect(got).toEqual([...log.readRecords()].map((r) => r.record.toString('hex')));
    // An in-process instance on a read-only handle agrees on where to resume.
    const ro = await EventLog.open({ dir, readOnly: true, logger: () => undefined });
    expect(await new ContinuousBackup({ log: ro, store, logger: quietLogger() }).resumePosition()).toBe(log.head().seq);
    await ro.close();
    store.destroy();
    await log.close();
  }, 240_000);
});
