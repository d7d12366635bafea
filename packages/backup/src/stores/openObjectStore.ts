import { BackupError } from '../errors.js';
import { LocalDirStore } from './localDirStore.js';
import type { ObjectStore } from './objectStore.js';
import { S3Store, type S3StoreOptions } from './s3Store.js';

/**
 * Opens the store a URL names: `file:///abs/path` (a local directory) or `s3://bucket/prefix`
 * (options give endpoint, region, path style, credentials). BACKUP_INVALID_URL otherwise.
 */
export function openObjectStore(url: string, o: S3StoreOptions = {}): ObjectStore {
  if (url.startsWith('file://')) return new LocalDirStore(url);
  if (url.startsWith('s3://')) return new S3Store(url, o);
  throw new BackupError('BACKUP_INVALID_URL', `unsupported object store URL ${url} (use file:///abs/path or s3://bucket/prefix)`, { url });
}
