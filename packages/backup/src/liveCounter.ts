import type { IndexFields } from '@kyrodb/log/codec';
import { replayStep } from './state.js';

/**
 * A set of strings kept in typed arrays: an open-addressing table of (entry number, hash) pairs,
 * and per entry its characters' place in one shared UTF-16 arena and whether it is in the set
 * now. A string once added keeps its entry (a delete clears its flag), so nothing is ever
 * moved but on a resize. Exact: equal hashes are confirmed character by character. Restore counts
 * a million ids here, against ~1 µs each in a `Map` (its entries and the id strings it keeps alive
 * are what the garbage collector then has to walk and move). The table holds each slot's hash
 * beside its entry: a probe past another string reads one cache line, where a hash looked up in
 * the entries cost a second miss (a million new UUIDs: ~0.6 µs each, most of it those misses).
 */
export class IdSet {
  /** Slot i is table[2i] (entry number + 1; 0 = empty) and table[2i + 1] (that entry's hash). */
  private table = new Int32Array(2 * 1024);
  private starts = new Uint32Array(512);
  private lengths = new Uint32Array(512);
  private live = new Uint8Array(512);
  private chars = new Uint16Array(4096);
  private entries = 0;
  private used = 0;
  /** Strings in the set now. */
  size = 0;

  /** Adds `s` (no change if it is in the set). */
  add(s: string): void {
    const h = hashString(s);
    const e = this.find(s, h);
    if (e >= 0) {
      if (this.live[e] === 0) {
        this.live[e] = 1;
        this.size += 1;
      }
      return;
    }
    this.insert(s, h);
    this.size += 1;
  }

  /** Removes `s` (no change if it is not in the set). */
  delete(s: string): void {
    const e = this.find(s, hashString(s));
    if (e >= 0 && this.live[e] === 1) {
      this.live[e] = 0;
      this.size -= 1;
    }
  }

  /** Whether `s` is in the set. */
  has(s: string): boolean {
    const e = this.find(s, hashString(s));
    return e >= 0 && this.live[e] === 1;
  }

  /** The entry holding `s`, or -1. */
  private find(s: string, h: number): number {
    const table = this.table;
    const mask = (table.length >> 1) - 1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const slot = table[2 * i]!;
      if (slot === 0) return -1;
      const e = slot - 1;
      if (table[2 * i + 1] === h && this.lengths[e] === s.length && this.same(e, s)) return e;
    }
  }

  private same(e: number, s: string): boolean {
    const at = this.starts[e]!;
    const chars = this.chars;
    for (let k = 0; k < s.length; k++) if (chars[at + k] !== s.charCodeAt(k)) return false;
    return true;
  }

  private insert(s: string, h: number): void {
    if (this.entries === this.starts.length) this.growEntries();
    if (this.entries + 1 > this.table.length >> 2) this.growTable(); // at most half the slots taken
    while (this.used + s.length > this.chars.length) {
      const chars = new Uint16Array(2 * this.chars.length);
      chars.set(this.chars);
      this.chars = chars;
    }
    const e = this.entries++;
    this.starts[e] = this.used;
    this.lengths[e] = s.length;
    this.live[e] = 1;
    for (let k = 0; k < s.length; k++) this.chars[this.used + k] = s.charCodeAt(k);
    this.used += s.length;
    this.place(e, h);
  }

  private place(e: number, h: number): void {
    const table = this.table;
    const mask = (table.length >> 1) - 1;
    let i = h & mask;
    while (table[2 * i] !== 0) i = (i + 1) & mask;
    table[2 * i] = e + 1;
    table[2 * i + 1] = h;
  }

  private growEntries(): void {
    const n = 2 * this.starts.length;
    const starts = new Uint32Array(n);
    starts.set(this.starts);
    this.starts = starts;
    const lengths = new Uint32Array(n);
    lengths.set(this.lengths);
    this.lengths = lengths;
    const live = new Uint8Array(n);
    live.set(this.live);
    this.live = live;
  }

  /** Doubles the table, placing each taken slot's (entry, hash) pair again. */
  private growTable(): void {
    const old = this.table;
    this.table = new Int32Array(2 * old.length);
    for (let i = 0; i < old.length; i += 2) if (old[i] !== 0) this.place(old[i]! - 1, old[i + 1]!);
  }
}

/** FNV-1a over the UTF-16 code units, then a final mix (murmur3's) so that low bits spread. */
function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let k = 0; k < s.length; k++) h = Math.imul(h ^ s.charCodeAt(k), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

const newIds = (e: IndexFields): { dimension: number; docs: IdSet } => ({ dimension: e.dim ?? 0, docs: new IdSet() });
const addId = (docs: IdSet, id: string): void => {
  docs.add(id);
};

/** The event types `replayStep` tells apart, numbered for `OpenedSource.kinds` (0: any other). */
const KINDS = ['', 'collection.created', 'collection.dropped', 'vector.upserted', 'vector.deleted'] as const;

/** `type`'s number in `KINDS` (0 for a type that changes no count). */
export function eventKind(type: string): number {
  const k = KINDS.indexOf(type as (typeof KINDS)[number]);
  return k < 0 ? 0 : k;
}

/**
 * Live vector counts per collection of a log prefix, replayed from index fields by `replayStep`
 * (the rules `ReplayState` uses). What backups and restores count when they do not keep
 * vectors: ids only, in `IdSet`s.
 */
export class LiveCounter {
  private readonly collections = new Map<string, { dimension: number; docs: IdSet }>();

  /** Applies one event's index fields (in seq order). */
  applyLight(e: IndexFields): void {
    replayStep(this.collections, e, newIds, addId);
  }

  /**
   * Applies records [0, kinds.length) given as columns (in seq order): `eventKind` of each type,
   * its dimension (-1: none), collection and by-doc id. What a restore's codec sends across.
   */
  applyIndexed(kinds: Uint8Array, dims: Int32Array, collections: readonly string[], ids: readonly string[]): void {
    const f: IndexFields = { seq: 0, ts: 0, type: '', collection: '' };
    for (let i = 0; i < kinds.length; i++) {
      const k = kinds[i]!;
      if (k === 0) continue;
      const d = dims[i]!;
      f.type = KINDS[k]!;
      f.collection = collections[i]!;
      f.id = ids[i]!;
      // -1 (no dimension) never equals a collection's, as undefined does not; a collection created without one has 0 (see newIds).
      f.dim = d < 0 && k === 1 ? 0 : d;
      replayStep(this.collections, f, newIds, addId);
    }
  }

  /** Live vectors per collection. */
  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, c] of this.collections) out[name] = c.docs.size;
    return out;
  }
}
