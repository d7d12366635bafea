import { splitRecord, recordIndexFieldsAt, toHex, type IndexFields, type RecordRun } from '@kyrodb/log/codec';
import { BackupError } from './errors.js';

/** The header of a segment: its seq and ts range and the chain hashes at both ends. */
export interface SegmentHeader {
  first_seq: number;
  last_seq: number;
  /** µs. */
  first_ts: number;
  /** µs. */
  last_ts: number;
  /** prevHash of the first event (hex): the hash of event first_seq − 1. */
  prev_hash: string;
  /** Hash of the last event (hex). */
  last_hash: string;
  count: number;
}

/** One decoded entry: a stored log record and its seq/ts (read from the record). */
export interface SegmentEntry {
  seq: number;
  ts: number;
  record: Buffer;
}

const MAGIC = Buffer.from('KYSG');
const VERSION = 1;

/**
 * Encodes consecutive log records as a segment: `KYSG`, version, header length, header JSON,
 * then per record `u32 length ‖ f64 ts ‖ record`. The ts beside each record lets PITR cut a
 * segment at T without decoding payloads. Records must be consecutive in seq.
 */
export function encodeSegment(records: readonly SegmentEntry[]): { body: Buffer; header: SegmentHeader } {
  if (records.length === 0) throw new BackupError('BACKUP_INVALID_ARGUMENT', 'a segment holds at least one event');
  const first = records[0]!;
  const last = records[records.length - 1]!;
  const header: SegmentHeader = {
    first_seq: first.seq,
    last_seq: last.seq,
    first_ts: first.ts,
    last_ts: last.ts,
    prev_hash: toHex(splitRecord(first.record).prevHash),
    last_hash: toHex(splitRecord(last.record).hash),
    count: records.length,
  };
  let bytes = 0;
  for (const r of records) bytes += r.record.length;
  const { out, dv, at } = segmentBuffer(header, bytes);
  let off = at;
  for (const r of records) {
    dv.setUint32(off, r.record.length, true);
    dv.setFloat64(off + 4, r.ts, true);
    out.set(r.record, off + 12);
    off += 12 + r.record.length;
  }
  return { body: out, header };
}

/**
 * The most a segment's start takes (magic, version, length, header JSON): five numbers of at
 * most 16 digits, two hashes of 64 hex digits and the keys, ~305 bytes.
 */
export const SEGMENT_HEADER_MAX_BYTES = 320;
/** Room kept in front of a SegmentBuilder's records for the segment's start (more than it can take). */
const HEADER_ROOM = 1024;

/**
 * Builds a segment (what `encodeSegment` makes) from runs of stored records added in seq order,
 * read in place with no object per record: a full backup encodes millions. Each record is copied
 * as it is added (a run's bytes may be reused once the next run is read), after its index fields
 * are read once (`recordIndexFieldsAt`): its seq must be the next one (else BACKUP_CHAIN_GAP),
 * and `onRecord` gets them (the backup counts live vectors with them). The records go behind
 * room for the header, which is written in front of them at the end.
 */
export class SegmentBuilder {
  private out: Buffer | undefined;
  private dv: DataView | undefined;
  private off = HEADER_ROOM;
  private firstTs = 0;
  private lastTs = 0;
  private lastAt = 0;
  /** Records added. */
  count = 0;

  /** `expected`: how many records the segment will hold, to size its buffer. */
  constructor(
    private readonly firstSeq: number,
    private readonly expected: number,
    private readonly onRecord?: (f: IndexFields) => void,
  ) {}

  add(r: RecordRun): void {
    const b = r.buf;
    const perRecord = (r.end - r.start) / r.count + 8;
    let p = r.start;
    for (let k = 0; k < r.count; k++) {
      const len = p + 4 <= r.end ? b.readUInt32LE(p) : -1;
      const at = p + 4;
      if (len < 65 || at + len > r.end) throw new BackupError('BACKUP_CORRUPT', `the log's record of seq ${r.firstSeq + k} is cut short`, { seq: r.firstSeq + k });
      const f = recordIndexFieldsAt(b, at, at + len);
      const seq = this.firstSeq + this.count;
      if (f.seq !== seq) throw new BackupError('BACKUP_CHAIN_GAP', `the log has seq ${f.seq} where seq ${seq} belongs`, { seq });
      this.onRecord?.(f);
      if (this.count === 0) this.firstTs = f.ts;
      this.lastTs = f.ts;
      this.room(12 + len, perRecord);
      this.dv!.setUint32(this.off, len, true);
      this.dv!.setFloat64(this.off + 4, f.ts, true);
      b.copy(this.out!, this.off + 12, at, at + len);
      this.lastAt = this.off + 12;
      this.off += 12 + len;
      this.count += 1;
      p = at + len;
    }
    if (p !== r.end) throw new BackupError('BACKUP_CORRUPT', `the log's records of seqs ${r.firstSeq}..${r.firstSeq + r.count - 1} do not fill their frame`, { from: r.firstSeq });
  }

  /** The segment: a view of the builder's buffer (which it owns from now on). */
  finish(): { body: Buffer; header: SegmentHeader } {
    const out = this.out;
    if (out === undefined || this.count === 0) throw new BackupError('BACKUP_INVALID_ARGUMENT', 'a segment holds at least one event');
    const header: SegmentHeader = {
      first_seq: this.firstSeq,
      last_seq: this.firstSeq + this.count - 1,
      first_ts: this.firstTs,
      last_ts: this.lastTs,
      prev_hash: out.toString('hex', HEADER_ROOM + 12, HEADER_ROOM + 44),
      last_hash: out.toString('hex', this.lastAt + 32, this.lastAt + 64),
      count: this.count,
    };
    const hj = Buffer.from(JSON.stringify(header));
    const start = HEADER_ROOM - 9 - hj.length;
    if (start < 0) throw new BackupError('BACKUP_INVALID_ARGUMENT', `a segment header of ${hj.length} bytes`);
    writeSegmentStart(out, start, hj);
    this.out = undefined;
    return { body: out.subarray(start, this.off), header };
  }

  /** Makes room for `bytes` more; the buffer is first sized for `expected` records of about `perRecord` bytes. */
  private room(bytes: number, perRecord: number): void {
    if (this.out !== undefined && this.off + bytes <= this.out.byteLength) return;
    const want = this.out === undefined ? HEADER_ROOM + Math.ceil(this.expected * perRecord * 1.05) : Math.ceil(this.out.byteLength * 1.5);
    const next = Buffer.allocUnsafe(Math.max(want, this.off + bytes));
    if (this.out !== undefined) this.out.copy(next, 0, 0, this.off);
    this.out = next;
    this.dv = new DataView(next.buffer, next.byteOffset, next.byteLength);
  }
}

/**
 * A segment's buffer for `header` and records of `recordBytes` bytes in all, the header written:
 * the entries go from `at` on, their lengths and ts written through `dv` (about twice as fast as
 * Buffer's writeUInt32LE and writeDoubleLE per record).
 */
function segmentBuffer(header: SegmentHeader, recordBytes: number): { out: Buffer; dv: DataView; at: number } {
  const hj = Buffer.from(JSON.stringify(header));
  const out = Buffer.allocUnsafe(9 + hj.length + 12 * header.count + recordBytes);
  writeSegmentStart(out, 0, hj);
  return { out, dv: new DataView(out.buffer, out.byteOffset, out.byteLength), at: 9 + hj.length };
}

/** Writes a segment's start at `at` of `out`: magic, version, the header JSON's length and the JSON (`hj`). */
function writeSegmentStart(out: Buffer, at: number, hj: Buffer): void {
  MAGIC.copy(out, at);
  out.writeUInt8(VERSION, at + 4);
  out.writeUInt32LE(hj.length, at + 5);
  hj.copy(out, at + 9);
}

/** Reads a segment's header only. BACKUP_CORRUPT if it is not a segment. */
export function readSegmentHeader(b: Buffer, name = 'segment'): SegmentHeader {
  if (b.length < 9 || !b.subarray(0, 4).equals(MAGIC) || b.readUInt8(4) !== VERSION) throw new BackupError('BACKUP_CORRUPT', `${name} is not a segment`, { file: name });
  const hl = b.readUInt32LE(5);
  try {
    return JSON.parse(b.subarray(9, 9 + hl).toString('utf8')) as SegmentHeader;
  } catch (cause) {
    throw new BackupError('BACKUP_CORRUPT', `${name} has an unreadable header`, { file: name }, { cause });
  }
}

/**
 * A segment's bytes read in place: its header, and where each entry's record starts in `body`
 * (the record's length is the u32 12 bytes before its start, its ts the f64 8 bytes before; the
 * i-th entry has seq `header.first_seq + i`). No object per entry: a restore reads a million.
 */
export interface SegmentLayout {
  header: SegmentHeader;
  body: Buffer;
  starts: Uint32Array;
}

/**
 * A segment's bytes with only the header read: its entries start at `entriesAt` and are framed
 * one after the other (a u32 record length, the f64 ts, the record). A reader that walks them
 * itself checks each with `entryRecordLength` and their number with `checkEntryCount`, as
 * `segmentLayout` does: restore walks them once, as it reads the records (a walk of its own
 * ahead of that read each 30 MB body from memory once more: ~0.15 s per 1M events).
 */
export interface SegmentBody {
  header: SegmentHeader;
  body: Buffer;
  entriesAt: number;
}

/** Reads a segment's header (BACKUP_CORRUPT if it is not a segment); its entries are not read. */
export function segmentBody(b: Buffer, name = 'segment'): SegmentBody {
  const header = readSegmentHeader(b, name);
  const entriesAt = 9 + b.readUInt32LE(5);
  if (entriesAt > b.length) throw new BackupError('BACKUP_CORRUPT', `${name} is truncated inside its header`, { file: name });
  return { header, body: b, entriesAt };
}

/** The length of the record of the entry at `off` of `b` (the record starts at `off + 12`); BACKUP_CORRUPT if the entry runs past the end. */
export function entryRecordLength(b: Buffer, off: number, name: string): number {
  if (off + 12 > b.length) throw new BackupError('BACKUP_CORRUPT', `${name} is truncated`, { file: name });
  const len = b.readUInt32LE(off);
  if (off + 12 + len > b.length) throw new BackupError('BACKUP_CORRUPT', `${name} is truncated`, { file: name });
  return len;
}

/** BACKUP_CORRUPT unless `n`, the number of entries a walk to the end found, is what the header says. */
export function checkEntryCount(header: SegmentHeader, n: number, name: string): void {
  if (n !== header.count || n === 0 || header.first_seq + n - 1 !== header.last_seq) throw new BackupError('BACKUP_CORRUPT', `${name} holds ${n} events, its header says ${header.count}`, { file: name });
}

/**
 * Reads a segment's framing: checks that each record is framed correctly and that the count and
 * ends match the header (hashes are checked by the caller). BACKUP_CORRUPT otherwise.
 */
export function segmentLayout(b: Buffer, name = 'segment'): SegmentLayout {
  return layoutOf(segmentBody(b, name), name);
}

/** `segmentLayout` of a segment whose header was read (`segmentBody`). */
export function layoutOf(s: SegmentBody, name: string): SegmentLayout {
  const { header, body: b } = s;
  let off = s.entriesAt;
  // Every entry takes at least 12 bytes; the header's count is only a hint for the first allocation.
  const most = Math.floor((b.length - off) / 12);
  let starts = new Uint32Array(Number.isSafeInteger(header.count) && header.count > 0 ? Math.min(header.count, most) : Math.min(most, 1024));
  let n = 0;
  while (off < b.length) {
    const len = entryRecordLength(b, off, name);
    if (n === starts.length) {
      const more = new Uint32Array(Math.max(16, 2 * n));
      more.set(starts);
      starts = more;
    }
    starts[n++] = off + 12;
    off += 12 + len;
  }
  checkEntryCount(header, n, name);
  return { header, body: b, starts: starts.subarray(0, n) };
}

/** The entries of a segment read by `segmentLayout`, as views into its body. */
export function layoutEntries(l: SegmentLayout): SegmentEntry[] {
  const { body: b, starts } = l;
  const entries = new Array<SegmentEntry>(starts.length);
  for (let i = 0; i < starts.length; i++) {
    const at = starts[i]!;
    entries[i] = { seq: l.header.first_seq + i, ts: b.readDoubleLE(at - 8), record: b.subarray(at, at + b.readUInt32LE(at - 12)) };
  }
  return entries;
}

/**
 * Decodes a segment: its header and entries, checking that seqs are consecutive, the count and
 * ends match the header, and each record is framed correctly (hashes are checked by the caller).
 */
export function decodeSegment(b: Buffer, name = 'segment'): { header: SegmentHeader; entries: SegmentEntry[] } {
  const l = segmentLayout(b, name);
  return { header: l.header, entries: layoutEntries(l) };
}
