import { afterEach, describe, expect, it } from 'vitest';
import type { EventInput } from '@kyrodb/log';
import { exactSearch } from '@kyrodb/projections';
import { makeEnv } from './helpers.js';
import type { Env } from './helpers.js';

/** xorshift32 in [0, 1]: the histories below are the ones measured against raw hnswlib-node. */
function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0xffffffff;
  };
}

/**
 * 300 steps over 80 ids of a 3-d collection: overwrites, and deletes (15%). With M 4 and
 * efConstruction 82, raw hnswlib-node's graph of seed 2 (ip, and l2) leaves live documents no
 * walk reaches: a search for every document (k = the collection's size, ef above it) returned 69
 * of 71 under ip, 70 of 71 under l2.
 */
function history(seed: number, collection: string): { events: EventInput[] } {
  const r = xorshift(seed);
  const events: EventInput[] = [];
  const live = new Set<string>();
  for (let step = 0; step < 300; step++) {
    const id = `d${Math.floor(r() * 80)}`;
    if (r() < 0.15) {
      if (live.delete(id)) events.push({ type: 'vector.deleted', collection, body: { id } });
      continue;
    }
    live.add(id);
    events.push({ type: 'vector.upserted', collection, body: { id, vector: new Float32Array([(r() * 2 - 1) * 3, (r() * 2 - 1) * 3, (r() * 2 - 1) * 3]) } });
  }
  return { events };
}

describe('a document the graph does not reach is still found', () => {
  let env: Env | undefined;
  afterEach(async () => {
    await env?.close();
    env = undefined;
  });

  it.each(['ip', 'l2'] as const)('%s: a search for all of a small collection returns all of it; with efSearch above its size every search is exact', async (metric) => {
    env = await makeEnv();
    const p = await env.open({ cache: undefined });
    // The same history twice: 'u' searched with a small efSearch, 'w' with one above its size.
    for (const [name, efSearch] of [['u', 16], ['w', 100]] as const) {
      await env.log.append([{ type: 'collection.created', collection: name, body: { dimension: 3, metric, hnsw: { M: 4, efConstruction: 82, efSearch } } }]);
      const { events } = history(2, name);
      for (let i = 0; i < events.length; i += 50) await env.log.append(events.slice(i, i + 50));
    }
    await p.waitForCold(env.log.head().seq);
    const live = p.liveState().collections.get('u')!.docs.size;
    expect(live).toBe(71);
    const r = xorshift(99);
    for (let i = 0; i < 20; i++) {
      const vector = new Float32Array([r() * 2 - 1, r() * 2 - 1, r() * 2 - 1]);
      const searches: [string, number][] = [['u', live + 5], ['u', live], ['u', live - 1], ['w', live + 5], ['w', 10], ['w', 1]];
      for (const [name, k] of searches) {
        const res = await p.search(name, { vector, k });
        expect(res.layers).toEqual(['hot', 'cold']); // the cold tier answered, not the hot tier alone
        expect(res.results, `${name} k=${k}`).toEqual(exactSearch(p.liveState(), name, { vector, k }));
      }
    }
  }, 60_000);
});
