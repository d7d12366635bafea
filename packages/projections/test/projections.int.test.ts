import { afterEach, describe, expect, it } from 'vitest';
import { exactSearch, materialize } from '@kyrodb/projections';
import type { Projections } from '@kyrodb/projections';
import { create, makeEnv, upsert } from './helpers.js';
import type { Env } from './helpers.js';

let env: Env | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

describe('projections (real log, real hnswlib worker)', () => {
  it('read-your-writes: applied() >= seq as soon as append resolves, and the next search sees it', async () => {
    env = await makeEnv();
    const p: Projections = await env.open();
    await env.log.append([create('c', 3, 'l2')]);
    for (let i = 0; i < 50; i++) {
      const r = await env.log.append([upsert('c', `d${i}`, [i, 0, 0], { i })]);
      expect(p.applied()).toBeGreaterThanOrEqual(r.lastSeq);
      const s = await p.search('c', { vector: new Float32Array([i, 0, 0]), k: 1 });
      expect(s.results[0]?.id).toBe(`d${i}`);
      expect(s.results[0]?.score).toBe(0);
    }
    expect(p.getDoc('c', 'd7')?.metadata).toEqual({ i: 7 });
    expect(p.getCollection('c')?.count).toBe(50);
  });

  it('hot ∪ cold: after the cold tier absorbs everything, results come from cold and equal exact search', async () => {
    env = await makeEnv();
    const p = await env.open();
    await env.log.append([create('c', 2, 'cosine')]);
    const batch = Array.from({ length: 40 }, (_, i) => upsert('c', `v${i}`, [Math.cos(i / 7), Math.sin(i / 7)], { even: i % 2 }));
    const r = await env.log.append(batch);
    await env.log.append([{ type: 'vector.deleted', collection: 'c', body: { id: 'v3' } }, upsert('c', 'v4', [-1, 0])]);
    await p.waitForCold(r.lastSeq + 1);
    expect(p.health().hotVectors).toBe(0);
    const q = { vector: new Float32Array([1, 0.1]), k: 5 };
    const s = await p.search('c', q);
    expect(s.degraded).toBe(false);
    expect(s.layers).toEqual(['hot', 'cold']);
    const exact = exactSearch(materialize(env.log), 'c', q);
    expect(s.results).toEqual(exact);
    const f = await p.search('c', { ...q, filter: { even: 1 } });
    expect(f.results).toEqual(exactSearch(materialize(env.log), 'c', { ...q, filter: { even: 1 } }));
    expect(f.results.every((h) => h.metadata?.['even'] === 1)).toBe(true);
  });

  it('checkpoint then reopen: same counts and results, replays the tail after the watermark', async () => {
    env = await makeEnv();
    let p = await env.open();
    await env.log.append([create('c', 2, 'ip'), ...Array.from({ length: 30 }, (_, i) => upsert('c', `v${i}`, [i, 1]))]);
    const cp = await p.checkpoint();
    expect(cp.seq).toBe(31);
    await env.log.append([upsert('c', 'late', [100, 1])]);
    const q = { vector: new Float32Array([1, 0]), k: 3 };
    const before = await p.search('c', q);
    await p.close();
    p = await env.open();
    expect(p.applied()).toBe(32);
    expect(p.health().lastCheckpointSeq).toBe(31);
    const after = await p.search('c', q);
    expect(after.results).toEqual(before.results);
    expect(after.results[0]?.id).toBe('late');
  });
  it('read-your-writes right after open over an existing log (catch-up, then live), with appends racing the open', async () => {
    env = await makeEnv();
    await env.log.append([create('c', 2, 'l2'), ...Array.from({ length: 3000 }, (_, i) => upsert('c', `old${i}`, [i, 1]))]);
    const e = env;
    const racing = (async () => {
      for (let i = 0; i < 20; i++) await e.log.append([upsert('c', `race${i}`, [i, 2])]);
    })();
    const p = await env.open();
    await racing;
    for (let i = 0; i < 20; i++) {
      const r = await env.log.append([upsert('c', `new${i}`, [-1000 - i, 5])]);
      expect(p.applied()).toBeGreaterThanOrEqual(r.lastSeq);
      expect(p.getDoc('c', `new${i}`)?.seq).toBe(r.lastSeq);
      expect((await p.search('c', { vector: new Float32Array([-1000 - i, 5]), k: 1 })).results[0]?.id).toBe(`new${i}`);
    }
    expect(p.getCollection('c')?.count).toBe(3040);
  });

  it('search errors: unknown collection, dimension mismatch, bad filter, closed', async () => {
    env = await makeEnv();
    const p = await env.open();
    await env.log.append([create('c', 2, 'l2'), upsert('c', 'a', [1, 1])]);
    await expect(p.search('nope', { vector: new Float32Array([1, 1]), k: 1 })).rejects.toMatchObject({ code: 'PROJ_UNKNOWN_COLLECTION' });
    await expect(p.search('c', { vector: new Float32Array([1, 1, 1]), k: 1 })).rejects.toMatchObject({ code: 'PROJ_DIMENSION_MISMATCH' });
    await expect(p.search('c', { vector: new Float32Array([1, 1]), k: 1, filter: { a: { $bad: 1 } } as never })).rejects.toMatchObject({ code: 'PROJ_INVALID_FILTER' });
    await p.close();
    await expect(p.search('c', { vector: new Float32Array([1, 1]), k: 1 })).rejects.toMatchObject({ code: 'PROJ_CLOSED' });
  });

  it('the cache seam: a hit is served as layer cache; a complete answer is offered with the collection version; asOf bypasses it', async () => {
    env = await makeEnv();
    const offers: { version: number; filterKey: string }[] = [];
    let lookups = 0;
    let serve: { id: string; score: number }[] | undefined = undefined;
    const p = await env.open({
      cache: {
        lookup: () => {
          lookups++;
          return serve;
        },
        offer: (q) => offers.push({ version: q.version, filterKey: q.filterKey }),
      },
    });
    const r = await env.log.append([create('c', 2, 'l2'), upsert('c', 'a', [1, 1], { g: 1 })]);
    const s1 = await p.search('c', { vector: new Float32Array([1, 1]), k: 1, filter: { g: 1 } });
    expect(s1.layers).not.toContain('cache');
    expect(offers).toEqual([{ version: r.lastSeq, filterKey: '[["g",1]]' }]);
    serve = [{ id: 'cached', score: 1 }];
    expect(await p.search('c', { vector: new Float32Array([1, 1]), k: 1 })).toEqual({ results: serve, degraded: false, layers: ['cache'] });
    const before = lookups;
    const a = await p.search('c', { vector: new Float32Array([1, 1]), k: 1, asOf: r.ts });
    expect(a.results[0]?.id).toBe('a');
    expect(lookups).toBe(before);
  });
});
