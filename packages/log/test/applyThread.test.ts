import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { EventLog } from '@kyrodb/log';
import { created, openTestLog, quietLogger, upsert, waitFor } from './helpers.js';

// The thread that applies acknowledged events to LMDB (applyThread: 'on'): reads on the writer's
// thread still see every acknowledged append, and when the thread fails, is slow or dies, the
// writer applies what it did not, in order, and nothing acknowledged is lost.

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function onLog(lines: string[] = []) {
  const t = await openTestLog({ applyThread: 'on', logger: quietLogger(lines) });
  dirs.push(t.dir);
  await t.log.append([created('c', 3)]);
  await waitFor(() => t.log.applyThreadStatus.state === 'running');
  return t;
}

/** Appends from `writers` concurrent writers; after each acknowledged append, reads it back at once. */
async function writeAndReadBack(log: EventLog, writers: number, perWriter: number, tag: string): Promise<number[]> {
  const seqs = await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      const mine: number[] = [];
      for (let i = 0; i < perWriter; i++) {
        const id = `${tag}-${w}-${i}`;
        const r = await log.append([upsert(id, [w, i, 1])]);
        // read-your-writes on the writer's thread, whatever the apply thread is doing
        const got = log.get(r.firstSeq);
        expect(got?.type === 'vector.upserted' && got.body.id).toBe(id);
        expect(log.history('c', id).map((e) => e.seq)).toEqual([r.firstSeq]);
        expect(log.seqAtTime(r.ts)).toBeGreaterThanOrEqual(r.firstSeq);
        mine.push(r.firstSeq);
      }
      return mine;
    }),
  );
  return seqs.flat().sort((a, b) => a - b);
}

async function reopenAndVerify(dir: string, seq: number): Promise<void> {
  const again = await EventLog.open({ dir, logger: quietLogger() });
  expect(again.head().seq).toBe(seq);
  expect(again.verify()).toMatchObject({ ok: true, checked: seq });
  await again.close();
}

describe('the LMDB apply thread', () => {
  it('applies what the writer acknowledges; every read right after an append sees it; a clean close keeps it all', async () => {
    const { log, dir } = await onLog();
    const seqs = await writeAndReadBack(log, 16, 40, 'a');
    expect(seqs).toEqual(Array.from({ length: 640 }, (_, i) => i + 2));
    expect(log.verify()).toMatchObject({ ok: true, checked: 641 });
    const st = log.applyThreadStatus;
    expect(st.state).toBe('running');
    expect(st.batches).toBeGreaterThan(0);
    await log.close();
    await reopenAndVerify(dir, 641);
  });

  it('log.apply = 1*error(EIO): the failed batch comes back and is applied on the writer thread; the thread then takes batches again', async () => {
    const lines: string[] = [];
    const { log, dir, failpoints } = await onLog(lines);
    await writeAndReadBack(log, 8, 10, 'before');
    failpoints.set('log.apply', '1*error(EIO)');
    const seqs = await writeAndReadBack(log, 8, 20, 'during');
    expect(failpoints.list()).toEqual({}); // it was hit
    expect(lines.some((l) => l.includes('did not apply acknowledged events') && l.includes('EIO'))).toBe(true);
    const batches = log.applyThreadStatus.batches;
    await writeAndReadBack(log, 8, 20, 'after');
    expect(log.applyThreadStatus).toMatchObject({ state: 'running' });
    expect(log.applyThreadStatus.batches).toBeGreaterThan(batches);
    const head = log.head().seq;
    expect(head).toBe(1 + 80 + 160 + 160);
    expect(seqs.length).toBe(160);
    expect(log.verify()).toMatchObject({ ok: true, checked: head });
    await log.close();
    await reopenAndVerify(dir, head);
  });

  it('log.apply = panic: the thread dies; what it had not applied and everything after is applied on the writer thread', async () => {
    const lines: string[] = [];
    const { log, dir, failpoints } = await onLog(lines);
    await writeAndReadBack(log, 8, 10, 'before');
    failpoints.set('log.apply', 'panic');
    await writeAndReadBack(log, 8, 30, 'during');
    expect(log.applyThreadStatus.state).toBe('gone');
    expect(lines.some((l) => l.includes('apply thread is gone'))).toBe(true);
    failpoints.clearAll();
    await writeAndReadBack(log, 8, 10, 'after');
    const head = log.head().seq;
    expect(head).toBe(1 + 80 + 240 + 80);
    expect(log.verify()).toMatchObject({ ok: true, checked: head });
    await log.close();
    await reopenAndVerify(dir, head);
  });

  it('log.apply = delay(150): a slow thread delays reads, never what they see', async () => {
    const { log, dir, failpoints } = await onLog();
    failpoints.set('log.apply', '3*delay(150)');
    await writeAndReadBack(log, 4, 10, 'slow');
    expect(failpoints.list()).toEqual({});
    const head = log.head().seq;
    expect(log.verify()).toMatchObject({ ok: true, checked: head });
    await log.close();
    await reopenAndVerify(dir, head);
  });

  it('another process sees what the thread applied', async () => {
    const { log, dir } = await onLog();
    await writeAndReadBack(log, 4, 25, 'x');
    const ro = await EventLog.open({ dir, readOnly: true, logger: quietLogger() });
    await waitFor(() => ro.head().seq === 101);
    expect(ro.verify()).toMatchObject({ ok: true, checked: 101 });
    await ro.close();
    await log.close();
  });
});

describe('imports through the LMDB apply thread', () => {
  it('a bulk import in batches: the thread applies them while the next batch is written; reads, a reopen and a mid-import failure all see the chain whole', async () => {
    const src = await openTestLog({ applyThread: 'off' });
    dirs.push(src.dir);
    await src.log.append([created('c', 3)]);
    for (let b = 0; b < 12; b++) await src.log.append(Array.from({ length: 1000 }, (_, i) => upsert(`d${b}-${i}`, [b, i, 1])));
    const records = [...src.log.readRecords()].map((r) => r.record);
    await src.log.close();
    expect(records.length).toBe(12_001);

    const lines: string[] = [];
    const dst = await openTestLog({ applyThread: 'on', logger: quietLogger(lines) });
    dirs.push(dst.dir);
    await waitFor(() => dst.log.applyThreadStatus.state === 'running');
    let at = 0;
    for (const n of [1, 2999, 3000, 3000]) {
      const head = await dst.log.importRecords(records.slice(at, at + n));
      at += n;
      expect(head.seq).toBe(at);
      // read-your-writes after each import, whoever applies it
      const last = dst.log.get(at);
      expect(last === undefined ? undefined : Buffer.from(last.hash).equals(records[at - 1]!.subarray(32, 64))).toBe(true);
    }
    // a batch the thread fails: it comes back and is applied here, in order, before the next import's rows
    dst.failpoints.set('log.apply', '1*error(EIO)');
    await dst.log.importRecords(records.slice(at, at + 1500));
    at += 1500;
    await dst.log.importRecords(records.slice(at));
    at = records.length;
    expect(dst.log.verify()).toMatchObject({ ok: true, checked: at });
    expect(dst.log.history('c', 'd11-999').map((e) => e.seq)).toEqual([at]);
    expect(dst.log.applyThreadStatus.batches).toBeGreaterThan(0);
    expect(lines.some((l) => l.includes('did not apply acknowledged events'))).toBe(true);
    await dst.log.close();
    await reopenAndVerify(dst.dir, at);
  });
});
