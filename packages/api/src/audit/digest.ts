import { DocKeyFingerprint, GENESIS_HASH, indexDocId, readSegments, recordHashOk, recordIndexFields, toHex, walDirOf, writerRunning } from '@kyrodb/log';
import type { EventLog, LogHead, VerifyProblem } from '@kyrodb/log';
import { AuditError } from './errors.js';

/** An auditor's digest: the log had `hash` as the hash of event `seq`. */
export interface Digest {
  seq: number;
  hash: Uint8Array;
}

const DIGEST_RE = /^(0|[1-9]\d{0,15}):([0-9a-fA-F]{64})$/;

/**
 * Parses `SEQ:HASH` (a non-negative integer seq, 64 hex). Seq 0 is the empty log's digest, whose
 * hash must be the genesis hash (64 zeros): every log extends it. Throws AUDIT_BAD_DIGEST.
 */
export function parseDigest(s: string): Digest {
  const m = typeof s === 'string' ? DIGEST_RE.exec(s.trim()) : null;
  if (m === null) throw new AuditError('AUDIT_BAD_DIGEST', `digest ${JSON.stringify(s)} is not SEQ:HASH (a non-negative integer and 64 hex characters)`, { input: s });
  const seq = Number(m[1]);
  if (!Number.isSafeInteger(seq)) throw new AuditError('AUDIT_BAD_DIGEST', `digest seq ${m[1]} is too large`, { input: s });
  return checkGenesis({ seq, hash: new Uint8Array(Buffer.from(m[2]!, 'hex')) });
}

/** A seq-0 digest must carry the genesis hash: no log ever had another one there. Throws AUDIT_BAD_DIGEST. */
function checkGenesis(d: Digest): Digest {
  if (d.seq === 0 && !isGenesis(d.hash)) throw new AuditError('AUDIT_BAD_DIGEST', `digest 0:${toHex(d.hash)} is not the empty log's digest: seq 0 has the genesis hash, 64 zeros`);
  return d;
}

function isGenesis(hash: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(hash), Buffer.from(GENESIS_HASH)) === 0;
}

/** Builds a digest from separate parts (`{seq, hash}` in an HTTP body). Throws AUDIT_BAD_DIGEST. */
export function digestFromParts(seq: unknown, hash: unknown): Digest {
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) throw new AuditError('AUDIT_BAD_DIGEST', 'digest seq must be a non-negative integer', { seq });
  if (typeof hash !== 'string' || !/^[0-9a-fA-F]{64}$/.test(hash)) throw new AuditError('AUDIT_BAD_DIGEST', 'digest hash must be 64 hex characters', { hash });
  return checkGenesis({ seq, hash: new Uint8Array(Buffer.from(hash, 'hex')) });
}

/** `SEQ:HASH` of a digest or head. */
export function formatDigest(d: { seq: number; hash: Uint8Array }): string {
  return `${d.seq}:${toHex(d.hash)}`;
}

/** The outcome of `verifyDigest`. */
export type DigestVerifyResult =
  | { ok: true; head: LogHead; checked: number; /** a digest was given and the log extends it */ extends: boolean }
  | { ok: false; seq: number; problem: VerifyProblem; message: string; checked: number };

/**
 * Reads the seq and ts of a canonical payload (msgpack `[version, seq, ts, …]`) without decoding
 * the rest; undefined when the header is not the expected shape (the slow path then reports).
 */
function payloadSeqTs(p: Buffer, start = 0): { seq: number; ts: number } | undefined {
  if (p.length < start + 4 || p[start] !== 0x97 || p[start + 1] !== 0x01) return undefined;
  let o = start + 2;
  const num = (): number | undefined => {
    const b = p[o];
    if (b === undefined) return undefined;
    if (b <= 0x7f) return (o += 1), b;
    switch (b) {
      case 0xcc: return o + 2 <= p.length ? ((o += 2), p.readUInt8(o - 1)) : undefined;
      case 0xcd: return o + 3 <= p.length ? ((o += 3), p.readUInt16BE(o - 2)) : undefined;
      case 0xce: return o + 5 <= p.length ? ((o += 5), p.readUInt32BE(o - 4)) : undefined;
      case 0xcf: return o + 9 <= p.length ? ((o += 9), Number(p.readBigUInt64BE(o - 8))) : undefined;
      case 0xd3: return o + 9 <= p.length ? ((o += 9), Number(p.readBigInt64BE(o - 8))) : undefined;
      case 0xcb: return o + 9 <= p.length ? ((o += 9), p.readDoubleBE(o - 8)) : undefined;
      default: return undefined;
    }
  };
  const seq = num();
  const ts = num();
  return seq === undefined || ts === undefined ? undefined : { seq, ts };
}

/**
 * Walks the whole chain (every record re-hashed, every link, seq and ts order checked, the
 * stored head cross-checked) and, with `digest`, checks that the event at `digest.seq` still has
 * `digest.hash` — i.e. the current log extends what the auditor saw. On failure names the first
 * bad seq and the problem (`hash_mismatch`, `prev_hash_mismatch`, `seq_gap`, `seq_mismatch`,
 * `ts_regression`, `decode_error`, `head_mismatch`, `digest_mismatch`, `digest_beyond_head`).
 * Then checks that the write-ahead segments, the log's durable copy (LMDB is rebuilt from them
 * after a crash), hold the same records byte for byte up to the head (`segments_missing`,
 * `segments_differ`): a rewrite of LMDB alone is caught without a digest. A rewrite of both
 * that re-chained every later hash is caught only by a digest taken before it (reported as
 * `digest_mismatch` at the digest's seq).
 *
 * How: a scan over the raw records that hashes and links them without decoding bodies, in
 * chunks (so `verifyDigestAsync` can yield between them — the log's `verify` is one synchronous
 * walk); the first anomaly (or none, for the final head cross-check) hands over to the log's
 * own `verify`, whose report is the authoritative one. Then the by-doc index: its keys must be
 * exactly those the records call for (`index_differs`; an order-free fingerprint of each side,
 * see DocKeyFingerprint). The cost (bench/src/audit.ts) is SHA-256, the LMDB read and the index
 * fields per record, plus one pass over the index. Unlike the log's `verify`, a record is not
 * decoded whole: one whose hash is right but whose body is damaged past its index fields is not
 * flagged (only a forger who re-hashes can produce one, and a digest taken before the forgery
 * catches that as `digest_mismatch`); one whose index fields cannot be read is `decode_error`.
 */
export function verifyDigest(log: EventLog, digest?: Digest, onProgress?: (seq: number, head: number) => void): DigestVerifyResult {
  const steps = verifySteps(log, digest, onProgress);
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
  }
}

/**
 * `verifyDigest` that yields to the event loop every `chunk` records (default 20 000), so a
 * server stays responsive while an auditor verifies a large log. Same result.
 */
export async function verifyDigestAsync(log: EventLog, digest?: Digest, onProgress?: (seq: number, head: number) => void, chunk = 20_000): Promise<DigestVerifyResult> {
  const steps = verifySteps(log, digest, onProgress, chunk);
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/**
 * `verifyDigest` as a generator that yields between chunks of records: the chain in LMDB, each
 * record compared on the way with the write-ahead segments' copy (read once, in step), then the
 * segments' copy of any records the fast scan did not reach.
 */
function* verifySteps(log: EventLog, digest: Digest | undefined, onProgress: ((seq: number, head: number) => void) | undefined, chunk = 20_000): Generator<void, DigestVerifyResult> {
  const segments = new SegmentsInStep(log);
  // The empty log's digest (seq 0) names no event: the chain is checked alone, and every log
  // extends it when its hash is the genesis hash, which every chain starts from.
  const genesis = digest?.seq === 0;
  const r = yield* chainSteps(log, genesis ? undefined : digest, onProgress, chunk, segments);
  if (!r.ok) return r;
  yield* segments.upTo(r.head.seq, chunk);
  if (segments.problem === undefined) segments.checkNoneBeyond(r.head.seq);
  if (segments.problem !== undefined) return { ...segments.problem, checked: r.checked };
  // The by-doc index (history, as-of reads of a document) holds exactly the records' keys.
  const indexed = log.docIndexFingerprint(r.head.seq);
  if (indexed !== undefined && segments.next === r.head.seq + 1 && !indexed.equals(segments.keys)) {
    const d = log.docIndexFirstDifference(r.head.seq);
    if (d !== undefined) return { ok: false, seq: d.seq, problem: 'index_differs', message: `${d.what}: the index that history and as-of reads of a document go through was altered (the log's records verify; a restore from a backup builds the index again)`, checked: r.checked };
  }
  if (!genesis) return r;
  if (!isGenesis(digest.hash)) return { ok: false, seq: 0, problem: 'digest_mismatch', message: `digest 0:${toHex(digest.hash)} is not the empty log's digest: seq 0 has the genesis hash, 64 zeros`, checked: r.checked };
  return { ...r, extends: true };
}

/**
 * Compares LMDB's records, seq by seq from 1, with the write-ahead segments' copy: the log's
 * durable one, from which LMDB is rebuilt after a crash. `problem` is the first seq where they
 * disagree: `segments_missing` (the segments' frames end, or one's CRC fails, before it) or
 * `segments_differ`. Records in the segments after the last one compared are fine (appended
 * since, or not yet in LMDB).
 */
class SegmentsInStep {
  problem: { ok: false; seq: number; problem: VerifyProblem; message: string } | undefined;
  /** The next seq to compare. */
  next = 1;
  /** The by-doc keys the records compared so far call for. */
  readonly keys = new DocKeyFingerprint();
  private segments: Generator<{ seq: number; record: Uint8Array }>;

  constructor(private readonly log: EventLog) {
    this.segments = readSegments(walDirOf(log.dir), 1);
  }

  /** Compares LMDB's `record` of seq `next` with the segments'. */
  check(seq: number, record: Buffer): void {
    if (this.problem !== undefined || seq !== this.next) return;
    this.next += 1;
    let s = this.segments.next();
    if (s.done === true || s.value.seq !== seq) {
      // A live log: the segment being written was read before this record was appended (every
      // record reaches the segments before LMDB). Read the segments again from here, once.
      this.segments = readSegments(walDirOf(this.log.dir), seq);
      s = this.segments.next();
    }
    if (s.done === true || s.value.seq !== seq) this.problem = { ok: false, seq, problem: 'segments_missing', message: `the write-ahead segments lack seq ${seq} (their frames end, or one is damaged, before it); LMDB has it` };
    else if (Buffer.compare(s.value.record, record) !== 0) this.problem = { ok: false, seq, problem: 'segments_differ', message: `seq ${seq} differs between the write-ahead segments and LMDB: one of the two copies was altered` };
    if (this.problem !== undefined) return;
    let x: ReturnType<typeof recordIndexFields>;
    try {
      x = recordIndexFields(record);
    } catch (err) {
      // Its hash is right (only a forger who re-hashed makes such a record), its body unreadable.
      this.problem = { ok: false, seq, problem: 'decode_error', message: `seq ${seq} hashes right but its body cannot be read: ${err instanceof Error ? err.message : String(err)}` };
      return;
    }
    this.keys.add(x.collection, indexDocId(x), seq);
  }

  /**
   * With no writer running, the segments end where LMDB does: a writer puts every record in the
   * segments and then in LMDB, and closes only once LMDB has them all (a writer that did not
   * close is LOG_RECOVERY_NEEDED at the open). Records past LMDB's head mean LMDB was rolled back
   * or replaced: the answers read from it lack acknowledged events, which the next writer's open
   * puts back (`segments_differ` at the first).
   */
  checkNoneBeyond(head: number): void {
    if (writerRunning(this.log.dir)) return; // a live writer's LMDB trails its segments by a few ms
    let s = this.segments.next();
    if (this.next !== head + 1) {
      this.segments = readSegments(walDirOf(this.log.dir), head + 1);
      s = this.segments.next();
    }
    if (s.done !== true && s.value.seq > head) {
      this.problem = { ok: false, seq: s.value.seq, problem: 'segments_differ', message: `the write-ahead segments hold seq ${s.value.seq} and on, LMDB ends at seq ${head}, and no writer has the log open: LMDB was rolled back or replaced, and reads from it lack those events (opening the data dir for writing applies them again)` };
    }
  }

  /** Compares the records from `next` through `head` (those the fast scan left), yielding every `chunk`. */
  *upTo(head: number, chunk: number): Generator<void> {
    while (this.problem === undefined && this.next <= head) {
      const from = this.next;
      for (const { seq, record } of this.log.readRecords(from, Math.min(head, from + chunk - 1))) this.check(seq, record);
      if (this.next === from) break; // LMDB lacks it: the chain check reported that already
      yield;
    }
  }
}

/** The fast scan of the chain in LMDB (see `verifyDigest`). */
function* chainSteps(log: EventLog, digest: Digest | undefined, onProgress: ((seq: number, head: number) => void) | undefined, chunk: number, segments: SegmentsInStep): Generator<void, DigestVerifyResult> {
  const slow = (fromSeq?: number): DigestVerifyResult => {
    const r = log.verify({ ...(fromSeq !== undefined ? { fromSeq } : {}), ...(digest !== undefined ? { digest } : {}), ...(onProgress !== undefined ? { onProgress, progressEvery: 50_000 } : {}) });
    if (r.ok) return { ok: true, head: r.head, checked: r.checked, extends: digest !== undefined };
    return { ok: false, seq: r.seq, problem: r.problem, message: r.message, checked: r.checked };
  };
  const headSeq = log.head().seq;
  if (headSeq === 0 || (digest !== undefined && digest.seq > headSeq)) return slow();
  const want = digest === undefined ? undefined : Buffer.from(digest.hash.buffer, digest.hash.byteOffset, digest.hash.byteLength);
  // The previous record, whose own hash (bytes 32..64) the next one must link to: at first one
  // holding the genesis hash there. Compared in place (no views, no Hash objects: at 1M records
  // those made the garbage collector a quarter of the scan).
  let prev: Buffer = Buffer.concat([Buffer.alloc(32), Buffer.from(GENESIS_HASH)]);
  let prevTs = 0;
  let expected = 1;
  for (;;) {
    const from = expected;
    // A fresh range per chunk: no read transaction is held across the yield.
    for (const { seq, record } of log.readRecords(from, from + chunk - 1)) {
      if (seq !== expected || record.length < 65) return slow();
      if (record.compare(prev, 32, 64, 0, 32) !== 0) return slow();
      // SHA-256(prevHash ‖ payload) equals the stored hash, which is then this record's hash.
      if (!recordHashOk(record)) return slow();
      const st = payloadSeqTs(record, 64);
      if (st === undefined || st.seq !== seq || st.ts < prevTs) return slow();
      if (want !== undefined && seq === digest!.seq && record.compare(want, 0, 32, 32, 64) !== 0) return slow();
      segments.check(seq, record);
      prev = record;
      prevTs = st.ts;
      expected += 1;
      if (onProgress !== undefined && seq % 50_000 === 0) onProgress(seq, headSeq);
    }
    if (expected - from < chunk) break; // the end (or a gap: the tail check below walks on and names it)
    yield;
  }
  const last = expected - 1;
  if (last === 0) return slow();
  // The last record again plus the stored-head cross-check (and any events appended meanwhile).
  const tail = slow(last);
  if (!tail.ok) return { ...tail, checked: last - 1 + tail.checked };
  return { ok: true, head: tail.head, checked: last - 1 + tail.checked, extends: digest !== undefined };
}
