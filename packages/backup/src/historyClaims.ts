import { BackupError, isBackupError } from './errors.js';
import { padSeq } from './manifest.js';
import type { ObjectStore } from './stores/objectStore.js';

/**
 * Claims of a store's history: `history/<seq>` holds the hash (hex) of the event at that seq, put
 * before the first object that carries events from that seq on into the store (a continuous
 * segment, an incremental backup). Two data dirs shipping to one store — a restored copy started
 * beside its original, two servers given one prefix — each passed the check that they extend what
 * the store held when they started, and then went on side by side: their segments interleaved
 * (`1002-1061` beside `1002-1101`), both said `running`, and a restore found the chain broken or
 * stopped short of acknowledged events without a word. Both now claim the same seq, the first
 * event past the store's end as they both saw it, with different hashes: the claim is a put that
 * never replaces other bytes (a local store's link(), S3's `If-None-Match: *`), read back after
 * (an S3 server without conditional writes lets the second put win: its writer reads its own
 * hash, the first reads the other's), so one of them finds the other's hash and stops
 * (BACKUP_LOG_DIVERGED) before anything of its own history is stored. The same data dir claiming
 * the same seq again (a retry, a restart) puts the same bytes: a no-op.
 *
 * A claim goes when retention deletes the last segment or backup that starts at its seq.
 */
export const HISTORY_CLAIM_PREFIX = 'history/';

export function historyClaimKey(seq: number): string {
  return `${HISTORY_CLAIM_PREFIX}${padSeq(seq)}`;
}

/** The seq of a claim's key, or undefined for another key. */
export function historyClaimSeq(key: string): number | undefined {
  const m = /^history\/(\d+)$/.exec(key);
  return m === null ? undefined : Number(m[1]);
}

/**
 * Claims `seq` for the history whose event there hashes to `hash` (hex): BACKUP_LOG_DIVERGED,
 * naming both hashes, when the store's claim says another. `what` names the claimer in that message.
 */
export async function claimHistory(store: ObjectStore, seq: number, hash: string, what: string, signal?: AbortSignal): Promise<void> {
  const key = historyClaimKey(seq);
  try {
    await store.put(key, Buffer.from(`${hash}\n`), { exclusive: true, ...(signal !== undefined ? { signal } : {}) });
  } catch (err) {
    if (!isBackupError(err, 'BACKUP_OBJECT_CONFLICT')) throw err;
  }
  const held = (await store.get(key)).toString('utf8').trim();
  if (held !== hash) {
    throw new BackupError(
      'BACKUP_LOG_DIVERGED',
      `${what}: the store ${store.url} holds another history from seq ${seq} on (its event there hashes to ${held.slice(0, 16)}…, this log's to ${hash.slice(0, 16)}…): another data dir ships to this store — a copy or a restore of this one, running beside it, or another server given the same store. Nothing of this history was stored from there; give one of them a fresh store prefix or directory`,
      { seq, storeHash: held, logHash: hash },
    );
  }
}
