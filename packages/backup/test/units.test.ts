import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FRAME_HEADER_BYTES, sealEvent, GENESIS_HASH, encodeFrame, frameRecordCount, splitRun, toHex, type EventInput, type RecordRun } from '@kyrodb/log';
import { FRAME_RECORD_BYTES, SourceOpener, type SourceSpec } from '../src/fileCodec.js';
import { BackupErrorCodes, BackupError, SegmentBuilder, claimState, decodeObject, decodeSegment, describePlan, encodeObject, encodeSegment, extendOverSegments, historyClaimKey, historyClaimSeq, isBackupError, parentClaimKey, parseKey, parseParentClaims, parseTagClaims, planRestore, planRetention, restoreSpaceNeeded, segmentKey, staleTagClaims, tagClaimKey, tagHolder, type BackupFile, type BackupManifest, type SegmentInfo } from '@kyrodb/backup';

describe('errors', () => {
  it('every code is documented in errors.ts and used with its own name', () => {
    const src = fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'errors.ts'), 'utf8');
    for (const code of Object.keys(BackupErrorCodes)) {
      expect(code).toMatch(/^BACKUP_[A-Z_]+$/);
      expect(src).toMatch(new RegExp(`/\\*\\*[^*]*\\*/\\s*${code}:`));
    }
    const e = new BackupError('BACKUP_NOT_FOUND', 'x', { a: 1 });
    expect(isBackupError(e, 'BACKUP_NOT_FOUND')).toBe(true);
    expect(isBackupError(e, 'BACKUP_CHAIN_GAP')).toBe(false);
    expect(e.details).toEqual({ a: 1 });
  });
});

function records(n: number, from = 1, prev: Uint8Array = GENESIS_HASH, dim = 3): { seq: number; ts: number; record: Buffer }[] {
  const out = [];
  for (let seq = from; seq < from + n; seq++) {
    const vector = new Float32Array(dim).fill(1);
    vector[0] = seq;
    const input: EventInput = { type: 'vector.upserted', collection: 'c', body: { id: `d${seq}`, vector } };
    const { event, record } = sealEvent(input, seq, 1_700_000_000_000_000 + seq * 1000, prev);
    prev = event.hash;
    out.push({ seq, ts: event.ts, record });
  }
  return out;
}

describe('segments and object wrapping', () => {
  it('decode ∘ encode = id for segments, through every compression/encryption combination', () => {
    const recs = records(50);
    const { body, header } = encodeSegment(recs);
    expect(header).toMatchObject({ first_seq: 1, last_seq: 50, count: 50, prev_hash: toHex(GENESIS_HASH) });
    const key = parseKey('44'.repeat(32));
    for (const comp of ['zstd', 'none'] as const) {
      for (const k of [undefined, key]) {
        const stored = encodeObject(body, comp, k);
        const back = decodeSegment(decodeObject(stored, k, 'x'));
        expect(back.entries.map((e) => [e.seq, e.ts, e.record.toString('hex')])).toEqual(recs.map((e) => [e.seq, e.ts, e.record.toString('hex')]));
      }
    }
  });

  it('SegmentBuilder: runs of stored records, however cut, make the very bytes encodeSegment makes; each record seen once, in order', () => {
    const recs = records(60, 11, new Uint8Array(32).fill(7));
    const want = encodeSegment(recs).body;
    for (const frameSize of [1, 4, 60]) {
      for (const cut of [0, 1, 3]) {
        // Frames of `frameSize` records, each further cut every `cut` records (0: not cut).
        const runs: RecordRun[] = [];
        for (let i = 0; i < recs.length; i += frameSize) {
          const f = encodeFrame(recs.slice(i, i + frameSize).map((r) => r.record), recs[i]!.seq);
          let r: RecordRun | undefined = { buf: f, firstSeq: recs[i]!.seq, count: Math.min(frameSize, recs.length - i), start: FRAME_HEADER_BYTES, end: f.length };
          while (r !== undefined) {
            const [head, rest]: [RecordRun, RecordRun | undefined] = cut > 0 ? splitRun(r, cut) : [r, undefined];
            runs.push(head);
            r = rest;
          }
        }
        const seen: number[] = [];
        const b = new SegmentBuilder(11, recs.length, (f) => seen.push(f.seq));
        for (const r of runs) b.add(r);
        const { body, header } = b.finish();
        expect(body.equals(want), `frames of ${frameSize}, cut every ${cut}`).toBe(true);
        expect(header).toEqual(encodeSegment(recs).header);
        expect(seen).toEqual(recs.map((r) => r.seq));
      }
    }
    // More records than expected grow the buffer; the bytes are the same.
    const small = new SegmentBuilder(11, 2);
    const f = encodeFrame(recs.map((r) => r.record), 11);
    small.add({ buf: f, firstSeq: 11, count: recs.length, start: FRAME_HEADER_BYTES, end: f.length });
    expect(small.finish().body.equals(want)).toBe(true);
  });

  it('SegmentBuilder refuses a record out of seq order (BACKUP_CHAIN_GAP) and lengths that do not fill the run (BACKUP_CORRUPT)', () => {
    const recs = records(5);
    const f = encodeFrame(recs.map((r) => r.record), 1);
    const run: RecordRun = { buf: f, firstSeq: 1, count: 5, start: FRAME_HEADER_BYTES, end: f.length };
    expect(() => new SegmentBuilder(2, 5).add(run)).toThrow(expect.objectContaining({ code: 'BACKUP_CHAIN_GAP' }) as Error);
    expect(() => new SegmentBuilder(1, 5).add({ ...run, count: 4 })).toThrow(expect.objectContaining({ code: 'BACKUP_CORRUPT' }) as Error);
    expect(() => new SegmentBuilder(1, 5).add({ ...run, end: run.end - 1 })).toThrow(expect.objectContaining({ code: 'BACKUP_CORRUPT' }) as Error);
    expect(() => new SegmentBuilder(1, 5).finish()).toThrow(expect.objectContaining({ code: 'BACKUP_INVALID_ARGUMENT' }) as Error);
  });

  it('a truncated segment body is BACKUP_CORRUPT; a flipped ciphertext byte is BACKUP_DECRYPT_FAILED', () => {
    const { body } = encodeSegment(records(5));
    expect(() => decodeSegment(body.subarray(0, body.length - 3))).toThrow(expect.objectContaining({ code: 'BACKUP_CORRUPT' }) as Error);
    const key = parseKey('55'.repeat(32));
    const enc = encodeObject(body, 'zstd', key);
    enc[30]! ^= 1;
    expect(() => decodeObject(enc, key, 'x')).toThrow(expect.objectContaining({ code: 'BACKUP_DECRYPT_FAILED' }) as Error);
  });
});

function manifest(id: string, type: 'full' | 'incremental', parent: string | null, from: number, to: number, created: string, extra: Partial<BackupManifest> = {}): BackupManifest {
  return { backup_id: id, type, parent, created, from_seq: from, to_seq: to, from_ts: from * 10, to_ts: to * 10, prev_hash: `h${from - 1}`, head_hash: `h${to}`, event_count: to - from + 1, vector_count: 0, collections: {}, checkpoint_seq: null, files: [], format_version: 1, compression: 'zstd', encryption: null, ...extra };
}

describe('planRestore (pure)', () => {
  const full = manifest('f1', 'full', null, 1, 100, '2026-01-01T00:00:00Z', { prev_hash: toHex(GENESIS_HASH) });
  const inc = manifest('i1', 'incremental', 'f1', 101, 150, '2026-01-01T01:00:00Z');
  const segs: SegmentInfo[] = [
    { key: 'segments/a', first_seq: 1, last_seq: 120 },
    { key: 'segments/b', first_seq: 121, last_seq: 200 },
    { key: 'segments/c', first_seq: 251, last_seq: 300 },
  ];
  it('a backup id plans its chain and expectations', () => {
    const p = planRestore({ manifests: [full, inc], segments: [] }, { backupId: 'i1' });
    expect(p.steps.map((s) => (s.kind === 'backup' ? s.manifest.backup_id : s.segment.key))).toEqual(['f1', 'i1']);
    expect(p.expected).toMatchObject({ to_seq: 150, head_hash: 'h150' });
    expect(describePlan(p)).toContain('incremental backup i1: seq 101..150');
    const empty = manifest('i2', 'incremental', 'i1', 151, 150, '2026-01-01T02:00:00Z');
    expect(describePlan(planRestore({ manifests: [full, inc, empty], segments: [] }, { backupId: 'i2' }))).toContain('incremental backup i2: no new events after seq 150');
  });
  it('PITR inside a full truncates that full; later T extends by incrementals then segments and flags the gap', () => {
    expect(planRestore({ manifests: [full, inc], segments: segs }, { pointInTime: 555 }).steps).toHaveLength(1);
    const p = planRestore({ manifests: [full, inc], segments: segs }, { pointInTime: 2000 });
    expect(p.steps.map((s) => (s.kind === 'backup' ? s.manifest.backup_id : s.segment.key))).toEqual(['f1', 'i1', 'segments/b']);
    expect(p.gapAfterSeq).toBe(200);
    expect(extendOverSegments(0, segs)).toBe(200);
  });
  it('PITR between two backups of a chain (after the last event of one, before the first of the next) needs only the first: no gap', () => {
    // full f1 ends at ts 1000 (seq 100), incremental i1 starts at ts 1010 (seq 101): T = 1005 is the state after seq 100.
    for (const segments of [[], [{ key: 'segments/c', first_seq: 251, last_seq: 300 }]]) {
      const p = planRestore({ manifests: [full, inc], segments }, { pointInTime: 1005 });
      expect(p.steps.map((s) => (s.kind === 'backup' ? s.manifest.backup_id : s.segment.key))).toEqual(['f1']);
      expect(p.toSeq).toBe(100);
      expect(p.gapAfterSeq).toBeNull();
    }
    // T at the incremental's first event takes it (cut inside it); T past a real gap is still flagged.
    expect(planRestore({ manifests: [full, inc], segments: [] }, { pointInTime: 1010 }).steps).toHaveLength(2);
    expect(planRestore({ manifests: [full, inc], segments: [{ key: 'segments/c', first_seq: 251, last_seq: 300 }] }, { pointInTime: 1600 }).gapAfterSeq).toBe(150);
  });
  it('backup id latest plans the backup reaching the highest seq (the newest of equals); an empty store has none', () => {
    const emptyAfter = manifest('i2', 'incremental', 'i1', 151, 150, '2026-01-01T02:00:00Z');
    expect(planRestore({ manifests: [inc, full, emptyAfter], segments: [] }, { backupId: 'latest' }).expected).toMatchObject({ backup_id: 'i2', to_seq: 150 });
    expect(planRestore({ manifests: [full, inc], segments: [] }, { backupId: 'latest' }).steps.map((st) => (st.kind === 'backup' ? st.manifest.backup_id : ''))).toEqual(['f1', 'i1']);
    expect(() => planRestore({ manifests: [], segments: [] }, { backupId: 'latest' })).toThrow(expect.objectContaining({ code: 'BACKUP_NOT_FOUND' }) as Error);
  });
  it('a target of more than one kind (backup id, tag, point in time) is BACKUP_INVALID_ARGUMENT, none of them quietly ignored', () => {
    for (const target of [{ backupId: 'f1', pointInTime: 1005 }, { backupId: 'f1', tag: 't' }, { tag: 't', pointInTime: 1005 }]) {
      expect(() => planRestore({ manifests: [full, inc], segments: [] }, target)).toThrow(expect.objectContaining({ code: 'BACKUP_INVALID_ARGUMENT' }) as Error);
    }
  });
  it('a missing parent is BACKUP_CHAIN_GAP; an unknown tag BACKUP_NOT_FOUND', () => {
    expect(() => planRestore({ manifests: [inc], segments: [] }, { backupId: 'i1' })).toThrow(expect.objectContaining({ code: 'BACKUP_CHAIN_GAP' }) as Error);
    expect(() => planRestore({ manifests: [full], segments: [] }, { tag: 'nope' })).toThrow(expect.objectContaining({ code: 'BACKUP_NOT_FOUND' }) as Error);
  });
});

describe('restoreSpaceNeeded (pure): a lower bound of what a restore writes', () => {
  const ev = (key: string, first: number, last: number, size: number, raw?: number): BackupFile => ({ key, kind: 'events', size, sha256: '', first_seq: first, last_seq: last, ...(raw !== undefined ? { raw_size: raw } : {}) });
  const full = manifest('f1', 'full', null, 1, 100, '2026-01-01T00:00:00Z', { prev_hash: toHex(GENESIS_HASH), files: [ev('f1/a', 1, 50, 10_000, 60_000), ev('f1/b', 51, 100, 10_000, 60_000)] });
  const inc = manifest('i1', 'incremental', 'f1', 101, 150, '2026-01-01T01:00:00Z', { files: [ev('i1/a', 101, 150, 9_000)] });
  // Each events file: twice its records, i.e. its raw bytes less the most a header takes (320 bytes) and 12 bytes of framing an event.
  const rec = (raw: number, events: number): number => 2 * (raw - 320 - 12 * events);
  it('every events file restored whole counts twice its records; a file without raw_size counts its stored size', () => {
    expect(restoreSpaceNeeded(planRestore({ manifests: [full], segments: [] }, { backupId: 'f1' }))).toBe(2 * rec(60_000, 50));
    expect(restoreSpaceNeeded(planRestore({ manifests: [full, inc], segments: [] }, { backupId: 'i1' }))).toBe(2 * rec(60_000, 50) + rec(9_000, 50));
  });
  it('a point-in-time restore counts only the backups that end at or before T; segments count nothing', () => {
    // full ends at ts 1000: T inside it counts nothing (the file holding T may be cut), T after it counts it whole.
    expect(restoreSpaceNeeded(planRestore({ manifests: [full, inc], segments: [] }, { pointInTime: 999 }))).toBe(0);
    expect(restoreSpaceNeeded(planRestore({ manifests: [full, inc], segments: [{ key: 'segments/x', first_seq: 151, last_seq: 400 }] }, { pointInTime: 1200 }))).toBe(2 * rec(60_000, 50));
  });
  it('the header allowance is at least what a header takes: a segment of the largest numbers still counts no more than its records', () => {
    const big = 2 ** 53 - 1;
    const recs = records(3, big - 2);
    const seg = encodeSegment(recs.map((r) => ({ ...r, ts: big })));
    const hashes = { prev_hash: 'f'.repeat(64), last_hash: 'f'.repeat(64) };
    const headerBytes = 9 + Buffer.byteLength(JSON.stringify({ ...seg.header, ...hashes, first_ts: big, last_ts: big, count: big }));
    expect(headerBytes).toBeLessThanOrEqual(320);
    const m = manifest('t1', 'full', null, 1, 3, '2026-01-01T00:00:00Z', { prev_hash: toHex(GENESIS_HASH), files: [ev('t1/a', 1, 3, 100, seg.body.length)] });
    const recordBytes = recs.reduce((n, r) => n + r.record.length, 0);
    const needed = restoreSpaceNeeded(planRestore({ manifests: [m], segments: [] }, { backupId: 't1' }));
    expect(needed).toBeGreaterThan(0);
    expect(needed).toBeLessThanOrEqual(2 * recordBytes);
  });
  it('the checkpoint a restore copies counts its raw size', () => {
    const cp: BackupFile = { key: 'f1/checkpoint/meta.json', kind: 'checkpoint', size: 100, raw_size: 5_000, sha256: '', path: 'meta.json' };
    const withCp = { ...full, backup_id: 'f2', checkpoint_seq: 100, files: [...full.files, cp] };
    expect(restoreSpaceNeeded(planRestore({ manifests: [withCp], segments: [] }, { backupId: 'f2' }))).toBe(2 * rec(60_000, 50) + 5_000);
  });
});

describe('planRetention (pure)', () => {
  it('incomplete backups (no manifest) are deleted once older than incompleteAfterMs, by the time in their id; other ids never', () => {
    const now = Date.UTC(2026, 10, 27, 12, 0, 0);
    const incomplete = ['20261126T115959Z-full-aaaaaa', '20261126T120001Z-incr-bbbbbb', '20261127T115900Z-full-cccccc', 'not-a-backup-id'];
    expect(planRetention([], [], { now, incomplete }).deleteIncomplete).toEqual(['20261126T115959Z-full-aaaaaa']);
    expect(planRetention([], [], { now, incomplete, incompleteAfterMs: 60_000 }).deleteIncomplete).toEqual(['20261126T115959Z-full-aaaaaa', '20261126T120001Z-incr-bbbbbb']);
    expect(planRetention([], [], { now }).deleteIncomplete).toEqual([]);
  });

  it('tag claims: one of a backup with no manifest is deleted once older than incompleteAfterMs; a committed backup\'s never', () => {
    const now = Date.UTC(2026, 10, 27, 12, 0, 0);
    const committed = manifest('20261101T000000Z-full-aaaaaa', 'full', null, 1, 10, '2026-11-01T00:00:00.000Z', { tag: 'v1' });
    const claims = parseTagClaims([tagClaimKey('v1', committed.backup_id), tagClaimKey('v2', '20261126T115959Z-full-bbbbbb'), tagClaimKey('v3', '20261127T115900Z-full-cccccc')]);
    expect(planRetention([committed], [], { now, tagClaims: claims }).deleteTagClaims).toEqual(['tags/v2/20261126T115959Z-full-bbbbbb']);
    expect(planRetention([committed], [], { now, tagClaims: claims, incompleteAfterMs: 30_000, retentionDays: 0 }).deleteTagClaims).toEqual(['tags/v2/20261126T115959Z-full-bbbbbb', 'tags/v3/20261127T115900Z-full-cccccc']);
    expect(planRetention([committed], [], { now }).deleteTagClaims).toEqual([]);
  });

  it('parent claims: a claimed parent of a backup under way is kept with its own parents; a committed backup\'s claim, and a killed one\'s a day on, are deleted', () => {
    const now = Date.UTC(2026, 10, 27, 12, 0, 0);
    const f1 = manifest('20261101T000000Z-full-aaaaaa', 'full', null, 1, 10, '2026-11-01T00:00:00.000Z');
    const i1 = manifest('20261102T000000Z-incr-aaaaaa', 'incremental', f1.backup_id, 11, 20, '2026-11-02T00:00:00.000Z');
    const f2 = manifest('20261127T110000Z-full-bbbbbb', 'full', null, 1, 30, '2026-11-27T11:00:00.000Z');
    const done = manifest('20261127T113000Z-incr-dddddd', 'incremental', f2.backup_id, 31, 35, '2026-11-27T11:30:00.000Z');
    const newestOnly = { policy: { hourly: 1, daily: 0, weekly: 0, monthly: 0 } };
    const underWay = parentClaimKey(i1.backup_id, '20261127T115900Z-incr-cccccc');
    const killed = parentClaimKey(f2.backup_id, '20261126T115959Z-incr-eeeeee');
    const committed = parentClaimKey(f2.backup_id, done.backup_id);
    const parentClaims = parseParentClaims([underWay, killed, committed, 'parents/not-an-id/20261127T115900Z-incr-cccccc', 'parents/x']);
    expect(parentClaims.map((c) => c.key)).toEqual([underWay, killed, committed]);
    const plan = planRetention([f1, i1, f2, done], [], { now, parentClaims, ...newestOnly });
    expect(plan.delete).toEqual([]);
    expect(plan.keep.find((k) => k.backup_id === i1.backup_id)?.reasons).toEqual(['parent of 20261127T115900Z-incr-cccccc, under way']);
    expect(plan.keep.find((k) => k.backup_id === f1.backup_id)?.reasons).toEqual([`parent of ${i1.backup_id}`]);
    expect(plan.deleteParentClaims).toEqual([killed, committed]);
    // Without the claim, retention keeps the newest backup's chain only.
    expect(planRetention([f1, i1, f2, done], [], { now, ...newestOnly }).delete.sort()).toEqual([f1.backup_id, i1.backup_id].sort());
  });

  it('history claims go with the segments and backups retention deletes, never past them, never one a kept backup or segment starts at', () => {
    const now = Date.UTC(2026, 10, 27, 12, 0, 0);
    const f1 = manifest('20261101T000000Z-full-aaaaaa', 'full', null, 1, 100, '2026-11-01T00:00:00.000Z');
    const i1 = manifest('20261102T000000Z-incr-aaaaaa', 'incremental', f1.backup_id, 101, 150, '2026-11-02T00:00:00.000Z');
    const f2 = manifest('20261127T110000Z-full-bbbbbb', 'full', null, 1, 300, '2026-11-27T11:00:00.000Z');
    const seg = (first: number, last: number): SegmentInfo => ({ key: segmentKey(first, last), first_seq: first, last_seq: last });
    const segs = [seg(101, 180), seg(181, 300), seg(301, 320)];
    const newestOnly = { policy: { hourly: 1, daily: 0, weekly: 0, monthly: 0 } };
    // Claims at the starts of i1 and the segments, one left by a killed incremental (250), and one past the end.
    // (1: where the kept f2 starts; 301: a kept segment's start; 400: past everything.)
    const plan = planRetention([f1, i1, f2], segs, { now, historyClaims: [1, 101, 181, 250, 301, 400], ...newestOnly });
    expect(plan.delete.sort()).toEqual([f1.backup_id, i1.backup_id].sort());
    expect(plan.deleteSegments).toEqual([segs[0]!.key, segs[1]!.key]);
    expect(plan.deleteHistoryClaims).toEqual([101, 181, 250].map(historyClaimKey));
    // i1 kept (a tag) keeps f1 and every segment after it: no claim goes.
    expect(planRetention([f1, { ...i1, tag: 'keep' }, f2], segs, { now, historyClaims: [1, 101, 181, 250, 301, 400], ...newestOnly }).deleteHistoryClaims).toEqual([]);
    expect(historyClaimSeq(historyClaimKey(42))).toBe(42);
    expect(historyClaimSeq('history/x')).toBeUndefined();
  });

  it('GFS keeps one per slot, tags forever, parents of kept incrementals; dry data only', () => {
    const ms: BackupManifest[] = [];
    let prev: BackupManifest | undefined;
    const t0 = Date.UTC(2026, 0, 1);
    for (let h = 0; h < 24 * 40; h += 6) {
      const full = h % 24 === 0;
      const m = manifest(`b${h}`, full ? 'full' : 'incremental', full ? null : prev!.backup_id, full ? 1 : prev!.to_seq + 1, (prev?.to_seq ?? 0) + 10, new Date(t0 + h * 3_600_000).toISOString(), h === 30 ? { tag: 'keepme' } : {});
      ms.push(m);
      prev = m;
    }
    const plan = planRetention(ms, [], { now: t0 + 24 * 40 * 3_600_000, policy: { hourly: 4, daily: 3, weekly: 2, monthly: 1 } });
    const kept = new Set(plan.keep.map((k) => k.backup_id));
    expect(kept.has('b30')).toBe(true); // tagged
    expect(kept.has('b24')).toBe(true); // its parent
    expect(kept.has(ms[ms.length - 1]!.backup_id)).toBe(true);
    expect(plan.delete.length).toBeGreaterThan(100);
    for (const k of plan.keep) expect(k.reasons.length).toBeGreaterThan(0);
  });
});

describe('SourceOpener (a restore source read in one walk)', () => {
  const recs = records(6);
  const { body } = encodeSegment(recs);
  const spec: SourceSpec = { name: 'segments/x', stepFirst: 1, last: 6, segment: { key: 'segments/x', first_seq: 1, last_seq: 6 } };
  const opener = (cut: { toSeq?: number; pointInTime?: number }): SourceOpener => new SourceOpener({ pointInTime: cut.pointInTime ?? null, toSeq: cut.toSeq ?? 6, keepState: false });
  // The opener builds its frames in the bytes it is given: each open gets its own copy.
  const copy = (b: Buffer): Buffer => Buffer.from(b);
  it('takes the records up to a cut, at a seq or a point in time', () => {
    expect(opener({ toSeq: 3 }).open(spec, copy(body))).toMatchObject({ count: 3, seq: 3, reachedT: false });
    expect(opener({ pointInTime: recs[3]!.ts }).open(spec, copy(body))).toMatchObject({ count: 4, seq: 4, reachedT: true });
    expect(opener({}).open(spec, copy(body))).toMatchObject({ count: 6, seq: 6, hash: toHex(recs[5]!.record.subarray(32, 64)) });
  });
  it('a source larger than a frame is framed in several, each the frame encodeFrame builds of its records, in order', () => {
    // 4096-d vectors: ~16 KB a record, 700 of them ~11.5 MB, past FRAME_RECORD_BYTES (8 MiB) once.
    const big = records(700, 1, GENESIS_HASH, 4096);
    expect(big.reduce((n, r) => n + r.record.length, 0)).toBeGreaterThan(FRAME_RECORD_BYTES);
    const seg = encodeSegment(big);
    const bigSpec: SourceSpec = { name: 'segments/big', stepFirst: 1, last: 700, segment: { key: 'segments/big', first_seq: 1, last_seq: 700 } };
    const r = new SourceOpener({ pointInTime: null, toSeq: 700, keepState: false }).open(bigSpec, Buffer.from(seg.body));
    expect(r).toMatchObject({ count: 700, seq: 700 });
    expect(r.frames.length).toBeGreaterThanOrEqual(2);
    let at = 0;
    for (const f of r.frames) {
      const n = frameRecordCount(f);
      expect(Buffer.from(f).equals(encodeFrame(big.slice(at, at + n).map((x) => x.record), at + 1))).toBe(true);
      at += n;
    }
    expect(at).toBe(700);
  });
  it('checks the framing to the end of the segment, past the cut: cut short, or fewer entries than its header says → BACKUP_CORRUPT', () => {
    const truncated = body.subarray(0, body.length - 3);
    expect(() => opener({ toSeq: 2 }).open(spec, copy(truncated))).toThrow(expect.objectContaining({ code: 'BACKUP_CORRUPT', message: expect.stringContaining('is truncated') as string }) as Error);
    const oneLess = body.subarray(0, body.length - 12 - recs[5]!.record.length);
    expect(() => opener({ pointInTime: recs[1]!.ts }).open(spec, copy(oneLess))).toThrow(expect.objectContaining({ code: 'BACKUP_CORRUPT', message: expect.stringContaining('holds 5 events, its header says 6') as string }) as Error);
    // A header length past the end (the JSON itself intact): BACKUP_CORRUPT, not a RangeError.
    const hl = body.readUInt32LE(5);
    const headerOnly = Buffer.from(body.subarray(0, 9 + hl));
    headerOnly.writeUInt32LE(hl + 8, 5);
    expect(() => opener({}).open(spec, copy(headerOnly))).toThrow(expect.objectContaining({ code: 'BACKUP_CORRUPT', message: expect.stringContaining('inside its header') as string }) as Error);
    expect(() => decodeSegment(headerOnly)).toThrow(expect.objectContaining({ code: 'BACKUP_CORRUPT' }) as Error);
  });
});

describe('tag claims (pure)', () => {
  const now = Date.UTC(2026, 10, 27, 12, 0, 0);
  const day = 86_400_000;
  const fresh = '20261127T115900Z-full-aaaaaa';
  const old = '20261125T000000Z-incr-bbbbbb';
  const mine = '20261127T120000Z-full-cccccc';

  it('claim keys are tags/<tag>/<backup id>; other keys and names that are no backup id are not claims', () => {
    expect(tagClaimKey('v1.0', mine)).toBe(`tags/v1.0/${mine}`);
    expect(parseTagClaims([`tags/v1.0/${mine}`, `tags/v1.0/notes.txt`, `tags/v1.0/${mine}/x`, `backups/${mine}/manifest.json`, `tags//${mine}`])).toEqual([{ key: `tags/v1.0/${mine}`, tag: 'v1.0', backupId: mine }]);
  });

  it('a claim is committed with a manifest, else under way until the expiry after the time in its id, then stale', () => {
    expect(claimState(old, true, now, day)).toBe('committed');
    expect(claimState(fresh, false, now, day)).toBe('under-way');
    expect(claimState(old, false, now, day)).toBe('stale');
    expect(claimState('20261126T120000Z-full-dddddd', false, now, day)).toBe('under-way'); // exactly a day: not yet
  });

  it('tagHolder: any other committed or under-way claim holds the tag, whoever claimed first; own and stale claims never', () => {
    expect(tagHolder(mine, [], now, day)).toBeUndefined();
    expect(tagHolder(mine, [{ backupId: mine, hasManifest: false }, { backupId: old, hasManifest: false }], now, day)).toBeUndefined();
    expect(tagHolder(mine, [{ backupId: old, hasManifest: true }], now, day)).toEqual({ backupId: old, state: 'committed' });
    // A later claim refuses an earlier one too: of two racing, both may be refused, never both admitted.
    const later = '20261127T120001Z-full-eeeeee';
    expect(tagHolder(mine, [{ backupId: later, hasManifest: false }], now, day)).toEqual({ backupId: later, state: 'under-way' });
    expect(tagHolder(later, [{ backupId: mine, hasManifest: false }], now, day)).toEqual({ backupId: mine, state: 'under-way' });
  });

  it('staleTagClaims: only claims without a manifest, older than the expiry', () => {
    const claims = parseTagClaims([tagClaimKey('a', old), tagClaimKey('b', fresh), tagClaimKey('c', '20261101T000000Z-full-ffffff')]);
    expect(staleTagClaims(claims, new Set(['20261101T000000Z-full-ffffff']), now, day)).toEqual([tagClaimKey('a', old)]);
  });
});
