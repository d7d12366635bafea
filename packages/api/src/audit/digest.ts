import { createHash } from 'node:crypto';
import { GENESIS_HASH, toHex } from '@kyrodb/log';
import type { EventLog, LogHead, VerifyProblem } from '@kyrodb/log';
import { AuditError } from './errors.js';

/** An auditor's digest: the log had `hash` as the hash of event `seq`. */
export interface Digest {
  seq: number;
  hash: Uint8Array;
}

const DIGEST_RE = /^([1-9]\d{0,15}):([0-9a-fA-F]{64})$/;

/** Parses `SEQ:HASH` (positive integer seq, 64 hex). Throws AUDIT_BAD_DIGEST. */
export function parseDigest(s: string): Digest {
  const m = typeof s === 'string' ? DIGEST_RE.exec(s.trim()) : null;
  if (m === null) throw new AuditError('AUDIT_BAD_DIGEST', `digest ${JSON.stringify(s)} is not SEQ:HASH (a positive integer and 64 hex characters)`, { input: s });
  const seq = Number(m[1]);
  if (!Number.isSafeInteger(seq)) throw new AuditError('AUDIT_BAD_DIGEST', `digest seq ${m[1]} is too large`, { input: s });
  return { seq, hash: new Uint8Array(Buffer.from(m[2]!, 'hex')) };
}

/** Builds a digest from separate parts (`{seq, hash}` in an HTTP body). Throws AUDIT_BAD_DIGEST. */
export function digestFromParts(seq: unknown, hash: unknown): Digest {
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) throw new AuditError('AUDIT_BAD_DIGEST', 'digest seq must be a positive integer', { seq });
  if (typeof hash !== 'string' || !/^[0-9a-fA-F]{64}$/.test(hash)) throw new AuditError('AUDIT_BAD_DIGEST', 'digest hash must be 64 hex characters', { hash });
  return { seq, hash: new Uint8Array(Buffer.from(hash, 'hex')) };
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
function payloadSeqTs(p: Buffer): { seq: number; ts: number } | undefined {
  if (p.length < 4 || p[0] !== 0x97 || p[1] !== 0x01) return undefined;
  let o = 2;
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
 * A rewrite that re-chained every later hash is caught only by a digest taken before it
 * (reported as `digest_mismatch` at the digest's seq).
 *
 * How: a scan over the raw records that hashes and links them without decoding bodies, in
 * chunks (so `verifyDigestAsync` can yield between them — the log's `verify` is one synchronous
 * walk); the first anomaly (or none, for the final head cross-check) hands over to the log's
 * own `verify`, whose report is the authoritative one. Throughput is about that of the log's
 * `verify` (bench/src/audit.ts): the cost is SHA-256 and the LMDB read per record. Unlike the log's `verify`, a record whose
 * hash is right but whose body cannot be decoded is not flagged (only a forger who re-hashes
 * can produce one, and a digest taken before the forgery catches that as `digest_mismatch`).
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

/** The fast scan as a generator that yields between chunks of records (see `verifyDigest`). */
function* verifySteps(log: EventLog, digest: Digest | undefined, onProgress: ((seq: number, head: number) => void) | undefined, chunk = 20_000): Generator<void, DigestVerifyResult> {
  const slow = (fromSeq?: number): DigestVerifyResult => {
    const r = log.verify({ ...(fromSeq !== undefined ? { fromSeq } : {}), ...(digest !== undefined ? { digest } : {}), ...(onProgress !== undefined ? { onProgress, progressEvery: 50_000 } : {}) });
    if (r.ok) return { ok: true, head: r.head, checked: r.checked, extends: digest !== undefined };
    return { ok: false, seq: r.seq, problem: r.problem, message: r.message, checked: r.checked };
  };
  const headSeq = log.head().seq;
  if (headSeq === 0 || (digest !== undefined && digest.seq > headSeq)) return slow();
  const want = digest === undefined ? undefined : Buffer.from(digest.hash.buffer, digest.hash.byteOffset, digest.hash.byteLength);
  let prev = Buffer.from(GENESIS_HASH);
  let prevTs = 0;
  let expected = 1;
  for (;;) {
    const from = expected;
    // A fresh range per chunk: no read transaction is held across the yield.
    for (const { seq, record } of log.readRecords(from, from + chunk - 1)) {
      if (seq !== expected || record.length < 65) return slow();
      if (!record.subarray(0, 32).equals(prev)) return slow();
      const payload = record.subarray(64);
      const h = createHash('sha256').update(prev).update(payload).digest();
      if (!h.equals(record.subarray(32, 64))) return slow();
      const st = payloadSeqTs(payload);
      if (st === undefined || st.seq !== seq || st.ts < prevTs) return slow();
      if (want !== undefined && seq === digest!.seq && !h.equals(want)) return slow();
      prev = h;
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
