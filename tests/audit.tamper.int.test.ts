import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventLog, FakeClock, chainHash, walDirOf } from '@kyrodb/log';
import { sealFrame } from '@kyrodb/log/codec';
import type { LogHead } from '@kyrodb/log';
import { verifyDigest, verifyDigestAsync } from '../packages/api/src/audit/index.js';
import type { DigestVerifyResult } from '../packages/api/src/audit/index.js';
import { alterEvent, copyDir, createColl, rawEdit, rewriteHistory, tmpDir, upsert } from './auditHelpers.js';

// One real data dir with 40 events; every case tampers with its own copy.
let dir: string;
let early: LogHead; // a digest an auditor took at seq 20
let late: LogHead; // a digest at the head (seq 40)

beforeAll(async () => {
  dir = tmpDir();
  const clock = new FakeClock();
  const log = await EventLog.open({ dir, clock, logger: () => {} });
  await log.append([createColl('c', 3, 'admin')]);
  for (let i = 2; i <= 40; i++) {
    clock.advance(3);
    // Seq 15's actor carries a marker we can find in the raw file.
    await log.append([upsert('c', `d${i % 7}`, [i, -i, i / 3], { i, tag: `t${i}` }, i === 15 ? 'MARKERactorXYZ' : 'writer')]);
  }
  early = { ...(log.get(20) as { seq: number; ts: number; hash: Uint8Array }) };
  late = log.head();
  expect(late.seq).toBe(40);
  expect(verifyDigest(log, early)).toMatchObject({ ok: true, extends: true });
  await log.close();
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * Edits, in place, the record of `seq` in a closed data dir's write-ahead segments (the frames
 * of this log hold one record each: one append, one frame), then re-seals its frame (a good CRC)
 * unless `reseal` is false.
 */
function editSegmentRecord(dataDir: string, seq: number, edit: (rec: Buffer) => void, reseal = true): void {
  const wal = walDirOf(dataDir);
  for (const name of fs.readdirSync(wal)) {
    const file = path.join(wal, name);
    const buf = fs.readFileSync(file);
    for (let off = 0; off + 24 <= buf.length && buf.readUInt32LE(off) !== 0; ) {
      const count = buf.readUInt32LE(off + 4);
      const body = buf.readUInt32LE(off + 8);
      const first = buf.readDoubleLE(off + 16);
      if (first === seq) {
        expect(count).toBe(1);
        edit(buf.subarray(off + 28, off + 24 + body));
        if (reseal) sealFrame(buf.subarray(off, off + 24 + body), count, first);
        fs.writeFileSync(file, buf);
        return;
      }
      off += 24 + body;
    }
  }
  throw new Error(`seq ${seq} is in no frame`);
}

async function verifyCopy(copy: string, digest?: LogHead): Promise<DigestVerifyResult> {
  const log = await EventLog.open({ dir: copy, readOnly: true, logger: () => {} });
  try {
    const r = verifyDigest(log, digest);
    // The chunked, event-loop-friendly variant gives the same report at any chunk size.
    for (const chunk of [1, 7, 8, 16, 1000]) expect(await verifyDigestAsync(log, digest, undefined, chunk)).toEqual(r);
    return r;
  } finally {
    await log.close();
  }
}

describe('tampering with a copy of the data dir is caught and the seq named', () => {
  it('an untouched copy verifies against both digests', async () => {
    const copy = copyDir(dir);
    expect(await verifyCopy(copy, early)).toMatchObject({ ok: true, extends: true, checked: 40 });
    expect(await verifyCopy(copy, late)).toMatchObject({ ok: true, extends: true });
  });

  it('LMDB rolled back to an older copy (the segments hold later events): segments_differ at the first event it lacks', async () => {
    const copy = copyDir(dir);
    const log = await EventLog.open({ dir: copy, logger: () => {} });
    await log.append([upsert('c', 'late1', [1, 2, 3]), upsert('c', 'late2', [4, 5, 6])]);
    await log.close();
    expect(await verifyCopy(copy)).toMatchObject({ ok: true, checked: 42 });
    fs.copyFileSync(path.join(dir, 'log.mdb'), path.join(copy, 'log.mdb')); // the copy taken at seq 40
    expect(await verifyCopy(copy)).toMatchObject({ ok: false, seq: 41, problem: 'segments_differ', message: expect.stringContaining('LMDB ends at seq 40') });
    // Against a digest too (at seq 20, in both: the chain up to it is unbroken).
    expect(await verifyCopy(copy, early)).toMatchObject({ ok: false, seq: 41, problem: 'segments_differ' });
    // A writer's open applies them again: then the copy verifies.
    await (await EventLog.open({ dir: copy, logger: () => {} })).close();
    expect(await verifyCopy(copy)).toMatchObject({ ok: true, checked: 42 });
  });

  const edits: [string, number, Parameters<typeof alterEvent>[2]][] = [
    ['metadata value', 12, (e) => (e.type === 'vector.upserted' ? { ...e, body: { ...e.body, metadata: { i: 12, tag: 'forged' } } } : e)],
    ['vector', 7, (e) => (e.type === 'vector.upserted' ? { ...e, body: { ...e.body, vector: new Float32Array([7, -7, 2.5]) } } : e)],
    ['actor', 15, (e) => ({ ...e, actor: 'someone-else' })],
    ['timestamp', 9, (e) => ({ ...e, ts: e.ts + 1 })],
    ['document id', 18, (e) => (e.type === 'vector.upserted' ? { ...e, body: { ...e.body, id: 'other' } } : e)],
    ['the genesis event', 1, (e) => (e.type === 'collection.created' ? { ...e, body: { ...e.body, dimension: 4 } } : e)],
  ];
  for (const [what, seq, change] of edits) {
    it(`altered ${what} at seq ${seq} (stored hashes kept): hash_mismatch at ${seq}`, async () => {
      const copy = copyDir(dir);
      alterEvent(copy, seq, change);
      expect(await verifyCopy(copy, early)).toMatchObject({ ok: false, seq, problem: 'hash_mismatch' });
      expect(await verifyCopy(copy, late)).toMatchObject({ ok: false, seq });
    });
  }

  it('two records swapped (order): fails at the first of them', async () => {
    const copy = copyDir(dir);
    rawEdit(copy, ({ events }) => {
      const a: Buffer = Buffer.from(events.get(10));
      const b: Buffer = Buffer.from(events.get(11));
      events.putSync(10, b);
      events.putSync(11, a);
    });
    expect(await verifyCopy(copy, early)).toMatchObject({ ok: false, seq: 10, problem: 'seq_mismatch' });
  });

  it('a record re-sealed after another hash (its own hash right, its link broken): prev_hash_mismatch at it', async () => {
    const copy = copyDir(dir);
    rawEdit(copy, ({ events }) => {
      const rec: Buffer = Buffer.from(events.get(25));
      const payload = rec.subarray(64);
      const prevHash = new Uint8Array(32).fill(9);
      events.putSync(25, Buffer.concat([prevHash, chainHash(prevHash, payload), payload]));
    });
    expect(await verifyCopy(copy, early)).toMatchObject({ ok: false, seq: 25, problem: 'prev_hash_mismatch' });
    expect(await verifyCopy(copy)).toMatchObject({ ok: false, seq: 25, problem: 'prev_hash_mismatch' });
  });

  it('the last record re-hashed with a body whose index fields cannot be read, in both copies: decode_error, not a crash', async () => {
    const copy = copyDir(dir);
    let forged!: Buffer;
    rawEdit(copy, ({ events, meta }) => {
      const rec: Buffer = Buffer.from(events.get(40));
      rec[rec.indexOf('vector.upserted') - 1] = 0xc1; // the type's string tag: a byte msgpack never uses
      const payload = rec.subarray(64);
      forged = Buffer.concat([rec.subarray(0, 32), chainHash(rec.subarray(0, 32), payload), payload]);
      events.putSync(40, forged);
      const head = meta.get('head');
      meta.putSync('head', { ...head, hash: Buffer.from(forged.subarray(32, 64)) });
    });
    editSegmentRecord(copy, 40, (rec) => rec.set(forged.subarray(0, rec.length)));
    expect(await verifyCopy(copy)).toMatchObject({ ok: false, seq: 40, problem: 'decode_error' });
  });

  it('a record deleted from the middle: seq_gap naming it', async () => {
    const copy = copyDir(dir);
    rawEdit(copy, ({ events }) => {
      events.removeSync(17);
    });
    expect(await verifyCopy(copy, early)).toMatchObject({ ok: false, seq: 17, problem: 'seq_gap' });
  });

  it('the by-doc index altered (an entry removed, moved to another document, or added): index_differs at its seq; history would have lied', async () => {
    // Seq 12 is an upsert of d5 (seq i writes d(i % 7)).
    const removed = copyDir(dir);
    rawEdit(removed, ({ byDoc }) => byDoc.removeSync(['c', 'd5', 12]));
    const before = await EventLog.open({ dir: removed, readOnly: true, logger: () => {} });
    expect(before.history('c', 'd5').map((e) => e.seq)).not.toContain(12);
    await before.close();
    expect(await verifyCopy(removed)).toMatchObject({ ok: false, seq: 12, problem: 'index_differs', message: expect.stringContaining('lacks seq 12') });
    const moved = copyDir(dir);
    rawEdit(moved, ({ byDoc }) => {
      byDoc.removeSync(['c', 'd5', 12]);
      byDoc.putSync(['c', 'd6', 12], Buffer.alloc(0));
    });
    expect(await verifyCopy(moved, early)).toMatchObject({ ok: false, seq: 12, problem: 'index_differs' });
    const added = copyDir(dir);
    rawEdit(added, ({ byDoc }) => byDoc.putSync(['c', 'ghost', 5], Buffer.alloc(0)));
    expect(await verifyCopy(added)).toMatchObject({ ok: false, seq: 5, problem: 'index_differs', message: expect.stringContaining('under c/ghost') });
  });

  it('the last records deleted (and the stored head rewritten to match): the later digest is beyond the head', async () => {
    const copy = copyDir(dir);
    rawEdit(copy, ({ events, meta }) => {
      for (let s = 31; s <= 40; s++) events.removeSync(s);
      const h = events.get(30);
      meta.putSync('head', { seq: 30, ts: 0, hash: Buffer.from(h.subarray(32, 64)) });
    });
    // The early digest (seq 20) is still extended by the truncated chain, but the segments hold
    // what LMDB lost; the late digest is beyond the head.
    expect(await verifyCopy(copy, early)).toMatchObject({ ok: false, seq: 31, problem: 'segments_differ' });
    expect(await verifyCopy(copy, late)).toMatchObject({ ok: false, seq: 40, problem: 'digest_beyond_head' });
  });

  it('the last record deleted but the stored head left alone: head_mismatch', async () => {
    const copy = copyDir(dir);
    rawEdit(copy, ({ events }) => {
      events.removeSync(40);
    });
    const r = await verifyCopy(copy, early);
    expect(r.ok).toBe(false);
    expect(r).toMatchObject({ problem: 'head_mismatch' });
  });

  it('a rewrite of LMDB that re-chains every later hash: the write-ahead segments differ from seq 12; and against a digest taken before it', async () => {
    const copy = copyDir(dir);
    rewriteHistory(copy, 12, (e) => (e.type === 'vector.upserted' ? { ...e, body: { ...e.body, metadata: { i: 12, tag: 'forged' } } } : e));
    expect(await verifyCopy(copy)).toMatchObject({ ok: false, seq: 12, problem: 'segments_differ', checked: 40 });
    expect(await verifyCopy(copy, early)).toMatchObject({ ok: false, seq: 20, problem: 'digest_mismatch' });
    expect(await verifyCopy(copy, late)).toMatchObject({ ok: false, seq: 40, problem: 'digest_mismatch' });
  });

  it('a rewrite of both copies (LMDB re-chained, the segments rebuilt from it) verifies alone, but not against a digest taken before it', async () => {
    const copy = copyDir(dir);
    rewriteHistory(copy, 12, (e) => (e.type === 'vector.upserted' ? { ...e, body: { ...e.body, metadata: { i: 12, tag: 'forged' } } } : e));
    // A writable open of a data dir without segments writes them from LMDB.
    fs.rmSync(walDirOf(copy), { recursive: true });
    await (await EventLog.open({ dir: copy, logger: () => {} })).close();
    expect(await verifyCopy(copy)).toMatchObject({ ok: true, checked: 40 }); // self-consistent
    expect(await verifyCopy(copy, early)).toMatchObject({ ok: false, seq: 20, problem: 'digest_mismatch' });
    expect(await verifyCopy(copy, late)).toMatchObject({ ok: false, seq: 40, problem: 'digest_mismatch' });
  });

  it('a record altered in the write-ahead segments only (its frame re-sealed, CRC good): segments_differ at it', async () => {
    const copy = copyDir(dir);
    editSegmentRecord(copy, 15, (rec) => {
      const at = rec.indexOf('MARKERactorXYZ');
      expect(at).toBeGreaterThan(0);
      rec[at] = 'N'.charCodeAt(0);
    });
    expect(await verifyCopy(copy, early)).toMatchObject({ ok: false, seq: 15, problem: 'segments_differ', checked: 40 });
    expect(await verifyCopy(copy, late)).toMatchObject({ ok: false, seq: 15, problem: 'segments_differ' });
  });

  it('a flipped byte in a segment (its frame CRC fails) or the segments removed: segments_missing from there', async () => {
    const flipped = copyDir(dir);
    editSegmentRecord(flipped, 23, (rec) => (rec[70] ^= 1), false);
    expect(await verifyCopy(flipped, early)).toMatchObject({ ok: false, seq: 23, problem: 'segments_missing' });
    const removed = copyDir(dir);
    fs.rmSync(walDirOf(removed), { recursive: true });
    expect(await verifyCopy(removed, late)).toMatchObject({ ok: false, seq: 1, problem: 'segments_missing' });
  });

  it('a flipped byte in the LMDB file itself: hash_mismatch at that event', async () => {
    const copy = copyDir(dir);
    const file = path.join(copy, 'log.mdb');
    const buf = fs.readFileSync(file);
    const marker = Buffer.from('MARKERactorXYZ');
    let at = buf.indexOf(marker);
    let n = 0;
    while (at >= 0) {
      buf[at] = 'N'.charCodeAt(0); // 'M' -> 'N' (also in any stale copy of the page)
      n += 1;
      at = buf.indexOf(marker, at + 1);
    }
    expect(n).toBeGreaterThan(0);
    fs.writeFileSync(file, buf);
    expect(await verifyCopy(copy, early)).toMatchObject({ ok: false, seq: 15, problem: 'hash_mismatch' });
  });
});
