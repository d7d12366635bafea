import type { Metric } from '@kyrodb/log';

/**
 * The score of `b` for query `a` under `metric`; higher is better for every metric:
 * cosine → cosine similarity (0 when either vector is zero), ip → dot product,
 * l2 → negative squared L2 distance. Computed in float64.
 */
export function score(metric: Metric, a: Float32Array, b: Float32Array): number {
  return scoreAt(metric, a, b, 0);
}

/**
 * `score(metric, a, b.subarray(off, off + a.length))` without the view: the one implementation
 * of the score, so the cold worker (reading its vector slab) and the main thread (reading a
 * doc's vector) compute bit-identical scores from the same float32 values.
 */
export function scoreAt(metric: Metric, a: Float32Array, b: Float32Array, off: number): number {
  const n = a.length;
  if (metric === 'l2') {
    let s = 0;
    for (let i = 0; i < n; i++) {
      const d = a[i]! - b[off + i]!;
      s += d * d;
    }
    return s === 0 ? 0 : -s;
  }
  if (metric === 'ip') return dotAt(a, b, off);
  // The three sums of `cosineOf(dotAt(a, b, off), normSqAt(a, 0, n), normSqAt(b, off, n))`, each
  // in the same order, in one pass: the same bits. (Four partial sums per quantity, to overlap
  // the additions, measured slower here: 12 accumulators spill.)
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < n; i++) {
    const x = a[i]!;
    const y = b[off + i]!;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return cosineOf(dot, na, nb);
}

/**
 * The cosine score from its three sums: a caller that keeps each vector's squared norm (the cold
 * worker) scores a hit with `cosineOf(dotAt(q, slab, off), normSqAt(q, 0, n), kept)`, one sum
 * instead of three, bit-identical to `scoreAt('cosine', …)` (11 hits of 128 dims: ~1.2 µs, not ~1.6).
 */
export function cosineOf(dot: number, na: number, nb: number): number {
  if (na === 0 || nb === 0) return 0;
  return dot / Math.sqrt(na * nb);
}

/** Σ a[i]·b[off+i] over a's length, element by element in order (the sum every score uses). */
export function dotAt(a: Float32Array, b: Float32Array, off: number): number {
  const n = a.length;
  let s = 0;
  for (let i = 0; i < n; i++) s += a[i]! * b[off + i]!;
  return s;
}

/** Σ v[off+i]² for i < n, in order. */
export function normSqAt(v: Float32Array, off: number, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) {
    const x = v[off + i]!;
    s += x * x;
  }
  return s;
}

/** Order of results: score descending, ties by id ascending. */
export function compareHits(a: { id: string; score: number }, b: { id: string; score: number }): number {
  if (a.score !== b.score) return b.score - a.score;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * Keeps the best `k` of a stream of hits without sorting everything: a bounded sorted buffer.
 * `push` is O(k) worst case, O(1) for hits worse than the current k-th.
 */
export class TopK<T extends { id: string; score: number }> {
  private readonly items: T[] = [];
  constructor(private readonly k: number) {}
  /** Offers a hit. */
  push(h: T): void {
    const items = this.items;
    if (this.k <= 0) return;
    if (items.length === this.k && compareHits(h, items[items.length - 1]!) >= 0) return;
    let i = items.length;
    items.push(h);
    while (i > 0 && compareHits(h, items[i - 1]!) < 0) {
      items[i] = items[i - 1]!;
      i--;
    }
    items[i] = h;
    if (items.length > this.k) items.pop();
  }
  /** The kept hits, best first. */
  result(): T[] {
    return this.items.slice();
  }
}
