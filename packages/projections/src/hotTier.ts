import type { EventLog } from '@kyrodb/log';
import type { Applied, CollectionInfo, DocValue, MaterializedState, SearchHit, SearchRequest } from './state.js';
import { exactTopK } from './state.js';

/** Options of the hot tier. */
export interface HotTierOptions {
  /** Vectors plus tombstones the hot tier holds (and events the cold tier is behind by) before `admission()` reports backpressure. Default 100 000. */
  maxVectors: number;
  /**
   * Bytes of vector data (4 per dimension) the hot tier holds before `admission()` reports
   * backpressure: what bounds an exact hot search's time whatever the dimension. Default 64 MiB
   * (100 000 vectors of 128 dimensions take 51.2 MB; of 1536, ~11 000 fit).
   */
  maxBytes: number;
}

/** Defaults of the hot tier. */
export const defaultHotTierOptions: HotTierOptions = Object.freeze({ maxVectors: 100_000, maxBytes: 64 * 1024 * 1024 });

interface HotCollection {
  createdSeq: number;
  /** Live docs the cold tier has not absorbed (seq > cold watermark). */
  docs: Map<string, DocValue>;
  /** Pending deletes: id → seq of the delete. */
  tombstones: Map<string, number>;
  /** Ids whose older version may still be in the cold index: id → seq of the newest pending change. */
  changed: Map<string, number>;
  /** Σ vector length over `docs`. */
  floats: number;
}

function newHot(createdSeq: number): HotCollection {
  return { createdSeq, docs: new Map(), tombstones: new Map(), changed: new Map(), floats: 0 };
}

/**
 * The hot tier: exact search over what the cold tier has not absorbed yet, updated synchronously
 * as events apply. Docs, tombstones and change marks with seq ≤ the cold watermark are shed.
 */
export class HotTier {
  private readonly colls = new Map<string, HotCollection>();
  /** Σ floats over the collections. */
  private floats = 0;

  /** Follows one applied event. */
  onApplied(a: Applied): void {
    switch (a.kind) {
      case 'created':
        this.dropColl(a.info.name);
        this.colls.set(a.info.name, newHot(a.info.createdSeq));
        return;
      case 'dropped':
        this.dropColl(a.name);
        return;
      case 'upserted': {
        const h = this.colls.get(a.collection);
        if (h === undefined) return;
        this.addFloats(h, a.doc.vector.length - (h.docs.get(a.doc.id)?.vector.length ?? 0));
        h.docs.set(a.doc.id, a.doc);
        h.tombstones.delete(a.doc.id);
        if (a.overwrote) h.changed.set(a.doc.id, a.doc.seq);
        return;
      }
      case 'deleted': {
        const h = this.colls.get(a.collection);
        if (h === undefined) return;
        const old = h.docs.get(a.id);
        if (old !== undefined) {
          this.addFloats(h, -old.vector.length);
          h.docs.delete(a.id);
        }
        h.tombstones.set(a.id, a.seq);
        h.changed.set(a.id, a.seq);
        return;
      }
      default:
        return;
    }
  }

  private addFloats(h: HotCollection, n: number): void {
    h.floats += n;
    this.floats += n;
  }

  private dropColl(name: string): void {
    const h = this.colls.get(name);
    if (h === undefined) return;
    this.floats -= h.floats;
    this.colls.delete(name);
  }

  /** Drops what the cold tier absorbed (everything with seq ≤ `watermark`). */
  shed(watermark: number): void {
    for (const h of this.colls.values()) {
      for (const [id, d] of h.docs) {
        if (d.seq > watermark) continue;
        this.addFloats(h, -d.vector.length);
        h.docs.delete(id);
      }
      for (const [id, s] of h.tombstones) if (s <= watermark) h.tombstones.delete(id);
      for (const [id, s] of h.changed) if (s <= watermark) h.changed.delete(id);
    }
  }

  /**
   * Rebuilds the hot tier for a cold tier at `watermark` (after a checkpoint load or a cold
   * restart): every live doc newer than the watermark, and the changes in (watermark, state.seq]
   * read from the log.
   */
  reset(state: MaterializedState, watermark: number, log: EventLog): void {
    this.colls.clear();
    this.floats = 0;
    for (const [name, c] of state.collections) {
      const h = newHot(c.info.createdSeq);
      for (const d of c.docs.values()) {
        if (d.seq <= watermark) continue;
        h.docs.set(d.id, d);
        this.addFloats(h, d.vector.length);
      }
      this.colls.set(name, h);
    }
    for (const e of log.read(watermark + 1, state.seq)) {
      if (e.type !== 'vector.upserted' && e.type !== 'vector.deleted') continue;
      const h = this.colls.get(e.collection);
      if (h === undefined || e.seq < h.createdSeq) continue;
      h.changed.set(e.body.id, e.seq);
      if (e.type === 'vector.deleted') h.tombstones.set(e.body.id, e.seq);
      else h.tombstones.delete(e.body.id);
    }
  }

  /** Vectors plus tombstones held (what the bound counts). */
  size(): number {
    let n = 0;
    for (const h of this.colls.values()) n += h.docs.size + h.tombstones.size;
    return n;
  }

  /** Bytes of vector data held (4 per dimension of each vector). */
  bytes(): number {
    return this.floats * 4;
  }

  /** Vectors held. */
  vectors(): number {
    let n = 0;
    for (const h of this.colls.values()) n += h.docs.size;
    return n;
  }

  /** Ids of `collection` whose cold copies may be stale: how many extra cold hits to fetch. */
  changedCount(collection: string): number {
    return this.colls.get(collection)?.changed.size ?? 0;
  }

  /**
   * Ids of the collection created at `createdSeq` changed after the cold watermark: id → seq of
   * the newest such change (undefined when the hot tier tracks no such collection). A cold copy
   * of an id with seq below its entry is stale or deleted; one of an id without an entry is live.
   */
  changes(collection: string, createdSeq: number): ReadonlyMap<string, number> | undefined {
    const h = this.colls.get(collection);
    return h !== undefined && h.createdSeq === createdSeq ? h.changed : undefined;
  }

  /** The seq that created the collection this hot tier tracks (0 when unknown). */
  createdSeq(collection: string): number {
    return this.colls.get(collection)?.createdSeq ?? 0;
  }

  /** Exact top-k over the hot docs of one collection. */
  search(info: CollectionInfo, req: SearchRequest): SearchHit[] {
    const h = this.colls.get(info.name);
    if (h === undefined) return [];
    return exactTopK(info, h.docs.values(), req);
  }
}
