import { decodeRecord, toHex, type EventLog } from '@kyrodb/log';
import { BackupError, isBackupError } from './errors.js';
import type { BackupManifest } from './manifest.js';
import type { EncryptionKey } from './objectCodec.js';
import { loadSegments, segmentHeaderOf, type SegmentInfo } from './pieces.js';
import { sleep } from './retry.js';
import type { ObjectStore } from './stores/objectStore.js';

/** The cursor name continuous backup uses in a writable log: `{ seq, hash, store }`, the last event it shipped and where. */
export const CONTINUOUS_CURSOR = 'backup.continuous';

/** How long a read-only log may take to see what a server writing it has already stored, ms. */
const CATCH_UP_WAIT_MS = 2000;

/**
 * BACKUP_LOG_DIVERGED unless the log holds the history the store already holds: the event at the
 * furthest seq a backup or continuous segment reaches, with the same hash. A data dir restored
 * to an earlier point and written to since (or another database) would otherwise put a second
 * history into the store, and a point-in-time restore could take either. Full, incremental and
 * continuous backup all check this before they store anything. `segments`: the store's, when
 * the caller has listed them already (in seq order, as `loadSegments` gives them).
 */
export async function checkLogHoldsStore(log: EventLog, store: ObjectStore, encryption: EncryptionKey | undefined, manifests: readonly BackupManifest[], segments?: readonly SegmentInfo[]): Promise<void> {
  // The furthest backup (its head hash is in its manifest), and a continuous segment past it
  // (its hash in its header; one encrypted with a key not given cannot be read: see below).
  const points: { seq: number; what: string; hash: () => Promise<string | BackupError> }[] = [];
  const furthest = manifests.reduce<BackupManifest | undefined>((a, m) => (a === undefined || m.to_seq > a.to_seq ? m : a), undefined);
  if (furthest !== undefined) points.push({ seq: furthest.to_seq, what: `backup ${furthest.backup_id}`, hash: () => Promise.resolve(furthest.head_hash) });
  const segs = segments ?? (await loadSegments(store));
  const last = segs[segs.length - 1];
  if (last !== undefined && last.last_seq > (furthest?.to_seq ?? 0)) {
    points.push({
      seq: last.last_seq,
      what: `continuous segment ${last.key}`,
      hash: async () => {
        try {
          return (await segmentHeaderOf(store, last, encryption)).last_hash;
        } catch (err) {
          if (isBackupError(err) && (err.code === 'BACKUP_DECRYPT_FAILED' || err.code === 'BACKUP_KEY_REQUIRED')) return err;
          throw err;
        }
      },
    });
  }
  for (const point of points) {
    let rec = log.getRecord(point.seq);
    // A server writing this log may have shipped a segment or backup of events that this
    // read-only open does not see yet (they reach LMDB a few ms after they are acknowledged).
    for (let waited = 0; rec === undefined && log.readOnly && waited < CATCH_UP_WAIT_MS; waited += 50) {
      await sleep(50);
      if (log.head().seq >= point.seq) rec = log.getRecord(point.seq);
    }
    let stored = rec === undefined ? undefined : await point.hash();
    if (rec !== undefined && stored instanceof BackupError) {
      // Encrypted with a key not given (rotated out of the config, or encryption turned off):
      // only this log's own record of having shipped that far to this store vouches for it.
      // Without one, a data dir restored to an earlier point and written to since would pass
      // on its seq alone, and put a second history into the store.
      // The shipper stores a segment, then records it in its cursor: a check between the two (a
      // backup beside a running server) saw the segment first and refused 4 runs in 12.
      let shipped = cursorShipped(log, store.url);
      for (let waited = 0; shipped < point.seq && waited < CATCH_UP_WAIT_MS; waited += 50) {
        await sleep(50);
        shipped = cursorShipped(log, store.url);
      }
      if (shipped < point.seq) {
        throw new BackupError(
          stored.code,
          `cannot check that this log holds the history in the store ${store.url}: ${stored.message}. Give that key (backup.encryption.previous_key_files), or back up to a fresh store prefix or directory`,
          { ...stored.details, seq: point.seq },
        );
      }
      stored = toHex(decodeRecord(rec).hash);
    }
    if (rec === undefined || (stored !== undefined && toHex(decodeRecord(rec).hash) !== stored)) {
      throw new BackupError(
        'BACKUP_LOG_DIVERGED',
        `the store ${store.url} holds a history this log does not extend (${point.what} reaches seq ${point.seq}; the log's head is ${log.head().seq}${rec !== undefined ? ', with another hash there' : ''}): a data dir restored to an earlier point, or another database; back it up to a fresh store prefix or directory`,
        { seq: point.seq, head: log.head().seq },
      );
    }
  }
}

/**
 * How far this log's continuous-backup cursor says it shipped to the store at `storeUrl`: its seq,
 * when it names that store (or none: an older cursor) and this log holds that event with the hash
 * it recorded; else 0.
 */
export function cursorShipped(log: EventLog, storeUrl: string): number {
  const cursor = log.getCursor<{ seq?: number; hash?: string; store?: string }>(CONTINUOUS_CURSOR);
  if (cursor?.seq === undefined || (cursor.store !== undefined && cursor.store !== storeUrl)) return 0;
  const at = log.getRecord(cursor.seq);
  return at !== undefined && toHex(decodeRecord(at).hash) === cursor.hash ? cursor.seq : 0;
}
