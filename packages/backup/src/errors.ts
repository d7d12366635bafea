/**
 * Error codes of the backup package. Callers branch on `code`, never on message text.
 * Every code is documented here; `errors.test.ts` checks that the docs and the list agree.
 */
export const BackupErrorCodes = {
  /** A stored file's size or SHA-256 differs from its manifest entry (flipped byte, truncation). */
  BACKUP_CHECKSUM_MISMATCH: 'a backup file does not match the size or SHA-256 in its manifest',
  /** A file listed in a manifest (or a segment) is not in the store. */
  BACKUP_FILE_MISSING: 'a file a backup needs is missing from the store',
  /** Objects of the backup exist but its manifest does not: the backup never completed. */
  BACKUP_MANIFEST_MISSING: 'the backup has no manifest (it never completed) and cannot be used',
  /** A manifest cannot be parsed or has an unknown format version. */
  BACKUP_MANIFEST_INVALID: 'a manifest cannot be parsed or has an unsupported format',
  /** Decryption failed: wrong key, no key, or the ciphertext was altered. */
  BACKUP_DECRYPT_FAILED: 'a backup file cannot be decrypted (wrong key or altered data)',
  /** An encrypted backup was read without a key. */
  BACKUP_KEY_REQUIRED: 'the backup is encrypted and no key was given',
  /** A key given by env or file is not 32 bytes of hex or base64. */
  BACKUP_KEY_INVALID: 'the encryption key is not 32 bytes (64 hex chars or base64), or its file cannot be read',
  /** A file decrypts but does not decompress or decode as a segment. */
  BACKUP_CORRUPT: 'a backup file cannot be decoded',
  /** The chain of backups/segments has a gap (missing parent, missing seq range). */
  BACKUP_CHAIN_GAP: 'the backup chain has a gap; restore refuses it',
  /** Events do not link by hash (a parent head hash or a record hash disagrees). */
  BACKUP_CHAIN_BROKEN: 'the hash chain across backup files does not verify',
  /** No backup with that id, tag or covering that time. */
  BACKUP_NOT_FOUND: 'no such backup',
  /** The restore target exists and is not empty, and `force` was not given. */
  BACKUP_TARGET_EXISTS: 'the restore target exists and is not empty; pass force',
  /** The restore target is not a KyroDB data dir (a file, or a dir of other files) or holds the backup store: never replaced, even with force. */
  BACKUP_TARGET_NOT_DATA_DIR: 'the restore target is not a KyroDB data dir; it is never replaced',
  /** A new backup's tag already names another backup in the store, or another backup (of any process) is being given it: backups given one tag at the same time may all be refused (retry). */
  BACKUP_TAG_EXISTS: 'the tag already names another backup, or one under way',
  /** A live process holds the writer lock on the restore target. */
  BACKUP_TARGET_IN_USE: 'a live process holds the restore target open for writing',
  /** The restored data dir does not match the manifest (event count, head hash, vector count) or recall probes failed. */
  BACKUP_VERIFY_FAILED: 'the restored data does not match the manifest',
  /** Different bytes were put under an existing (immutable) key. */
  BACKUP_OBJECT_CONFLICT: 'an object already exists under that key with different bytes',
  /** The object store failed after every retry (network, 5xx, permissions). */
  BACKUP_STORE_ERROR: 'the object store failed after retries',
  /** A store URL is not file:///abs/path or s3://bucket/prefix, or a key is unsafe. */
  BACKUP_INVALID_URL: 'the object store URL or key is invalid',
  /** An argument is invalid (bad option, bad time, nothing to back up). */
  BACKUP_INVALID_ARGUMENT: 'an argument is invalid',
  /** The source log's history differs from the parent backup (different hash at the parent's head). */
  BACKUP_LOG_DIVERGED: 'the log no longer extends the parent backup',
  /** The backup was stopped before it completed (the server shut down); what it had stored was removed. */
  BACKUP_ABORTED: 'the backup was stopped before it completed',
  /** The file system a restore writes, or a local backup store, has too little free space (full or over quota); nothing was left half-written. */
  BACKUP_NO_SPACE: 'not enough free disk space',
} as const;

/** A stable error code of the backup package. */
export type BackupErrorCode = keyof typeof BackupErrorCodes;

/** The one error class of the backup package: `code` is stable, `details` carries typed context. */
export class BackupError extends Error {
  readonly code: BackupErrorCode;
  readonly details: Readonly<Record<string, unknown>>;
  constructor(code: BackupErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BackupError';
    this.code = code;
    this.details = Object.freeze({ ...details });
  }
}

/** True when `err` is a BackupError, optionally with the given code. */
export function isBackupError(err: unknown, code?: BackupErrorCode): err is BackupError {
  return err instanceof Error && (err as { name?: string }).name === 'BackupError' && (code === undefined || (err as BackupError).code === code);
}
