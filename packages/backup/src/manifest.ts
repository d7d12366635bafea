import { randomBytes } from 'node:crypto';
import { BackupError } from './errors.js';
import type { Compression, EncryptionInfo } from './objectCodec.js';

/** Version of the manifest and file layout this package writes and reads. */
export const BACKUP_FORMAT_VERSION = 1;

/** One file of a backup, as stored. */
export interface BackupFile {
  /** Store key. */
  key: string;
  /** `events`: a segment of log records; `checkpoint`: a file of a projections checkpoint. */
  kind: 'events' | 'checkpoint';
  /** Stored size, bytes (after compression/encryption). */
  size: number;
  /** Size before compression and encryption, bytes: what a restore writes from it (absent in backups written before it was recorded). */
  raw_size?: number;
  /** Hex SHA-256 of the stored bytes. */
  sha256: string;
  /** Events files: the seq range held. */
  first_seq?: number;
  last_seq?: number;
  /** Checkpoint files: path relative to the checkpoint dir. */
  path?: string;
  /**
   * Checkpoint files stored in parts (see BackupManagerOptions.checkpointPartBytes): where in the
   * file this part starts, bytes; the parts of one path are listed in order and follow each other
   * exactly. Absent: the whole file (every backup written before parts, and every file of at most one part).
   */
  offset?: number;
}

/**
 * A backup's manifest, written last: no manifest = no backup. Seq and ts (µs) ranges are
 * inclusive; `prev_hash` is the hash before `from_seq` (the parent's head hash), `head_hash`
 * the hash of event `to_seq` (both hex). An incremental with no new events has from_seq = to_seq + 1.
 */
export interface BackupManifest {
  backup_id: string;
  type: 'full' | 'incremental';
  parent: string | null;
  /** ISO-8601 UTC. */
  created: string;
  tag?: string;
  description?: string;
  from_seq: number;
  to_seq: number;
  from_ts: number;
  to_ts: number;
  prev_hash: string;
  head_hash: string;
  event_count: number;
  vector_count: number;
  /** Live vectors per collection at to_seq. */
  collections: Record<string, number>;
  /** Seq of the checkpoint included, or null. */
  checkpoint_seq: number | null;
  /** Its directory name under `<dataDir>/checkpoints/` (projections pad the seq to 16 digits). */
  checkpoint_dir?: string;
  files: BackupFile[];
  format_version: number;
  compression: Compression;
  encryption: EncryptionInfo | null;
}

/** Store key prefix of a backup's objects. */
export function backupPrefix(id: string): string {
  return `backups/${id}/`;
}

/** Store key of a backup's manifest. */
export function manifestKey(id: string): string {
  return `backups/${id}/manifest.json`;
}

/** A new backup's id: the time it starts (to the second, UTC), its type, 6 random hex digits: `20261127T035039Z-full-6ed0f9`. */
export function newBackupId(nowMs: number, type: 'full' | 'incremental'): string {
  return timedId(nowMs, type === 'full' ? 'full' : 'incr');
}

/** `<time to the second, UTC>-<kind>-<6 random hex digits>`: the shape of backup ids, which claims (tagClaims.ts) and `begunBefore` read the time of. */
export function timedId(nowMs: number, kind: string): string {
  const t = new Date(nowMs).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${t}-${kind}-${randomBytes(3).toString('hex')}`;
}

/** The time (ms) a backup id was made at (`20261127T035039Z-full-…`), or undefined for another shape. */
export function backupIdTime(id: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-/.exec(id);
  if (m === null) return undefined;
  const t = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  return Number.isNaN(t) ? undefined : t;
}

/**
 * Whether backup `id` began more than `afterMs` before `now` (ms), by the time in its id: a backup
 * with no manifest that old is one whose process is gone (its objects, its tag claim). False for
 * an id without a time.
 */
export function begunBefore(id: string, now: number, afterMs: number): boolean {
  const t = backupIdTime(id);
  return t !== undefined && t < now - afterMs;
}

/** Zero-padded seq for keys, so keys sort by seq. */
export function padSeq(seq: number): string {
  return String(seq).padStart(16, '0');
}

/** Parses and checks a manifest. BACKUP_MANIFEST_INVALID if malformed or of an unknown format. */
export function parseManifest(b: Buffer, key: string): BackupManifest {
  let m: unknown;
  try {
    m = JSON.parse(b.toString('utf8'));
  } catch (cause) {
    throw new BackupError('BACKUP_MANIFEST_INVALID', `${key} is not JSON`, { key }, { cause });
  }
  const x = m as Partial<BackupManifest>;
  if (typeof x !== 'object' || x === null || typeof x.backup_id !== 'string' || (x.type !== 'full' && x.type !== 'incremental') || typeof x.from_seq !== 'number' || typeof x.to_seq !== 'number' || !Array.isArray(x.files) || typeof x.head_hash !== 'string') {
    throw new BackupError('BACKUP_MANIFEST_INVALID', `${key} is not a backup manifest`, { key });
  }
  if (x.format_version !== BACKUP_FORMAT_VERSION) throw new BackupError('BACKUP_MANIFEST_INVALID', `${key} has format version ${String(x.format_version)}, expected ${BACKUP_FORMAT_VERSION}`, { key });
  return x as BackupManifest;
}

/** Time of a manifest, ms since the epoch. */
export function createdMs(m: BackupManifest): number {
  return Date.parse(m.created);
}

/** Newest first: by to_seq, then created, then id. */
export function compareNewestFirst(a: BackupManifest, b: BackupManifest): number {
  return b.to_seq - a.to_seq || createdMs(b) - createdMs(a) || (a.backup_id < b.backup_id ? 1 : -1);
}
