import { GENESIS_HASH, toHex } from '@kyrodb/log';
import type { EventLog, HnswParams, LogEvent, LogHead, Metadata, Metric } from '@kyrodb/log';
import { formatMicros } from './time.js';

/** A document as of some instant: its last upsert while live. */
export interface AuditDoc {
  id: string;
  vector: Float32Array;
  metadata?: Metadata;
  /** Seq and ts (µs) of the upsert that wrote this value. */
  seq: number;
  ts: number;
}

/** A collection's settings as of some instant. */
export interface AuditCollectionInfo {
  name: string;
  dimension: number;
  metric: Metric;
  hnsw: HnswParams;
  /** Seq of the `collection.created` event of this incarnation. */
  createdSeq: number;
  /** Seq of the last event that changed the collection (create, upsert or delete). */
  version: number;
}

/** One collection and its live documents. */
export interface AuditCollection {
  info: AuditCollectionInfo;
  docs: Map<string, AuditDoc>;
}

/** The state of the log prefix with ts ≤ `asOf`: what `exportStateAsOf` writes and `importState` reads back. */
export interface AuditState {
  /** The instant, µs since the epoch. */
  asOf: number;
  /** The last event with ts ≤ asOf (seq 0, ts 0 and the genesis hash when there is none). */
  head: LogHead;
  collections: Map<string, AuditCollection>;
}

/** The head digest of the log prefix ending at `seq` (seq 0 = genesis). */
export function headAtSeq(log: EventLog, seq: number): LogHead {
  if (seq === 0) return { seq: 0, ts: 0, hash: GENESIS_HASH };
  const e = log.get(seq);
  if (e === undefined) return { seq: 0, ts: 0, hash: GENESIS_HASH };
  return { seq: e.seq, ts: e.ts, hash: e.hash };
}

/**
 * Applies one event to a state, with the same semantics as the log's `docAsOf`: a collection
 * event (created or dropped) ends every document written before it; `collection.created`
 * starts an empty incarnation; writes to a collection that does not exist are ignored (the API
 * never appends them).
 */
export function applyEvent(collections: Map<string, AuditCollection>, e: LogEvent, only?: string): void {
  if (only !== undefined && e.collection !== only) return;
  switch (e.type) {
    case 'collection.created':
      collections.set(e.collection, {
        info: { name: e.collection, dimension: e.body.dimension, metric: e.body.metric, hnsw: { ...e.body.hnsw }, createdSeq: e.seq, version: e.seq },
        docs: new Map(),
      });
      break;
    case 'collection.dropped':
      collections.delete(e.collection);
      break;
    case 'vector.upserted': {
      const c = collections.get(e.collection);
      if (c === undefined) return;
      c.docs.set(e.body.id, { id: e.body.id, vector: e.body.vector, ...(e.body.metadata !== undefined ? { metadata: e.body.metadata } : {}), seq: e.seq, ts: e.ts });
      c.info.version = e.seq;
      break;
    }
    case 'vector.deleted': {
      const c = collections.get(e.collection);
      if (c === undefined) return;
      c.docs.delete(e.body.id);
      c.info.version = e.seq;
      break;
    }
  }
}

/**
 * The full state as of `tsMicros` (every event with ts ≤ T), rebuilt by replaying the log
 * prefix 1..seqAtTime(T). Our own small replay (the projections package's `materialize` was not
 * available when this was written); O(prefix). `onProgress(seq, toSeq)` every 10 000 events.
 * The caller validates T (see `parseAsOf`); a T before the first event gives an empty state.
 */
export function stateAsOf(log: EventLog, tsMicros: number, onProgress?: (seq: number, toSeq: number) => void, only?: string): AuditState {
  const toSeq = log.seqAtTime(tsMicros);
  const collections = new Map<string, AuditCollection>();
  for (const e of log.read(1, toSeq)) {
    applyEvent(collections, e, only);
    if (onProgress !== undefined && e.seq % 10_000 === 0) onProgress(e.seq, toSeq);
  }
  if (onProgress !== undefined) onProgress(toSeq, toSeq);
  return { asOf: tsMicros, head: headAtSeq(log, toSeq), collections };
}

/**
 * One collection as of T: its settings and live documents, or undefined if it did not exist
 * at T. Replays the prefix but keeps only this collection's events.
 */
export function collectionAsOf(log: EventLog, collection: string, tsMicros: number): (AuditCollection & { head: LogHead }) | undefined {
  const s = stateAsOf(log, tsMicros, undefined, collection);
  const c = s.collections.get(collection);
  return c === undefined ? undefined : { ...c, head: s.head };
}

/** A document's value as of T in O(log n) through the log's `by-doc` index, or undefined. */
export function docValueAsOf(log: EventLog, collection: string, id: string, tsMicros?: number): AuditDoc | undefined {
  const e = log.docAsOf(collection, id, tsMicros);
  if (e === undefined) return undefined;
  return { id: e.body.id, vector: e.body.vector, ...(e.body.metadata !== undefined ? { metadata: e.body.metadata } : {}), seq: e.seq, ts: e.ts };
}

/** JSON shape of a head digest. */
export interface HeadJson {
  seq: number;
  ts: number;
  ts_iso: string | null;
  hash: string;
}

/** Renders a head as JSON: `{seq, ts, ts_iso, hash}` (ts_iso null for the empty log). */
export function headToJson(h: LogHead): HeadJson {
  return { seq: h.seq, ts: h.ts, ts_iso: h.seq === 0 ? null : formatMicros(h.ts), hash: toHex(h.hash) };
}

/** JSON shape of an event. */
export interface EventJson {
  seq: number;
  ts: number;
  ts_iso: string;
  type: LogEvent['type'];
  collection: string;
  actor: string | null;
  body: Record<string, unknown>;
  prev_hash: string;
  hash: string;
}

/** Renders an event as JSON (vector as a number array; Float32 values survive JSON exactly). */
export function eventToJson(e: LogEvent): EventJson {
  let body: Record<string, unknown>;
  switch (e.type) {
    case 'vector.upserted':
      body = { id: e.body.id, vector: Array.from(e.body.vector), ...(e.body.metadata !== undefined ? { metadata: e.body.metadata } : {}) };
      break;
    case 'collection.created':
      body = { dimension: e.body.dimension, metric: e.body.metric, hnsw: { ...e.body.hnsw } };
      break;
    case 'vector.deleted':
      body = { id: e.body.id };
      break;
    case 'collection.dropped':
      body = {};
      break;
  }
  return { seq: e.seq, ts: e.ts, ts_iso: formatMicros(e.ts), type: e.type, collection: e.collection, actor: e.actor ?? null, body, prev_hash: toHex(e.prevHash), hash: toHex(e.hash) };
}

/** Renders a document as JSON. */
export function docToJson(collection: string, d: AuditDoc): Record<string, unknown> {
  return { collection, id: d.id, vector: Array.from(d.vector), metadata: d.metadata ?? null, seq: d.seq, ts: d.ts, ts_iso: formatMicros(d.ts) };
}
