import { constants as osConstants } from 'node:os';
import fs from 'node:fs';
import { LogError, isLogError } from './errors.js';
import type { LogErrorCode } from './errors.js';

/** The classes of WAL write errors (the sketch §1). */
export type WalErrorType = 'disk_full' | 'quota' | 'io_error' | 'permission';
/** The classes, for metric labels. */
export const WAL_ERROR_TYPES: readonly WalErrorType[] = ['disk_full', 'quota', 'io_error', 'permission'];

const BY_CODE: Record<string, WalErrorType> = {
  ENOSPC: 'disk_full',
  EDQUOT: 'quota',
  EACCES: 'permission',
  EPERM: 'permission',
  EROFS: 'permission',
};

const BY_MESSAGE: [RegExp, WalErrorType][] = [
  [/no space left|ENOSPC|MDB_MAP_FULL/i, 'disk_full'],
  [/quota|EDQUOT/i, 'quota'],
  [/permission denied|read-only file system|EACCES|EPERM|EROFS/i, 'permission'],
];

/**
 * Classifies an error from a WAL write. Anything not recognised as disk full, quota or
 * permission is an `io_error` (EIO and unknown failures of the storage layer), which is the
 * class that is retried.
 */
export function classifyWalError(err: unknown): WalErrorType {
  // already classified (a WAL error passed on)
  const known = (err as { details?: { type?: unknown } } | null)?.details?.type;
  if (isLogError(err) && typeof known === 'string' && (WAL_ERROR_TYPES as readonly string[]).includes(known)) return known as WalErrorType;
  const code = errnoName((err as { code?: unknown } | null)?.code);
  if (typeof code === 'string' && BY_CODE[code] !== undefined) return BY_CODE[code];
  const msg = err instanceof Error ? err.message : String(err);
  for (const [re, type] of BY_MESSAGE) if (re.test(msg)) return type;
  return 'io_error';
}

const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));

/** The symbolic name of an errno code: `28` → `ENOSPC` (lmdb reports numbers); strings pass through. */
export function errnoName(code: unknown): string | undefined {
  if (typeof code === 'string') return code;
  if (typeof code === 'number') return ERRNO_NAMES.get(Math.abs(code));
  return undefined;
}

/**
 * The underlying storage error of a failed write. lmdb-js rejects a failed commit with a generic
 * "Commit failed" error whose `commitError` is a promise rejected with the real one (which carries
 * the errno); this waits for it (and so also observes it, which avoids an unhandled rejection).
 * Anything else is returned as is.
 */
export async function unwrapStorageError(err: unknown): Promise<unknown> {
  const inner = (err as { commitError?: unknown } | null)?.commitError;
  if (inner === null || typeof inner !== 'object' || typeof (inner as { then?: unknown }).then !== 'function') return err;
  try {
    await (inner as PromiseLike<unknown>);
    return err;
  } catch (cause) {
    return cause ?? err;
  }
}

/** Whether a class of error is worth retrying in place (after the reopen). */
export function isRetryable(type: WalErrorType): boolean {
  return type === 'io_error';
}

/** The stable code a caller sees for a class of WAL error. */
export function walErrorCode(type: WalErrorType): LogErrorCode {
  switch (type) {
    case 'disk_full':
      return 'WAL_DISK_FULL';
    case 'quota':
      return 'WAL_QUOTA_EXCEEDED';
    case 'permission':
      return 'WAL_PERMISSION_DENIED';
    case 'io_error':
      return 'WAL_IO_ERROR';
  }
}

/** Wraps a storage error in the LogError its class maps to. LogErrors pass through. */
export function toWalError(err: unknown, attempts: number): LogError {
  if (isLogError(err)) return err;
  const type = classifyWalError(err);
  const msg = err instanceof Error ? err.message : String(err);
  return new LogError(walErrorCode(type), `WAL write failed (${type}) after ${attempts} attempt(s): ${msg}`, { type, attempts }, { cause: err });
}

/**
 * LMDB does not always surface a full disk as ENOSPC: on tmpfs the failed page write is
 * reported as EIO. An `io_error` raised while the file system holding `dir` is out of space is
 * a full disk (which must open the breaker at once, not be retried five times). "Out of space"
 * means fewer free bytes than min(max(1 MiB, 4 × the batch), 5 % of the file system).
 * Returns `err` unchanged in every other case.
 */
export function refineByFreeSpace(err: unknown, dir: string, batchBytes: number): unknown {
  if (classifyWalError(err) !== 'io_error' || isLogError(err)) return err;
  let free: number, total: number;
  try {
    const st = fs.statfsSync(dir);
    free = st.bavail * st.bsize;
    total = st.blocks * st.bsize;
  } catch {
    return err;
  }
  const threshold = Math.min(Math.max(1 << 20, 4 * batchBytes), 0.05 * total);
  if (free >= threshold) return err;
  const msg = err instanceof Error ? err.message : String(err);
  const full: NodeJS.ErrnoException = new Error(`${msg} (the file system has ${free} bytes free: disk full)`, { cause: err });
  full.code = 'ENOSPC';
  return full;
}
