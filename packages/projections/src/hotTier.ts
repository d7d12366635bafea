import type { EventLog } from '@kyrodb/log';
import type { Applied, CollectionInfo, DocValue, MaterializedState, SearchHit, SearchRequest } from './state.js';
import { exactTopK } from './state.js';

/** Options of the hot tier. */
export interface HotTierOptions {
  /** Vectors plus tombstones the hot tier holds before `admission()` reports backpressure. Default 100 000. */
  maxVectors: number;
}

/** Defaults of the hot tier. */
export const defaultHotTierOptions: HotTierOptions = Object.freeze({ maxVectors: 100_000 });

interface HotCollection {
  createdSeq: number;
  /** Live docs the cold tier has not absorbed (seq > cold watermark). */
  docs: Map<string, DocValue>;
  /** Pending deletes: id → seq of the delete. */
  tombstones: Map<string, number>;
  /** Ids whose older version may still be in the cold index: id → seq of the newest pending change. */
  changed: Map<string, number>;
}

/**
 * The hot tier: exact search over what the cold tier has not absorbed yet, updated synchronously
 * as events apply. Docs, tombstones and change marks with seq ≤ the cold watermark are shed.
 */
export class HotTier {
  private readonly colls = new Map<string, HotCollection>();

  /** Follows one applied event. */
  onApplied(a: Applied): void {
    switch (a.kind) {
      case 'created':
        this.colls.set(a.info.name, { createdSeq: a.info.createdSeq, docs: new Map(), tombstones: new Map(), changed: new Map() });
        return;
      case 'dropped':
        this.colls.delete(a.name);
        return;
      case 'upserted': {
        const h = this.colls.get(a.collection);
        if (h === undefined) return;
        h.docs.set(a.doc.id, a.doc);
        h.tombstones.delete(a.doc.id);
        if (a.overwrote) h.changed.set(a.doc.id, a.doc.seq);
        return;
      }
      case 'deleted': {
        const h = this.colls.get(a.collection);
        if (h === undefined) return;
        h.docs.delete(a.id);
        h.tombstones.set(a.id, a.seq);
        h.changed.set(a.id, a.seq);
        return;
      }
      default:
        return;
    }
  }

  /** Drops what the cold tier absorbed (everything with seq ≤ `watermark`). */
  shed(watermark: number): void {
    for (const h of this.colls.values()) {
      for (const [id, d] of h.docs) if (d.seq <= watermark) h.docs.delete(id);
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
    for (const [name, c] of state.collections) {
      const h: HotCollection = { createdSeq: c.info.createdSeq, docs: new Map(), tombstones: new Map(), changed: new Map() };
      for (const d of c.docs.values()) if (d.seq > watermark) h.docs.set(d.id, d);
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
