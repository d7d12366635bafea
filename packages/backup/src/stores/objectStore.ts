import { BackupError } from '../errors.js';

/**
 * The small interface backup talks to. Keys are `/`-separated relative paths. Objects are
 * immutable: putting the same bytes again under a key is a no-op, different bytes is
 * BACKUP_OBJECT_CONFLICT. A `put` is atomic: readers see the whole object or nothing.
 */
export interface ObjectStore {
  /** The URL the store was opened from (`file:///abs/path` or `s3://bucket/prefix`). */
  readonly url: string;
  /**
   * Stores `body` under `key` atomically. BACKUP_OBJECT_CONFLICT if other bytes are there. With
   * `signal`, an abort stops the put (a request in flight is cancelled, no retry follows) and it
   * rejects; the object is then absent or whole, as after any failed put.
   */
  put(key: string, body: Buffer, options?: PutOptions): Promise<void>;
  /** The object's bytes, in a buffer the caller owns (a restore reuses it in place). BACKUP_FILE_MISSING if absent. */
  get(key: string, options?: GetOptions): Promise<Buffer>;
  /** The object's first `bytes` bytes (all of it when shorter). BACKUP_FILE_MISSING if absent. Optional: see `readObjectPrefix`. */
  readPrefix?(key: string, bytes: number): Promise<Buffer>;
  /** The object's size, or undefined if absent. */
  head(key: string): Promise<{ size: number } | undefined>;
  /** Every key starting with `prefix`, sorted ascending. */
  list(prefix: string): Promise<string[]>;
  /** Removes the object (absent is fine). */
  delete(key: string): Promise<void>;
  /** A URL that downloads the object without credentials for `expiresSec` seconds (S3 only). */
  presignGet?(key: string, expiresSec: number): Promise<string>;
  /** Removes what puts of processes that are gone left half-written (a local store's temp files); returns what it removed (with `dryRun`, would remove). */
  sweep?(opts?: { dryRun?: boolean }): Promise<string[]>;
}

/** Options of `ObjectStore.put`. */
export interface PutOptions {
  signal?: AbortSignal;
  /**
   * Never replace an object that appeared since the check for other bytes (a put racing another
   * process's): a local store always puts so (link()); on S3 the put is conditional
   * (`If-None-Match: *`), where the server enforces it (AWS S3, MinIO; s3rver ignores it).
   */
  exclusive?: boolean;
}

/** Options of `ObjectStore.get`. */
export interface GetOptions {
  /**
   * Memory the caller gives up, which the store may read the object into when it fits (the
   * result is then a view of it) instead of allocating fresh memory. A hint: a store may ignore it.
   */
  into?: ArrayBuffer;
}

/** The first `bytes` bytes of an object: a ranged read where the store has one, else the whole object cut. */
export async function readObjectPrefix(store: ObjectStore, key: string, bytes: number): Promise<Buffer> {
  if (store.readPrefix !== undefined) return store.readPrefix(key, bytes);
  return (await store.get(key)).subarray(0, bytes);
}

/** Rejects keys that could escape the store's root. */
export function checkKey(key: string): void {
  if (key.length === 0 || key.startsWith('/') || key.split('/').some((p) => p === '' || p === '.' || p === '..') || key.includes('\\') || key.includes('\0')) {
    throw new BackupError('BACKUP_INVALID_URL', `invalid object key ${JSON.stringify(key)}`, { key });
  }
}
