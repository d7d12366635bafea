import { afterEach, describe, expect, it } from 'vitest';
import { exactSearch, materialize } from '@kyrodb/projections';
import type { Projections } from '@kyrodb/projections';
import { create, makeEnv, rng, upsert } from './helpers.js';
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

  it('a collection created again with another dimension is searched right away, while the cold worker still holds the old index: no error, no open breaker', async () => {
    env = await makeEnv();
    const p = await env.open();
    await env.log.append([create('dr', 8, 'l2'), create('other', 2, 'l2'), ...Array.from({ length: 20 }, (_, i) => upsert('dr', `o${i}`, Array.from({ length: 8 }, () => i))), upsert('other', 'x', [1, 1])]);
    await p.waitForCold(env.log.head().seq);
    for (let round = 0; round < 4; round++) {
      // A backlog for the worker (it serves searches between its inserts), then the re-create
      // behind it: each search below reaches the worker while its 'dr' index is the old one.
      const dim = round % 2 === 0 ? 16 : 8;
      // (Fewer than a batch of events sent to the worker, so that the re-create goes out right behind it.)
      const backlog = Array.from({ length: 1900 }, (_, i) => upsert('bulk', `b${i}`, Array.from({ length: 256 }, (_, j) => Math.sin(i * 256 + j + round))));
      await env.log.append(round === 0 ? [create('bulk', 256, 'l2'), ...backlog] : backlog);
      await env.log.append([{ type: 'collection.dropped', collection: 'dr', body: {} }, create('dr', dim, 'l2'), upsert('dr', 'n', Array.from({ length: dim }, () => 1))]);
      // Searched until the worker has caught up: most of these reach it while 'dr' is the old index.
      const head = env.log.head().seq;
      let cold = 0;
      while (p.health().coldWatermark < head) {
        const s = await p.search('dr', { vector: new Float32Array(dim).fill(1), k: 3 });
        expect([s.degraded, s.results.map((h) => [h.id, h.score])], `round ${round}`).toEqual([false, [['n', 0]]]);
        if (s.layers.includes('cold')) cold++;
        await new Promise((r) => setTimeout(r, 2));
      }
      expect(cold, `round ${round}: searches the worker answered`).toBeGreaterThan(0);
      const o = await p.search('other', { vector: new Float32Array([1, 1]), k: 1 });
      expect([o.degraded, o.layers, o.results.map((h) => h.id)], `round ${round}`).toEqual([false, ['hot', 'cold'], ['x']]);
    }
    expect(p.health().breakers['cold']).toBe('closed');
  });

  it('cosine: vectors of tiny or huge components (ordinary float32 values) are found once indexed, as in the hot tier', async () => {
    env = await makeEnv();
    const p = await env.open();
    const r = rng(7);
    const docs: { id: string; v: number[] }[] = [];
    for (const [scale, n] of [[1e-25, 20], [1e-40, 10], [1e25, 10], [1, 10]] as const) {
      // Lengths spread over two orders of magnitude: ranked by dot product instead of cosine, they come out in another order.
      for (let i = 0; i < n; i++) {
        const len = scale * 10 ** (r() * 2 - 1);
        docs.push({ id: `s${scale}-${i}`, v: Array.from({ length: 6 }, () => (r() * 2 - 1) * len) });
      }
    }
    await env.log.append([create('c', 6, 'cosine'), ...docs.map((d) => upsert('c', d.id, d.v))]);
    const queries = docs.map((d) => new Float32Array(d.v));
    const before = await Promise.all(queries.map((q) => p.search('c', { vector: q, k: 3 })));
    await p.waitForCold(env.log.head().seq);
    expect(p.health().hotVectors).toBe(0);
    const state = materialize(env.log);
    const wrong: string[] = [];
    for (let i = 0; i < queries.length; i++) {
      const after = await p.search('c', { vector: queries[i]!, k: 3 });
      const exact = exactSearch(state, 'c', { vector: queries[i]!, k: 3 }).map((h) => h.id);
      expect(before[i]!.results.map((h) => h.id), docs[i]!.id).toEqual(exact);
      if (after.results.map((h) => h.id).join() !== exact.join()) wrong.push(docs[i]!.id);
    }
    expect(wrong).toEqual([]);
  });

  it('overwrites and deletes do not grow the index for good (before and after a checkpoint reopen): it is rebuilt from the live documents, and answers exactly', async () => {
    env = await makeEnv();
    let p = await env.open();
    const r = rng(3);
    const vec = (): number[] => Array.from({ length: 8 }, () => r() * 2 - 1);
    await env.log.append([create('c', 8, 'l2')]);
    const check = async (): Promise<void> => {
      await p.waitForCold(env!.log.head().seq);
      const state = materialize(env!.log);
      for (let q = 0; q < 20; q++) {
        const req = { vector: new Float32Array(vec()), k: 5 };
        expect((await p.search('c', req)).results).toEqual(exactSearch(state, 'c', req));
      }
    };
    // 300 ids written 20 times over, a third of them deleted and 100 new ids written after.
    for (let round = 0; round < 20; round++) await env.log.append(Array.from({ length: 300 }, (_, i) => upsert('c', `d${i}`, vec())));
    await env.log.append(Array.from({ length: 100 }, (_, i) => ({ type: 'vector.deleted' as const, collection: 'c', body: { id: `d${i * 3}` } })));
    await env.log.append(Array.from({ length: 100 }, (_, i) => upsert('c', `n${i}`, vec())));
    await check();
    // At most 1024 deleted slots beside the live ones (the old code kept one per write: 6100 slots, capacity 8192).
    const before = (await p.coldStats())?.collections.find((c) => c.name === 'c');
    expect([before?.live, before!.capacity <= 2048]).toEqual([300, true]);
    await p.checkpoint();
    await p.close();
    p = await env.open();
    await env.log.append(Array.from({ length: 50 }, (_, i) => ({ type: 'vector.deleted' as const, collection: 'c', body: { id: `n${i}` } })));
    for (let round = 0; round < 20; round++) await env.log.append(Array.from({ length: 250 }, (_, i) => upsert('c', `m${i % 250}`, vec())));
    await check();
    const after = (await p.coldStats())?.collections.find((c) => c.name === 'c');
    expect([after?.live, after!.capacity <= 2048]).toEqual([500, true]);
  });

  it('an as-of search replays a turn at a time (a live search asked after it answers first), answers as the exact search of the prefix does, and past 8 waiting says PROJ_BUSY', async () => {
    env = await makeEnv();
    const p = await env.open();
    const r = rng(9);
    await env.log.append([create('c', 4, 'l2')]);
    for (let b = 0; b < 40; b++) await env.log.append(Array.from({ length: 1000 }, (_, i) => upsert('c', `d${(b * 1000 + i) % 5000}`, [r(), r(), r(), r()])));
    await p.waitForCold(env.log.head().seq);
    const mid = env.log.get(20_000)!;
    const q = { vector: new Float32Array([0.5, 0.5, 0.5, 0.5]), k: 5 };
    const order: string[] = [];
    const asOf = p.search('c', { ...q, asOf: env.log.head().ts }).then((a) => (order.push('asOf'), a));
    const live = p.search('c', q).then((a) => (order.push('live'), a));
    const [a, l] = await Promise.all([asOf, live]);
    // Replayed in one call, the as-of search held the event loop (every write and search) until it was done.
    expect(order).toEqual(['live', 'asOf']);
    expect(a.results).toEqual(l.results);
    // Earlier than the cached state: replayed from seq 1; equal to the exact search of the prefix.
    expect((await p.search('c', { ...q, asOf: mid.ts })).results).toEqual(exactSearch(materialize(env.log, 20_000), 'c', q));
    const many = Array.from({ length: 9 }, (_, i) => p.search('c', { ...q, asOf: env.log.get(1000 + i * 4000)!.ts }));
    const settled = await Promise.allSettled(many);
    expect(settled.filter((x) => x.status === 'rejected').map((x) => (x).reason.code)).toEqual(['PROJ_BUSY']);
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
