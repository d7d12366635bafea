import { hash as oneShotHash } from 'node:crypto';
import { Packr } from 'msgpackr';
import { LogError } from './errors.js';
import type { EventInput, LogEvent, Metadata, MetadataValue } from './events.js';

/** Version of the stored record layout. */
export const RECORD_FORMAT_VERSION = 1;

// Plain msgpack: no records extension, no typed-array extension; maps decode as objects.
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, variableMapSize: true });

/**
 * Metadata in canonical form: object keys sorted, and numbers as JSON has them (`-0` is `0`,
 * which is also what msgpack stores). Vectors are not metadata: they keep every bit, -0 included.
 */
function canonical(v: MetadataValue): MetadataValue {
  if (typeof v === 'number') return v === 0 ? 0 : v;
  if (Array.isArray(v)) return v.map(canonical);
  if (v !== null && typeof v === 'object') {
    const out: { [k: string]: MetadataValue } = {};
    for (const k of Object.keys(v).sort()) out[k] = canonical(v[k] as MetadataValue);
    return out;
  }
  return v;
}

function vectorBytes(v: Float32Array): Buffer {
  // Float32 little-endian bytes (the platform order on every supported target).
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

function bytesToVector(b: Uint8Array): Float32Array {
  if (b.byteLength % 4 !== 0) throw new LogError('LOG_CORRUPT_RECORD', 'vector bytes are not a multiple of 4');
  const out = new Float32Array(b.byteLength / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}

/**
 * The canonical payload of an event: msgpack of
 * `[version, seq, ts, type, collection, actor|null, body]` with object keys sorted and the
 * vector as raw Float32 bytes. The same event always encodes to the same bytes.
 */
export function encodePayload(e: EventInput, seq: number, ts: number): Buffer {
  let body: unknown;
  switch (e.type) {
    case 'collection.created':
      body = { dimension: e.body.dimension, hnsw: { M: e.body.hnsw.M, efConstruction: e.body.hnsw.efConstruction, efSearch: e.body.hnsw.efSearch }, metric: e.body.metric };
      break;
    case 'collection.dropped':
      body = {};
      break;
    case 'vector.upserted':
      body = { id: e.body.id, metadata: e.body.metadata === undefined ? null : canonical(e.body.metadata), vector: vectorBytes(e.body.vector) };
      break;
    case 'vector.deleted':
      body = { id: e.body.id };
      break;
  }
  return packr.pack([RECORD_FORMAT_VERSION, seq, ts, e.type, e.collection, e.actor ?? null, body]);
}

/** Decodes a canonical payload into the event's fields (without hashes). */
export function decodePayload(payload: Uint8Array): EventInput & { seq: number; ts: number } {
  return decodeEvent(payload, undefined);
}

/**
 * Decodes a payload; with `rec`, the committed event with its hashes copied out of the record.
 * Objects are built field by field, in one go: object spreads cost µs an event on the read path.
 */
function decodeEvent(payload: Uint8Array, rec: Uint8Array | undefined): LogEvent {
  let arr: unknown;
  try {
    arr = packr.unpack(payload);
  } catch (cause) {
    throw new LogError('LOG_CORRUPT_RECORD', 'record payload is not valid msgpack', {}, { cause });
  }
  if (!Array.isArray(arr) || arr.length !== 7 || arr[0] !== RECORD_FORMAT_VERSION) throw new LogError('LOG_CORRUPT_RECORD', 'record payload has an unknown layout');
  const [, seq, ts, type, collection, actor, b] = arr as [number, unknown, unknown, unknown, unknown, unknown, Record<string, unknown>];
  if (typeof seq !== 'number' || typeof ts !== 'number' || typeof type !== 'string' || typeof collection !== 'string' || typeof b !== 'object' || b === null) {
    throw new LogError('LOG_CORRUPT_RECORD', 'record payload has fields of the wrong type');
  }
  let body: unknown;
  switch (type) {
    case 'collection.created': {
      const hnsw = b['hnsw'] as { M: number; efConstruction: number; efSearch: number } | null | undefined;
      if (typeof hnsw !== 'object' || hnsw === null) throw new LogError('LOG_CORRUPT_RECORD', 'collection.created has no hnsw settings');
      body = { dimension: b['dimension'] as number, metric: b['metric'] as 'cosine', hnsw: { M: hnsw.M, efConstruction: hnsw.efConstruction, efSearch: hnsw.efSearch } };
      break;
    }
    case 'collection.dropped':
      body = {};
      break;
    case 'vector.upserted': {
      const vb = b['vector'];
      if (!(vb instanceof Uint8Array)) throw new LogError('LOG_CORRUPT_RECORD', 'vector is not bytes');
      const md = b['metadata'];
      const vector = bytesToVector(vb);
      body = md !== null && md !== undefined ? { id: b['id'] as string, vector, metadata: md as Metadata } : { id: b['id'] as string, vector };
      break;
    }
    case 'vector.deleted':
      body = { id: b['id'] as string };
      break;
    default:
      throw new LogError('LOG_CORRUPT_RECORD', `unknown event type ${type}`);
  }
  if (rec === undefined) return (typeof actor === 'string' ? { seq, ts, collection, actor, type, body } : { seq, ts, collection, type, body }) as LogEvent;
  const prevHash = new Uint8Array(rec.subarray(0, 32));
  const hash = new Uint8Array(rec.subarray(32, 64));
  return (typeof actor === 'string' ? { seq, ts, collection, actor, type, body, prevHash, hash } : { seq, ts, collection, type, body, prevHash, hash }) as LogEvent;
}

function readUint(b: Uint8Array, at: number): [value: number, next: number] | undefined {
  const t = b[at];
  if (t === undefined) return undefined;
  if (t <= 0x7f) return [t, at + 1];
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  switch (t) {
    case 0xcc:
      return at + 2 <= b.byteLength ? [dv.getUint8(at + 1), at + 2] : undefined;
    case 0xcd:
      return at + 3 <= b.byteLength ? [dv.getUint16(at + 1), at + 3] : undefined;
    case 0xce:
      return at + 5 <= b.byteLength ? [dv.getUint32(at + 1), at + 5] : undefined;
    case 0xcf:
      return at + 9 <= b.byteLength ? [Number(dv.getBigUint64(at + 1)), at + 9] : undefined;
    case 0xcb:
      return at + 9 <= b.byteLength ? [dv.getFloat64(at + 1), at + 9] : undefined;
    default:
      return undefined;
  }
}

/**
 * The seq and ts of a canonical payload without decoding the body (no vector copy): what
 * `verify` and the head lookup need. Falls back to the full decode for any layout it does not
 * expect; throws LOG_CORRUPT_RECORD like `decodePayload`.
 */
export function decodePayloadHeader(payload: Uint8Array): { seq: number; ts: number } {
  if (payload[0] === 0x97 && payload[1] === RECORD_FORMAT_VERSION) {
    const seq = readUint(payload, 2);
    const ts = seq && readUint(payload, seq[1]);
    if (seq && ts && Number.isSafeInteger(seq[0]) && Number.isSafeInteger(ts[0])) return { seq: seq[0], ts: ts[0] };
  }
  const p = decodePayload(payload);
  return { seq: p.seq, ts: p.ts };
}

/**
 * The seq and ts of the canonical payload at `b[start..end)` (a stored record's is at 64), read in
 * place: `decodePayloadHeader` without a view, a DataView or a BigInt. Throws LOG_CORRUPT_RECORD
 * like it.
 */
export function payloadHeaderAt(b: Uint8Array, start: number, end = b.byteLength): { seq: number; ts: number } {
  if (b[start] === 0x97 && b[start + 1] === RECORD_FORMAT_VERSION) {
    try {
      const r = new Reader(b, start + 2);
      const seq = r.num();
      const ts = r.num();
      if (Number.isSafeInteger(seq) && Number.isSafeInteger(ts) && seq >= 0 && ts >= 0) return { seq, ts };
    } catch {
      // not the layout expected: the full decode below decides
    }
  }
  return decodePayloadHeader(b.subarray(start, end));
}

/**
 * What the log's indexes, backup counting and point-in-time restore need from a record: seq, ts,
 * type, collection, the document id, and `dim` (the vector's length for `vector.upserted`, the
 * dimension for `collection.created`).
 */
export interface IndexFields {
  seq: number;
  ts: number;
  type: string;
  collection: string;
  id?: string;
  dim?: number;
}

// The last few strings read at each place that repeats them (type, collection, body keys), with
// their bytes: restore reads millions of records of a handful of collections, and a string not
// built is one the caller's maps need not hash again and the worker need not copy.
const STRING_SLOTS = 8;
const slotBytes: (Buffer | undefined)[] = new Array<Buffer | undefined>(STRING_SLOTS);
const slotStrings: string[] = new Array<string>(STRING_SLOTS).fill('');

// A forward-only msgpack reader for the canonical payload layout: reads the few scalar fields
// and skips the rest (the vector is never copied, the metadata never built). Offsets are into
// `b`; reads past its end throw RangeError.
class Reader {
  off: number;
  readonly b: Buffer;
  constructor(b: Uint8Array, off: number) {
    this.b = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    this.off = off;
  }
  private u8(): number {
    const x = this.b[this.off++];
    if (x === undefined) throw new RangeError('truncated');
    return x;
  }
  num(): number {
    const t = this.u8();
    if (t <= 0x7f) return t;
    if (t >= 0xe0) return t - 0x100;
    const o = this.off;
    const b = this.b;
    // uint 8, 16 and 32 (what seqs grow through as a log grows) by one loop: as a Buffer call
    // each, the next was code a long import first reached at seq 128, 256 or 65 536, where V8
    // threw away the compiled caller (a deopt) and compiled it again.
    if (t >= 0xcc && t <= 0xce) {
      const n = 1 << (t - 0xcc);
      if (o + n > b.length) throw new RangeError('truncated');
      let v = 0;
      for (let k = 0; k < n; k++) v = v * 256 + b[o + k]!;
      this.off = o + n;
      return v;
    }
    switch (t) {
      // hi · 2^32 is exact; adding lo rounds once, to the nearest double, as Number(BigInt) does.
      case 0xcf: this.off += 8; return b.readUInt32BE(o) * 4294967296 + b.readUInt32BE(o + 4);
      case 0xd0: this.off += 1; return b.readInt8(o);
      case 0xd1: this.off += 2; return b.readInt16BE(o);
      case 0xd2: this.off += 4; return b.readInt32BE(o);
      case 0xd3: this.off += 8; return b.readInt32BE(o) * 4294967296 + b.readUInt32BE(o + 4);
      case 0xca: this.off += 4; return b.readFloatBE(o);
      case 0xcb: this.off += 8; return b.readDoubleBE(o);
      default: throw new TypeError(`not a number: 0x${t.toString(16)}`);
    }
  }
  private strLen(t: number): number | undefined {
    if (t >= 0xa0 && t <= 0xbf) return t - 0xa0;
    const o = this.off;
    if (t === 0xd9) { this.off += 1; return this.b.readUInt8(o); }
    if (t === 0xda) { this.off += 2; return this.b.readUInt16BE(o); }
    if (t === 0xdb) { this.off += 4; return this.b.readUInt32BE(o); }
    return undefined;
  }
  /** A string (null for nil). With `slot`, the same bytes as the slot's last string give that string back. */
  str(slot?: number): string | null {
    const t = this.u8();
    if (t === 0xc0) return null;
    const n = this.strLen(t);
    if (n === undefined) throw new TypeError(`not a string: 0x${t.toString(16)}`);
    const at = this.off;
    if (at + n > this.b.byteLength) throw new RangeError('truncated');
    this.off += n;
    if (slot === undefined || slot >= STRING_SLOTS || n > 64) return this.b.toString('utf8', at, at + n);
    const last = slotBytes[slot];
    if (last !== undefined && last.byteLength === n) {
      let same = true;
      for (let i = 0; i < n; i++) {
        if (last[i] !== this.b[at + i]) {
          same = false;
          break;
        }
      }
      if (same) return slotStrings[slot]!;
    }
    const v = this.b.toString('utf8', at, at + n);
    slotBytes[slot] = Buffer.from(this.b.subarray(at, at + n));
    slotStrings[slot] = v;
    return v;
  }
  /** Length of a bin value, skipping it. */
  binLen(): number {
    const t = this.u8();
    const o = this.off;
    let n: number;
    if (t === 0xc4) {
      n = this.b.readUInt8(o);
      this.off += 1;
    } else if (t === 0xc5) {
      n = this.b.readUInt16BE(o);
      this.off += 2;
    } else if (t === 0xc6) {
      n = this.b.readUInt32BE(o);
      this.off += 4;
    } else throw new TypeError(`not bin: 0x${t.toString(16)}`);
    if (this.off + n > this.b.byteLength) throw new RangeError('truncated');
    this.off += n;
    return n;
  }
  mapLen(): number {
    const t = this.u8();
    if (t >= 0x80 && t <= 0x8f) return t - 0x80;
    const o = this.off;
    if (t === 0xde) { this.off += 2; return this.b.readUInt16BE(o); }
    if (t === 0xdf) { this.off += 4; return this.b.readUInt32BE(o); }
    throw new TypeError(`not a map: 0x${t.toString(16)}`);
  }
  /** Skips any value. */
  skip(): void {
    const t = this.b[this.off];
    if (t === undefined) throw new RangeError('truncated');
    if (t <= 0x7f || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) { this.off += 1; return; }
    if ((t >= 0xa0 && t <= 0xbf) || t === 0xd9 || t === 0xda || t === 0xdb) { this.off += 1; const n = this.strLen(t)!; this.off += n; return; }
    if (t >= 0xca && t <= 0xd3) { this.num(); return; }
    if (t === 0xc4 || t === 0xc5 || t === 0xc6) { this.binLen(); return; }
    let n: number;
    let pairs = false;
    if (t >= 0x90 && t <= 0x9f) { n = t - 0x90; this.off += 1; }
    else if (t === 0xdc) { n = this.b.readUInt16BE(this.off + 1); this.off += 3; }
    else if (t === 0xdd) { n = this.b.readUInt32BE(this.off + 1); this.off += 5; }
    else if ((t >= 0x80 && t <= 0x8f) || t === 0xde || t === 0xdf) { n = this.mapLen(); pairs = true; }
    else throw new TypeError(`unsupported msgpack type 0x${t.toString(16)}`);
    for (let i = 0; i < (pairs ? 2 * n : n); i++) this.skip();
  }
}

/**
 * The IndexFields of the canonical payload at `b[start..]`; throws (not LogError) on any other
 * layout, and, given `end`, when the payload does not end exactly there.
 */
function readIndexFields(b: Uint8Array, start: number, end?: number): IndexFields {
  const r = new Reader(b, start);
  if (r.b[start] !== 0x97 || r.b[start + 1] !== RECORD_FORMAT_VERSION) throw new TypeError('layout');
  r.off = start + 2;
  const seq = r.num();
  const ts = r.num();
  const type = r.str(0);
  const collection = r.str(1);
  if (type === null || collection === null) throw new TypeError('layout');
  r.skip(); // actor
  const out: IndexFields = { seq, ts, type, collection };
  const n = r.mapLen();
  for (let i = 0; i < n; i++) {
    const k = r.str(2 + i);
    if (k === 'id') {
      const id = r.str();
      if (id !== null) out.id = id;
    } else if (k === 'vector') out.dim = r.binLen() / 4;
    else if (k === 'dimension') out.dim = r.num();
    else r.skip();
  }
  if (end !== undefined && r.off !== end) throw new TypeError('layout');
  return out;
}

/** The document id a record is indexed under (by-doc): a vector event's id, '' for a collection-level event. */
export function indexDocId(f: IndexFields): string {
  return f.type === 'vector.upserted' || f.type === 'vector.deleted' ? (f.id ?? '') : '';
}

/** The IndexFields of a decoded event. */
export function indexFieldsOf(e: EventInput & { seq: number; ts: number }): IndexFields {
  const out: IndexFields = { seq: e.seq, ts: e.ts, type: e.type, collection: e.collection };
  if (e.type === 'vector.upserted') {
    out.id = e.body.id;
    out.dim = e.body.vector.length;
  } else if (e.type === 'vector.deleted') out.id = e.body.id;
  else if (e.type === 'collection.created') out.dim = e.body.dimension;
  return out;
}

// prevHash ‖ payload side by side, for a one-shot hash: a Hash object per record (a native handle
// the GC must finalise) cost ~11% of the main thread at 64 writers, against ~5% for this.
let hashScratch = Buffer.allocUnsafe(4096);

/** SHA-256(prevHash ‖ payload), one-shot; `prevHash` is `prevLen` bytes of `prev` from its start. */
function sha256Joined(prev: Uint8Array, prevLen: number, payload: Uint8Array): Buffer {
  const n = prevLen + payload.byteLength;
  if (hashScratch.byteLength < n) hashScratch = Buffer.allocUnsafe(Math.max(n, 2 * hashScratch.byteLength));
  if (prevLen === prev.byteLength) hashScratch.set(prev, 0);
  else for (let i = 0; i < prevLen; i++) hashScratch[i] = prev[i]!; // a record's first 32 bytes, without a view
  hashScratch.set(payload, prevLen);
  return oneShotHash('sha256', hashScratch.subarray(0, n), 'buffer');
}

/** SHA-256(prevHash ‖ payload). */
export function chainHash(prevHash: Uint8Array, payload: Uint8Array): Uint8Array {
  return new Uint8Array(sha256Joined(prevHash, prevHash.byteLength, payload));
}

/**
 * Whether the stored record `b[at, end)` (at least 64 bytes long) re-hashes to its stored hash:
 * SHA-256(prevHash ‖ payload) against bytes 32..63. The digest comes back as a latin1 (`binary`) string
 * (one char a byte) and is compared char by char: a Buffer result costs a backing store per
 * call, ~0.85 µs, more than hashing a 600-byte record (~0.55 µs; restore checks millions).
 */
function recordHashMatches(b: Buffer, at: number, end: number): boolean {
  const n = end - at - 32;
  if (hashScratch.byteLength < n) hashScratch = Buffer.allocUnsafe(Math.max(n, 2 * hashScratch.byteLength));
  b.copy(hashScratch, 0, at, at + 32);
  b.copy(hashScratch, 32, at + 64, end);
  const h = oneShotHash('sha256', hashScratch.subarray(0, n), 'binary'); // 'binary' is latin1
  for (let i = 0; i < 32; i++) if (h.charCodeAt(i) !== b[at + 32 + i]) return false;
  return true;
}

/** The stored hash `recordHashMatchesInPlace` sets aside while the record's bytes 32..63 hold its prevHash. */
const storedHash = new Uint8Array(32);

/**
 * `recordHashMatches` without copying the record: its stored hash (bytes 32..63) is set aside and
 * the prevHash copied over it, so that prevHash ‖ payload is contiguous at 32, hashed there, and
 * the stored hash put back (whatever happens). The 32-byte moves are plain loops: as
 * `toString`/`copyWithin`/`write`, each a call into C++, they cost ~0.13 µs a record more (a
 * restore checks a million).
 */
function recordHashMatchesInPlace(b: Buffer, at: number, end: number): boolean {
  const h0 = at + 32;
  for (let i = 0; i < 32; i++) {
    storedHash[i] = b[h0 + i]!;
    b[h0 + i] = b[at + i]!;
  }
  try {
    const h = oneShotHash('sha256', b.subarray(h0, end), 'binary'); // 'binary' is latin1: one char a byte
    for (let i = 0; i < 32; i++) if (h.charCodeAt(i) !== storedHash[i]) return false;
    return true;
  } finally {
    for (let i = 0; i < 32; i++) b[h0 + i] = storedHash[i]!;
  }
}

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * Checks a stored record by itself — SHA-256(prevHash ‖ payload) must equal its stored hash —
 * and returns its IndexFields. It says nothing about where the record belongs: seq, ts and the
 * link to the previous record are for the caller (or `EventLog.importRecords`) to check.
 * Throws LOG_CORRUPT_RECORD for a record too short or a payload that does not decode, and
 * LOG_CHAIN_BROKEN (`problem: 'hash_mismatch'`) for a hash that does not match.
 */
export function checkRecord(rec: Uint8Array): IndexFields {
  return checkRecordBy(asBuffer(rec), 0, rec.byteLength, recordHashMatches);
}

/**
 * `checkRecord` of the record `rec[at, end)` (all of `rec` by default), hashing it where it is
 * instead of a copy of it: while it is hashed, the record's stored-hash bytes hold its prevHash;
 * they are put back before it returns or throws. Only for bytes the caller owns, that nothing
 * reads meanwhile (the restore's codec checks a million records in its own buffer: ~0.2 s of
 * copies, and with offsets no view is made of each).
 */
export function checkRecordInPlace(rec: Uint8Array, at = 0, end = rec.byteLength): IndexFields {
  if (!(at >= 0 && at <= end && end <= rec.byteLength)) throw new RangeError(`record bounds ${at}..${end} are outside the ${rec.byteLength} bytes given`);
  return checkRecordBy(asBuffer(rec), at, end, recordHashMatchesInPlace);
}

/**
 * The IndexFields of a stored record (the payload after its two hashes), read in place without
 * building the vector or the metadata (about 10x cheaper than `decodePayload`). A layout it does
 * not recognise falls back to the full decode, which throws LOG_CORRUPT_RECORD for anything that
 * is not a valid payload.
 */
export function recordIndexFields(rec: Uint8Array): IndexFields {
  return recordIndexFieldsAt(asBuffer(rec), 0, rec.byteLength);
}

/**
 * `recordIndexFields` of the stored record at `b[at..end)`, read without a view of it (a backup
 * reads millions out of the write-ahead segments' bytes).
 */
export function recordIndexFieldsAt(b: Buffer, at: number, end: number): IndexFields {
  if (end - at < 65) throw new LogError('LOG_CORRUPT_RECORD', 'record is too short');
  try {
    return readIndexFields(b, at + 64, end);
  } catch {
    return indexFieldsOf(decodePayload(b.subarray(at + 64, end)));
  }
}

function checkRecordBy(b: Buffer, at: number, end: number, matches: (b: Buffer, at: number, end: number) => boolean): IndexFields {
  const f = recordIndexFieldsAt(b, at, end);
  if (!matches(b, at, end)) throw new LogError('LOG_CHAIN_BROKEN', `seq ${f.seq} does not hash to its stored hash`, { seq: f.seq, problem: 'hash_mismatch' });
  return f;
}

/**
 * Whether a stored record re-hashes to its stored hash (false for one too short to hold both
 * hashes).
 */
export function recordHashOk(rec: Uint8Array): boolean {
  if (rec.byteLength < 64) return false;
  return recordHashMatches(asBuffer(rec), 0, rec.byteLength);
}

/** A record's own buffer (from Node's pool), when no frame is being built around it. */
const allocRecord = (bytes: number): Buffer => Buffer.allocUnsafe(bytes);

/** Stored record: `prevHash(32) ‖ hash(32) ‖ payload`. */
export function encodeRecord(prevHash: Uint8Array, hash: Uint8Array, payload: Uint8Array, alloc: (bytes: number) => Buffer = allocRecord): Buffer {
  const out = alloc(64 + payload.byteLength);
  out.set(prevHash, 0);
  out.set(hash, 32);
  out.set(payload, 64);
  return out;
}

/** The parts of a stored record, without decoding the payload. */
export function splitRecord(rec: Uint8Array): { prevHash: Uint8Array; hash: Uint8Array; payload: Uint8Array } {
  if (rec.byteLength < 65) throw new LogError('LOG_CORRUPT_RECORD', 'record is too short');
  return { prevHash: rec.subarray(0, 32), hash: rec.subarray(32, 64), payload: rec.subarray(64) };
}

/** Decodes a stored record into a LogEvent (hashes copied out of the record buffer). */
export function decodeRecord(rec: Uint8Array): LogEvent {
  return decodeEvent(splitRecord(rec).payload, rec);
}

/** Encodes a committed event as its stored record (re-deriving the payload). */
export function encodeEvent(e: LogEvent): Buffer {
  return encodeRecord(e.prevHash, e.hash, encodePayload(e, e.seq, e.ts));
}

/** Builds the committed form of `input` at `seq`/`ts` after `prevHash`: payload, hash and record. */
export function sealEvent(input: EventInput, seq: number, ts: number, prevHash: Uint8Array, alloc: (bytes: number) => Buffer = allocRecord): { event: LogEvent; record: Buffer } {
  const fast = input.type === 'vector.upserted' ? sealUpsert(input, seq, ts, prevHash, alloc) : undefined;
  if (fast !== undefined) return fast;
  const payload = encodePayload(input, seq, ts);
  const hash = chainHash(prevHash, payload);
  return { event: committed(input, seq, ts, prevHash, hash), record: encodeRecord(prevHash, hash, payload, alloc) };
}

/**
 * The committed event: the input's fields and the commit fields, built field by field (an object
 * spread of the input cost ~3 µs an event, measured, as much as encoding and hashing it together).
 */
function committed(input: EventInput, seq: number, ts: number, prevHash: Uint8Array, hash: Uint8Array): LogEvent {
  return (
    input.actor === undefined
      ? { type: input.type, collection: input.collection, body: input.body, seq, ts, prevHash, hash }
      : { type: input.type, collection: input.collection, actor: input.actor, body: input.body, seq, ts, prevHash, hash }
  ) as LogEvent;
}

// ---------------------------------------------------------------- sealing a vector.upserted fast

/**
 * msgpack of a non-negative integer, as msgpackr writes it (fixint, uint 8/16/32, else float 64),
 * at `at` of `b`; returns the end. Writing the payload of the hot event kind by hand, straight
 * behind the previous hash where it is hashed, skips msgpackr's generic walk and two copies: at 64
 * writers, encoding was 12% of the writer's time. `codec.prop.test.ts` checks it against msgpackr.
 */
function putUint(b: Buffer, at: number, n: number): number {
  if (n < 0x80) {
    b[at] = n;
    return at + 1;
  }
  if (n < 0x100) {
    b[at] = 0xcc;
    b[at + 1] = n;
    return at + 2;
  }
  if (n < 0x10000) {
    b[at] = 0xcd;
    b.writeUInt16BE(n, at + 1);
    return at + 3;
  }
  if (n < 0x100000000) {
    b[at] = 0xce;
    b.writeUInt32BE(n, at + 1);
    return at + 5;
  }
  b[at] = 0xcb;
  b.writeDoubleBE(n, at + 1);
  return at + 9;
}

/** msgpack of an ASCII string (fixstr, str 8 or str 16); -1 if it is not ASCII. */
function putAscii(b: Buffer, at: number, str: string): number {
  const n = str.length;
  let p = at;
  if (n < 32) b[p++] = 0xa0 | n;
  else if (n < 0x100) {
    b[p++] = 0xd9;
    b[p++] = n;
  } else {
    b[p++] = 0xda;
    b.writeUInt16BE(n, p);
    p += 2;
  }
  for (let i = 0; i < n; i++) {
    const c = str.charCodeAt(i);
    if (c > 0x7f) return -1;
    b[p++] = c;
  }
  return p;
}

// The body's fixed keys as msgpack strings.
const KEY_ID = Buffer.from([0xa2, 0x69, 0x64]);
const KEY_METADATA = Buffer.concat([Buffer.from([0xa8]), Buffer.from('metadata')]);
const KEY_VECTOR = Buffer.concat([Buffer.from([0xa6]), Buffer.from('vector')]);
const TYPE_UPSERTED = Buffer.concat([Buffer.from([0xa0 | 'vector.upserted'.length]), Buffer.from('vector.upserted')]);

/**
 * `sealEvent` for a vector.upserted: the canonical payload (what `encodePayload` gives, byte for
 * byte) written behind `prevHash` in the hash scratch, hashed there, and copied once into the
 * record. Undefined (the caller takes the general path) for anything outside what it writes:
 * non-integer seq or ts, strings that are not ASCII or are 64 KiB long, a vector of 64 KiB.
 */
function sealUpsert(input: EventInput & { type: 'vector.upserted' }, seq: number, ts: number, prevHash: Uint8Array, alloc: (bytes: number) => Buffer): { event: LogEvent; record: Buffer } | undefined {
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(ts) || seq < 0 || ts < 0) return undefined;
  const { id, vector, metadata } = input.body;
  const collection = input.collection;
  const actor = input.actor;
  const vbytes = vector.byteLength;
  if (id.length >= 0x10000 || collection.length >= 0x10000 || (actor !== undefined && actor.length >= 0x10000) || vbytes >= 0x10000) return undefined;
  const md = metadata === undefined ? undefined : packr.pack(canonical(metadata));
  // Upper bound of the payload: header ints 1+9+9, strings with headers, keys, bin 16 header.
  const max = 32 + 3 + 9 + 9 + TYPE_UPSERTED.byteLength + 3 + collection.length + 3 + (actor?.length ?? 0) + 1 + KEY_ID.byteLength + 3 + id.length + KEY_METADATA.byteLength + (md?.byteLength ?? 1) + KEY_VECTOR.byteLength + 3 + vbytes;
  if (hashScratch.byteLength < max) hashScratch = Buffer.allocUnsafe(Math.max(max, 2 * hashScratch.byteLength));
  const b = hashScratch;
  b.set(prevHash, 0);
  let p = 32;
  b[p++] = 0x97;
  b[p++] = RECORD_FORMAT_VERSION;
  p = putUint(b, p, seq);
  p = putUint(b, p, ts);
  b.set(TYPE_UPSERTED, p);
  p += TYPE_UPSERTED.byteLength;
  p = putAscii(b, p, collection);
  if (p < 0) return undefined;
  if (actor === undefined) b[p++] = 0xc0;
  else if ((p = putAscii(b, p, actor)) < 0) return undefined;
  b[p++] = 0x83;
  b.set(KEY_ID, p);
  p += KEY_ID.byteLength;
  if ((p = putAscii(b, p, id)) < 0) return undefined;
  b.set(KEY_METADATA, p);
  p += KEY_METADATA.byteLength;
  if (md === undefined) b[p++] = 0xc0;
  else {
    b.set(md, p);
    p += md.byteLength;
  }
  b.set(KEY_VECTOR, p);
  p += KEY_VECTOR.byteLength;
  if (vbytes < 0x100) {
    b[p++] = 0xc4;
    b[p++] = vbytes;
  } else {
    b[p++] = 0xc5;
    b.writeUInt16BE(vbytes, p);
    p += 2;
  }
  b.set(new Uint8Array(vector.buffer, vector.byteOffset, vbytes), p);
  p += vbytes;
  const hash = new Uint8Array(oneShotHash('sha256', b.subarray(0, p), 'buffer'));
  const record = alloc(32 + p);
  record.set(prevHash, 0);
  record.set(hash, 32);
  record.set(b.subarray(32, p), 64);
  return { event: committed(input, seq, ts, prevHash, hash), record };
}
