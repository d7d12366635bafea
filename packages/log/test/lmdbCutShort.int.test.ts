// A log.mdb cut short (an interrupted copy, a damaged disk): LMDB memory-maps it, and the first
// read of a page past its end killed the process with SIGBUS, before any message, on every
// start. Now a writable open moves it aside and rebuilds LMDB from the write-ahead segments; a
// read-only open, or a data dir without segments, refuses with LOG_STORE_CORRUPT.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { open as openLmdb } from 'lmdb';
import { describe, expect, it } from 'vitest';
import { EventLog, isLogError, toHex, walDirOf, type EventInput } from '@kyrodb/log';
import { created, quietLogger, tempDir } from './helpers.js';

/** A log of `n` upserts of 64-d vectors; its records (hex) and head hash. */
async function makeLog(dir: string, n: number): Promise<{ records: string[]; head: string }> {
  const log = await EventLog.open({ dir, logger: quietLogger() });
  try {
    await log.append([created('c', 64)]);
    for (let i = 0; i < n; i += 250) {
      const batch: EventInput[] = [];
      for (let j = i; j < Math.min(n, i + 250); j++) batch.push({ type: 'vector.upserted', collection: 'c', body: { id: `d${j}`, vector: new Float32Array(64).fill(j / n) } });
      await log.append(batch);
    }
    return { records: [...log.readRecords()].map((r) => r.record.toString('hex')), head: toHex(log.head().hash) };
  } finally {
    await log.close();
  }
}

function cutInHalf(dir: string): number {
  const file = path.join(dir, 'log.mdb');
  const size = fs.statSync(file).size;
  fs.truncateSync(file, Math.floor(size / 2 / 4096) * 4096);
  return fs.statSync(file).size;
}

/** `<dir>/log.mdb`'s size, and how far its pages reach by its meta page (`(lastPageNumber + 1) × pageSize`). */
async function reach(dir: string): Promise<{ size: number; needed: number; pageSize: number }> {
  const file = path.join(dir, 'log.mdb');
  const env = openLmdb({ path: file, noSubdir: true, maxDbs: 8, readOnly: true, cache: false });
  try {
    const st = env.getStats() as { lastPageNumber: number; pageSize: number };
    return { size: fs.statSync(file).size, needed: (st.lastPageNumber + 1) * st.pageSize, pageSize: st.pageSize };
  } finally {
    await env.close();
  }
}

describe('a log.mdb cut short', () => {
  it('by even one page (1, 2, 32): read-only LOG_STORE_CORRUPT, writable moved aside and rebuilt — never SIGBUS; and the log\'s own writes always reach its last page', async () => {
    // Why the check can be exact: after every commit of the log's writes (appends of every size,
    // deferred by-doc entries, a rebuild), the file reaches its last page — LMDB leaves trailing
    // pages unwritten only for pages a transaction frees itself, which this log never does.
    const src = tempDir();
    const log = await EventLog.open({ dir: src, logger: quietLogger(), deferDocIndex: true });
    await log.append([created('c', 64)]);
    for (let i = 0; i < 40; i++) {
      const n = 1 + ((i * 397) % 1500);
      await log.append(Array.from({ length: n }, (_, j): EventInput => ({ type: 'vector.upserted', collection: 'c', body: { id: `d${(i * 131 + j) % 2000}`, vector: new Float32Array(64).fill(j) } })));
      log.flushDocIndex();
      const r = await reach(src);
      expect(r.size, `after append ${i}`).toBeGreaterThanOrEqual(r.needed);
    }
    const records = [...log.readRecords()].map((r) => r.record.toString('hex'));
    await log.close();
    const whole = await reach(src);
    expect(whole.size).toBe(whole.needed);
    for (const pages of [1, 2, 32]) {
      const dir = tempDir();
      fs.cpSync(src, dir, { recursive: true });
      const file = path.join(dir, 'log.mdb');
      fs.truncateSync(file, whole.needed - pages * whole.pageSize);
      const cut = fs.statSync(file).size;
      await expect(EventLog.open({ dir, readOnly: true, logger: quietLogger() })).rejects.toSatisfy((e) => isLogError(e, 'LOG_STORE_CORRUPT') && new RegExp(`is cut short: ${cut} bytes, its pages reach ${whole.needed}`).test((e as Error).message));
      expect(fs.statSync(file).size).toBe(cut);
      const lines: string[] = [];
      const w = await EventLog.open({ dir, logger: quietLogger(lines) });
      try {
        expect(lines.join('\n')).toMatch(/cut short.*moved aside.*rebuilding LMDB from the write-ahead segments/);
        expect(fs.readdirSync(dir).filter((f) => f.startsWith('log.mdb.cut-short-')).map((f) => fs.statSync(path.join(dir, f)).size)).toEqual([cut]);
        expect([...w.readRecords()].map((r) => r.record.toString('hex'))).toEqual(records);
        expect(w.verify()).toMatchObject({ ok: true, checked: records.length });
      } finally {
        await w.close();
      }
      const rebuilt = await reach(dir);
      expect(rebuilt.size).toBeGreaterThanOrEqual(rebuilt.needed);
      fs.rmSync(dir, { recursive: true, force: true });
    }
    fs.rmSync(src, { recursive: true, force: true });
  });

  it('read-only: LOG_STORE_CORRUPT (no crash); writable: moved aside and rebuilt from the segments, every record the same, appends go on', async () => {
    const dir = tempDir();
    const before = await makeLog(dir, 3000);
    const cut = cutInHalf(dir);
    const err = await EventLog.open({ dir, readOnly: true, logger: quietLogger() }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isLogError(err, 'LOG_STORE_CORRUPT'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/is cut short: \d+ bytes, its pages reach \d+; opening the data dir for writing .* rebuilds it/);
    expect(fs.statSync(path.join(dir, 'log.mdb')).size).toBe(cut); // a read-only open changes nothing

    const lines: string[] = [];
    const log = await EventLog.open({ dir, logger: quietLogger(lines) });
    try {
      expect(lines.join('\n')).toMatch(/cut short.*moved aside to .*log\.mdb\.cut-short-.*rebuilding LMDB from the write-ahead segments/);
      expect(fs.readdirSync(dir).filter((f) => f.startsWith('log.mdb.cut-short-')).map((f) => fs.statSync(path.join(dir, f)).size)).toEqual([cut]);
      expect(toHex(log.head().hash)).toBe(before.head);
      expect([...log.readRecords()].map((r) => r.record.toString('hex'))).toEqual(before.records);
      expect(log.verify()).toMatchObject({ ok: true, checked: before.records.length });
      await log.append([{ type: 'vector.deleted', collection: 'c', body: { id: 'd7' } }]);
      expect(log.head().seq).toBe(before.records.length + 1);
    } finally {
      await log.close();
    }
  });

  it('shorter than its two meta pages (empty, one page): treated as cut short, never opened by LMDB (which died of SIGBUS)', async () => {
    for (const size of [0, 4096]) {
      const dir = tempDir();
      const before = await makeLog(dir, 500);
      fs.truncateSync(path.join(dir, 'log.mdb'), size);
      await expect(EventLog.open({ dir, readOnly: true, logger: quietLogger() })).rejects.toSatisfy((e) => isLogError(e, 'LOG_STORE_CORRUPT') && new RegExp(`is cut short: ${size} bytes`).test((e as Error).message));
      expect(fs.statSync(path.join(dir, 'log.mdb')).size).toBe(size);
      const log = await EventLog.open({ dir, logger: quietLogger() });
      try {
        expect(toHex(log.head().hash)).toBe(before.head);
        expect([...log.readRecords()].map((r) => r.record.toString('hex'))).toEqual(before.records);
      } finally {
        await log.close();
      }
    }
  });

  it('its first meta page zeroed or overwritten: read-only LOG_STORE_CORRUPT, writable moved aside and rebuilt — never SIGSEGV (every command, serve included, died of it)', async () => {
    for (const damage of ['zeroed', 'garbage'] as const) {
      const dir = tempDir();
      const before = await makeLog(dir, 500);
      const file = path.join(dir, 'log.mdb');
      const fd = fs.openSync(file, 'r+');
      fs.writeSync(fd, damage === 'zeroed' ? Buffer.alloc(8192) : Buffer.from('not an LMDB page'.repeat(8)), 0, undefined, 0);
      fs.closeSync(fd);
      const bytes = fs.readFileSync(file);
      await expect(EventLog.open({ dir, readOnly: true, logger: quietLogger() })).rejects.toSatisfy((e) => isLogError(e, 'LOG_STORE_CORRUPT') && /log\.mdb is damaged: its first page is not an LMDB meta page.*rebuilds it from the write-ahead segments/.test((e as Error).message));
      expect(fs.readFileSync(file).equals(bytes)).toBe(true); // a read-only open changes nothing
      const lines: string[] = [];
      const log = await EventLog.open({ dir, logger: quietLogger(lines) });
      try {
        expect(lines.join('\n')).toMatch(/is damaged: .*moved aside to .*log\.mdb\.damaged-.*rebuilding LMDB from the write-ahead segments/);
        expect(fs.readdirSync(dir).filter((f) => f.startsWith('log.mdb.damaged-'))).toHaveLength(1);
        expect(toHex(log.head().hash)).toBe(before.head);
        expect([...log.readRecords()].map((r) => r.record.toString('hex'))).toEqual(before.records);
        expect(log.verify()).toMatchObject({ ok: true, checked: before.records.length });
      } finally {
        await log.close();
      }
    }
  });

  it('without write-ahead segments to rebuild from: LOG_STORE_CORRUPT, and the file is left as it is', async () => {
    const dir = tempDir();
    await makeLog(dir, 3000);
    fs.rmSync(walDirOf(dir), { recursive: true });
    const cut = cutInHalf(dir);
    await expect(EventLog.open({ dir, logger: quietLogger() })).rejects.toSatisfy((e) => isLogError(e, 'LOG_STORE_CORRUPT') && /no write-ahead segments to rebuild it from/.test((e as Error).message));
    expect(fs.statSync(path.join(dir, 'log.mdb')).size).toBe(cut);
    expect(fs.readdirSync(dir).some((f) => f.includes('cut-short'))).toBe(false);
  });

  it('is not mistaken for a file another process is growing: read-only opens beside a live writer all succeed', async () => {
    // The file's size must be taken after the meta page: taken before it, a commit landing in
    // between made a growing file look cut short (seen as ~4% of read-only opens failing).
    const dir = tempDir();
    const setup = await EventLog.open({ dir, logger: quietLogger() });
    await setup.append([created('c', 32)]);
    await setup.close();
    const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'crashWriter.ts');
    const child = spawn(process.execPath, ['--conditions=@kyrodb/source', '--import', 'tsx', fixture, dir, '4'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => (d.toString().includes('ready') ? resolve() : undefined));
        child.on('exit', (code) => reject(new Error(`the writer exited (${code})`)));
      });
      let opens = 0;
      const failures: string[] = [];
      const end = Date.now() + 3000;
      while (Date.now() < end) {
        try {
          await (await EventLog.open({ dir, readOnly: true, logger: quietLogger() })).close();
        } catch (err) {
          failures.push(String(err));
        }
        opens += 1;
      }
      expect(opens).toBeGreaterThan(100);
      expect(failures.slice(0, 3)).toEqual([]);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
