import { decodeRecord, type LogEvent, type Metric } from '@kyrodb/log';

/** A live vector in a replayed state. */
export interface ReplayDoc {
  vector: Float32Array;
  seq: number;
}

/** A collection in a replayed state. */
export interface ReplayCollection {
  dimension: number;
  metric: Metric;
  docs: Map<string, ReplayDoc | null>;
}

/**
 * The state of a log prefix rebuilt by a small replay (create/drop/upsert/delete). Backup only
 * needs live vector counts and, for recall probes, the vectors; it does not depend on the
 * projections package's internals. With `keepVectors: false` docs map to null (ids only).
 */
export class ReplayState {
  readonly collections = new Map<string, ReplayCollection>();
  seq = 0;
  constructor(private readonly keepVectors = false) {}

  /** Applies one event (events must come in seq order). */
  apply(e: LogEvent): void {
    this.seq = e.seq;
    switch (e.type) {
      case 'collection.created':
        this.collections.set(e.collection, { dimension: e.body.dimension, metric: e.body.metric, docs: new Map() });
        break;
      case 'collection.dropped':
        this.collections.delete(e.collection);
        break;
      case 'vector.upserted':
        this.collections.get(e.collection)?.docs.set(e.body.id, this.keepVectors ? { vector: e.body.vector, seq: e.seq } : null);
        break;
      case 'vector.deleted':
        this.collections.get(e.collection)?.docs.delete(e.body.id);
        break;
    }
  }

  /** Applies a stored record. */
  applyRecord(rec: Uint8Array): void {
    this.apply(decodeRecord(rec));
  }

  /** Live vectors over all collections. */
  vectorCount(): number {
    let n = 0;
    for (const c of this.collections.values()) n += c.docs.size;
    return n;
  }

  /** Live vectors per collection. */
  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, c] of this.collections) out[name] = c.docs.size;
    return out;
  }
}

/** Score of `b` against query `a`: higher is better (cosine similarity, dot product, −squared L2). */
export function score(metric: Metric, a: Float32Array, b: Float32Array): number {
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
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

/** Brute-force top-k (score descending, ties by id ascending) over a replayed collection. */
export function exactTopK(c: ReplayCollection, q: Float32Array, k: number): { id: string; score: number }[] {
  const all: { id: string; score: number }[] = [];
  for (const [id, d] of c.docs) if (d !== null) all.push({ id, score: score(c.metric, q, d.vector) });
  all.sort((x, y) => y.score - x.score || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
  return all.slice(0, k);
}

/** The part of the log an incremental count needs: per-document history through the by-doc index. */
export interface DocHistorySource {
  history(collection: string, id: string): LogEvent[];
}

/**
 * Live vector counts after the events `(from − 1, …]`, starting from the counts per collection
 * at `from − 1` (a parent backup's), without replaying the whole log: a document's liveness
 * before the range is read from the log's per-document index. Exact, O(events + their docs' histories).
 */
export class IncrementalCounter {
  readonly counts: Map<string, number>;
  private readonly touched = new Map<string, Map<string, boolean>>();
  private readonly reset = new Set<string>();
  private readonly collEvents = new Map<string, number[]>();

  constructor(
    private readonly log: DocHistorySource,
    private readonly fromSeq: number,
    parentCounts: Record<string, number>,
  ) {
    this.counts = new Map(Object.entries(parentCounts));
  }

  private liveBefore(c: string, id: string): boolean {
    if (this.reset.has(c)) return false;
    let last: LogEvent | undefined;
    for (const e of this.log.history(c, id)) if (e.seq < this.fromSeq) last = e;
    if (last?.type !== 'vector.upserted') return false;
    let ce = this.collEvents.get(c);
    if (ce === undefined) {
      ce = this.log.history(c, '').map((e) => e.seq);
      this.collEvents.set(c, ce);
    }
    const after = last.seq;
    return !ce.some((s) => s > after && s < this.fromSeq);
  }

  apply(e: LogEvent): void {
    const c = e.collection;
    switch (e.type) {
      case 'collection.created':
        this.counts.set(c, 0);
        this.reset.add(c);
        this.touched.set(c, new Map());
        break;
      case 'collection.dropped':
        this.counts.delete(c);
        this.reset.add(c);
        this.touched.set(c, new Map());
        break;
      case 'vector.upserted':
      case 'vector.deleted': {
        const n = this.counts.get(c);
        if (n === undefined) return;
        let t = this.touched.get(c);
        if (t === undefined) {
          t = new Map();
          this.touched.set(c, t);
        }
        const id = e.body.id;
        const live = t.get(id) ?? this.liveBefore(c, id);
        const now = e.type === 'vector.upserted';
        if (live !== now) this.counts.set(c, n + (now ? 1 : -1));
        t.set(id, now);
        break;
      }
    }
  }

  total(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }

  record(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }
}
