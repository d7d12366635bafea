import { toHex } from '@kyrodb/log';
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
 * Walks the whole chain (every record re-hashed, every link, seq and ts order checked, the
 * stored head cross-checked) and, with `digest`, checks that the event at `digest.seq` still has
 * `digest.hash` — i.e. the current log extends what the auditor saw. On failure names the first
 * bad seq and the problem (`hash_mismatch`, `prev_hash_mismatch`, `seq_gap`, `seq_mismatch`,
 * `ts_regression`, `decode_error`, `head_mismatch`, `digest_mismatch`, `digest_beyond_head`).
 * A rewrite that re-chained every later hash is caught only by a digest taken before it
 * (reported as `digest_mismatch` at the digest's seq).
 */
export function verifyDigest(log: EventLog, digest?: Digest, onProgress?: (seq: number, head: number) => void): DigestVerifyResult {
  const r = log.verify({ ...(digest !== undefined ? { digest } : {}), ...(onProgress !== undefined ? { onProgress, progressEvery: 50_000 } : {}) });
  if (r.ok) return { ok: true, head: r.head, checked: r.checked, extends: digest !== undefined };
  return { ok: false, seq: r.seq, problem: r.problem, message: r.message, checked: r.checked };
}
