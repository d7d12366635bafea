import { afterEach, describe, expect, it } from 'vitest';
import { exactSearch, materialize } from '@kyrodb/projections';
import { create, makeEnv, rng, upsert } from './helpers.js';
import type { Env } from './helpers.js';

let env: Env | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

/** A standard normal sample (Box–Muller) from `r`. */
function gauss(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

describe('ties at the k-th hit, answered by the HNSW index', () => {
  // `half` and `tiny` point the same way: both score exactly 1 in float64, so the id order puts
  // `half` first. hnswlib normalises `half` in float32 and `tiny` comes normalised in float64
  // (its float32 sum of squares underflows), so their float32 distances differ by a hair, and
  // the index's answer kept `tiny` alone.
  it('two documents that score the same in float64 but not in float32: the id order decides, as the exact search does', async () => {
    env = await makeEnv();
    const p = await env.open();
    const r = rng(5);
    await env.log.append([create('c', 3, 'cosine'), upsert('c', 'half', [0.5, 0.5, 0]), upsert('c', 'tiny', [1e-40, 1e-40, 0])]);
    await env.log.append(Array.from({ length: 200 }, (_, i) => upsert('c', `g${i}`, [gauss(r), gauss(r), gauss(r)])));
    await p.waitForCold(env.log.head().seq);
    const state = materialize(env.log);
    for (const k of [1, 2, 3]) {
      const q = { vector: Float32Array.of(0.5, 0.5, 0), k };
      const got = await p.search('c', q);
      expect(got.layers).toContain('cold');
      expect(got.results.map((h) => [h.id, h.score]), `k = ${k}`).toEqual(exactSearch(state, 'c', q).map((h) => [h.id, h.score]));
    }
    expect((await p.search('c', { vector: Float32Array.of(0.5, 0.5, 0), k: 1 })).results[0]?.id).toBe('half');
  });
});
