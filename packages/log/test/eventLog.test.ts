import { afterAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { open as openLmdb } from 'lmdb';
import { firstValueFrom, take, toArray } from 'rxjs';
import { EventLog, lockHolder, processAlive, writerRunning } from '@kyrodb/log';
import { created, openTestLog, quietLogger, upsert, waitFor } from './helpers.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function filled(n: number) {
  const t = await openTestLog();
  dirs.push(t.dir);
  await t.log.append([created('c', 2)]);
  for (let i = 1; i < n; i++) await t.log.append([upsert(`d${i}`, [i, -i])]);
  return t;
}

describe('EventLog', () => {
  it('one writer per data dir: a second open for writing is LOG_LOCKED; after close it opens', async () => {
    const { log, dir } = await filled(2);
    await expect(EventLog.open({ dir, logger: quietLogger() })).rejects.toMatchObject({ code: 'LOG_LOCKED' });
    await log.close();
    const again = await EventLog.open({ dir, logger: quietLogger() });
    expect(again.head().seq).toBe(2);
    await again.close();
  });

  it('a lock file deleted under a live writer does not let a second writer in', async () => {
    const { log, dir } = await filled(2);
    fs.rmSync(path.join(dir, 'kyrodb.lock'));
    await expect(EventLog.open({ dir, logger: quietLogger() })).rejects.toMatchObject({ code: 'LOG_LOCKED' });
    expect([lockHolder(dir), writerRunning(dir)]).toEqual([undefined, true]);
    await log.close();
    expect(writerRunning(dir)).toBe(false);
    const again = await EventLog.open({ dir, logger: quietLogger() });
    await again.close();
  });

  it('two processes opening a dir with a dead writer\'s lock at the same instant: exactly one becomes the writer, every time', async () => {
    const { log, dir } = await filled(2);
    await log.close();
    const child = path.join(import.meta.dirname, 'fixtures', 'openWriter.ts');
    const run = (at: number): Promise<string> =>
      new Promise((resolve, reject) => execFile(process.execPath, ['--conditions=@kyrodb/source', '--import', 'tsx', child, dir, String(at)], (err, stdout) => (err ? reject(new Error(err.message)) : resolve(stdout.trim()))));
    for (let round = 0; round < 10; round++) {
      fs.writeFileSync(path.join(dir, 'kyrodb.lock'), '999999999 - -'); // a crashed writer's
      const at = Date.now() + 2500;
      const got = (await Promise.all([run(at), run(at)])).sort();
      expect(got, `round ${round}`).toEqual(['LOG_LOCKED', 'OPEN']);
    }
  }, 60_000);

  it('a lock names its owner by pid, start time and boot: a live process that reused the pid (a container\'s pid 1) does not hold it', async () => {
    const { log, dir } = await filled(2);
    const lockFile = path.join(dir, 'kyrodb.lock');
    const [pid, start, boot] = fs.readFileSync(lockFile, 'utf8').trim().split(' ');
    expect(Number(pid)).toBe(process.pid);
    expect(lockHolder(dir)).toBe(process.pid);
    await log.close();
    expect(fs.existsSync(lockFile)).toBe(false);
    // A crashed writer's lock whose pid is alive now (this process) but started at another time, or before a reboot.
    for (const stale of [`${process.pid} ${Number(start) + 1} ${boot}`, `${process.pid} ${start} another-boot`]) {
      fs.writeFileSync(lockFile, stale);
      expect(lockHolder(dir), stale).toBeUndefined();
      const again = await EventLog.open({ dir, logger: quietLogger() }); // taken over
      expect(lockHolder(dir)).toBe(process.pid);
      await again.close();
    }
    // A lock of an older version (the pid alone) still counts while its pid lives.
    fs.writeFileSync(lockFile, String(process.ppid));
    expect(lockHolder(dir)).toBe(process.ppid);
    fs.rmSync(lockFile);
  });

  it.runIf(process.platform === 'linux')('a zombie holds no lock: a writer killed but not yet reaped (its parent reaps slowly) does not keep the next one out; a live holder still does', async () => {
    // A real zombie: the inner sleep exits after 0.2 s, and its parent (bash exec'd into `sleep 30`) never reaps it.
    const parent = spawn('bash', ['-c', 'sleep 0.2 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const zombie = Number(await new Promise<string>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()))));
      const stat = (pid: number): string[] => {
        const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        return s.slice(s.lastIndexOf(')') + 2).split(' '); // [state, ppid, …, starttime at 19]
      };
      await waitFor(() => stat(zombie)[0] === 'Z', 5000);
      const boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
      const lockOf = (pid: number): string => `${pid} ${stat(pid)[19]} ${boot}`; // as its owner would have written it
      const { log, dir } = await filled(2);
      await log.close();
      const lockFile = path.join(dir, 'kyrodb.lock');

      fs.writeFileSync(lockFile, lockOf(zombie)); // a writer killed with -9, not yet reaped
      expect([processAlive(zombie), lockHolder(dir), writerRunning(dir)]).toEqual([false, undefined, false]);
      const again = await EventLog.open({ dir, logger: quietLogger() });
      expect([again.head().seq, lockHolder(dir)]).toEqual([2, process.pid]);
      await again.close();

      fs.writeFileSync(lockFile, lockOf(parent.pid!)); // a live holder (in another network namespace, say)
      expect([processAlive(parent.pid!), lockHolder(dir)]).toEqual([true, parent.pid]);
      await expect(EventLog.open({ dir, logger: quietLogger() })).rejects.toMatchObject({ code: 'LOG_LOCKED', message: expect.stringContaining(`process ${parent.pid}`) });
      fs.rmSync(lockFile);
    } finally {
      parent.kill('SIGKILL');
    }
  });

  it('closed → LOG_CLOSED; read-only → LOG_READ_ONLY; a missing dir read-only is an error', async () => {
    const { log, dir } = await filled(2);
    // another process sees an acknowledged append once the writer applied it, a few ms later
    const ro = await EventLog.open({ dir, readOnly: true, logger: quietLogger() });
    await waitFor(() => ro.head().seq === 2);
    await expect(ro.append([upsert('x', [1, 2])])).rejects.toMatchObject({ code: 'LOG_READ_ONLY' });
    await expect(ro.setCursor('a', 1)).rejects.toMatchObject({ code: 'LOG_READ_ONLY' });
    await expect(ro.importRecords([Buffer.alloc(80)])).rejects.toMatchObject({ code: 'LOG_READ_ONLY' });
    expect(ro.verify()).toMatchObject({ ok: true, checked: 2 });
    await ro.close();
    await log.close();
    await expect(log.append([upsert('x', [1, 2])])).rejects.toMatchObject({ code: 'LOG_CLOSED' });
    await expect(EventLog.open({ dir: path.join(dir, 'nope'), readOnly: true, logger: quietLogger() })).rejects.toMatchObject({ name: 'LogError' });
  });

  it('an unknown format version is refused with LOG_FORMAT_VERSION', async () => {
    const { log, dir } = await filled(1);
    await log.close();
    const env = openLmdb({ path: path.join(dir, 'log.mdb'), noSubdir: true, maxDbs: 8 });
    const meta = env.openDB<unknown, string>({ name: 'meta', encoding: 'msgpack' });
    await meta.put('format', 99);
    await env.close();
    await expect(EventLog.open({ dir, logger: quietLogger() })).rejects.toMatchObject({ code: 'LOG_FORMAT_VERSION' });
  });

  it('a format 1 data dir (a by-time entry for every seq) reads the same, and is format 2 once written to', async () => {
    const { log, dir } = await openTestLog();
    dirs.push(dir);
    await log.append([created('c', 2)]);
    for (let i = 0; i < 6; i++) await log.append(Array.from({ length: 1 + i }, (_, j) => upsert(`d${i}-${j}`, [i, j])));
    await log.close();
    // Rewrite it as format 1 wrote it: one by-time key per seq.
    const env = openLmdb({ path: path.join(dir, 'log.mdb'), noSubdir: true, maxDbs: 8 });
    const events = env.openDB<Buffer, number>({ name: 'events', encoding: 'binary' });
    const byTime = env.openDB<Buffer, [number, number]>({ name: 'by-time', encoding: 'binary' });
    const meta = env.openDB<unknown, string>({ name: 'meta', encoding: 'msgpack' });
    const ro = await EventLog.open({ dir, readOnly: true, logger: quietLogger() });
    const evs = [...ro.read()];
    await ro.close();
    await env.transaction(() => {
      for (const key of byTime.getKeys()) void byTime.remove(key);
      for (const e of evs) void byTime.put([e.ts, e.seq], Buffer.alloc(0));
      void meta.put('format', 1);
    });
    expect([...events.getKeys()].length).toBe(evs.length);
    await env.close();
    const seqAt = (l: EventLog, all: { seq: number; ts: number }[]): void => {
      for (const e of all) for (const t of [e.ts - 1, e.ts, e.ts + 1]) expect(l.seqAtTime(t)).toBe(all.filter((x) => x.ts <= t).reduce((m, x) => Math.max(m, x.seq), 0));
    };
    const v1 = await EventLog.open({ dir, readOnly: true, logger: quietLogger() });
    seqAt(v1, evs);
    await v1.close();
    const w = await EventLog.open({ dir, logger: quietLogger() });
    for (let i = 0; i < 3; i++) await w.append([upsert(`n${i}`, [1, i]), upsert(`m${i}`, [2, i])]);
    seqAt(w, [...w.read()]);
    await w.close();
    const env2 = openLmdb({ path: path.join(dir, 'log.mdb'), noSubdir: true, maxDbs: 8, readOnly: true });
    expect(env2.openDB<unknown, string>({ name: 'meta', encoding: 'msgpack' }).get('format')).toBe(2);
    await env2.close();
  });

  it('cursors are durable across reopen', async () => {
    const { log, dir } = await filled(1);
    expect(log.getCursor('backup')).toBeUndefined();
    await log.setCursor('backup', { seq: 1, at: 'x' });
    await log.close();
    const again = await EventLog.open({ dir, logger: quietLogger() });
    expect(again.getCursor('backup')).toEqual({ seq: 1, at: 'x' });
    await again.close();
  });

  it('importRecords rebuilds an identical chain; a record that does not link is refused and nothing is written', async () => {
    const { log } = await filled(30);
    const records = [...log.readRecords()].map((r) => r.record);
    const t2 = await openTestLog();
    dirs.push(t2.dir);
    const head = await t2.log.importRecords(records.slice(0, 10));
    expect(head.seq).toBe(10);
    await expect(t2.log.importRecords(records.slice(11, 20))).rejects.toMatchObject({ code: 'LOG_CHAIN_BROKEN', details: { problem: 'seq_gap' } });
    const tampered = Buffer.from(records[10]!);
    tampered[tampered.length - 1] = tampered[tampered.length - 1]! ^ 1;
    await expect(t2.log.importRecords([tampered, ...records.slice(11)])).rejects.toMatchObject({ code: 'LOG_CHAIN_BROKEN', details: { seq: 11 } });
    expect(t2.log.head().seq).toBe(10);
    await t2.log.importRecords(records.slice(10));
    expect(Buffer.from(t2.log.head().hash).equals(Buffer.from(log.head().hash))).toBe(true);
    expect(t2.log.verify()).toMatchObject({ ok: true, checked: 30 });
    // and appends continue the imported chain
    expect((await t2.log.append([upsert('after', [0, 0])])).firstSeq).toBe(31);
    await t2.log.close();
    await log.close();
  });

  it('verify with a digest: extends it, names a rewrite, or reports a truncated log', async () => {
    const { log } = await filled(10);
    const h5 = log.get(5)!.hash;
    expect(log.verify({ digest: { seq: 5, hash: h5 } }).ok).toBe(true);
    expect(log.verify({ digest: { seq: 5, hash: new Uint8Array(32) } })).toMatchObject({ ok: false, seq: 5, problem: 'digest_mismatch' });
    expect(log.verify({ digest: { seq: 11, hash: h5 } })).toMatchObject({ ok: false, problem: 'digest_beyond_head' });
    expect(log.verify({ fromSeq: 6 })).toMatchObject({ ok: true, checked: 5 });
    const progress: number[] = [];
    log.verify({ onProgress: (s) => progress.push(s), progressEvery: 3 });
    expect(progress).toEqual([3, 6, 9]);
    await log.close();
  });

  it('a read-only follower tails the writer by polling: catch-up then live, in order', async () => {
    const { log, dir } = await filled(5);
    const ro = await EventLog.open({ dir, readOnly: true, logger: quietLogger() });
    const p = firstValueFrom(ro.tail(3, { pollMs: 5 }).pipe(take(8), toArray()));
    for (let i = 0; i < 3; i++) {
      await log.append([upsert(`late${i}`, [1, 1]), upsert(`late${i}b`, [1, 1])]);
      await new Promise((r) => setTimeout(r, 3));
    }
    expect((await p).map((e) => e.seq)).toEqual([3, 4, 5, 6, 7, 8, 9, 10]);
    await ro.close();
    await log.close();
  });
});
