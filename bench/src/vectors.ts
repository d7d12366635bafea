// The benches' vectors, made the same way in every bench and on every run (seeded).
import { seededRandom } from '@kyrodb/log';

/** A standard normal deviate (Box-Muller) from a uniform source. */
export function gauss(r: () => number): number {
  return Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
}

/** Scales `v` to unit length, in place. */
export function normalise(v: Float32Array): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  const n = Math.sqrt(s) || 1;
  for (let i = 0; i < v.length; i++) v[i] = v[i]! / n;
  return v;
}

/** How many centres the Gaussian mixture has. */
const CENTRES = 100;

/**
 * A normalised Gaussian mixture: CENTRES unit centres, isotropic noise of expected norm `spread`,
 * clustered like real embeddings. `clustered(n)` makes n of them from one seed; `one(i)` makes
 * vector i on its own (its own seed), for benches that make millions as they write.
 */
export function gaussianMixture(dim: number, seed: number, spread: number): { clustered: (n: number) => Float32Array[]; one: (i: number) => Float32Array } {
  const r = seededRandom(seed);
  const centres = Array.from({ length: CENTRES }, () => normalise(Float32Array.from({ length: dim }, () => gauss(r))));
  const around = (rr: () => number): Float32Array => {
    const c = centres[Math.floor(rr() * centres.length)]!;
    return normalise(Float32Array.from(c, (x) => x + (gauss(rr) * spread) / Math.sqrt(dim)));
  };
  return {
    clustered: (n) => Array.from({ length: n }, () => around(r)),
    one: (i) => around(seededRandom(seed ^ Math.imul(i + 1, 0x9e3779b1))),
  };
}

/** Uniform in the cube, normalised: no structure, the worst case for HNSW. */
export function uniform(n: number, dim: number, seed: number): Float32Array[] {
  const r = seededRandom(seed);
  return Array.from({ length: n }, () => normalise(Float32Array.from({ length: dim }, () => r() * 2 - 1)));
}

/**
 * The vector of document i in the log and backup benches (`--vectors`):
 * - `clustered` (the default): the Gaussian mixture above. Like real embeddings, its floats
 *   barely compress: a zstd backup of 1M such events is 79% of their raw size (525 of 666 MB).
 * - `sin`: component k is sin(31 i + k), what the benches used up to stop 18. zstd shrinks
 *   those events 3.9 times (171 MB), which flatters every compressed figure; kept to compare.
 */
export function vectorsOf(kind: string, dim: number): (i: number) => Float32Array {
  if (kind === 'sin') {
    return (i) => {
      const v = new Float32Array(dim);
      for (let k = 0; k < dim; k++) v[k] = Math.sin(i * 31 + k);
      return v;
    };
  }
  if (kind === 'clustered') return gaussianMixture(dim, 0x6b79726f, 0.6).one;
  throw new Error(`--vectors must be clustered or sin, not ${kind}`);
}
