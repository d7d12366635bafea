import { Counter, Gauge, Registry } from 'prom-client';
import { AccessLog } from './accessLog.js';
import { resolveCacheOptions } from './options.js';
import type { CacheOptionsInput } from './options.js';
import { LearnedPredictor, newAccessStats, touchAccessStats } from './predictor.js';
import type { AccessStats } from './predictor.js';
import type { CacheOptions, CacheQuery, QueryCacheLayer, SearchHit } from './types.js';
import { seededRandom, type Metric } from '@kyrodb/log';

const EVICTION_SAMPLE = 16;
const ENTRY_OVERHEAD_BYTES = 96;
const HIT_OVERHEAD_BYTES = 48;
const GHOST_OVERHEAD_BYTES = 160;
/**
 * A query whose scope (collection, k, the filter's canonical text) is longer than this is neither
 * cached nor remembered: a filter of 500 000 `$in` values is a 7 MB key, and each remembered one
 * was kept (6 MB of heap per distinct filter, 2.8 GB after 370 of them, past every bound).
 */
export const MAX_SCOPE_KEY_CHARS = 16 * 1024;
// Float32 rounding: two equal vectors may have a normalized dot product of 0.99999994.
const SIMILARITY_EPSILON = 1e-6;

/** A remembered query (a fingerprint): its statistics, and its cached answer when resident. */
interface Key {
  id: number;
  scope: Scope;
  bucket: number;
  vec: Float32Array;
  /**
   * The query as asked, kept for l2 and ip, where only the very same query may be answered from
   * the cache (see `find`); undefined under cosine.
   */
  raw: Float32Array | undefined;
  stats: AccessStats;
  lastSeq: number;
  alive: boolean;
  results: SearchHit[] | undefined;
  ids: readonly string[] | undefined;
  collection: string;
  version: number;
  createdMs: number;
  bytes: number;
  residentIdx: number;
}

interface Scope {
  key: string;
  buckets: Map<number, Key[]>;
  size: number;
}

/** Counters of a cache, as plain numbers (the same values feed the Prometheus metrics). */
export interface CacheStats {
  hits: number;
  misses: number;
  evictions: number;
  invalidations: number;
  rejections: number;
  entries: number;
  bytes: number;
  tracked: number;
  /** 'learned' when the predictor has a model, else 'lru'. */
  policy: 'learned' | 'lru';
}

/** What `new SemanticCache` takes. */
export interface SemanticCacheInit {
  /** Cache options; absent fields take `defaultCacheOptions`. */
  options?: CacheOptionsInput;
  /** Registry for `cache_hits_total`, `cache_misses_total`, `cache_evictions_total`, … Default: a private one. */
  registry?: Registry;
  /** The access log to record queries in. Default: a new one of `options.accessLogCapacity` records. */
  accessLog?: AccessLog;
  /** The predictor driving admission/eviction. Absent or untrained = LRU. */
  predictor?: LearnedPredictor;
  /** Seed of the eviction sampler and of the locality-sensitive hash planes. Default 1. */
  seed?: number;
}

/**
 * The hybrid semantic cache (DESIGN.md §2). An answer is served only when a remembered query in the
 * same scope (collection, k, filterKey) has cosine similarity ≥ `similarityThreshold` with the new
 * one (for an l2 or ip collection: only the same query, see `find`) AND its collection version equals the query's version — or, with `maxStalenessMs` > 0 only,
 * the entry is at most that old. Candidates are found through a random-hyperplane LSH (8–16 bits,
 * about 4 remembered queries per bucket) probed at Hamming distance ≤ 1, so a similar entry may
 * occasionally be missed (a miss, never a wrong answer).
 *
 * The cache remembers access statistics (and the vector) of up to `historyCapacity` queries beyond
 * the cached ones, within a quarter of `maxBytes` on top of it (fingerprints; every lookup is recorded
 * in the AccessLog under its fingerprint). With a trained
 * LearnedPredictor, a full cache admits a new answer only if its score beats the weakest of a random
 * sample of 16 resident entries (entries already superseded by a newer collection version go first),
 * which it then evicts; without one it admits everything and evicts the least recently used.
 * Capacity is bounded in entries and in estimated bytes. Not thread-safe (one event loop).
 */
export class SemanticCache implements QueryCacheLayer {
  readonly options: Readonly<CacheOptions>;
  readonly accessLog: AccessLog;
  readonly predictor: LearnedPredictor | undefined;
  private readonly historyCapacity: number;
  private readonly lshBits: number;
  private readonly scopes = new Map<string, Scope>();
  private readonly resident = new Map<number, Key>();
  private readonly residentArr: Key[] = [];
  private readonly ghosts = new Map<number, Key>();
  private readonly latestVersion = new Map<string, number>();
  private readonly planes = new Map<number, Float32Array>();
  private readonly rand: () => number;
  private readonly seed: number;
  private nextId = 1;
  private bytes = 0;
  private ghostBytes = 0;
  private readonly ghostMaxBytes: number;
  private lastMiss: { vector: Float32Array; key: Key } | undefined;
  private readonly n = { hits: 0, misses: 0, evictions: 0, invalidations: 0, rejections: 0 };
  private readonly m: { hits: Counter; misses: Counter; evictions: Counter; invalidations: Counter };

  constructor(init: SemanticCacheInit = {}) {
    this.options = resolveCacheOptions(init.options);
    this.historyCapacity = this.options.historyCapacity || 4 * this.options.capacity;
    this.ghostMaxBytes = this.options.maxBytes / 4;
    // About 4 remembered queries per bucket when full; more bits = fewer comparisons, lower recall of near-duplicates.
    this.lshBits = Math.min(16, Math.max(8, Math.ceil(Math.log2((this.options.capacity + this.historyCapacity) / 4))));
    this.accessLog = init.accessLog ?? new AccessLog(this.options.accessLogCapacity);
    this.predictor = init.predictor;
    this.seed = init.seed ?? 1;
    this.rand = seededRandom(this.seed * 7919 + 1);
    const registry = init.registry ?? new Registry();
    this.m = {
      hits: new Counter({ name: 'cache_hits_total', help: 'Queries answered by the semantic cache', registers: [registry] }),
      misses: new Counter({ name: 'cache_misses_total', help: 'Queries the semantic cache could not answer', registers: [registry] }),
      evictions: new Counter({ name: 'cache_evictions_total', help: 'Cached answers evicted to make room', registers: [registry] }),
      invalidations: new Counter({ name: 'cache_invalidations_total', help: 'Cached answers dropped because their collection changed', registers: [registry] }),
    };
    const entries: Gauge = new Gauge({ name: 'cache_entries', help: 'Cached answers held', registers: [registry], collect: () => entries.set(this.resident.size) });
    const bytes: Gauge = new Gauge({ name: 'cache_bytes', help: 'Estimated bytes held by cached answers', registers: [registry], collect: () => bytes.set(this.bytes) });
  }

  /** Current counters and sizes. */
  stats(): CacheStats {
    return { ...this.n, entries: this.resident.size, bytes: this.bytes, tracked: this.resident.size + this.ghosts.size, policy: this.predictor?.trained === true ? 'learned' : 'lru' };
  }

  /** See QueryCacheLayer.lookup. Records the access in the access log (O(1) plus the LSH probe). */
  lookup(q: CacheQuery): SearchHit[] | undefined {
    if (!this.options.enabled) return undefined;
    this.lastMiss = undefined;
    const n = normalize(q.vector);
    if (n === undefined) return this.miss();
    this.noteVersion(q.collection, q.version);
    const scopeKey = scopeOf(q);
    if (scopeKey.length > MAX_SCOPE_KEY_CHARS) return this.miss();
    let key = this.find(scopeKey, n, q.metric);
    key ??= this.track(scopeKey, n, q);
    const seq = this.accessLog.record(q.nowMs, q.collection, key.id, key.ids);
    touchAccessStats(key.stats, seq);
    key.lastSeq = seq;
    if (key.results !== undefined) {
      if (key.version === q.version || (key.version < q.version && this.options.maxStalenessMs > 0 && q.nowMs - key.createdMs <= this.options.maxStalenessMs)) {
        this.resident.delete(key.id);
        this.resident.set(key.id, key);
        this.n.hits++;
        this.m.hits.inc();
        return key.results.slice();
      }
      this.drop(key);
      this.n.invalidations++;
      this.m.invalidations.inc();
    } else {
      this.ghosts.delete(key.id);
      this.ghosts.set(key.id, key);
    }
    this.lastMiss = { vector: q.vector, key };
    return this.miss();
  }

  /**
   * See QueryCacheLayer.offer. `q.version` must be the collection version read BEFORE the search that
   * produced `results` (so a write racing the search can only make the entry look older, never newer).
   * Answers already superseded by a newer version seen by this cache are not admitted.
   */
  offer(q: CacheQuery, results: SearchHit[]): void {
    if (!this.options.enabled) return;
    const last = this.lastMiss;
    this.lastMiss = undefined;
    this.noteVersion(q.collection, q.version);
    if (q.version < (this.latestVersion.get(q.collection) ?? q.version)) return;
    let key: Key | undefined;
    const scopeKey = scopeOf(q);
    if (scopeKey.length > MAX_SCOPE_KEY_CHARS) {
      this.n.rejections++;
      return;
    }
    if (last !== undefined && last.vector === q.vector && last.key.alive && last.key.scope.key === scopeKey) key = last.key;
    else {
      const n = normalize(q.vector);
      if (n === undefined) return;
      key = this.find(scopeKey, n, q.metric) ?? this.track(scopeKey, n, q);
    }
    const bytes = estimateBytes(key, results);
    if (bytes > this.options.maxBytes) {
      this.n.rejections++;
      return;
    }
    if (key.results !== undefined) {
      this.bytes += bytes - key.bytes;
      this.fill(key, q, results, bytes);
      this.shrinkTo(0, 0, q.nowMs, undefined);
      return;
    }
    // Out of the ghost list while evicting, so trimming ghosts cannot forget the candidate.
    this.removeGhost(key);
    if (!this.makeRoom(bytes, q.nowMs, key)) {
      this.addGhost(key);
      this.n.rejections++;
      return;
    }
    this.fill(key, q, results, bytes);
    this.bytes += bytes;
    key.residentIdx = this.residentArr.length;
    this.residentArr.push(key);
    this.resident.set(key.id, key);
    this.accessLog.setIds(key.lastSeq, key.ids!);
  }

  /** Drops every cached answer of `collection` (e.g. when it is dropped). Returns how many. O(entries). */
  invalidateCollection(collection: string): number {
    let n = 0;
    for (const key of [...this.resident.values()]) {
      if (key.collection !== collection) continue;
      this.drop(key);
      n++;
    }
    this.n.invalidations += n;
    this.m.invalidations.inc(n);
    return n;
  }

  /** Drops every cached answer and every remembered query. The access log is kept. */
  clear(): void {
    this.scopes.clear();
    this.resident.clear();
    this.residentArr.length = 0;
    this.ghosts.clear();
    this.ghostBytes = 0;
    this.bytes = 0;
    this.lastMiss = undefined;
  }

  private miss(): undefined {
    this.n.misses++;
    this.m.misses.inc();
    return undefined;
  }

  private noteVersion(collection: string, version: number): void {
    const v = this.latestVersion.get(collection);
    if (v === undefined || version > v) this.latestVersion.set(collection, version);
  }

  private fill(key: Key, q: CacheQuery, results: SearchHit[], bytes: number): void {
    key.results = results.slice();
    key.ids = idsOf(results);
    key.version = q.version;
    key.createdMs = q.nowMs;
    key.bytes = bytes;
  }

  private isDead(key: Key, nowMs: number): boolean {
    const latest = this.latestVersion.get(key.collection) ?? key.version;
    return key.version < latest && (this.options.maxStalenessMs === 0 || nowMs - key.createdMs > this.options.maxStalenessMs);
  }

  /** Evicts until `extraBytes` and one more entry fit; false = the candidate lost admission. */
  private makeRoom(extraBytes: number, nowMs: number, candidate: Key): boolean {
    return this.shrinkTo(1, extraBytes, nowMs, candidate);
  }

  private shrinkTo(extraEntries: number, extraBytes: number, nowMs: number, candidate: Key | undefined): boolean {
    const learned = this.predictor?.trained === true;
    const tick = this.accessLog.seq;
    let candidateScore: number | undefined;
    while (this.resident.size + extraEntries > this.options.capacity || this.bytes + extraBytes > this.options.maxBytes) {
      if (this.resident.size === 0) return false;
      if (!learned) {
        const lru = this.resident.values().next().value!;
        this.evict(lru);
        continue;
      }
      let victim: Key | undefined;
      let victimScore = Infinity;
      const size = this.residentArr.length;
      const samples = Math.min(EVICTION_SAMPLE, size);
      for (let s = 0; s < samples; s++) {
        const k = size <= EVICTION_SAMPLE ? this.residentArr[s]! : this.residentArr[Math.floor(this.rand() * size)]!;
        if (this.isDead(k, nowMs)) {
          victim = k;
          victimScore = -Infinity;
          break;
        }
        const sc = this.predictor.score(k.stats, tick);
        if (sc < victimScore) {
          victimScore = sc;
          victim = k;
        }
      }
      if (candidate !== undefined && victimScore !== -Infinity) {
        candidateScore ??= this.predictor.score(candidate.stats, tick);
        if (candidateScore <= victimScore) return false;
      }
      this.evict(victim!);
    }
    return true;
  }

  private evict(key: Key): void {
    this.drop(key);
    this.n.evictions++;
    this.m.evictions.inc();
  }

  /** Removes `key`'s answer; the key stays remembered as a ghost. */
  private drop(key: Key): void {
    if (key.results === undefined) return;
    this.bytes -= key.bytes;
    key.results = undefined;
    key.ids = undefined;
    key.bytes = 0;
    this.resident.delete(key.id);
    const idx = key.residentIdx;
    const lastKey = this.residentArr.pop()!;
    if (lastKey !== key) {
      this.residentArr[idx] = lastKey;
      lastKey.residentIdx = idx;
    }
    key.residentIdx = -1;
    this.addGhost(key);
    this.trimGhosts();
  }

  private addGhost(key: Key): void {
    this.ghosts.set(key.id, key);
    this.ghostBytes += GHOST_OVERHEAD_BYTES + keyBytes(key);
  }

  private removeGhost(key: Key): void {
    if (this.ghosts.delete(key.id)) this.ghostBytes -= GHOST_OVERHEAD_BYTES + keyBytes(key);
  }

  private trimGhosts(): void {
    // The newest remembered query is never trimmed for bytes (it may be the one being looked up).
    while (this.ghosts.size > this.historyCapacity || (this.ghostBytes > this.ghostMaxBytes && this.ghosts.size > 1)) {
      const old = this.ghosts.values().next().value!;
      this.removeGhost(old);
      this.forget(old);
    }
  }

  private forget(key: Key): void {
    key.alive = false;
    const scope = key.scope;
    const list = scope.buckets.get(key.bucket);
    if (list !== undefined) {
      const i = list.indexOf(key);
      if (i >= 0) {
        list[i] = list[list.length - 1]!;
        list.pop();
      }
      if (list.length === 0) scope.buckets.delete(key.bucket);
    }
    if (--scope.size === 0) this.scopes.delete(scope.key);
  }

  private track(scopeKey: string, { nv, raw }: Normalized, { collection, metric }: Pick<CacheQuery, 'collection' | 'metric'>): Key {
    let scope = this.scopes.get(scopeKey);
    if (scope === undefined) this.scopes.set(scopeKey, (scope = { key: scopeKey, buckets: new Map(), size: 0 }));
    const bucket = this.hash(nv);
    const key: Key = { id: this.nextId++, scope, bucket, vec: nv, raw: (metric ?? 'cosine') === 'cosine' ? undefined : raw.slice(), stats: newAccessStats(), lastSeq: -1, alive: true, results: undefined, ids: undefined, collection, version: -1, createdMs: 0, bytes: 0, residentIdx: -1 };
    let list = scope.buckets.get(bucket);
    if (list === undefined) scope.buckets.set(bucket, (list = []));
    list.push(key);
    scope.size++;
    this.addGhost(key);
    this.trimGhosts();
    return key;
  }

  private find(scopeKey: string, { nv, raw }: Normalized, metric: Metric = 'cosine'): Key | undefined {
    const scope = this.scopes.get(scopeKey);
    if (scope === undefined) return undefined;
    const h = this.hash(nv);
    // Under cosine, a query within the similarity threshold gets a remembered answer (the design's
    // approximation). Under l2 and ip no threshold on directions or lengths bounds how far the
    // answers differ (data far from the origin all points one way: two cities 200 km apart had
    // cosine 0.9999), so only the very same query is answered from the cache: its values, not its
    // length and direction (to float rounding, [1000, 0.03] and [1000, -0.03] have the same of both).
    const cosine = metric === 'cosine';
    const threshold = cosine ? this.options.similarityThreshold - SIMILARITY_EPSILON : 1 - SIMILARITY_EPSILON;
    let best: Key | undefined;
    let bestSim = -Infinity;
    for (let p = -1; p < this.lshBits; p++) {
      // A match in the query's own bucket is taken without probing the neighbours (the common case).
      if (p === 0 && best !== undefined) break;
      const list = scope.buckets.get(p < 0 ? h : h ^ (1 << p));
      if (list === undefined) continue;
      for (const key of list) {
        if (key.vec.length !== nv.length) continue;
        if (!cosine && (key.raw === undefined || !sameValues(key.raw, raw))) continue;
        const sim = dot(key.vec, nv);
        if (sim >= threshold && sim > bestSim) {
          bestSim = sim;
          best = key;
        }
      }
    }
    return best;
  }

  private hash(nv: Float32Array): number {
    const dim = nv.length;
    let planes = this.planes.get(dim);
    if (planes === undefined) {
      const r = seededRandom(this.seed * 104729 + dim);
      planes = new Float32Array(this.lshBits * dim);
      for (let i = 0; i < planes.length; i++) planes[i] = Math.sqrt(-2 * Math.log(r() || 1e-12)) * Math.cos(2 * Math.PI * r());
      this.planes.set(dim, planes);
    }
    let h = 0;
    for (let b = 0; b < this.lshBits; b++) if (dot(planes, nv, b * dim) >= 0) h |= 1 << b;
    return h;
  }
}

function scopeOf(q: CacheQuery): string {
  return `${q.collection}\u0000${q.createdSeq ?? 0}\u0000${q.k}\u0000${q.filterKey}`;
}

/**
 * Bytes a remembered query holds whether or not its answer is cached: its vectors and its scope's
 * text (counted for every key of a scope, an overestimate where one filter has many queries).
 */
function keyBytes(key: Key): number {
  return key.vec.byteLength + (key.raw?.byteLength ?? 0) + 2 * key.scope.key.length;
}

function idsOf(results: readonly SearchHit[]): string[] {
  return results.map((r) => r.id);
}

/** A query's direction (unit length) and length. */
interface Normalized {
  nv: Float32Array;
  /** The query itself. */
  raw: Float32Array;
}

/** Whether two vectors hold the same values (the same query). */
function sameValues(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function normalize(v: Float32Array): Normalized | undefined {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  if (!(s > 0) || !Number.isFinite(s)) return undefined;
  const norm = Math.sqrt(s);
  const inv = 1 / norm;
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = v[i]! * inv;
  return { nv: out, raw: v };
}

function dot(a: Float32Array, b: Float32Array, offA = 0): number {
  // Four accumulators: shorter dependency chains, measurably faster in V8 than the plain loop.
  const n = b.length;
  const n4 = n - (n % 4);
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let i = 0;
  for (; i < n4; i += 4) {
    s0 += a[offA + i]! * b[i]!;
    s1 += a[offA + i + 1]! * b[i + 1]!;
    s2 += a[offA + i + 2]! * b[i + 2]!;
    s3 += a[offA + i + 3]! * b[i + 3]!;
  }
  for (; i < n; i++) s0 += a[offA + i]! * b[i]!;
  return s0 + s1 + s2 + s3;
}

function estimateBytes(key: Key, results: readonly SearchHit[]): number {
  let b = ENTRY_OVERHEAD_BYTES + keyBytes(key);
  for (const r of results) {
    b += HIT_OVERHEAD_BYTES + r.id.length * 2;
    if (r.metadata !== undefined) b += JSON.stringify(r.metadata).length * 2;
  }
  return b;
}
