/**
 * A stopgap projection used by the server only while @kyrodb/projections does not export
 * `Projections`: the whole state in memory, rebuilt from the log at start, kept current from
 * the log's tail, and searched exactly (brute force). Same scores and ordering as the contract:
 * higher is better (cosine similarity, dot product, negative squared L2), ties by id ascending.
 */
import type { EventLog, LogEvent, Metadata } from '@kyrodb/log';
import type { Subscription } from 'rxjs';
import { ApiError } from './errors.js';
import type { CollectionInfo, DocValue, Filter, MaterializedState, ProjectionsHealth, ProjectionsPort, SearchHit, SearchRequest, SearchResponse } from './contracts.js';

/** Applies one event to a materialized state (replay is a fold of this over the log). */
export function applyEvent(state: MaterializedState, e: LogEvent): void {
  state.seq = e.seq;
  switch (e.type) {
    case 'collection.created':
      if (!state.collections.has(e.collection)) {
        state.collections.set(e.collection, {
          info: { name: e.collection, dimension: e.body.dimension, metric: e.body.metric, hnsw: { ...e.body.hnsw }, count: 0, createdSeq: e.seq, version: e.seq },
          docs: new Map(),
        });
      }
      return;
    case 'collection.dropped':
      state.collections.delete(e.collection);
      return;
    case 'vector.upserted': {
      const c = state.collections.get(e.collection);
      if (c === undefined || e.body.vector.length !== c.info.dimension) return;
      const d: DocValue = { id: e.body.id, vector: e.body.vector, seq: e.seq, ts: e.ts };
      if (e.body.metadata !== undefined) d.metadata = e.body.metadata;
      c.docs.set(e.body.id, d);
      c.info.count = c.docs.size;
      c.info.version = e.seq;
      return;
    }
    case 'vector.deleted': {
      const c = state.collections.get(e.collection);
      if (c === undefined) return;
      if (c.docs.delete(e.body.id)) {
        c.info.count = c.docs.size;
        c.info.version = e.seq;
      }
      return;
    }
  }
}

/** The exact state of the log prefix 1..toSeq (default: the head), by replay. */
export function materializeExact(log: EventLog, toSeq?: number, onProgress?: (seq: number) => void): MaterializedState {
  const state: MaterializedState = { seq: 0, collections: new Map() };
  let n = 0;
  for (const e of log.read(1, toSeq ?? Number.MAX_SAFE_INTEGER)) {
    applyEvent(state, e);
    if (onProgress && ++n % 10_000 === 0) onProgress(e.seq);
  }
  return state;
}

const RANGE_OPS = ['$gt', '$gte', '$lt', '$lte'];

/** Checks a filter's shape; throws ApiError API_INVALID_FILTER. */
export function validateFilterShape(f: unknown): Filter {
  if (typeof f !== 'object' || f === null || Array.isArray(f)) throw new ApiError('API_INVALID_FILTER', 'filter must be an object of {key: value | {$in: [...]} | {$gt|$gte|$lt|$lte: number}}');
  for (const [k, v] of Object.entries(f as Record<string, unknown>)) {
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
      const ops = Object.keys(v);
      if (ops.length === 0) throw new ApiError('API_INVALID_FILTER', `filter.${k}: an operator object needs $in or a range operator`);
      for (const op of ops) {
        const x = (v as Record<string, unknown>)[op];
        if (op === '$in') {
          if (!Array.isArray(x) || !x.every((y) => y === null || ['string', 'number', 'boolean'].includes(typeof y))) throw new ApiError('API_INVALID_FILTER', `filter.${k}.$in must be a list of scalars`);
        } else if (RANGE_OPS.includes(op)) {
          if (typeof x !== 'number' || !Number.isFinite(x)) throw new ApiError('API_INVALID_FILTER', `filter.${k}.${op} must be a finite number`);
        } else throw new ApiError('API_INVALID_FILTER', `filter.${k}: unknown operator ${op}`);
      }
    } else if (!(v === null || ['string', 'number', 'boolean'].includes(typeof v))) {
      throw new ApiError('API_INVALID_FILTER', `filter.${k} must be a scalar or an operator object`);
    }
  }
  return f as Filter;
}

/** True when metadata satisfies every clause of the filter. */
export function matchesFilterExact(meta: Metadata | undefined, f: Filter): boolean {
  for (const [k, cond] of Object.entries(f)) {
    const v = meta?.[k];
    if (typeof cond === 'object' && cond !== null && !Array.isArray(cond)) {
      const c = cond as Record<string, unknown>;
      if (c['$in'] !== undefined && !(c['$in'] as unknown[]).some((x) => x === v)) return false;
      for (const op of RANGE_OPS) {
        const b = c[op];
        if (b === undefined) continue;
        if (typeof v !== 'number' || typeof b !== 'number') return false;
        if ((op === '$gt' && !(v > b)) || (op === '$gte' && !(v >= b)) || (op === '$lt' && !(v < b)) || (op === '$lte' && !(v <= b))) return false;
      }
    } else if (v !== cond) return false;
  }
  return true;
}

function score(metric: string, a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  let l2 = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    dot += x * y;
    na += x * x;
    nb += y * y;
    l2 += (x - y) * (x - y);
  }
  if (metric === 'ip') return dot;
  if (metric === 'l2') return -l2;
  const denom = Math.sqrt(na) * Math.sqrt(nb);
  return denom === 0 ? 0 : dot / denom;
}

/** Brute-force top-k over a materialized state. Throws ApiError API_COLLECTION_NOT_FOUND / API_DIMENSION_MISMATCH. */
export function exactSearchState(state: MaterializedState, collection: string, req: SearchRequest): SearchHit[] {
  const c = state.collections.get(collection);
  if (c === undefined) throw new ApiError('API_COLLECTION_NOT_FOUND', `collection ${collection} does not exist`);
  if (req.vector.length !== c.info.dimension) throw new ApiError('API_DIMENSION_MISMATCH', `the query vector has ${req.vector.length} dimensions, collection ${collection} has ${c.info.dimension}`);
  const hits: SearchHit[] = [];
  for (const d of c.docs.values()) {
    if (req.filter !== undefined && !matchesFilterExact(d.metadata, req.filter)) continue;
    const h: SearchHit = { id: d.id, score: score(c.info.metric, req.vector, d.vector) };
    if (d.metadata !== undefined) h.metadata = d.metadata;
    hits.push(h);
  }
  hits.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return hits.slice(0, req.k);
}

/** The stopgap `ProjectionsPort`: exact, in memory, fed by the log tail. No checkpoints, no breakers. */
export class ExactProjections implements ProjectionsPort {
  private readonly state: MaterializedState;
  private sub: Subscription | undefined;
  private waiters: { seq: number; resolve: () => void }[] = [];
  private failure: unknown;

  private constructor(private readonly log: EventLog) {
    this.state = materializeExact(log);
  }

  /** Replays the log, then follows its tail. */
  static open(log: EventLog): Promise<ExactProjections> {
    const p = new ExactProjections(log);
    p.sub = log.tail(p.state.seq + 1).subscribe({
      next: (e) => {
        applyEvent(p.state, e);
        if (p.waiters.length > 0) {
          const ready = p.waiters.filter((w) => w.seq <= e.seq);
          p.waiters = p.waiters.filter((w) => w.seq > e.seq);
          for (const w of ready) w.resolve();
        }
      },
      error: (err: unknown) => {
        p.failure = err;
      },
    });
    return Promise.resolve(p);
  }

  listCollections(): CollectionInfo[] {
    return [...this.state.collections.values()].map((c) => ({ ...c.info })).sort((a, b) => (a.name < b.name ? -1 : 1));
  }
  getCollection(name: string): CollectionInfo | undefined {
    const c = this.state.collections.get(name);
    return c === undefined ? undefined : { ...c.info };
  }
  getDoc(collection: string, id: string): DocValue | undefined {
    return this.state.collections.get(collection)?.docs.get(id);
  }
  search(collection: string, req: SearchRequest): Promise<SearchResponse> {
    try {
      const state = req.asOf === undefined ? this.state : materializeExact(this.log, this.log.seqAtTime(req.asOf));
      return Promise.resolve({ results: exactSearchState(state, collection, req), degraded: false, layers: ['hot'] });
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }
  applied(): number {
    return this.state.seq;
  }
  waitForApplied(seq: number): Promise<void> {
    if (this.state.seq >= seq) return Promise.resolve();
    if (this.failure !== undefined) return Promise.reject(this.failure instanceof Error ? this.failure : new Error('the log tail failed'));
    return new Promise((resolve) => this.waiters.push({ seq, resolve }));
  }
  admission(): { ok: true } {
    return { ok: true };
  }
  checkpoint(): Promise<{ seq: number; dir: string }> {
    return Promise.resolve({ seq: this.state.seq, dir: '' });
  }
  health(): ProjectionsHealth {
    let n = 0;
    for (const c of this.state.collections.values()) n += c.docs.size;
    return { applied: this.state.seq, coldWatermark: this.state.seq, hotVectors: n, lagEvents: Math.max(0, this.log.head().seq - this.state.seq), breakers: {}, lastCheckpointSeq: 0 };
  }
  resetBreaker(): void {
    /* no layers, no breakers */
  }
  close(): Promise<void> {
    this.sub?.unsubscribe();
    for (const w of this.waiters) w.resolve();
    this.waiters = [];
    return Promise.resolve();
  }
}
