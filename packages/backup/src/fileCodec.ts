import { crc32 } from 'node:zlib';
import { FRAME_HEADER_BYTES, checkRecordInPlace, decodeRecord, indexDocId, isLogError, sealFrame, type IndexFields } from '@kyrodb/log/codec';
import { BackupError } from './errors.js';
import { encodeObject, sha256Hex, type Compression, type EncryptionKey } from './objectCodec.js';
import { openEventsBody, openSegmentBody, type EventsFileExpect, type SegmentInfo } from './pieces.js';
import { checkEntryCount, entryRecordLength, type SegmentBody } from './segment.js';
import { eventKind } from './liveCounter.js';
import { allocReusable, REUSE_MIN_BYTES } from './reuse.js';
import { ReplayState } from './state.js';

// The CPU-bound work of backup and restore on whole files, with no I/O and no store, so that it
// runs the same inline or in the codec worker (codecRunner.ts). Everything that crosses to the
// worker is plain data.

/** Options of a FileSealer. */
export interface SealOptions {
  compression: Compression;
  encryption?: EncryptionKey;
}

/** A sealed events file: the bytes to store and their SHA-256 (hex). */
export interface SealedFile {
  body: Buffer;
  sha256: string;
}

/** Seals a backup's events files: compresses, encrypts and hashes each raw segment. */
export class FileSealer {
  /** Time spent sealing, ms. */
  busyMs = 0;

  constructor(private readonly o: SealOptions) {}

  /** Seals one raw segment (`SegmentBuilder.finish().body`). */
  seal(raw: Buffer): SealedFile {
    const t0 = performance.now();
    const body = encodeObject(raw, this.o.compression, this.o.encryption);
    const sealed = { body, sha256: sha256Hex(body) };
    this.busyMs += performance.now() - t0;
    return sealed;
  }
}

/** One source of a restore (an events file of a backup, or a continuous segment), as plain data. */
export interface SourceSpec {
  name: string;
  /** First seq of the plan step this source belongs to (a step starting after cur + 1 is a gap). */
  stepFirst: number;
  /** Last seq the source holds. */
  last: number;
  /** An events file of a backup: what its manifest says. */
  file?: EventsFileExpect;
  /** A continuous segment. */
  segment?: SegmentInfo;
}

/** Options of a SourceOpener. */
export interface OpenOptions {
  /** Stop before the first event with ts > this (µs); null: no cut. */
  pointInTime: number | null;
  /** Without a point in time: the last seq to restore. */
  toSeq: number;
  /** Keep the vectors of the replayed state (deep verify). */
  keepState: boolean;
  encryption?: EncryptionKey;
}

/** Kept records go into write-ahead frames of about this many bytes (as `EventLog.importRecords` would build them). */
export const FRAME_RECORD_BYTES = 8 * 1024 * 1024;

/**
 * A frame body's CRC is taken in pieces of about this many bytes, right behind the records moved
 * into it: 1M events' 670 MB cost ~300 ms CRC'd frame by frame (8 MB, read back from memory),
 * half that in 64 KiB pieces (measured).
 */
const CRC_CHUNK = 64 * 1024;

/**
 * What a source contributes: the records to import, each already checked against its own hash
 * (`checkRecord`), with the index fields read there, and the position after them. The records
 * come in the write-ahead frames the import writes as they are (what `encodeFrame` builds, built
 * here so that the import's thread neither copies nor CRCs them; `EventLog.importFrames` reads
 * the records out of them). The frames of a source may share one ArrayBuffer (the source's body).
 * `count` 0 with `skipped`: the source was already covered.
 */
export interface OpenedSource {
  frames: Buffer[];
  count: number;
  /**
   * Each record's collection (`collectionNames[collectionOf[i]]`) and by-doc id: `checkedIndex`
   * turns them into `EventLog.importFrames`'s `checked` index. Compact because they cross from
   * the worker: a string array is copied string by string.
   */
  collectionNames: string[];
  collectionOf: Uint32Array;
  /** The by-doc ids joined by '\n' (a valid id never holds one), or one per record if some id does. */
  docIds: string | string[];
  /**
   * Each record's event type (`eventKind`) and vector or collection dimension (-1: none): with
   * the collection and id above, what `LiveCounter.applyIndexed` counts live vectors from (on
   * the import's thread; empty with `keepState`, whose state counts them).
   */
  kinds: Uint8Array;
  dims: Int32Array;
  skipped: boolean;
  /** The restore's position after this source: last seq, its hash (hex) and ts. */
  seq: number;
  hash: string;
  ts: number;
  /** The point in time was reached inside (or before) this source: nothing after it is restored. */
  reachedT: boolean;
  /**
   * From a worker: the memory the source's stored bytes arrived in, when its frames are not in it
   * (they are in its decompressed or decrypted copy), handed back for the next read
   * (`ObjectStore.get`'s `into`).
   */
  spent?: ArrayBuffer;
}

/**
 * Opens a restore's sources in plan order: checks (size, SHA-256 of backup files), decrypts,
 * decompresses, decodes the framing, skips events already restored, refuses gaps, cuts at the
 * point in time / last seq, checks each kept record against its own hash (`checkRecord`:
 * BACKUP_CHAIN_BROKEN if it does not match) and its seq and ts against its framing, and
 * counts live vectors (`counts`). With
 * `keepState` it also replays the kept events with their vectors (`state`). What ties the records into
 * one chain (each prevHash the hash before it) is checked where they are imported
 * (`EventLog.importFrames` with the `checked` index this returns), so no record is hashed twice.
 */
export class SourceOpener {
  /** The replayed state with vectors (`keepState` only). */
  readonly state: ReplayState;
  private cur = 0;
  private curHash = '';
  private headTs = 0;
  private reachedT = false;
  /** Bodies handed back (`recycle`), which the next sources are decompressed into. */
  private readonly bodies = new BodyPool();
  private readonly alloc = (size: number): Buffer => this.bodies.take(size);
  /** Time spent opening, ms. */
  busyMs = 0;

  constructor(private readonly o: OpenOptions) {
    this.state = new ReplayState(o.keepState);
  }

  /**
   * Opens the next source. `stored` is its bytes (consumed: the frames are built in them, or in
   * their decompressed copy), or `fetchError` why they could not be had
   * (thrown only if the source is needed: a covered source is skipped and a gap reported first,
   * as a sequential restore would).
   */
  open(spec: SourceSpec, stored: Buffer | undefined, fetchError?: Error): OpenedSource {
    const t0 = performance.now();
    try {
      const none = { frames: [], count: 0, collectionNames: [], collectionOf: new Uint32Array(0), docIds: [], kinds: new Uint8Array(0), dims: new Int32Array(0), skipped: true };
      if (this.reachedT || spec.last <= this.cur) return { ...none, ...this.position() };
      if (spec.stepFirst > this.cur + 1) throw new BackupError('BACKUP_CHAIN_GAP', `the chain is missing seqs ${this.cur + 1}..${spec.stepFirst - 1}`, { from: this.cur + 1, to: spec.stepFirst - 1 });
      if (fetchError !== undefined) throw fetchError;
      if (stored === undefined) throw new BackupError('BACKUP_FILE_MISSING', `${spec.name} was not fetched`, { key: spec.name });
      const seg = spec.file !== undefined ? openEventsBody(stored, spec.file, this.o.encryption, this.alloc) : openSegmentBody(stored, spec.segment!, this.o.encryption, this.alloc);
      return { ...this.take(seg, spec.name), skipped: false, ...this.position() };
    } finally {
      this.busyMs += performance.now() - t0;
    }
  }

  /**
   * Takes back the memory of sources opened before (the ArrayBuffers behind their frames), once
   * nothing reads them any more: later sources are decompressed into it.
   */
  recycle(buffers: readonly ArrayBuffer[]): void {
    for (const ab of buffers) this.bodies.give(ab);
  }

  /** Sources decompressed into memory taken back by `recycle`. */
  get bodiesReused(): number {
    return this.bodies.reused;
  }

  /** Live vectors per collection of what was opened so far, with `keepState` (else the import's thread counts them: `OpenedSource.kinds`). */
  counts(): Record<string, number> {
    return this.state.counts();
  }

  private position(): { seq: number; hash: string; ts: number; reachedT: boolean } {
    return { seq: this.cur, hash: this.curHash, ts: this.headTs, reachedT: this.reachedT };
  }

  /**
   * Checks, counts and keeps the source's records, and builds their write-ahead frames in place:
   * each kept record is moved down into its frame inside the segment's own body (behind the
   * frames before it, never past where it starts, so nothing still to be read is overwritten), so
   * a restore allocates and faults in no second copy of its data. The entries' framing is checked
   * as they are walked, to the end of the segment even past a cut (see SegmentBody).
   */
  private take(seg: SegmentBody, name: string): Omit<OpenedSource, 'skipped' | 'seq' | 'hash' | 'ts' | 'reachedT'> {
    const T = this.o.pointInTime;
    const { body: b, header } = seg;
    const first = header.first_seq;
    // Each sealed frame's start and end in b, as numbers: Buffers pushed into an array born empty
    // changed its kind mid-loop, and V8 threw the loop's compiled code away (a deopt; the first
    // sources of a restore ran slower while it compiled it again).
    const frameEnds: number[] = [];
    const collectionNames: string[] = [];
    const collectionNo = new Map<string, number>();
    // One slot per entry the header promises, at most one per 12 bytes (the count is checked after the walk).
    const most = Math.floor((b.length - seg.entriesAt) / 12);
    const slots = Number.isSafeInteger(header.count) && header.count > 0 ? Math.min(header.count, most) : 0;
    const collectionOf = new Uint32Array(slots);
    // Counted on the import's thread since lmdb was built from source (its import 3.8-4.6 s →
    // 2.9-3.5 s at 1M events): this thread, which counted them while the import was the slower
    // of the two, became the one the import waited for (1.0-1.85 s).
    const counting = !this.o.keepState;
    const kinds = new Uint8Array(counting ? slots : 0);
    const dims = new Int32Array(counting ? slots : 0);
    const docIds: string[] = [];
    let newline = false;
    let count = 0;
    // The frame being built: its header's place in b (-1: none), records, their bytes and first seq.
    let frameAt = -1;
    let inFrame = 0;
    let frameBytes = 0;
    let frameSeq = 0;
    let w = 0; // where the next frame byte goes
    let lastAt = -1; // where the last kept record now is
    // The frame body's CRC, taken CRC_CHUNK bytes at a time behind the records moved in (still in
    // the cache then): up to crcAt. Kept as an int32 (`| 0`; `>>> 0` where it is used): a CRC
    // above 2^31 is a double, and the first one deopted the loop.
    let bodyCrc = 0;
    let crcAt = 0;
    let off = seg.entriesAt; // the next entry's framing
    let n = 0; // entries walked
    // Past a point-in-time or seq cut the entries are walked (their framing checked), not taken:
    // in this same loop, whose compiled code a second loop's first turn deopted.
    let cut = false;
    while (off < b.length) {
      const len = entryRecordLength(b, off, name);
      const start = off + 12;
      off = start + len;
      const seq = first + n++;
      if (cut || seq <= this.cur) continue;
      if (seq !== this.cur + 1) throw new BackupError('BACKUP_CHAIN_GAP', `${name} continues at seq ${seq}, but seq ${this.cur + 1} is missing`, { seq: this.cur + 1 });
      const ts = b.readDoubleLE(start - 8);
      // A cut: the entries from this one on are walked, not taken.
      if (T !== null && ts > T) {
        this.reachedT = true;
        cut = true;
        continue;
      }
      if (T === null && seq > this.o.toSeq) {
        cut = true;
        continue;
      }
      const ev = checked(b, start, start + len, name);
      if (ev.ts !== ts || ev.seq !== seq) throw new BackupError('BACKUP_CORRUPT', `${name}: seq ${seq} has ts ${ev.ts} but is framed with ${ts}`, { seq });
      if (counting) {
        kinds[count] = eventKind(ev.type);
        dims[count] = ev.dim ?? -1;
      } else this.state.apply(decodeRecord(b.subarray(start, start + len)));
      let no = collectionNo.get(ev.collection);
      if (no === undefined) {
        no = collectionNames.push(ev.collection) - 1;
        collectionNo.set(ev.collection, no);
      }
      collectionOf[count++] = no;
      const id = indexDocId(ev);
      if (id.includes('\n')) newline = true;
      docIds.push(id);
      // A frame holds records until FRAME_RECORD_BYTES (and until the next header fits below this
      // record: worked out on every turn, so that the compiled loop knows its types from the first).
      const room = w + FRAME_HEADER_BYTES + 4 <= start;
      if (frameAt >= 0 && frameBytes >= FRAME_RECORD_BYTES && room) {
        sealBuilt(b, frameAt, w, inFrame, frameSeq, crcAt, bodyCrc);
        frameEnds.push(frameAt, w);
        frameAt = -1;
      }
      if (frameAt < 0) {
        frameAt = w;
        w += FRAME_HEADER_BYTES;
        inFrame = frameBytes = 0;
        frameSeq = seq;
        bodyCrc = 0;
        crcAt = w;
      }
      // Each entry's 12-byte framing becomes a 4-byte length, and the segment header is far larger than a frame header.
      if (w + 4 > start) throw new BackupError('BACKUP_CORRUPT', `${name}: seq ${seq} cannot be framed in place`, { seq });
      b.writeUInt32LE(len, w);
      b.copyWithin(w + 4, start, start + len);
      lastAt = w + 4;
      w += 4 + len;
      if (w - crcAt >= CRC_CHUNK) {
        bodyCrc = crc32(b.subarray(crcAt, w), bodyCrc >>> 0) | 0;
        crcAt = w;
      }
      inFrame += 1;
      frameBytes += len;
      this.cur = seq;
      this.headTs = ts;
    }
    checkEntryCount(header, n, name);
    if (frameAt >= 0) {
      sealBuilt(b, frameAt, w, inFrame, frameSeq, crcAt, bodyCrc);
      frameEnds.push(frameAt, w);
    }
    const frames = new Array<Buffer>(frameEnds.length / 2);
    for (let i = 0; i < frames.length; i++) frames[i] = b.subarray(frameEnds[2 * i], frameEnds[2 * i + 1]);
    if (lastAt >= 0) this.curHash = b.toString('hex', lastAt + 32, lastAt + 64);
    return { frames, count, collectionNames, collectionOf: collectionOf.slice(0, count), docIds: newline ? docIds : docIds.join('\n'), kinds: kinds.slice(0, counting ? count : 0), dims: dims.slice(0, counting ? count : 0) };
  }
}

/** Bodies kept for reuse at most: a restore has about this many sources in flight (opened ahead, importing, waiting for LMDB). */
const BODY_POOL_MAX = 4;

/**
 * Memory for decompressed bodies, reused. Decompressing each 50k-event file (~30 MB) into fresh
 * memory faulted in ~120k pages over a 1M-event restore (about 0.1–0.3 s of the codec's time
 * in the kernel, zeroing and mapping them, and as much again unmapping them); a body given back
 * is used again for the next source it fits (`allocReusable` rounds fresh ones up so that it does).
 */
class BodyPool {
  private readonly free: ArrayBuffer[] = [];
  /** Bodies taken from what was given back. */
  reused = 0;

  /** A buffer of `size` bytes: the smallest kept body it fits in, else fresh memory. */
  take(size: number): Buffer {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const n = this.free[i]!.byteLength;
      if (n >= size && (best < 0 || n < this.free[best]!.byteLength)) best = i;
    }
    if (best >= 0) {
      this.reused += 1;
      return Buffer.from(this.free.splice(best, 1)[0]!, 0, size);
    }
    return allocReusable(size);
  }

  /** Keeps `ab` for reuse (the largest BODY_POOL_MAX are kept). */
  give(ab: ArrayBuffer): void {
    if (ab.byteLength < REUSE_MIN_BYTES) return;
    this.free.push(ab);
    if (this.free.length > BODY_POOL_MAX) {
      this.free.sort((a, b) => b.byteLength - a.byteLength);
      this.free.length = BODY_POOL_MAX;
    }
  }
}

/** Seals the frame built in `b[frameAt, end)`, whose body's CRC-32 up to `crcAt` is `crc` (as an int32: `| 0`). */
function sealBuilt(b: Buffer, frameAt: number, end: number, count: number, firstSeq: number, crcAt: number, crc: number): Buffer {
  return sealFrame(b.subarray(frameAt, end), count, firstSeq, crc32(b.subarray(crcAt, end), crc >>> 0));
}

/** The `checked` index of an opened source's records, one entry per record; BACKUP_CORRUPT if its fields do not match its count. */
export function checkedIndex(r: OpenedSource): { collections: string[]; docIds: string[] } {
  const docIds = typeof r.docIds === 'string' ? (r.count === 0 ? [] : r.docIds.split('\n')) : r.docIds;
  if (docIds.length !== r.count || r.collectionOf.length !== r.count) throw new BackupError('BACKUP_CORRUPT', `an opened source has ${r.count} records but index fields for ${docIds.length}`, {});
  const collections = new Array<string>(r.count);
  for (let i = 0; i < r.count; i++) collections[i] = r.collectionNames[r.collectionOf[i]!]!;
  return { collections, docIds };
}

/** `checkRecord` of `b[at, end)` (in place: the opener owns the source's bytes), with a hash that does not match reported as the backup's broken chain. */
function checked(b: Buffer, at: number, end: number, name: string): IndexFields {
  try {
    return checkRecordInPlace(b, at, end);
  } catch (err) {
    if (isLogError(err, 'LOG_CHAIN_BROKEN')) throw new BackupError('BACKUP_CHAIN_BROKEN', `the backup's hash chain does not verify: ${name}: ${err.message}`, { ...err.details }, { cause: err });
    throw err;
  }
}
