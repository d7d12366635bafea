import { GENESIS_HASH, toHex } from '@kyrodb/log';
import { applyEvent, emptyState, exactSearch } from '@kyrodb/projections';
import type { Filter, MaterializedState, SearchHit } from '@kyrodb/projections';
import type { EventLog, HnswParams, LogEvent, LogHead, Metadata, Metric } from '@kyrodb/log';
import { AuditError } from './errors.js';
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
 * The full state as of `tsMicros` (every event with ts ≤ T), rebuilt by replaying the log
 * prefix 1..seqAtTime(T) through the projections' one transition function (`applyEvent` of
 * @kyrodb/projections), so it equals what the live projections answered at T — including how
 * they ignore events that do not apply (a write to a missing collection, a vector of the wrong
 * dimension, a second create of a live collection, a delete of an absent doc). O(prefix).
 * `onProgress(seq, toSeq)` after every 10 000 events. With `only`, keeps one collection's events.
 * The caller validates T (see `parseAsOf`); a T before the first event gives an empty state.
 */
export function stateAsOf(log: EventLog, tsMicros: number, onProgress?: (seq: number, toSeq: number) => void, only?: string): AuditState {
  const steps = replaySteps(log, tsMicros, onProgress, only);
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
  }
}

/**
 * `stateAsOf` that yields to the event loop every `chunk` events (default 10 000), so a server
 * answering an audit export stays responsive. Same result.
 */
export async function stateAsOfAsync(log: EventLog, tsMicros: number, onProgress?: (seq: number, toSeq: number) => void, only?: string, chunk = 10_000): Promise<AuditState> {
  const steps = replaySteps(log, tsMicros, onProgress, only, chunk);
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

function* replaySteps(log: EventLog, tsMicros: number, onProgress: ((seq: number, toSeq: number) => void) | undefined, only: string | undefined, chunk = 10_000): Generator<void, AuditState> {
  // The prefix is fixed once, so the state matches the head digest at toSeq even if appends land meanwhile.
  const toSeq = log.seqAtTime(tsMicros);
  const ms = emptyState();
  for (let from = 1; from <= toSeq; from += chunk) {
    const to = Math.min(toSeq, from + chunk - 1);
    for (const e of log.read(from, to)) {
      if (only === undefined || e.collection === only) applyEvent(ms, e);
    }
    onProgress?.(to, toSeq);
    if (to < toSeq) yield;
  }
  if (toSeq === 0) onProgress?.(0, 0);
  const collections = new Map<string, AuditCollection>();
  for (const [name, c] of ms.collections) {
    const i = c.info;
    collections.set(name, { info: { name: i.name, dimension: i.dimension, metric: i.metric, hnsw: { ...i.hnsw }, createdSeq: i.createdSeq, version: i.version }, docs: c.docs });
  }
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

/** `collectionAsOf` that yields to the event loop while replaying. */
export async function collectionAsOfAsync(log: EventLog, collection: string, tsMicros: number): Promise<(AuditCollection & { head: LogHead }) | undefined> {
  const s = await stateAsOfAsync(log, tsMicros, undefined, collection);
  const c = s.collections.get(collection);
  return c === undefined ? undefined : { ...c, head: s.head };
}

/**
 * Exact (brute-force) search of `collection` as of T, with the projections' scoring and order
 * (`exactSearch`): what a search at T answered, without any index. Undefined when the
 * collection did not exist at T; ProjectionError PROJ_DIMENSION_MISMATCH / PROJ_INVALID_QUERY
 * for a bad query. O(prefix) replay + O(docs) scan.
 */
export function searchAsOf(log: EventLog, collection: string, req: { vector: Float32Array; k: number; filter?: Filter }, tsMicros: number): { head: LogHead; results: SearchHit[] } | undefined {
  const c = collectionAsOf(log, collection, tsMicros);
  if (c === undefined) return undefined;
  const state: MaterializedState = { seq: c.head.seq, collections: new Map([[collection, { info: { ...c.info, count: c.docs.size }, docs: c.docs }]]) };
  return { head: c.head, results: exactSearch(state, collection, req) };
}

/**
 * The incarnation of `collection` live at `maxSeq` under the projections' rules (a create of a
 * live collection and a drop of an absent one are ignored): its created seq and dimension, plus
 * whether every collection-level event so far applied (then the log's by-doc shortcut is exact).
 */
function incarnationAt(log: EventLog, collection: string, maxSeq: number): { live: { createdSeq: number; dimension: number } | undefined; clean: boolean } {
  let live: { createdSeq: number; dimension: number } | undefined;
  let clean = true;
  // by-doc holds collection-level events under the empty id: creates and drops, few per collection.
  for (const e of log.history(collection, '')) {
    if (e.seq > maxSeq) break;
    if (e.type === 'collection.created') {
      if (live === undefined) live = { createdSeq: e.seq, dimension: e.body.dimension };
      else clean = false;
    } else if (e.type === 'collection.dropped') {
      if (live !== undefined) live = undefined;
      else clean = false;
    }
  }
  return { live, clean };
}

/** Whether `collection` existed at T (µs): created, and not dropped since, by the log prefix with ts ≤ T. */
export function collectionLiveAt(log: EventLog, collection: string, tsMicros: number): boolean {
  const maxSeq = log.seqAtTime(tsMicros);
  return maxSeq > 0 && incarnationAt(log, collection, maxSeq).live !== undefined;
}

/**
 * Every event of one document, oldest first, with its collection's creates and drops from the
 * create in force at its first event on: a drop ends the document, and a later create starts an
 * incarnation without it, so the document's state at every step reads off the list. Empty when
 * the document has no event.
 */
export function docHistory(log: EventLog, collection: string, id: string): LogEvent[] {
  const own = log.history(collection, id);
  if (own.length === 0) return own;
  const first = own[0]!.seq;
  const life = log.history(collection, '');
  // From the last create at or before the document's first event (a write into an absent
  // collection has none: then from its first event).
  let from = 0;
  for (const e of life) {
    if (e.seq > first) break;
    if (e.type === 'collection.created') from = e.seq;
  }
  const out: LogEvent[] = [];
  let i = 0;
  for (const e of life) {
    if (e.seq < from) continue;
    while (i < own.length && own[i]!.seq < e.seq) out.push(own[i++]!);
    out.push(e);
  }
  while (i < own.length) out.push(own[i++]!);
  return out;
}

/**
 * `docHistory` when the document has events; otherwise throws AUDIT_UNKNOWN_COLLECTION (the
 * collection has none either: never created) or AUDIT_DOC_NOT_FOUND (never written). A document
 * deleted since, or whose collection was dropped, still has its history.
 */
export function docHistoryOrThrow(log: EventLog, collection: string, id: string): LogEvent[] {
  const events = docHistory(log, collection, id);
  if (events.length > 0) return events;
  if (log.history(collection, '').length === 0) throw new AuditError('AUDIT_UNKNOWN_COLLECTION', `collection ${collection} has no events in the log: it was never created`);
  throw new AuditError('AUDIT_DOC_NOT_FOUND', `document ${id} has no events in collection ${collection}: it was never written`);
}

/**
 * A document's value as of T (default: now), or undefined — the same answer as replaying the
 * prefix (`stateAsOf`) and as the live projections gave at T. Through the log's `by-doc` index:
 * O(log n) plus the collection's few create/drop events; only when the log holds events the
 * projections ignore (wrong dimension, a repeated create or drop) does it walk the document's
 * history instead.
 */
export function docValueAsOf(log: EventLog, collection: string, id: string, tsMicros?: number): AuditDoc | undefined {
  const maxSeq = tsMicros === undefined ? log.head().seq : log.seqAtTime(tsMicros);
  if (maxSeq === 0) return undefined;
  const { live, clean } = incarnationAt(log, collection, maxSeq);
  if (live === undefined) return undefined;
  if (clean) {
    const e = log.docAsOf(collection, id, tsMicros);
    if (e === undefined) return undefined;
    if (e.seq <= maxSeq && e.body.vector.length === live.dimension) return toDoc(e);
  }
  // Slow but exact: the last event of this doc in this incarnation that applied.
  let value: AuditDoc | undefined;
  for (const e of log.history(collection, id)) {
    if (e.seq > maxSeq) break;
    if (e.seq < live.createdSeq) continue;
    if (e.type === 'vector.upserted') {
      if (e.body.vector.length === live.dimension) value = toDoc(e);
    } else if (e.type === 'vector.deleted') value = undefined;
  }
  return value;
}

function toDoc(e: LogEvent & { type: 'vector.upserted' }): AuditDoc {
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
