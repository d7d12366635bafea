import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cosineOf, dotAt, normSqAt, score } from '../src/scoring.js';

const f32 = fc.float({ min: -1000, max: 1000, noNaN: true, noDefaultInfinity: true });
/** Two vectors of one length (0–37, zero included), the second at an offset in a larger array. */
const pair = fc.integer({ min: 0, max: 37 }).chain((n) => fc.tuple(fc.array(f32, { minLength: n, maxLength: n }), fc.array(f32, { minLength: n, maxLength: n }), fc.integer({ min: 0, max: 9 })));

/** The textbook sums, one element at a time, in float64. */
function reference(a: number[], b: number[]): { dot: number; na: number; nb: number; l2: number } {
  let dot = 0;
  let na = 0;
  let nb = 0;
  let l2 = 0;
  for (let i = 0; i < a.length; i++) {
    const x = Math.fround(a[i]!);
    const y = Math.fround(b[i]!);
    dot += x * y;
    na += x * x;
    nb += y * y;
    l2 += (x - y) * (x - y);
  }
  return { dot, na, nb, l2 };
}
const close = (got: number, want: number, scale: number): void => {
  expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-9 * (scale + 1));
};

describe('scoring', () => {
  it('the cosine from kept norms is bit-identical to score(), wherever the vector sits', () => {
    fc.assert(
      fc.property(pair, ([a, b, off]) => {
        const qa = Float32Array.from(a);
        const slab = new Float32Array(off + b.length + 3).fill(7);
        slab.set(b, off);
        const kept = cosineOf(dotAt(qa, slab, off), normSqAt(qa, 0, qa.length), normSqAt(slab, off, qa.length));
        expect(Object.is(kept, score('cosine', qa, Float32Array.from(b)))).toBe(true);
      }),
    );
  });

  it('every metric agrees with the one-at-a-time sums (to rounding) and is exact on small integers', () => {
    fc.assert(
      fc.property(pair, ([a, b]) => {
        const qa = Float32Array.from(a);
        const qb = Float32Array.from(b);
        const r = reference(a, b);
        close(score('ip', qa, qb), r.dot, r.na + r.nb);
        close(score('l2', qa, qb), r.l2 === 0 ? 0 : -r.l2, r.l2 + r.na + r.nb);
        close(score('cosine', qa, qb), r.na === 0 || r.nb === 0 ? 0 : r.dot / Math.sqrt(r.na * r.nb), 1);
      }),
    );
    const ints = Float32Array.from({ length: 13 }, (_, i) => i - 6);
    expect(score('ip', ints, ints)).toBe(182);
    expect(score('l2', ints, Float32Array.from(ints, (x) => x + 1))).toBe(-13);
    expect(Object.is(score('l2', ints, ints), 0)).toBe(true);
    expect(score('cosine', ints, ints)).toBe(1);
  });
});
