// A record whose bytes in log.mdb were damaged on disk (LMDB keeps no checksums): its reads were
// served the altered value as if acknowledged, live and as of any instant. Now each record read
// is checked against its own hash, and a damaged one is read from the write-ahead segments; a
// writer puts that copy back into LMDB.
import fs from 'node:fs';
import path from 'node:path';
import { open as openLmdb } from 'lmdb';
import { describe, expect, it } from 'vitest';
import { EventLog, isLogError, walDirOf } from '@kyrodb/log';
import { created, quietLogger, tempDir } from './helpers.js';

/** A closed log of `n` upserts; the record (hex) of `seq`. */
async function makeLog(dir: string, n: number, seq: number): Promise<Buffer> {
  const log = await EventLog.open({ dir, logger: quietLogger() });
  try {
    await log.append([created('c', 16)]);
    for (let i = 0; i < n; i++) await log.append([{ type: 'vector.upserted', collection: 'c', body: { id: `d${i}`, vector: new Float32Array(16).fill(i + 0.5) } }]);
    return Buffer.from(log.getRecord(seq)!);
  } finally {
    await log.close();
  }
}

/** Flips one bit of the record's vector in every copy of it log.mdb holds (LMDB may keep an older page too); how many. */
function flipInLmdb(dir: string, record: Buffer): number {
  const file = path.join(dir, 'log.mdb');
  const bytes = fs.readFileSync(file);
  let copies = 0;
  for (let at = bytes.indexOf(record); at >= 0; at = bytes.indexOf(record, at + 1)) {
    bytes[at + record.length - 8] ^= 0x01;
    copies += 1;
  }
  fs.writeFileSync(file, bytes);
  return copies;
}

describe('a record damaged in log.mdb', () => {
  it('is read from the write-ahead segments (read-only: as it is; a writer puts it back), never served altered', async () => {
    const dir = tempDir();
    const seq = 20;
    const record = await makeLog(dir, 40, seq);
    const want = await (async () => {
      const log = await EventLog.open({ dir, readOnly: true, logger: quietLogger() });
      try {
        return log.get(seq)!;
      } finally {
        await log.close();
      }
    })();
    expect(flipInLmdb(dir, record)).toBeGreaterThan(0);

    const lines: string[] = [];
    const reader = await EventLog.open({ dir, readOnly: true, logger: quietLogger(lines) });
    try {
      expect(reader.getRecord(seq)!.equals(record)).toBe(false); // LMDB's copy is damaged…
      expect(reader.get(seq)).toEqual(want); // …and never served
      expect([...reader.read(seq, seq)]).toEqual([want]);
      expect(lines.join('\n')).toMatch(new RegExp(`seq ${seq}: LMDB's copy of the record was damaged .* read from the write-ahead segments \\(a writer's read puts it back\\)`));
      expect(reader.verify()).toMatchObject({ ok: false, seq, problem: 'hash_mismatch' });
    } finally {
      await reader.close();
    }

    const writerLines: string[] = [];
    const writer = await EventLog.open({ dir, logger: quietLogger(writerLines) });
    try {
      expect([...writer.read(1)].find((e) => e.seq === seq)).toEqual(want);
      expect(writerLines.join('\n')).toMatch(new RegExp(`seq ${seq}: LMDB's copy of the record was damaged .* put back into LMDB`));
      expect(writer.getRecord(seq)!.equals(record)).toBe(true);
      expect(writer.verify()).toMatchObject({ ok: true });
    } finally {
      await writer.close();
    }
  });

  it('with no good copy in the segments either: LOG_CORRUPT_RECORD naming the seq, never the altered value', async () => {
    const dir = tempDir();
    const seq = 7;
    const record = await makeLog(dir, 10, seq);
    flipInLmdb(dir, record);
    fs.rmSync(walDirOf(dir), { recursive: true });
    const reader = await EventLog.open({ dir, readOnly: true, logger: quietLogger() });
    try {
      expect(() => reader.get(seq)).toThrow(expect.objectContaining({ code: 'LOG_CORRUPT_RECORD', message: expect.stringMatching(new RegExp(`seq ${seq}: .* no good copy of it: restore the data dir from a backup`)) }));
      expect(() => [...reader.read(1)]).toThrow(expect.toSatisfy((e: unknown) => isLogError(e, 'LOG_CORRUPT_RECORD')));
    } finally {
      await reader.close();
    }
  });
});

describe('a log.mdb that lost commits (holes below its head)', () => {
  it('is moved aside at a writer\'s open and rebuilt from the write-ahead segments: every seq back, verify ok', async () => {
    const dir = tempDir();
    await makeLog(dir, 60, 1);
    const want = await (async () => {
      const log = await EventLog.open({ dir, readOnly: true, logger: quietLogger() });
      try {
        return [...log.readRecords()].map((r) => r.record.toString('hex'));
      } finally {
        await log.close();
      }
    })();
    // A hole as a lost commit leaves it: records 30..33 gone, the head past them.
    const env = openLmdb({ path: path.join(dir, 'log.mdb'), noSubdir: true, maxDbs: 8 });
    const events = env.openDB<Buffer, number>({ name: 'events', encoding: 'binary' });
    for (const seq of [30, 31, 32, 33]) events.removeSync(seq);
    await env.close();
    const lines: string[] = [];
    const log = await EventLog.open({ dir, logger: quietLogger(lines) });
    try {
      expect(lines.join('\n')).toMatch(/log\.mdb holds 57 records for seqs 1\.\.61: commits were lost from it: moved aside to .*log\.mdb\.damaged-.*rebuilding LMDB from the write-ahead segments/);
      expect([...log.readRecords()].map((r) => r.record.toString('hex'))).toEqual(want);
      expect(log.verify()).toMatchObject({ ok: true, checked: 61 });
      expect(fs.readdirSync(dir).filter((f) => f.startsWith('log.mdb.damaged-'))).toHaveLength(1);
    } finally {
      await log.close();
    }
  });
});
