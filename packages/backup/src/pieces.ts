import { chainHash, splitRecord, toHex } from '@kyrodb/log/codec';
import { BackupError, isBackupError } from './errors.js';
import { manifestKey, parseManifest, type BackupFile, type BackupManifest } from './manifest.js';
import { decodeObject, sha256Hex, type BodyAlloc, type EncryptionKey } from './objectCodec.js';
import { layoutEntries, layoutOf, readSegmentHeader, segmentBody, type SegmentBody, type SegmentEntry, type SegmentHeader } from './segment.js';
import type { GetOptions, ObjectStore } from './stores/objectStore.js';

/** A continuous-backup segment as listed: its key and seq range (from the deterministic key). */
export interface SegmentInfo {
  key: string;
  first_seq: number;
  last_seq: number;
}

const SEGMENT_RE = /^segments\/(\d+)-(\d+)$/;

/** Store key of a continuous segment. */
export function segmentKey(first: number, last: number): string {
  return `segments/${String(first).padStart(16, '0')}-${String(last).padStart(16, '0')}`;
}

/** The segments in the store, by first seq. */
export async function loadSegments(store: ObjectStore): Promise<SegmentInfo[]> {
  const out: SegmentInfo[] = [];
  for (const key of await store.list('segments/')) {
    const m = SEGMENT_RE.exec(key);
    if (m !== null) out.push({ key, first_seq: Number(m[1]), last_seq: Number(m[2]) });
  }
  return out.sort((a, b) => a.first_seq - b.first_seq || a.last_seq - b.last_seq);
}

/** A continuous segment's header (its seq and ts range, the hashes at both ends), read from the store. */
export async function segmentHeaderOf(store: ObjectStore, seg: SegmentInfo, encryption: EncryptionKey | undefined): Promise<SegmentHeader> {
  const h = readSegmentHeader(decodeObject(await store.get(seg.key), encryption, seg.key), seg.key);
  // Another segment's bytes under this key (copied over it by hand, a damaged store): said so,
  // not read as this history's end (its hash, compared with the log's, read as another history).
  checkSegmentRange(h, seg);
  return h;
}

/** BACKUP_CORRUPT unless a segment's header holds the range its key names. */
function checkSegmentRange(h: SegmentHeader, s: SegmentInfo): void {
  if (h.first_seq !== s.first_seq || h.last_seq !== s.last_seq) throw new BackupError('BACKUP_CORRUPT', `${s.key} holds seqs ${h.first_seq}..${h.last_seq}, its key says ${s.first_seq}..${s.last_seq}`, { key: s.key });
}

/**
 * The hash (hex) of a continuous segment's last event, from its header; undefined when the
 * segment was encrypted with another key than `encryption` (or it is absent: the key was
 * rotated, or encryption turned off), which only the old key could read.
 */
export async function segmentLastHash(store: ObjectStore, seg: SegmentInfo, encryption: EncryptionKey | undefined): Promise<string | undefined> {
  try {
    return (await segmentHeaderOf(store, seg, encryption)).last_hash;
  } catch (err) {
    if (isBackupError(err) && (err.code === 'BACKUP_DECRYPT_FAILED' || err.code === 'BACKUP_KEY_REQUIRED')) return undefined;
    throw err;
  }
}

/** A backup whose manifest is in the store but cannot be read (BACKUP_MANIFEST_INVALID): damaged or edited by hand. */
export interface UnreadableManifest {
  backupId: string;
  message: string;
}

/**
 * Every complete backup (with a manifest), the ids of incomplete ones (objects, no manifest), and
 * the backups whose manifest cannot be read (`unreadable`). One damaged manifest never hides the
 * others: each caller decides what it means for its work (see BackupManager, `restore`).
 */
export async function loadManifests(store: ObjectStore): Promise<{ manifests: BackupManifest[]; incomplete: string[]; unreadable: UnreadableManifest[] }> {
  const keys = await store.list('backups/');
  const ids = new Map<string, boolean>();
  for (const k of keys) {
    const parts = k.split('/');
    const id = parts[1];
    if (id === undefined) continue;
    ids.set(id, (ids.get(id) ?? false) || (parts.length === 3 && parts[2] === 'manifest.json'));
  }
  const manifests: BackupManifest[] = [];
  const incomplete: string[] = [];
  const unreadable: UnreadableManifest[] = [];
  for (const [id, has] of ids) {
    if (!has) {
      incomplete.push(id);
      continue;
    }
    try {
      manifests.push(parseManifest(await store.get(manifestKey(id)), manifestKey(id)));
    } catch (err) {
      // Listed, then gone: pruned meanwhile (a prune removes the manifest first). No longer a
      // backup; a `backup list` beside a server's scheduled prune failed on it.
      if (isBackupError(err, 'BACKUP_FILE_MISSING')) continue;
      if (!isBackupError(err, 'BACKUP_MANIFEST_INVALID')) throw err;
      unreadable.push({ backupId: id, message: err.message });
    }
  }
  return { manifests, incomplete, unreadable };
}

/** Logs each backup whose manifest cannot be read, with what that means for the work at hand (`consequence`). */
export function warnUnreadable(unreadable: readonly UnreadableManifest[], logger: ((level: 'warn', msg: string, fields?: Record<string, unknown>) => void) | undefined, consequence: string): void {
  for (const u of unreadable) logger?.('warn', `backup ${u.backupId} cannot be used: ${u.message}; ${consequence}`, { backupId: u.backupId, code: 'BACKUP_MANIFEST_INVALID' });
}

/** BACKUP_MANIFEST_INVALID for `id` if its manifest is among `unreadable`. */
export function refuseUnreadable(unreadable: readonly UnreadableManifest[], id: string | undefined): void {
  const u = id === undefined ? undefined : unreadable.find((x) => x.backupId === id);
  if (u !== undefined) throw new BackupError('BACKUP_MANIFEST_INVALID', u.message, { backupId: u.backupId });
}

/** Downloads one file of a backup and checks its size and SHA-256 against the manifest. */
export async function fetchChecked(store: ObjectStore, f: BackupFile): Promise<Buffer> {
  const b = await getFile(store, f.key, 'backup file');
  checkStored(b, f);
  return b;
}

/** `store.get`, with BACKUP_FILE_MISSING naming what is missing (`what`: "backup file", "segment"). */
export async function getFile(store: ObjectStore, key: string, what: string, options?: GetOptions): Promise<Buffer> {
  try {
    return await store.get(key, options);
  } catch (err) {
    if (isBackupError(err, 'BACKUP_FILE_MISSING')) throw new BackupError('BACKUP_FILE_MISSING', `${what} ${key} is missing`, { key });
    throw err;
  }
}

/** Checks stored bytes against a manifest entry's size and SHA-256 (BACKUP_CHECKSUM_MISMATCH). */
export function checkStored(b: Buffer, f: Pick<BackupFile, 'key' | 'size' | 'sha256'>): void {
  checkStoredSize(b, f);
  checkStoredHash(sha256Hex(b), f);
}

function checkStoredSize(b: Buffer, f: Pick<BackupFile, 'key' | 'size'>): void {
  if (b.length !== f.size) throw new BackupError('BACKUP_CHECKSUM_MISMATCH', `${f.key} has ${b.length} bytes, the manifest says ${f.size} (truncated or altered)`, { key: f.key });
}

function checkStoredHash(h: string, f: Pick<BackupFile, 'key' | 'sha256'>): void {
  if (h !== f.sha256) throw new BackupError('BACKUP_CHECKSUM_MISMATCH', `${f.key} has SHA-256 ${h}, the manifest says ${f.sha256}`, { key: f.key });
}

/** What the bytes of an events file must be, from its manifest (plain data: it crosses to the codec worker). */
export interface EventsFileExpect {
  key: string;
  size: number;
  sha256: string;
  first_seq: number;
  last_seq: number;
  encrypted: boolean;
  compression: BackupManifest['compression'];
}

/** The expectations of events file `f` of backup `m`. */
export function eventsFileExpect(m: BackupManifest, f: BackupFile): EventsFileExpect {
  return { key: f.key, size: f.size, sha256: f.sha256, first_seq: f.first_seq ?? 0, last_seq: f.last_seq ?? 0, encrypted: m.encryption !== null, compression: m.compression };
}

/**
 * Checks (size, SHA-256), decrypts and decompresses the stored bytes of an events file, and reads
 * its header (its entries are left to the caller: see SegmentBody). The body may be `stored`
 * itself (an uncompressed, unencrypted file); a decompressed one is put where `alloc` says.
 */
export function openEventsBody(stored: Buffer, x: EventsFileExpect, key: EncryptionKey | undefined, alloc?: BodyAlloc): SegmentBody {
  checkStored(stored, x);
  const seg = segmentBody(decodeObject(stored, key, x.key, { encrypted: x.encrypted, compression: x.compression }, alloc), x.key);
  if (seg.header.first_seq !== x.first_seq || seg.header.last_seq !== x.last_seq) throw new BackupError('BACKUP_CORRUPT', `${x.key} holds seqs ${seg.header.first_seq}..${seg.header.last_seq}, the manifest says ${x.first_seq}..${x.last_seq}`, { key: x.key });
  return seg;
}

/** Checks (size, SHA-256), decrypts, decompresses and decodes the stored bytes of an events file. */
export function openEventsFile(stored: Buffer, x: EventsFileExpect, key: EncryptionKey | undefined): { header: SegmentHeader; entries: SegmentEntry[] } {
  const l = layoutOf(openEventsBody(stored, x, key), x.key);
  return { header: l.header, entries: layoutEntries(l) };
}

/** Downloads, checks and decodes an events file of a backup. */
export async function fetchEventsFile(store: ObjectStore, m: BackupManifest, f: BackupFile, key: EncryptionKey | undefined): Promise<{ header: SegmentHeader; entries: SegmentEntry[] }> {
  return openEventsFile(await getFile(store, f.key, 'backup file'), eventsFileExpect(m, f), key);
}

/** Decrypts and decompresses the stored bytes of a continuous segment and reads its header (not its entries), checking that it holds the range its key names. */
export function openSegmentBody(stored: Buffer, s: SegmentInfo, key: EncryptionKey | undefined, alloc?: BodyAlloc): SegmentBody {
  const seg = segmentBody(decodeObject(stored, key, s.key, {}, alloc), s.key);
  checkSegmentRange(seg.header, s);
  return seg;
}

/** Decrypts, decompresses and decodes the stored bytes of a continuous segment, checking that it holds the range its key names. */
export function openSegment(stored: Buffer, s: SegmentInfo, key: EncryptionKey | undefined): { header: SegmentHeader; entries: SegmentEntry[] } {
  const l = layoutOf(openSegmentBody(stored, s, key), s.key);
  return { header: l.header, entries: layoutEntries(l) };
}

/** Downloads and decodes a continuous segment, checking that it holds the range its key names. */
export async function fetchSegment(store: ObjectStore, s: SegmentInfo, key: EncryptionKey | undefined): Promise<{ header: SegmentHeader; entries: SegmentEntry[] }> {
  return openSegment(await getFile(store, s.key, 'segment'), s, key);
}

/**
 * Checks that `entries` re-hash to their stored hashes and link to `prevHash` (hex) and to each
 * other; returns the hash of the last entry. BACKUP_CHAIN_BROKEN names the first bad seq.
 */
export function checkChain(entries: readonly SegmentEntry[], prevHash: string, name: string): string {
  let prev = Buffer.from(prevHash, 'hex');
  for (const e of entries) {
    const { prevHash: p, hash, payload } = splitRecord(e.record);
    if (!prev.equals(p)) throw new BackupError('BACKUP_CHAIN_BROKEN', `${name}: seq ${e.seq} does not link to the hash of seq ${e.seq - 1}`, { seq: e.seq, file: name });
    if (!Buffer.from(chainHash(p, payload)).equals(hash)) throw new BackupError('BACKUP_CHAIN_BROKEN', `${name}: seq ${e.seq} does not hash to its stored hash`, { seq: e.seq, file: name });
    prev = Buffer.from(hash);
  }
  return toHex(prev);
}
