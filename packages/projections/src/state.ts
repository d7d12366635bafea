import type { EventLog, HnswParams, LogEvent, Metadata, Metric } from '@kyrodb/log';
import { ProjectionError } from './errors.js';
import { compileFilter } from './filter.js';
import type { Filter } from './filter.js';
import { TopK, score } from './scoring.js';

/** A search request. `asOf` (µs since the epoch) searches the state as of that instant. */
export interface SearchRequest {
  vector: Float32Array;
  k: number;
  filter?: Filter;
  asOf?: number;
}
/** One result: higher `score` is better for every metric. */
export interface SearchHit {
  id: string;
  score: number;
  metadata?: Metadata;
}
/** A search answer: `degraded` when a layer that should have answered did not; `layers` that answered. */
export interface SearchResponse {
  results: SearchHit[];
  degraded: boolean;
  layers: ('cache' | 'hot' | 'cold')[];
}
/** A collection as the catalog knows it. */
export interface CollectionInfo {
  name: string;
  dimension: number;
  metric: Metric;
  hnsw: HnswParams;
  /** Live vectors. */
  count: number;
  /** Seq of the `collection.created` event. */
  createdSeq: number;
  /** Seq of the last event that changed the collection (its catalog entry or its vectors). */
  version: number;
}
/** A live document. `seq`/`ts` are those of the upsert that wrote this value. */
export interface DocValue {
  id: string;
  vector: Float32Array;
  metadata?: Metadata;
  seq: number;
  ts: number;
}
/** One collection of a materialized state. `info.count` is kept equal to `docs.size`. */
export interface CollectionState {
  info: CollectionInfo;
  docs: Map<string, DocValue>;
}
/** The exact state of the log prefix 1..seq. */
export interface MaterializedState {
  seq: number;
  collections: Map<string, CollectionState>;
}

/** What applying one event did (for the hot tier). */
export type Applied =
  | { kind: 'none' }
  | { kind: 'created'; info: CollectionInfo }
  | { kind: 'dropped'; name: string }
  | { kind: 'upserted'; collection: string; doc: DocValue; overwrote: boolean }
  | { kind: 'deleted'; collection: string; id: string; seq: number };

/** An empty state at seq 0. */
export function emptyState(): MaterializedState {
  return { seq: 0, collections: new Map() };
}

/**
 * Applies one event in seq order: the one deterministic transition function every projection
 * (live, replay, checkpoint + replay, as-of) uses. Events that do not apply (an upsert into a
 * missing collection or with the wrong dimension, a create of an existing collection, a drop or
 * delete of something absent) change nothing but the seq.
 */
export function applyEvent(state: MaterializedState, e: LogEvent): Applied {
  state.seq = e.seq;
  switch (e.type) {
    case 'collection.created': {
      if (state.collections.has(e.collection)) return { kind: 'none' };
      const info: CollectionInfo = {
        name: e.collection,
        dimension: e.body.dimension,
        metric: e.body.metric,
        hnsw: { M: e.body.hnsw.M, efConstruction: e.body.hnsw.efConstruction, efSearch: e.body.hnsw.efSearch },
        count: 0,
        createdSeq: e.seq,
        version: e.seq,
      };
      state.collections.set(e.collection, { info, docs: new Map() });
      return { kind: 'created', info };
    }
    case 'collection.dropped': {
      if (!state.collections.delete(e.collection)) return { kind: 'none' };
      return { kind: 'dropped', name: e.collection };
    }
    case 'vector.upserted': {
      const c = state.collections.get(e.collection);
      if (c === undefined || e.body.vector.length !== c.info.dimension) return { kind: 'none' };
      const doc: DocValue = { id: e.body.id, vector: e.body.vector, seq: e.seq, ts: e.ts };
      if (e.body.metadata !== undefined) doc.metadata = e.body.metadata;
      const overwrote = c.docs.has(doc.id);
      c.docs.set(doc.id, doc);
      c.info.count = c.docs.size;
      c.info.version = e.seq;
      return { kind: 'upserted', collection: e.collection, doc, overwrote };
    }
    case 'vector.deleted': {
      const c = state.collections.get(e.collection);
      if (c === undefined || !c.docs.delete(e.body.id)) return { kind: 'none' };
      c.info.count = c.docs.size;
      c.info.version = e.seq;
      return { kind: 'deleted', collection: e.collection, id: e.body.id, seq: e.seq };
    }
  }
}

/**
 * Replays `log` from genesis (or from `base`'s seq, mutating `base`) up to `toSeq` (default: the
 * head) and returns the exact state. `onProgress` is called with the seq reached every 10 000 events.
 */
export function materialize(log: EventLog, toSeq?: number, onProgress?: (seq: number) => void, base?: MaterializedState): MaterializedState {
  const state = base ?? emptyState();
  const end = toSeq ?? log.head().seq;
  for (const e of log.read(state.seq + 1, end)) {
    applyEvent(state, e);
    if (onProgress !== undefined && e.seq % 10_000 === 0) onProgress(e.seq);
  }
  if (state.seq < end) state.seq = end;
  return state;
}

/** Checks a query against a collection; throws PROJ_DIMENSION_MISMATCH or PROJ_INVALID_QUERY. */
export function checkQuery(info: CollectionInfo, req: SearchRequest): void {
  if (!(req.vector instanceof Float32Array)) throw new ProjectionError('PROJ_INVALID_QUERY', 'vector must be a Float32Array');
  if (req.vector.length !== info.dimension) {
    throw new ProjectionError('PROJ_DIMENSION_MISMATCH', `collection ${info.name} has dimension ${info.dimension}, the query has ${req.vector.length}`, { expected: info.dimension, got: req.vector.length });
  }
  for (let i = 0; i < req.vector.length; i++) if (!Number.isFinite(req.vector[i])) throw new ProjectionError('PROJ_INVALID_QUERY', `vector[${i}] is not finite`);
  if (!Number.isInteger(req.k) || req.k < 1) throw new ProjectionError('PROJ_INVALID_QUERY', 'k must be a positive integer');
}

/** A hit with its metadata as stored (the metadata key is omitted when the doc has none). */
export function toHit(doc: DocValue, s: number): SearchHit {
  return doc.metadata !== undefined ? { id: doc.id, score: s, metadata: doc.metadata } : { id: doc.id, score: s };
}

/** Exact top-k over `docs` (brute force) with the shared scoring and order. */
export function exactTopK(info: CollectionInfo, docs: Iterable<DocValue>, req: SearchRequest): SearchHit[] {
  const top = new TopK<SearchHit>(req.k);
  const matches = req.filter === undefined ? undefined : compileFilter(req.filter);
  for (const d of docs) {
    if (matches !== undefined && !matches(d.metadata)) continue;
    top.push(toHit(d, score(info.metric, req.vector, d.vector)));
  }
  return top.result();
}

/**
 * Brute-force search over a materialized state, with the same scoring and order as the live
 * search. Throws PROJ_UNKNOWN_COLLECTION, PROJ_DIMENSION_MISMATCH, PROJ_INVALID_QUERY.
 */
export function exactSearch(state: MaterializedState, collection: string, req: SearchRequest): SearchHit[] {
  const c = state.collections.get(collection);
  if (c === undefined) throw new ProjectionError('PROJ_UNKNOWN_COLLECTION', `no collection ${collection}`, { collection });
  checkQuery(c.info, req);
  return exactTopK(c.info, c.docs.values(), req);
}
