import { seededRandom } from '@kyrodb/log';
// Shared test helpers for the cache tests (not a test file itself).

/** Deterministic PRNG in [0, 1). */
export const rng = seededRandom;

export function gauss(r: () => number): number {
  return Math.sqrt(-2 * Math.log(r() || 1e-12)) * Math.cos(2 * Math.PI * r());
}

export function randomVector(r: () => number, dim: number): Float32Array {
  const v = new Float32Array(dim);
  for (let j = 0; j < dim; j++) v[j] = gauss(r);
  return v;
}

/**
 * A Zipf(s) workload over `topics` random unit directions; each query is its topic plus small
 * Gaussian noise (a near-duplicate: pairwise cosine ≈ 0.998 for noise 0.01 in 16 dims).
 */
export function zipfWorkload(o: { seed: number; dim: number; topics: number; s: number; queries: number; noise: number }): { topic: number; vector: Float32Array }[] {
  const r = rng(o.seed);
  const tv: Float32Array[] = [];
  for (let i = 0; i < o.topics; i++) {
    const v = randomVector(r, o.dim);
    let n = 0;
    for (let j = 0; j < o.dim; j++) n += v[j]! * v[j]!;
    n = Math.sqrt(n);
    for (let j = 0; j < o.dim; j++) v[j] = v[j]! / n;
    tv.push(v);
  }
  const cdf: number[] = [];
  let tot = 0;
  for (let i = 1; i <= o.topics; i++) {
    tot += 1 / Math.pow(i, o.s);
    cdf.push(tot);
  }
  const out: { topic: number; vector: Float32Array }[] = [];
  for (let i = 0; i < o.queries; i++) {
    const u = r() * tot;
    let lo = 0;
    let hi = o.topics - 1;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      if (cdf[m]! < u) lo = m + 1;
      else hi = m;
    }
    const base = tv[lo]!;
    const v = new Float32Array(o.dim);
    for (let j = 0; j < o.dim; j++) v[j] = base[j]! + o.noise * gauss(r);
    out.push({ topic: lo, vector: v });
  }
  return out;
}

/** Lets pending promise callbacks and immediates run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}
