import { afterEach, describe, expect, it } from 'vitest';
import { exactSearch } from '@kyrodb/projections';
import type { Projections, SearchRequest, SearchResponse } from '@kyrodb/projections';
import { makeEnv, metric, randomVector, rng, upsert } from './helpers.js';
import type { Env } from './helpers.js';

const DIM = 8;
const IDS = 100;

/** A cosine collection 'c' of IDS documents x0.. (efSearch above its size: the cold tier is exact), absorbed by the cold tier. */
async function seeded(env: Env): Promise<Projections> {
  const p = await env.open({ cache: undefined });
  await env.log.append([{ type: 'collection.created', collection: 'c', body: { dimension: DIM, metric: 'cosine', hnsw: { M: 16, efConstruction: 200, efSearch: 400 } } }]);
  const r = rng(1);
  await env.log.append(Array.from({ length: IDS }, (_, i) => upsert('c', `x${i}`, randomVector(r, DIM))));
  await p.waitForCold(env.log.head().seq);
  return p;
}

/**
 * A cold answer can come back older than the cold watermark: the worker answered, applied a
 * later batch, and that batch's acknowledgement was handled first, so the hot tier shed what the
 * answer lacks. On a loaded two-core machine (3 writers of small overwrite batches, busy processes
 * on both cores) 8% of cold answers over HTTP came back so, up to 14 events behind; each was asked
 * again, three times at most, then dropped, and 0.3% of searches answered from the hot tier alone:
 * `{results: [], degraded: true, layers: ['hot']}` with the cold tier healthy. The failpoint
 * `projection.cold.answer=delay(MS)` makes that race happen every time: the answer is taken late.
 */
describe('a cold answer overtaken by the cold watermark', () => {
  let env: Env | undefined;
  afterEach(async () => {
    env?.failpoints.set('projection.cold.answer', 'off');
    await env?.close();
    env = undefined;
  });

  it('is completed from the log: the answer is whole, from both tiers, and exact (overwrites, new documents and deletes in between)', async () => {
    env = await makeEnv();
    const p = await seeded(env);
    const q: SearchRequest = { vector: new Float32Array(randomVector(rng(5), DIM)), k: 10 };
    const top = exactSearch(p.liveState(), 'c', q).map((h) => h.id);
    const far = Array.from(q.vector, (x) => -x);
    const near = (i: number): number[] => Array.from(q.vector, (x, j) => x + (j === i ? 0.01 : 0));

    env.failpoints.set('projection.cold.answer', '1*delay(300)');
    const pending = p.search('c', q);
    // While the answer waits: the best three move away, three new documents come close, two of
    // the rest are deleted; the cold tier absorbs all of it (the hot tier sheds it).
    await env.log.append([upsert('c', top[0]!, far), upsert('c', top[1]!, far), upsert('c', top[2]!, far)]);
    await env.log.append([upsert('c', 'n0', near(0)), upsert('c', 'n1', near(1)), upsert('c', 'n2', near(2))]);
    await env.log.append([3, 4].map((i) => ({ type: 'vector.deleted' as const, collection: 'c', body: { id: top[i]! } })));
    await p.waitForCold(env.log.head().seq);
    expect(p.health().hotVectors).toBe(0);
    const s = await pending;

    expect([s.degraded, s.layers]).toEqual([false, ['hot', 'cold']]);
    expect(s.results).toEqual(exactSearch(p.liveState(), 'c', q));
    expect(s.results.slice(0, 3).map((h) => h.id).sort()).toEqual(['n0', 'n1', 'n2']);
    for (const gone of top.slice(0, 5)) expect(s.results.map((h) => h.id)).not.toContain(gone);
    expect(await metric(env.registry, 'query_cold_catchups_total')).toBe(1);
    expect(await metric(env.registry, 'query_degradation_total', { fallback_to: 'hot' })).toBe(0);
  });

  it('late three times over while writers keep going: still whole and not degraded (it was a hot-only answer)', async () => {
    env = await makeEnv();
    const e = env;
    const p = await seeded(e);
    const q: SearchRequest = { vector: new Float32Array(randomVector(rng(6), DIM)), k: 10 };
    e.failpoints.set('projection.cold.answer', '3*delay(150)');
    let s: SearchResponse | undefined;
    const pending = p.search('c', q).then((x) => (s = x));
    const r = rng(12);
    let batches = 0;
    while (s === undefined) {
      await e.log.append(Array.from({ length: 3 }, () => upsert('c', `x${Math.floor(r() * IDS)}`, randomVector(r, DIM))));
      await p.waitForCold(e.log.head().seq);
      batches += 1;
      await new Promise((res) => setTimeout(res, 10));
    }
    await pending;
    expect(batches).toBeGreaterThan(3);
    expect([s.degraded, s.layers, s.results.length]).toEqual([false, ['hot', 'cold'], 10]);
    expect(await metric(e.registry, 'query_degradation_total', { fallback_to: 'hot' })).toBe(0);
    expect(p.health().breakers['cold']).toBe('closed');
    // Once quiet, the same search is exact.
    e.failpoints.set('projection.cold.answer', 'off');
    expect((await p.search('c', q)).results).toEqual(exactSearch(p.liveState(), 'c', q));
  });
});
