import { LogError } from './errors.js';

/** Distance metric of a collection. */
export type Metric = 'cosine' | 'l2' | 'ip';
/** The metrics, for validation. */
export const METRICS: readonly Metric[] = ['cosine', 'l2', 'ip'];

/** HNSW build and search parameters of a collection. */
export interface HnswParams {
  /** Links per node (hnswlib `M`). Default 16. */
  M: number;
  /** Candidate list size while building. Default 200. */
  efConstruction: number;
  /** Candidate list size while searching (at least k is used). Default 64. */
  efSearch: number;
}

/** Defaults for HnswParams. */
export const defaultHnswParams: HnswParams = Object.freeze({ M: 16, efConstruction: 200, efSearch: 64 });

/** A metadata value: JSON (numbers as JSON has them: -0 is stored as 0). Filters match top-level keys. */
export type MetadataValue = string | number | boolean | null | MetadataValue[] | { [key: string]: MetadataValue };
/** Metadata of a vector: a JSON object. */
export type Metadata = { [key: string]: MetadataValue };

/** Body of `collection.created`. */
export interface CollectionCreatedBody {
  dimension: number;
  metric: Metric;
  hnsw: HnswParams;
}
/** Body of `vector.upserted`. `vector` is exact Float32. */
export interface VectorUpsertedBody {
  id: string;
  vector: Float32Array;
  metadata?: Metadata;
}
/** Body of `vector.deleted`. */
export interface VectorDeletedBody {
  id: string;
}

/** An event as the caller supplies it to `append`: seq, ts and hashes are assigned at commit. */
export type EventInput =
  | { type: 'collection.created'; collection: string; actor?: string; body: CollectionCreatedBody }
  | { type: 'collection.dropped'; collection: string; actor?: string; body: Record<string, never> }
  | { type: 'vector.upserted'; collection: string; actor?: string; body: VectorUpsertedBody }
  | { type: 'vector.deleted'; collection: string; actor?: string; body: VectorDeletedBody };

/** The event types. */
export type EventType = EventInput['type'];
export const EVENT_TYPES: readonly EventType[] = ['collection.created', 'collection.dropped', 'vector.upserted', 'vector.deleted'];

/** Fields assigned at commit. */
export interface CommitFields {
  /** 1, 2, 3, … gapless. */
  seq: number;
  /** Commit time, microseconds since the epoch; non-decreasing in seq. */
  ts: number;
  /** Hash of the previous event (32 zero bytes for seq 1). */
  prevHash: Uint8Array;
  /** SHA-256(prevHash ‖ canonical payload). */
  hash: Uint8Array;
}

/** A committed event. */
export type LogEvent = EventInput & CommitFields;

/** The genesis prevHash: 32 zero bytes. */
export const GENESIS_HASH: Uint8Array = new Uint8Array(32);

/** Collection names: 1–64 of `[A-Za-z0-9_-]`, starting with a letter or digit. */
export const COLLECTION_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
/** Document ids: 1–256 printable ASCII characters except `/`, `?`, `#`, `%` and whitespace. */
export const DOC_ID_RE = /^(?:(?![/?#%])[\x21-\x7e]){1,256}$/;
/** Largest accepted dimension. */
export const MAX_DIMENSION = 4096;
/** Actors: 1–128 printable characters. */
const ACTOR_RE = /^[\x21-\x7e]{1,128}$/;

function fail(code: 'LOG_INVALID_EVENT' | 'LOG_NON_FINITE_VECTOR', index: number, message: string): never {
  throw new LogError(code, `event ${index}: ${message}`, { index });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);
}

/**
 * Levels of nesting metadata may have, counting the metadata object itself as level 1: `{"a": 1}`
 * is 1 level, `{"a": {"b": [1]}}` 3. Objects and arrays count alike; a scalar adds none.
 */
export const MAX_METADATA_DEPTH = 16;

/** A UTF-16 surrogate not in a pair (`"\ud800"` is valid JSON): UTF-8, and so the log, cannot hold it. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** `v` lies inside `level` objects or arrays. */
function checkJson(v: unknown, level: number): boolean {
  if (typeof v === 'string') return !LONE_SURROGATE.test(v);
  if (v === null || typeof v === 'boolean') return true;
  if (typeof v === 'number') return Number.isFinite(v);
  if (level >= MAX_METADATA_DEPTH) return false; // v would be level MAX_METADATA_DEPTH + 1
  if (Array.isArray(v)) return v.every((x) => checkJson(x, level + 1));
  if (isPlainObject(v)) return Object.entries(v).every(([k, x]) => !LONE_SURROGATE.test(k) && checkJson(x, level + 1));
  return false;
}

/**
 * Whether `m` is what an upsert's metadata may be: a JSON object of finite numbers, strings
 * (keys too) that UTF-8 can hold (no lone surrogate: stored, it would read back as U+FFFD, unlike
 * the live state), booleans, null, arrays and objects, at most `MAX_METADATA_DEPTH` (16) levels
 * deep counting itself.
 */
export function isValidMetadata(m: unknown): boolean {
  return isPlainObject(m) && checkJson(m, 0);
}

/**
 * Checks one event against the documented shape. Throws LogError `LOG_INVALID_EVENT` (or
 * `LOG_NON_FINITE_VECTOR`) naming the event's index and the field; returns nothing.
 */
export function validateEventInput(e: unknown, index = 0): asserts e is EventInput {
  if (!isPlainObject(e)) fail('LOG_INVALID_EVENT', index, 'is not an object');
  const { type, collection, actor, body } = e;
  for (const k of Object.keys(e)) if (!['type', 'collection', 'actor', 'body'].includes(k)) fail('LOG_INVALID_EVENT', index, `unknown field "${k}"`);
  if (typeof type !== 'string' || !(EVENT_TYPES as readonly string[]).includes(type)) fail('LOG_INVALID_EVENT', index, `type must be one of ${EVENT_TYPES.join(', ')}`);
  if (typeof collection !== 'string' || !COLLECTION_NAME_RE.test(collection)) fail('LOG_INVALID_EVENT', index, 'collection must match ' + String(COLLECTION_NAME_RE));
  if (actor !== undefined && (typeof actor !== 'string' || !ACTOR_RE.test(actor))) fail('LOG_INVALID_EVENT', index, 'actor must be 1-128 printable characters');
  if (!isPlainObject(body)) fail('LOG_INVALID_EVENT', index, 'body must be an object');
  const keys = Object.keys(body);
  const only = (allowed: string[]): void => {
    for (const k of keys) if (!allowed.includes(k)) fail('LOG_INVALID_EVENT', index, `unknown body field "${k}"`);
  };
  switch (type) {
    case 'collection.created': {
      only(['dimension', 'metric', 'hnsw']);
      const { dimension, metric, hnsw } = body;
      if (typeof dimension !== 'number' || !Number.isInteger(dimension) || dimension < 1 || dimension > MAX_DIMENSION) fail('LOG_INVALID_EVENT', index, `dimension must be an integer in 1..${MAX_DIMENSION}`);
      if (typeof metric !== 'string' || !(METRICS as readonly string[]).includes(metric)) fail('LOG_INVALID_EVENT', index, 'metric must be cosine, l2 or ip');
      if (!isPlainObject(hnsw)) fail('LOG_INVALID_EVENT', index, 'hnsw must be an object {M, efConstruction, efSearch}');
      for (const k of Object.keys(hnsw)) if (!['M', 'efConstruction', 'efSearch'].includes(k)) fail('LOG_INVALID_EVENT', index, `unknown hnsw field "${k}"`);
      for (const [k, max] of [['M', 256], ['efConstruction', 10_000], ['efSearch', 10_000]] as const) {
        const v = hnsw[k];
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 2 || v > max) fail('LOG_INVALID_EVENT', index, `hnsw.${k} must be an integer in 2..${max}`);
      }
      break;
    }
    case 'collection.dropped':
      only([]);
      break;
    case 'vector.upserted': {
      only(['id', 'vector', 'metadata']);
      const { id, vector, metadata } = body;
      if (typeof id !== 'string' || !DOC_ID_RE.test(id)) fail('LOG_INVALID_EVENT', index, 'id must be 1-256 printable ASCII characters without whitespace, /, ?, # or %');
      if (!(vector instanceof Float32Array)) fail('LOG_INVALID_EVENT', index, 'vector must be a Float32Array');
      if (vector.length < 1 || vector.length > MAX_DIMENSION) fail('LOG_INVALID_EVENT', index, `vector length must be in 1..${MAX_DIMENSION}`);
      for (let i = 0; i < vector.length; i++) if (!Number.isFinite(vector[i])) fail('LOG_NON_FINITE_VECTOR', index, `vector[${i}] is ${String(vector[i])}`);
      if (metadata !== undefined && !isValidMetadata(metadata)) fail('LOG_INVALID_EVENT', index, 'metadata must be a JSON object with finite numbers, at most 16 levels deep (itself included)');
      break;
    }
    case 'vector.deleted': {
      only(['id']);
      if (typeof body['id'] !== 'string' || !DOC_ID_RE.test(body['id'])) fail('LOG_INVALID_EVENT', index, 'id must be 1-256 printable ASCII characters without whitespace, /, ?, # or %');
      break;
    }
  }
}

/** The document id an event concerns, or undefined for collection-level events. */
export function eventDocId(e: EventInput): string | undefined {
  return e.type === 'vector.upserted' || e.type === 'vector.deleted' ? e.body.id : undefined;
}

/** Hex of a hash. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** Bytes of a 64-character hex hash; throws LOG_INVALID_EVENT on anything else. */
export function fromHex(hex: string): Uint8Array {
  if (!/^[0-9a-f]{64}$/i.test(hex)) throw new LogError('LOG_INVALID_EVENT', 'a hash must be 64 hex characters');
  return new Uint8Array(Buffer.from(hex, 'hex'));
}
