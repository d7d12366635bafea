import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { EventLog, GENESIS_HASH, encodeFrame, listSegments, sealEvent, seededRandom, segmentName, segmentRuns, segmentsChain, walDirOf } from '@kyrodb/log';
import type { EventInput, RecordRun } from '@kyrodb/log';
import { created, metricValue, openTestLog, quietLogger, randomVector, tempDir, upsert, walSeqs } from './helpers.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function batch(from: number, n: number): EventInput[] {
  return Array.from({ length: n }, (_, i) => upsert(`d${from + i}`, randomVector(8)));
}

/** A log of `batches` appends of `size` events (plus the create), closed. Returns its dir and final head. */
async function filledLog(batches: number, size: number, segmentBytes?: number): Promise<{ dir: string; head: { seq: number; hash: string }; ids: string[] }> {
  const { log, dir } = await openTestLog(segmentBytes !== undefined ? { segmentBytes } : {});
  dirs.push(dir);
  await log.append([created('c', 8)]);
  for (let b = 0; b < batches; b++) await log.append(batch(b * size, size));
  const h = log.head();
  const ids = idsOf(log);
  await log.close();
  return { dir, head: { seq: h.seq, hash: Buffer.from(h.hash).toString('hex') }, ids };
}

function idsOf(log: EventLog): string[] {
  return [...log.read()].flatMap((e) => (e.type === 'vector.upserted' ? [e.body.id] : []));
}

async function reopen(dir: string, lines: string[] = [], segmentBytes?: number): Promise<EventLog> {
  return EventLog.open({ dir, logger: quietLogger(lines), ...(segmentBytes !== undefined ? { segmentBytes } : {}) });
}

function headOf(log: EventLog): { seq: number; hash: string } {
  const h = log.head();
  return { seq: h.seq, hash: Buffer.from(h.hash).toString('hex') };
}

/** The end of the last non-zero byte of a segment's bytes: where its written frames end. */
function dataEnd(b: Buffer): number {
  let i = b.length;
  while (i > 0 && b[i - 1] === 0) i--;
  return i;
}

/** The frames of a healthy segment: offset, first seq and record count of each. */
function frameOffsets(b: Buffer): { offset: number; firstSeq: number; count: number }[] {
  const out: { offset: number; firstSeq: number; count: number }[] = [];
  for (let off = 0; off + 24 <= b.length && b.readUInt32LE(off) !== 0; off += 24 + b.readUInt32LE(off + 8)) out.push({ offset: off, firstSeq: b.readDoubleLE(off + 16), count: b.readUInt32LE(off + 4) });
  return out;
}

/** Every byte of a data dir's log files and segments, by relative path. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fs.readdirSync(dir)) if (f.startsWith('log.')) out[f] = fs.readFileSync(path.join(dir, f)).toString('hex');
  for (const f of fs.readdirSync(walDirOf(dir))) out[`wal/${f}`] = fs.readFileSync(path.join(walDirOf(dir), f)).toString('hex');
  return out;
}

describe('write-ahead segments', () => {
  it('every appended record is in the segments, once, in order; segments rotate at segmentBytes', async () => {
    const { dir, head } = await filledLog(40, 5, 2048);
    expect(walSeqs(dir)).toEqual(Array.from({ length: head.seq }, (_, i) => i + 1));
    const segs = listSegments(path.join(dir, 'wal'));
    expect(segs.length).toBeGreaterThan(3);
    expect(segs[0]).toBe(1);
    // each segment is named by its first seq
    for (const s of segs.slice(1)) expect(walSeqs(dir).includes(s)).toBe(true);
  });

  it('segmentsChain: the chain the segments hold; a damaged frame ends it there; a record that does not link is named', async () => {
    const { dir, head } = await filledLog(40, 5, 2048);
    const wal = walDirOf(dir);
    const chainOf = (d: string) => {
      const c = segmentsChain(d);
      return { events: c.events, hash: Buffer.from(c.headHash).toString('hex'), brokenAt: c.brokenAt };
    };
    expect(chainOf(wal)).toEqual({ events: head.seq, hash: head.hash, brokenAt: null });
    // A byte flipped in the first frame of the second segment: its CRC fails, the reading goes
    // on at the next valid frame (the second of that segment), whose first seq does not follow:
    // damage in the middle of the log, named by segment and byte.
    const segs = listSegments(wal);
    expect(segs.length).toBeGreaterThan(3);
    const file = path.join(wal, segmentName(segs[1]!));
    const b = fs.readFileSync(file);
    const second = frameOffsets(b)[1]!;
    b[40] ^= 0xff;
    fs.writeFileSync(file, b);
    const cut = segmentsChain(wal);
    expect([cut.events, cut.brokenAt, cut.damage]).toEqual([segs[1]! - 1, second.firstSeq, { segment: segmentName(segs[1]!), offset: 0 }]);
    // Frames whose CRCs hold, with a record sealed after the wrong hash.
    const other = tempDir();
    dirs.push(other);
    const recs: Buffer[] = [];
    let prev: Uint8Array = GENESIS_HASH;
    for (let seq = 1; seq <= 4; seq++) {
      const { event, record } = sealEvent(upsert(`x${seq}`, randomVector(8)), seq, seq, seq === 3 ? new Uint8Array(32).fill(7) : prev);
      recs.push(record);
      prev = event.hash;
    }
    fs.mkdirSync(walDirOf(other));
    fs.writeFileSync(path.join(walDirOf(other), segmentName(1)), Buffer.concat([encodeFrame(recs.slice(0, 2), 1), encodeFrame(recs.slice(2), 3)]));
    expect(chainOf(walDirOf(other))).toEqual({ events: 2, hash: Buffer.from(recs[1]!.subarray(32, 64)).toString('hex'), brokenAt: 3 });
    // A chain that links, in a frame whose header names the wrong first seq: a valid frame that
    // does not follow, read on past (its seqs jump).
    const linked: Buffer[] = [];
    prev = GENESIS_HASH;
    for (let seq = 1; seq <= 4; seq++) {
      const { event, record } = sealEvent(upsert(`y${seq}`, randomVector(8)), seq, seq, prev);
      linked.push(record);
      prev = event.hash;
    }
    fs.writeFileSync(path.join(walDirOf(other), segmentName(1)), Buffer.concat([encodeFrame(linked.slice(0, 2), 1), encodeFrame(linked.slice(2), 4)]));
    expect(chainOf(walDirOf(other))).toEqual({ events: 2, hash: Buffer.from(linked[1]!.subarray(32, 64)).toString('hex'), brokenAt: 4 });
  });

  it('a machine crash (the open-marker names another boot): LMDB is rebuilt from the segments, even when damaged', async () => {
    const { dir, head, ids } = await filledLog(30, 10, 4096);
    // the process was killed with the log open, and the machine then rebooted
    fs.writeFileSync(path.join(dir, 'log.open'), JSON.stringify({ pid: 1, bootId: 'a-boot-before-the-crash' }));
    // LMDB's unsynced pages were lost: its file is garbage
    const mdb = path.join(dir, 'log.mdb');
    const bytes = fs.readFileSync(mdb);
    for (let i = 8192; i < bytes.length; i += 97) bytes[i] = (bytes[i]! + 1) & 0xff;
    fs.writeFileSync(mdb, bytes);
    const lines: string[] = [];
    const log = await reopen(dir, lines);
    expect(lines.some((l) => l.includes('rebuilding LMDB'))).toBe(true);
    expect(headOf(log)).toEqual(head);
    expect(log.verify()).toMatchObject({ ok: true, checked: head.seq });
    expect(idsOf(log)).toEqual(ids);
    expect((await log.append([upsert('after', randomVector(8))])).firstSeq).toBe(head.seq + 1);
    await log.close();
    expect(fs.existsSync(path.join(dir, 'log.open'))).toBe(false);
  });

  it('a machine crash with a damaged or missing segment in the middle: the open refuses (LOG_CHAIN_BROKEN) and deletes nothing; LMDB still holds every record', async () => {
    for (const damage of ['flip', 'delete'] as const) {
      const { dir, head, ids } = await filledLog(30, 10, 4096);
      const wal = walDirOf(dir);
      const segs = listSegments(wal);
      expect(segs.length).toBeGreaterThan(3);
      const file = path.join(wal, segmentName(segs[1]!));
      if (damage === 'delete') fs.rmSync(file);
      else {
        const b = fs.readFileSync(file);
        b[40] ^= 0xff;
        fs.writeFileSync(file, b);
      }
      fs.writeFileSync(path.join(dir, 'log.open'), JSON.stringify({ pid: 1, bootId: 'a-boot-before-the-crash' }));
      const before = Object.fromEntries(fs.readdirSync(dir).filter((f) => f.startsWith('log.')).map((f) => [f, fs.readFileSync(path.join(dir, f)).toString('hex')]));
      await expect(reopen(dir)).rejects.toSatisfy((e) => (e as { code?: string }).code === 'LOG_CHAIN_BROKEN' && /unbroken chain only up to seq \d+.*nothing was changed/.test((e as Error).message));
      const after = Object.fromEntries(fs.readdirSync(dir).filter((f) => f.startsWith('log.')).map((f) => [f, fs.readFileSync(path.join(dir, f)).toString('hex')]));
      expect(after).toEqual(before);
      // (Read-only, without the marker: a read-only open after a machine crash refuses too.)
      fs.rmSync(path.join(dir, 'log.open'));
      const ro = await EventLog.open({ dir, readOnly: true, logger: quietLogger() });
      expect(headOf(ro)).toEqual(head);
      expect(idsOf(ro)).toEqual(ids);
      await ro.close();
    }
  });

  it('a machine crash with one bit flipped in the middle of the only segment (valid frames after it): the open refuses (LOG_CHAIN_BROKEN) and changes nothing', async () => {
    const { dir, head, ids } = await filledLog(40, 10); // 401 events, 41 frames, one segment
    const wal = walDirOf(dir);
    expect(listSegments(wal)).toEqual([1]);
    const file = path.join(wal, segmentName(1));
    const b = fs.readFileSync(file);
    const at = Math.floor(dataEnd(b) / 2);
    b[at] ^= 0x10;
    fs.writeFileSync(file, b);
    fs.writeFileSync(path.join(dir, 'log.open'), JSON.stringify({ pid: 1, bootId: 'a-boot-before-the-crash' }));
    const before = snapshot(dir);
    await expect(reopen(dir)).rejects.toSatisfy(
      (e) => (e as { code?: string }).code === 'LOG_CHAIN_BROKEN' && /unbroken chain only up to seq \d+ \(00000000000000000001\.seg is damaged at byte \d+, and valid frames follow it from seq \d+.*nothing was changed/.test((e as Error).message),
    );
    expect(snapshot(dir)).toEqual(before);
    // LMDB still holds every record (read-only, once the marker is gone).
    fs.rmSync(path.join(dir, 'log.open'));
    const ro = await EventLog.open({ dir, readOnly: true, logger: quietLogger() });
    expect(headOf(ro)).toEqual(head);
    expect(idsOf(ro)).toEqual(ids);
    await ro.close();
  });

  it('a process crash, then a bit flipped mid-segment before records LMDB lacks: read-only refuses (LOG_RECOVERY_NEEDED), a writer refuses (LOG_CHAIN_BROKEN); the segment is not cut', async () => {
    const { dir } = await filledLog(40, 10);
    const wal = walDirOf(dir);
    const file = path.join(wal, segmentName(1));
    // LMDB as it was past seq 300: the writer was killed before it had the rest.
    const b = fs.readFileSync(file);
    const frames = frameOffsets(b);
    const at = frames.find((f) => f.firstSeq > 100 && f.firstSeq < 200)!;
    const cut = tempDir();
    dirs.push(cut);
    fs.mkdirSync(walDirOf(cut));
    fs.writeFileSync(path.join(walDirOf(cut), segmentName(1)), b.subarray(0, frames.find((f) => f.firstSeq > 300)!.offset));
    const log = await reopen(cut); // an LMDB of the first 300-odd records
    const lmdbHead = headOf(log).seq;
    await log.close();
    expect(lmdbHead).toBeGreaterThan(300);
    expect(lmdbHead).toBeLessThan(401);
    fs.copyFileSync(path.join(cut, 'log.mdb'), path.join(dir, 'log.mdb'));
    fs.rmSync(path.join(dir, 'log.mdb-lock'), { force: true });
    b[at.offset + 40] ^= 0x01;
    fs.writeFileSync(file, b);
    const boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    fs.writeFileSync(path.join(dir, 'log.open'), JSON.stringify({ pid: 2 ** 22 + 1, bootId: boot }));
    const before = snapshot(dir);
    await expect(EventLog.open({ dir, readOnly: true, logger: quietLogger() })).rejects.toMatchObject({ code: 'LOG_RECOVERY_NEEDED' });
    await expect(reopen(dir)).rejects.toSatisfy(
      (e) => (e as { code?: string }).code === 'LOG_CHAIN_BROKEN' && new RegExp(`00000000000000000001\\.seg is damaged at byte ${at.offset} \\(after seq ${at.firstSeq - 1}\\), and valid frames follow.*nothing was changed`).test((e as Error).message),
    );
    const after = snapshot(dir);
    expect(after['wal/' + segmentName(1)]).toEqual(before['wal/' + segmentName(1)]);
    expect(after['log.open']).toEqual(before['log.open']);
  });

  it('a machine crash with the very last frame damaged (a torn tail, nothing valid after it): LMDB is rebuilt without it', async () => {
    const { dir, head } = await filledLog(40, 10);
    const file = path.join(walDirOf(dir), segmentName(1));
    const b = fs.readFileSync(file);
    const last = frameOffsets(b).pop()!;
    expect(last.firstSeq + last.count - 1).toBe(head.seq);
    b[dataEnd(b) - 10] ^= 0x10;
    fs.writeFileSync(file, b);
    fs.writeFileSync(path.join(dir, 'log.open'), JSON.stringify({ pid: 1, bootId: 'a-boot-before-the-crash' }));
    const lines: string[] = [];
    const log = await reopen(dir, lines);
    expect(lines.some((l) => l.includes('rebuilding LMDB'))).toBe(true);
    expect(log.head().seq).toBe(last.firstSeq - 1);
    expect(log.verify().ok).toBe(true);
    expect((await log.append([upsert('after', randomVector(8))])).firstSeq).toBe(last.firstSeq);
    await log.close();
    expect(walSeqs(dir)).toEqual(Array.from({ length: last.firstSeq }, (_, i) => i + 1));
  });

  it('a machine crash that tore the second-to-last frame while the last (written beside it, never acknowledged) reached the disk: a torn tail, LMDB rebuilt without both; two frames after the damage are refused', async () => {
    for (const followers of [1, 2]) {
      const { dir } = await filledLog(40, 10);
      const file = path.join(walDirOf(dir), segmentName(1));
      const b = fs.readFileSync(file);
      const frames = frameOffsets(b);
      const torn = frames[frames.length - 1 - followers]!;
      b[torn.offset + 40] ^= 0x10;
      fs.writeFileSync(file, b);
      fs.writeFileSync(path.join(dir, 'log.open'), JSON.stringify({ pid: 1, bootId: 'a-boot-before-the-crash' }));
      if (followers === 1) {
        const log = await reopen(dir);
        expect(log.head().seq).toBe(torn.firstSeq - 1);
        expect(log.verify().ok).toBe(true);
        expect((await log.append([upsert('after', randomVector(8))])).firstSeq).toBe(torn.firstSeq);
        await log.close();
        expect(walSeqs(dir)).toEqual(Array.from({ length: torn.firstSeq }, (_, i) => i + 1));
      } else {
        const before = snapshot(dir);
        await expect(reopen(dir)).rejects.toMatchObject({ code: 'LOG_CHAIN_BROKEN' });
        expect(snapshot(dir)).toEqual(before);
      }
    }
  });

  it('after a clean stop, a bit flipped mid-segment (valid frames after it, all in LMDB): the writer open cuts the segment there and writes the rest back from LMDB, saying so', async () => {
    const { dir, head } = await filledLog(40, 10);
    const file = path.join(walDirOf(dir), segmentName(1));
    const b = fs.readFileSync(file);
    const frames = frameOffsets(b);
    const hit = frames[Math.floor(frames.length / 2)]!;
    b[hit.offset + 40] ^= 0x10;
    fs.writeFileSync(file, b);
    const lines: string[] = [];
    const log = await reopen(dir, lines);
    expect(lines.some((l) => l.includes('was damaged at byte') && l.includes('rewritten from there'))).toBe(true);
    expect(headOf(log)).toEqual(head);
    expect(log.verify().ok).toBe(true);
    await log.close();
    expect(walSeqs(dir)).toEqual(Array.from({ length: head.seq }, (_, i) => i + 1));
    expect(segmentsChain(walDirOf(dir))).toMatchObject({ events: head.seq, brokenAt: null });
  });

  it('a process crash after a frame was synced but before LMDB had it: the records are applied at open', async () => {
    const { dir, head, ids } = await filledLog(12, 7);
    // LMDB as it was before the last appends reached it: here, not at all
    fs.rmSync(path.join(dir, 'log.mdb'));
    fs.writeFileSync(path.join(dir, 'log.open'), JSON.stringify({ pid: 1, bootId: fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() }));
    const lines: string[] = [];
    const log = await reopen(dir, lines);
    expect(lines.some((l) => l.includes('applying write-ahead records'))).toBe(true);
    expect(headOf(log)).toEqual(head);
    expect(idsOf(log)).toEqual(ids);
    expect(log.verify().ok).toBe(true);
    await log.close();
  });

  it('a read-only open of a crashed writer\'s log refuses (LOG_RECOVERY_NEEDED) while the segments hold events LMDB lacks, or after a machine crash; never beside a live writer', async () => {
    const { log, dir } = await openTestLog();
    dirs.push(dir);
    await log.append([created('c', 8)]);
    await log.append(batch(0, 20));
    await log.close();
    const early = fs.readFileSync(path.join(dir, 'log.mdb')); // LMDB as of seq 21
    const again = await reopen(dir);
    await again.append(batch(20, 5));
    const head = headOf(again);
    await again.close();
    // The writer (pid 1 is never ours) was killed before LMDB had seqs 22..26; its marker is left.
    fs.writeFileSync(path.join(dir, 'log.mdb'), early);
    fs.rmSync(path.join(dir, 'log.mdb-lock'), { force: true });
    const boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const refused = async (bootId: string, what: RegExp): Promise<void> => {
      fs.writeFileSync(path.join(dir, 'log.open'), JSON.stringify({ pid: 2 ** 22 + 1, bootId }));
      await expect(EventLog.open({ dir, readOnly: true, logger: quietLogger() })).rejects.toSatisfy((e) => (e as { code?: string }).code === 'LOG_RECOVERY_NEEDED' && what.test((e as Error).message));
    };
    await refused(boot, /the write-ahead segments hold seq 22 and on, LMDB ends at 21/);
    await refused('a-boot-before-the-crash', /the machine stopped/);
    // A writer's open applies them; then read-only opens see every event.
    fs.writeFileSync(path.join(dir, 'log.open'), JSON.stringify({ pid: 2 ** 22 + 1, bootId: boot }));
    await (await reopen(dir)).close();
    const ro = await EventLog.open({ dir, readOnly: true, logger: quietLogger() });
    expect(headOf(ro)).toEqual(head);
    await ro.close();
  });

  it('a torn frame at the end (a write that never completed, never acknowledged) is zeroed at open', async () => {
    const { dir, head } = await filledLog(5, 4);
    const segs = listSegments(path.join(dir, 'wal'));
    const file = path.join(dir, 'wal', segmentName(segs[segs.length - 1]!));
    const size = fs.statSync(file).size;
    // half of a copy of the file's first frame, appended
    const first = fs.readFileSync(file).subarray(0, 60);
    fs.appendFileSync(file, first);
    const log = await reopen(dir);
    // the torn bytes are zeros again: the segment's end is where its frames end
    expect(fs.readFileSync(file).subarray(size).every((b) => b === 0)).toBe(true);
    expect(headOf(log)).toEqual(head);
    const r = await log.append([upsert('next', randomVector(8))]);
    expect(r.firstSeq).toBe(head.seq + 1);
    await log.close();
    expect(walSeqs(dir)).toEqual(Array.from({ length: head.seq + 1 }, (_, i) => i + 1));
  });

  it('a data dir without segments (written before they existed) gets them from LMDB at open', async () => {
    const { dir, head, ids } = await filledLog(8, 5);
    fs.rmSync(path.join(dir, 'wal'), { recursive: true });
    let log = await reopen(dir);
    expect(headOf(log)).toEqual(head);
    await log.close();
    expect(walSeqs(dir)).toEqual(Array.from({ length: head.seq }, (_, i) => i + 1));
    // and they are complete: LMDB can be rebuilt from them alone
    fs.rmSync(path.join(dir, 'log.mdb'));
    log = await reopen(dir);
    expect(headOf(log)).toEqual(head);
    expect(idsOf(log)).toEqual(ids);
    await log.close();
  });

  it('segments that disagree with LMDB (same seq, another hash) refuse to open: LOG_CHAIN_BROKEN', async () => {
    const a = await filledLog(3, 3);
    const b = await filledLog(3, 3); // same shape, other vectors: other hashes
    fs.rmSync(path.join(a.dir, 'wal'), { recursive: true });
    fs.cpSync(path.join(b.dir, 'wal'), path.join(a.dir, 'wal'), { recursive: true });
    await expect(reopen(a.dir)).rejects.toMatchObject({ code: 'LOG_CHAIN_BROKEN' });
  });

  it('a failed sync right after a rotation removes the new segment; the retry lands once', async () => {
    const { log, dir, failpoints, registry } = await openTestLog({ segmentBytes: 1500, wal: { retryBaseDelayMs: 1, retryMaxDelayMs: 2 } });
    dirs.push(dir);
    await log.append([created('c', 8)]);
    let n = 0;
    while (listSegments(path.join(dir, 'wal')).length < 2) await log.append(batch(n++, 1));
    const before = listSegments(path.join(dir, 'wal'));
    // fill the current segment close to its size, then fail the sync of the frame that rotates
    failpoints.set('wal.flush', '1*error(EIO)');
    const big = await log.append(batch(1000, 12));
    expect(await metricValue(registry, 'wal_retry_attempts_total')).toBe(1);
    const seqs = walSeqs(dir);
    expect(seqs).toEqual(Array.from({ length: big.lastSeq }, (_, i) => i + 1));
    expect(listSegments(path.join(dir, 'wal')).length).toBeGreaterThanOrEqual(before.length);
    expect(log.verify().ok).toBe(true);
    await log.close();
  });

  it('cursors live beside the log and survive a rebuild of LMDB', async () => {
    const dir = tempDir();
    dirs.push(dir);
    let log = await reopen(dir);
    await log.append([created('c', 8)]);
    await log.setCursor('backup.continuous', { seq: 1, hash: 'ab' });
    await log.close();
    fs.rmSync(path.join(dir, 'log.mdb'));
    log = await reopen(dir);
    expect(log.getCursor('backup.continuous')).toEqual({ seq: 1, hash: 'ab' });
    expect(log.head().seq).toBe(1);
    await log.close();
  });
});

/** The records of `runs`, as [seq, hex] (copied: a run's bytes are valid only until the next is read), checking each run's framing. */
async function recordsOf(runs: AsyncIterable<RecordRun>): Promise<[number, string][]> {
  const out: [number, string][] = [];
  for await (const r of runs) {
    expect(r.count).toBeGreaterThan(0);
    let p = r.start;
    for (let i = 0; i < r.count; i++) {
      const len = r.buf.readUInt32LE(p);
      out.push([r.firstSeq + i, r.buf.toString('hex', p + 4, p + 4 + len)]);
      p += 4 + len;
    }
    expect(p).toBe(r.end);
  }
  return out;
}

/** The records recordRuns gives for from..to (see recordsOf). */
function runRecords(log: EventLog, from: number, to: number, source: 'auto' | 'segments' | 'lmdb'): Promise<[number, string][]> {
  return recordsOf(log.recordRuns(from, to, source));
}

function lmdbRecords(log: EventLog, from: number, to: number): [number, string][] {
  return [...log.readRecords(from, to)].map((r) => [r.seq, r.record.toString('hex')]);
}

describe('recordRuns', () => {
  it('gives every record of a range exactly as LMDB holds it, read from the segments (frames cut at both ends, across rotations) or from LMDB', async () => {
    const { dir, head } = await filledLog(40, 5, 2048);
    const log = await reopen(dir, [], 2048);
    try {
      expect(listSegments(walDirOf(dir)).length).toBeGreaterThan(3);
      const n = head.seq;
      const ranges: [number, number][] = [[1, n], [0, n + 10], [1, 1], [n, n], [3, 17], [7, 7], [2, n - 1], [5, 5 + 60], [12, 11]];
      const random = seededRandom(21);
      for (let i = 0; i < 20; i++) {
        const a = 1 + Math.floor(random() * n);
        ranges.push([a, a + Math.floor(random() * (n - a + 1))]);
      }
      for (const [a, b] of ranges) {
        const want = lmdbRecords(log, a, b);
        // The segments alone (recordRuns would fill in from LMDB what they missed) hold all of it.
        expect(await recordsOf(segmentRuns(walDirOf(dir), Math.max(1, a), b)), `${a}..${b} from the segments alone`).toEqual(want);
        expect(await runRecords(log, a, b, 'segments'), `${a}..${b} from the segments`).toEqual(want);
        expect(await runRecords(log, a, b, 'lmdb'), `${a}..${b} from LMDB`).toEqual(want);
        expect(await runRecords(log, a, b, 'auto'), `${a}..${b}`).toEqual(want);
      }
      expect(lmdbRecords(log, 1, n)).toHaveLength(n);
    } finally {
      await log.close();
    }
  });

  it('reads from LMDB what the segments do not hold: after a damaged frame, a missing segment, or with no segments at all', async () => {
    const { dir, head } = await filledLog(40, 5, 2048);
    const log = await EventLog.open({ dir, readOnly: true, logger: quietLogger() });
    const wal = walDirOf(dir);
    try {
      const want = lmdbRecords(log, 1, head.seq);
      const segs = listSegments(wal);
      // A flipped byte in the second segment's first frame: its CRC fails.
      const file = path.join(wal, segmentName(segs[1]!));
      const b = fs.readFileSync(file);
      const second = frameOffsets(b)[1]!;
      b[40] ^= 0xff;
      fs.writeFileSync(file, b);
      expect(segmentsChain(wal).brokenAt).toBe(second.firstSeq);
      // The segments alone stop quietly before the damaged frame; recordRuns reads the rest from LMDB.
      expect(await recordsOf(segmentRuns(wal, 1, head.seq))).toEqual(want.slice(0, segs[1]! - 1));
      expect(await runRecords(log, 1, head.seq, 'segments')).toEqual(want);
      expect(await runRecords(log, segs[1]! + 1, head.seq, 'segments')).toEqual(want.slice(segs[1]));
      // The third segment gone: a gap in the segments.
      fs.rmSync(path.join(wal, segmentName(segs[2]!)));
      expect(await runRecords(log, 1, head.seq, 'segments')).toEqual(want);
      // No segments.
      fs.rmSync(wal, { recursive: true });
      expect(await runRecords(log, 1, head.seq, 'segments')).toEqual(want);
      expect(await runRecords(log, 4, 9, 'auto')).toEqual(want.slice(3, 9));
    } finally {
      await log.close();
    }
  });
});
