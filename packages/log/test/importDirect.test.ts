import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { EventLog, encodeFrame, listSegments, readSegments, sealEvent, segmentName } from '@kyrodb/log';
import { GENESIS_HASH } from '@kyrodb/log';
import { created, openTestLog, upsert } from './helpers.js';

// An import writes its frames' whole 4 KiB blocks with O_DIRECT from a page-aligned stage, and
// the last partial block of each through the page cache. Whatever the offsets and sizes, the
// segments must hold exactly the frames an import through the page cache would have written.

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A chain of `n` records (a create, then upserts of varying sizes, some of several KiB), sealed without a log. */
function chain(n: number): Buffer[] {
  const out: Buffer[] = [];
  let prev: Uint8Array = GENESIS_HASH;
  for (let seq = 1; seq <= n; seq++) {
    const dim = seq % 5 === 0 ? 2000 + (seq % 13) : 1 + (seq % 37);
    const input = seq === 1 ? created('c', 4) : upsert(`d${seq}`, Float32Array.from({ length: dim }, (_, i) => Math.sin(seq + i)));
    const { record } = sealEvent(input, seq, 1_000_000 + seq, prev);
    out.push(record);
    prev = record.subarray(32, 64);
  }
  return out;
}

describe('imports write through O_DIRECT', () => {
  it('imports of odd sizes, frames larger than the stage and a rotation leave exactly the frames, each segment ending where they stop', async () => {
    const records = chain(9000); // ~19 MB: frames of the import's own 8 MiB, larger than a 4 KiB block many times over
    const { log, dir } = await openTestLog({ segmentBytes: 12 * 1024 * 1024 });
    dirs.push(dir);
    const cuts = [1, 2, 9, 10, 1500, 1501, 6000, 9000];
    let at = 0;
    for (const end of cuts) {
      await log.importRecords(records.slice(at, end));
      at = end;
    }
    expect(log.head().seq).toBe(9000);
    await log.close();
    // Every record once, in order, byte for byte.
    const back = [...readSegments(path.join(dir, 'wal'), 1)];
    expect(back.length).toBe(records.length);
    for (let i = 0; i < records.length; i++) expect(back[i]!.record.equals(records[i]!)).toBe(true);
    // Each segment is the concatenation of its frames and nothing after them (no zeros, no garbage).
    const segs = listSegments(path.join(dir, 'wal'));
    expect(segs.length).toBeGreaterThan(1);
    let total = 0;
    for (const s of segs) total += fs.statSync(path.join(dir, 'wal', segmentName(s))).size;
    let framed = 0;
    at = 0;
    for (const end of cuts) {
      for (let s = at; s < end; ) {
        let e = s;
        let bytes = 0;
        while (e < end && (e === s || bytes < 8 * 1024 * 1024)) bytes += records[e++]!.byteLength;
        framed += encodeFrame(records.slice(s, e), s + 1).byteLength;
        s = e;
      }
      at = end;
    }
    expect(total).toBe(framed);
    // A reopened log has the chain, and goes on appending after it.
    const again = await EventLog.open({ dir, logger: () => undefined });
    expect(again.verify()).toMatchObject({ ok: true, checked: 9000 });
    await again.append([upsert('after', [1, 2, 3, 4])]);
    expect(again.head().seq).toBe(9001);
    await again.close();
  });
});

// A restore starts its next import while the one before is still being written: it is checked
// against the head that one will leave, and written after it; a failure fails every import behind it.
describe('imports started before the previous one is written', () => {
  it('land in order, each checked against the head the one ahead leaves; a record that does not link to it is refused', async () => {
    const records = chain(3000);
    const { log, dir } = await openTestLog();
    dirs.push(dir);
    const a = log.importRecords(records.slice(0, 1000));
    const b = log.importRecords(records.slice(1000, 2000));
    // Does not continue b (seq 2001 is skipped): refused at once, nothing of it written.
    const gap = log.importRecords(records.slice(2001));
    await expect(gap).rejects.toMatchObject({ code: 'LOG_CHAIN_BROKEN', details: { problem: 'seq_gap', seq: 2001 } });
    expect((await a).seq).toBe(1000);
    expect((await b).seq).toBe(2000);
    expect(log.head().seq).toBe(2000);
    await log.importRecords(records.slice(2000));
    expect(log.verify()).toMatchObject({ ok: true, checked: 3000 });
    await log.close();
    const back = [...readSegments(path.join(dir, 'wal'), 1)];
    expect(back.length).toBe(3000);
    for (let i = 0; i < records.length; i++) expect(back[i]!.record.equals(records[i]!)).toBe(true);
  });

  it('one that fails to write fails every import started behind it; none of theirs is written and the log goes on from the head before them', async () => {
    const records = chain(3000);
    const { log, dir, failpoints } = await openTestLog();
    dirs.push(dir);
    await log.importRecords(records.slice(0, 500));
    failpoints.set('wal.import', '1*error(EIO)');
    const a = log.importRecords(records.slice(500, 1500));
    const b = log.importRecords(records.slice(1500, 2500));
    await expect(a).rejects.toMatchObject({ code: 'WAL_IO_ERROR' });
    await expect(b).rejects.toMatchObject({ code: 'WAL_IO_ERROR', message: expect.stringContaining('an import ahead of this one failed') });
    expect(log.head().seq).toBe(500);
    // The next import continues the head before them.
    await log.importRecords(records.slice(500));
    expect(log.verify()).toMatchObject({ ok: true, checked: 3000 });
    await log.close();
    const back = [...readSegments(path.join(dir, 'wal'), 1)];
    expect(back.map((r) => r.seq)).toEqual(records.map((_, i) => i + 1));
  });

  it('close waits for an import still being written', async () => {
    const records = chain(2000);
    const { log, dir } = await openTestLog();
    dirs.push(dir);
    const a = log.importRecords(records);
    await log.close();
    expect((await a).seq).toBe(2000);
    const again = await EventLog.open({ dir, logger: () => undefined });
    expect(again.verify()).toMatchObject({ ok: true, checked: 2000 });
    await again.close();
  });
});
