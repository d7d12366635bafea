import { afterEach, describe, expect, it } from 'vitest';
import type { EventInput } from '@kyrodb/log';
import { exactSearch } from '@kyrodb/projections';
import { makeEnv, randomVector, rng } from './helpers.js';
import type { Env } from './helpers.js';

// A graph too sparse to reach every node (M 2, efConstruction 4): HNSW alone misses documents
// that a filter singles out. A filtered search that finds fewer than k falls back to scoring
// every match, so a filter matching one document finds it.
describe('filtered search finds every match the graph does not reach', () => {
  let env: Env | undefined;
  afterEach(async () => {
    await env?.close();
    env = undefined;
  });

  it('a filter matching one document returns it, for every document of a sparse graph; a filter matching a few returns exactly the exact search', async () => {
    env = await makeEnv();
    const p = await env.open({ cache: undefined });
    const DIM = 8;
    const N = 1500;
    const r = rng(17);
    await env.log.append([{ type: 'collection.created', collection: 's', body: { dimension: DIM, metric: 'l2', hnsw: { M: 2, efConstruction: 4, efSearch: 4 } } }]);
    for (let b = 0; b < N; b += 500) {
      const batch: EventInput[] = [];
      for (let i = b; i < b + 500; i++) batch.push({ type: 'vector.upserted', collection: 's', body: { id: `d${i}`, vector: new Float32Array(randomVector(r, DIM)), metadata: { n: i, g: i % 300 } } });
      await env.log.append(batch);
    }
    await p.waitForCold(env.log.head().seq);
    let missed = 0;
    for (let i = 0; i < N; i++) {
      const doc = p.getDoc('s', `d${i}`)!;
      const res = await p.search('s', { vector: doc.vector, k: 1, filter: { n: i } });
      expect(res.layers).toEqual(['hot', 'cold']);
      if (res.results[0]?.id !== `d${i}`) missed += 1;
    }
    expect(missed).toBe(0);
    for (let g = 0; g < 20; g++) {
      const q = { vector: new Float32Array(randomVector(r, DIM)), k: 10, filter: { g } };
      expect((await p.search('s', q)).results).toEqual(exactSearch(p.liveState(), 's', q));
    }
  }, 60_000);
});
