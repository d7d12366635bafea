import fs from 'node:fs';
import path from 'node:path';
import { classifyWalError, isLogError, refineByFreeSpace } from '@kyrodb/log';
import { BackupError, isBackupError } from './errors.js';

/** Free bytes for an unprivileged writer on the file system holding `dir` (or its nearest existing parent); undefined if it cannot be told. */
export function freeBytes(dir: string): number | undefined {
  let d = path.resolve(dir);
  for (;;) {
    try {
      const st = fs.statfsSync(d);
      return st.bavail * st.bsize;
    } catch (err) {
      const parent = path.dirname(d);
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === d) return undefined;
      d = parent;
    }
  }
}

/**
 * `err` as BACKUP_NO_SPACE when it is a full disk or an exceeded quota on the file system
 * holding `dir` (ENOSPC, EDQUOT, WAL_DISK_FULL, or an I/O error while that file system is out of
 * space, as LMDB reports a full tmpfs: see `refineByFreeSpace`); else undefined. `doing` says
 * what ran out of space and `after` what that left, for the message.
 */
export function noSpaceError(err: unknown, dir: string, doing: string, after: string, details: Record<string, unknown> = {}): BackupError | undefined {
  if (isBackupError(err)) return undefined; // already said what went wrong
  // A log error says its class (WAL_DISK_FULL, WAL_QUOTA_EXCEEDED); any other is not about space.
  const type = classifyWalError(isLogError(err) ? err : refineByFreeSpace(err, dir, 0));
  if (isLogError(err) && (err.details as { type?: unknown }).type !== type) return undefined;
  if (type !== 'disk_full' && type !== 'quota') return undefined;
  const free = freeBytes(dir);
  const why = type === 'quota' ? 'the disk quota is exceeded' : 'the disk is full';
  return new BackupError('BACKUP_NO_SPACE', `${doing}: ${why} (${free === undefined ? 'free space unknown' : `${formatBytes(free)} free`} in ${dir}); ${after}`, { dir, freeBytes: free ?? null, type, ...details }, { cause: err });
}

/** Bytes for people: 1.3 GB, 512 KB, 12 B. */
export function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)} KB`;
  return `${n} B`;
}
