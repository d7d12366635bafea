import { createHash } from 'node:crypto';
import { Packr } from 'msgpackr';
import { LogError } from './errors.js';
import type { CommitFields, EventInput, LogEvent, Metadata, MetadataValue } from './events.js';

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
  let arr: unknown;
  try {
    arr = packr.unpack(payload);
  } catch (cause) {
    throw new LogError('LOG_CORRUPT_RECORD', 'record payload is not valid msgpack', {}, { cause });
  }
  if (!Array.isArray(arr) || arr.length !== 7 || arr[0] !== RECORD_FORMAT_VERSION) throw new LogError('LOG_CORRUPT_RECORD', 'record payload has an unknown layout');
  const [, seq, ts, type, collection, actor, body] = arr as [number, unknown, unknown, unknown, unknown, unknown, Record<string, unknown>];
  if (typeof seq !== 'number' || typeof ts !== 'number' || typeof type !== 'string' || typeof collection !== 'string' || typeof body !== 'object' || body === null) {
    throw new LogError('LOG_CORRUPT_RECORD', 'record payload has fields of the wrong type');
  }
  const base = { seq, ts, collection, ...(typeof actor === 'string' ? { actor } : {}) };
  switch (type) {
    case 'collection.created': {
      const hnsw = body['hnsw'] as { M: number; efConstruction: number; efSearch: number };
      return { ...base, type, body: { dimension: body['dimension'] as number, metric: body['metric'] as 'cosine', hnsw: { M: hnsw.M, efConstruction: hnsw.efConstruction, efSearch: hnsw.efSearch } } };
    }
    case 'collection.dropped':
      return { ...base, type, body: {} };
    case 'vector.upserted': {
      const vb = body['vector'];
      if (!(vb instanceof Uint8Array)) throw new LogError('LOG_CORRUPT_RECORD', 'vector is not bytes');
      const md = body['metadata'];
      return { ...base, type, body: { id: body['id'] as string, vector: bytesToVector(vb), ...(md !== null && md !== undefined ? { metadata: md as Metadata } : {}) } };
    }
    case 'vector.deleted':
      return { ...base, type, body: { id: body['id'] as string } };
    default:
      throw new LogError('LOG_CORRUPT_RECORD', `unknown event type ${type}`);
  }
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
 * The fields the log's indexes need (seq, ts, type, collection, document id), without building
 * the vector or the metadata: the fast path for importing sealed records.
 */
export function decodeIndexFields(payload: Uint8Array): { seq: number; ts: number; type: string; collection: string; id: string | undefined } {
  let arr: unknown;
  try {
    arr = packr.unpack(payload);
  } catch (cause) {
    throw new LogError('LOG_CORRUPT_RECORD', 'record payload is not valid msgpack', {}, { cause });
  }
  if (!Array.isArray(arr) || arr.length !== 7 || arr[0] !== RECORD_FORMAT_VERSION) throw new LogError('LOG_CORRUPT_RECORD', 'record payload has an unknown layout');
  const [, seq, ts, type, collection, , body] = arr as unknown[];
  if (typeof seq !== 'number' || typeof ts !== 'number' || typeof type !== 'string' || typeof collection !== 'string' || typeof body !== 'object' || body === null) {
    throw new LogError('LOG_CORRUPT_RECORD', 'record payload has fields of the wrong type');
  }
  const id = (body as { id?: unknown }).id;
  return { seq, ts, type, collection, id: typeof id === 'string' ? id : undefined };
}

/** SHA-256(prevHash ‖ payload). */
export function chainHash(prevHash: Uint8Array, payload: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(prevHash).update(payload).digest());
}

/** Stored record: `prevHash(32) ‖ hash(32) ‖ payload`. */
export function encodeRecord(prevHash: Uint8Array, hash: Uint8Array, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(64 + payload.byteLength);
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
  const { prevHash, hash, payload } = splitRecord(rec);
  const e = decodePayload(payload);
  const commit: CommitFields = { seq: e.seq, ts: e.ts, prevHash: new Uint8Array(prevHash), hash: new Uint8Array(hash) };
  return { ...e, ...commit };
}

/** Encodes a committed event as its stored record (re-deriving the payload). */
export function encodeEvent(e: LogEvent): Buffer {
  return encodeRecord(e.prevHash, e.hash, encodePayload(e, e.seq, e.ts));
}

/** Builds the committed form of `input` at `seq`/`ts` after `prevHash`: payload, hash and record. */
export function sealEvent(input: EventInput, seq: number, ts: number, prevHash: Uint8Array): { event: LogEvent; record: Buffer } {
  const payload = encodePayload(input, seq, ts);
  const hash = chainHash(prevHash, payload);
  const event: LogEvent = { ...input, seq, ts, prevHash, hash };
  return { event, record: encodeRecord(prevHash, hash, payload) };
}
