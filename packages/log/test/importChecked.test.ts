import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { EventLog, checkRecord, encodeFrame, frameViews, indexDocId, readSegments, recordHashOk, sealEvent, splitRecord } from '@kyrodb/log';
import type { CheckedIndex, LogHead } from '@kyrodb/log';
import { created, openTestLog, upsert, waitFor } from './helpers.js';

// Records whose own hashes were checked elsewhere (checkRecord, in restore's codec worker) are
// imported with `checked`: the import no longer re-hashes them, but still refuses anything that
// does not continue the chain.

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function source(n: number): Promise<{ log: EventLog; records: Buffer[] }> {
  const t = await openTestLog();
  dirs.push(t.dir);
  await t.log.append([created('c', 2)]);
  for (let i = 1; i < n; i++) await t.log.append([i % 7 === 0 ? { type: 'vector.deleted', collection: 'c', body: { id: `d${i - 1}` } } : upsert(`d${i}`, [i, -i])]);
  return { log: t.log, records: [...t.log.readRecords()].map((r) => r.record) };
}

/** An empty log to import into, removed after the tests, with its dir (to reopen it or read its segments). */
async function targetIn(): Promise<{ log: EventLog; dir: string }> {
  const t = await openTestLog();
  dirs.push(t.dir);
  return t;
}

async function target(): Promise<EventLog> {
  return (await targetIn()).log;
}

/** What the restore's codec hands over: each record checked by itself, its index fields read there. */
function checkedIndex(records: readonly Uint8Array[]): CheckedIndex {
  const fields = records.map((r) => checkRecord(r));
  return { collections: fields.map((f) => f.collection), docIds: fields.map(indexDocId) };
}

/** A record at `seq` after `prevHash`, sealed with a correct hash of its own. */
function sealed(seq: number, ts: number, prevHash: Uint8Array): Buffer {
  return sealEvent(upsert('forged', [9, 9]), seq, ts, prevHash).record;
}

function sameHead(a: LogHead, b: LogHead): boolean {
  return a.seq === b.seq && Buffer.from(a.hash).equals(Buffer.from(b.hash));
}

describe('checkRecord', () => {
  it('a record that re-hashes to its stored hash gives its index fields; one flipped bit anywhere is LOG_CHAIN_BROKEN hash_mismatch', async () => {
    const { log, records } = await source(3);
    const rec = records[1]!;
    expect(recordHashOk(rec)).toBe(true);
    expect(checkRecord(rec)).toMatchObject({ seq: 2, type: 'vector.upserted', collection: 'c', id: 'd1', dim: 2 });
    for (const at of [0, 31, 32, 63, rec.length - 1]) {
      const bad = Buffer.from(rec);
      bad[at]! ^= 0x01;
      expect(recordHashOk(bad)).toBe(false);
      expect(() => checkRecord(bad)).toThrow(expect.objectContaining({ code: 'LOG_CHAIN_BROKEN', details: expect.objectContaining({ problem: 'hash_mismatch' }) }) as Error);
    }
    expect(() => checkRecord(rec.subarray(0, 64))).toThrow(expect.objectContaining({ code: 'LOG_CORRUPT_RECORD' }) as Error);
    await log.close();
  });
});

describe('importRecords with a checked index', () => {
  it('builds the same log as the default import: head, records, by-time and by-doc indexes', async () => {
    const { log, records } = await source(40);
    const plain = await target();
    const fast = await target();
    await plain.importRecords(records);
    await fast.importRecords(records.slice(0, 15), { checked: checkedIndex(records.slice(0, 15)) });
    await fast.importRecords(records.slice(15), { checked: checkedIndex(records.slice(15)) });
    expect(sameHead(fast.head(), log.head())).toBe(true);
    expect(sameHead(plain.head(), log.head())).toBe(true);
    expect(fast.verify()).toMatchObject({ ok: true, checked: 40 });
    for (let s = 1; s <= 40; s++) expect(fast.getRecord(s)!.equals(records[s - 1]!)).toBe(true);
    expect(fast.seqAtTime(log.get(20)!.ts)).toBe(plain.seqAtTime(log.get(20)!.ts));
    for (const id of ['d1', 'd6', 'd13', 'd39']) expect(fast.history('c', id).map((e) => e.seq)).toEqual(plain.history('c', id).map((e) => e.seq));
    expect(fast.history('c', 'd6').map((e) => e.type)).toEqual(['vector.upserted', 'vector.deleted']);
    await Promise.all([log.close(), plain.close(), fast.close()]);
  });

  it('still refuses what does not continue the chain — a seq gap, a prevHash that is not the previous hash, ts going back — and writes nothing', async () => {
    const { log, records } = await source(12);
    const t = await target();
    await t.importRecords(records.slice(0, 10), { checked: checkedIndex(records.slice(0, 10)) });
    const head = t.head();
    const at10 = log.get(10)!;
    const refuse = async (recs: Buffer[], problem: string, seq: number): Promise<void> => {
      await expect(t.importRecords(recs, { checked: checkedIndex(recs) })).rejects.toMatchObject({ code: 'LOG_CHAIN_BROKEN', details: { problem, seq } });
      expect(sameHead(t.head(), head)).toBe(true);
    };
    // a gap
    await refuse(records.slice(11), 'seq_gap', 11);
    // each record verifies by itself (checkRecord passes) but links elsewhere: the head, or the record before it in the batch
    await refuse([sealed(11, at10.ts, new Uint8Array(32)), ...records.slice(11)], 'prev_hash_mismatch', 11);
    await refuse([records[10]!, sealed(12, at10.ts, at10.hash)], 'prev_hash_mismatch', 12);
    // a forged record that links to the head and hashes right, but goes back in time
    await refuse([sealed(11, at10.ts - 1, at10.hash)], 'ts_regression', 11);
    expect(t.verify()).toMatchObject({ ok: true, checked: 10 });
    // the good records import after all that
    await t.importRecords(records.slice(10), { checked: checkedIndex(records.slice(10)) });
    expect(sameHead(t.head(), log.head())).toBe(true);
    expect(t.verify()).toMatchObject({ ok: true, checked: 12 });
    await Promise.all([log.close(), t.close()]);
  });

  it('an index that does not have one entry per record is LOG_INVALID_EVENT; a record too short is LOG_CORRUPT_RECORD; nothing is written', async () => {
    const { log, records } = await source(4);
    const t = await target();
    const idx = checkedIndex(records);
    await expect(t.importRecords(records, { checked: { collections: idx.collections.slice(1), docIds: idx.docIds } })).rejects.toMatchObject({ code: 'LOG_INVALID_EVENT' });
    await expect(t.importRecords(records, { checked: { collections: idx.collections, docIds: [] } })).rejects.toMatchObject({ code: 'LOG_INVALID_EVENT' });
    await expect(t.importRecords([records[0]!.subarray(0, 64)], { checked: { collections: ['c'], docIds: [''] } })).rejects.toMatchObject({ code: 'LOG_CORRUPT_RECORD' });
    expect(t.head().seq).toBe(0);
    await t.importRecords(records, { checked: idx });
    expect(splitRecord(t.getRecord(4)!).hash).toEqual(splitRecord(records[3]!).hash);
    await Promise.all([log.close(), t.close()]);
  });

  it('the contract is the caller\'s: without `checked` the import re-hashes and refuses a record altered after it was sealed', async () => {
    const { log, records } = await source(3);
    const t = await target();
    const bad = Buffer.from(records[2]!);
    bad[bad.length - 1]! ^= 0x01;
    await expect(t.importRecords([records[0]!, records[1]!, bad])).rejects.toMatchObject({ code: 'LOG_CHAIN_BROKEN', details: { seq: 3, problem: 'hash_mismatch' } });
    expect(t.head().seq).toBe(0);
    await Promise.all([log.close(), t.close()]);
  });
});

/** Frames built around the records (as the restore's codec does) and the views of the records inside them. */
function framed(records: readonly Buffer[], firstSeq: number, per: number): { frames: Buffer[]; views: Buffer[] } {
  const frames: Buffer[] = [];
  const views: Buffer[] = [];
  for (let i = 0; i < records.length; i += per) {
    const f = encodeFrame(records.slice(i, i + per), firstSeq + i);
    frames.push(f);
    let off = 24;
    for (const r of records.slice(i, i + per)) {
      views.push(f.subarray(off + 4, off + 4 + r.length));
      off += 4 + r.length;
    }
  }
  return { frames, views };
}

describe('importFrames: frames built by the caller', () => {
  it('writes them as they are: the segments hold the records, a reopened log has them, and it goes on appending', async () => {
    const { log, records } = await source(30);
    const t = await targetIn();
    const { frames, views } = framed(records, 1, 7);
    // The records the import reads out of a frame are the views inside it, not copies.
    const read = frameViews(frames[0]!)!;
    expect(read.map((v) => [v.buffer === frames[0]!.buffer, v.byteOffset, v.byteLength])).toEqual(views.slice(0, 7).map((v) => [true, v.byteOffset, v.byteLength]));
    await t.log.importFrames(frames, { checked: checkedIndex(views) });
    // Resolved once durable in the segments; a read right after (same turn) sees it in LMDB.
    expect(t.log.getRecord(30)?.equals(records[29]!)).toBe(true);
    await t.log.close();
    expect([...readSegments(`${t.dir}/wal`, 1)].map((r) => r.record.toString('hex'))).toEqual(records.map((r) => r.toString('hex')));
    const again = await EventLog.open({ dir: t.dir, logger: () => undefined });
    expect(sameHead(again.head(), log.head())).toBe(true);
    await again.append([upsert('after', [1, 2])]);
    expect(again.verify()).toMatchObject({ ok: true, checked: 31 });
    await Promise.all([log.close(), again.close()]);
  });

  it('rows keep each record where its frame holds it: LMDB gets exactly the records, from frames with memory of their own as a worker thread hands them over', async () => {
    const { log, records } = await source(30);
    const t = await target();
    const { frames, views } = framed(records, 1, 7);
    // Plain Uint8Arrays, each over an ArrayBuffer of its own (what arrives from a worker thread);
    // LMDB is written from several buffers in turn.
    const own = frames.map((f) => new Uint8Array(f));
    await t.importFrames(own, { checked: checkedIndex(views) });
    expect([...t.readRecords()].map((r) => Buffer.from(r.record).toString('hex'))).toEqual(records.map((r) => r.toString('hex')));
    expect(t.verify()).toMatchObject({ ok: true, checked: 30 });
    await Promise.all([log.close(), t.close()]);
  });

  it('a frame whose memory is taken away (transferred) before its rows reach LMDB is refused with LOG_CORRUPT_RECORD, never stored as other bytes', async () => {
    const { log, records } = await source(14);
    const { log: t, dir } = await targetIn();
    const { frames, views } = framed(records, 1, 7);
    const own = frames.map((f) => new Uint8Array(f));
    await t.importFrames(own, { checked: checkedIndex(views) }); // durable in the segments; its rows wait for LMDB
    structuredClone(own[1]!.buffer, { transfer: [own[1]!.buffer] }); // the caller gave the memory away too early
    expect(own[1]!.byteLength).toBe(0);
    expect(() => t.getRecord(1)).toThrow(expect.objectContaining({ code: 'LOG_CORRUPT_RECORD' }) as Error);
    await t.close().catch(() => undefined);
    // Nothing of the batch went into LMDB; reopened, the log takes the records from its segments.
    const again = await EventLog.open({ dir, logger: () => undefined });
    expect([...again.readRecords()].map((r) => Buffer.from(r.record).toString('hex'))).toEqual(records.map((r) => r.toString('hex')));
    await Promise.all([log.close(), again.close()]);
  });

  it('a frame that is not one (magic, count, lengths, bytes after its records) or starts at another seq than its first record is LOG_INVALID_EVENT; frames out of order break the chain; nothing is written', async () => {
    const { log, records } = await source(10);
    const { log: t, dir } = await targetIn();
    const { frames, views } = framed(records, 1, 5);
    const idx = checkedIndex(views);
    const edited = (at: number, edit: (b: Buffer) => Buffer): Buffer[] => frames.map((f, i) => (i === at ? edit(Buffer.from(f)) : f));
    const bad: [string, Buffer[]][] = [
      ['magic', edited(1, (b) => (b.writeUInt32LE(0, 0), b))],
      ['count one more', edited(0, (b) => (b.writeUInt32LE(6, 4), b))],
      ['count one less', edited(1, (b) => (b.writeUInt32LE(4, 4), b))],
      ['count 0', edited(0, (b) => (b.writeUInt32LE(0, 4), b))],
      ['a record length one more', edited(0, (b) => (b.writeUInt32LE(b.readUInt32LE(24) + 1, 24), b))],
      ['a byte after its records', edited(1, (b) => { const c = Buffer.concat([b, Buffer.alloc(1)]); c.writeUInt32LE(c.byteLength - 24, 8); return c; })],
      ['a body length one less', edited(1, (b) => (b.writeUInt32LE(b.byteLength - 25, 8), b))],
      ['shorter than a header', [frames[0]!, frames[1]!.subarray(0, 20)]],
      ['first seq 2', framed(records, 2, 5).frames],
    ];
    for (const [what, malformed] of bad) {
      await expect(t.importFrames(malformed, { checked: idx }), what).rejects.toMatchObject({ code: 'LOG_INVALID_EVENT' });
    }
    await expect(t.importFrames([frames[1]!, frames[0]!], { checked: idx })).rejects.toMatchObject({ code: 'LOG_CHAIN_BROKEN', details: { problem: 'seq_gap' } });
    await expect(t.importFrames(frames.slice(0, 1), { checked: idx })).rejects.toMatchObject({ code: 'LOG_INVALID_EVENT' }); // index fields for 10 records, 5 in the frames
    expect(t.head().seq).toBe(0);
    expect([...readSegments(`${dir}/wal`, 1)]).toEqual([]);
    await t.importFrames(frames, { checked: idx });
    expect(t.head().seq).toBe(10);
    await Promise.all([log.close(), t.close()]);
  });
});

describe('importHeldFrom: which imported bytes the log may still read', () => {
  it('an import being written, then its rows waiting for LMDB, hold their seqs; once applied, nothing is held', async () => {
    const { log: src, records } = await source(20);
    await src.close();
    const log = await target();
    expect(log.importHeldFrom()).toBeUndefined();
    const first = log.importRecords(records.slice(0, 10));
    const second = log.importRecords(records.slice(10));
    expect(log.importHeldFrom()).toBe(1); // both being written
    await first;
    // The second, as it started writing, applied the first's rows: only its own are held.
    expect(log.importHeldFrom()).toBe(11);
    await second;
    expect(log.importHeldFrom()).toBe(11); // acknowledged, waiting for LMDB
    expect(log.get(20)).toBeDefined(); // a read applies what waits
    expect(log.importHeldFrom()).toBeUndefined();
    await log.close();
  });

  it('rows handed to the apply thread stay held until it reports them applied (it keeps them to give back if it fails)', async () => {
    const { log: src, records } = await source(30);
    await src.close();
    const t = await openTestLog({ applyThread: 'on' });
    dirs.push(t.dir);
    const log = t.log;
    await log.importRecords(records.slice(0, 10));
    log.flushDocIndex();
    await waitFor(() => log.applyThreadStatus.state === 'running');
    t.failpoints.set('log.apply', '1*delay(300)');
    await log.importRecords(records.slice(10));
    log.flushDocIndex(1); // hands the rows over without waiting for the thread
    expect(log.importHeldFrom()).toBe(11); // posted, the thread not done
    await waitFor(() => log.importHeldFrom() === undefined); // without a read: as the thread reports
    expect(log.verify()).toMatchObject({ ok: true, checked: 30 });
    await log.close();
  });
});
