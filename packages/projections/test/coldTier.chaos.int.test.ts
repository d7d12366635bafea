import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '@kyrodb/log';
import fs from 'node:fs';
import path from 'node:path';
import { CHECKPOINT_FORMAT_VERSION, exactSearch, listGenerations, materialize } from '@kyrodb/projections';
import { collectionFiles } from '../src/checkpointFiles.js';
import type { Projections, SearchRequest } from '@kyrodb/projections';
import { create, makeEnv, metric, randomVector, rng, upsert } from './helpers.js';
import type { Env } from './helpers.js';

let env: Env | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

const DIM = 6;

async function seed(e: Env, p: Projections, n = 60): Promise<void> {
  const r = rng(3);
  await e.log.append([create('c', DIM, 'l2')]);
  const res = await e.log.append(Array.from({ length: n }, (_, i) => upsert('c', `v${i}`, randomVector(r, DIM), { g: i % 2 })));
  await p.waitForCold(res.lastSeq);
}

async function untilColdAnswers(p: Projections): Promise<void> {
  for (;;) {
    try {
      if ((await p.coldStats()) !== undefined) return;
    } catch {
      // still hung
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function exact(e: Env, req: SearchRequest): unknown {
  return exactSearch(materialize(e.log), 'c', req);
}

describe('cold tier faults (chaos, real worker thread)', () => {
  it('projection.cold.search=delay(5000): degraded hot answers within the timeout; the breaker opens, half-opens, closes', async () => {
    env = await makeEnv();
    const clock = new FakeClock();
    const p = await env.open({ clock, query: { coldTimeoutMs: 150, breakerThreshold: 2, breakerTimeoutMs: 30_000 } });
    await seed(env, p);
    const q: SearchRequest = { vector: new Float32Array(DIM).fill(0.5), k: 5 };
    env.failpoints.set('projection.cold.search', '1*delay(5000)');
    const first = await p.search('c', q); // the worker really hangs for 5 s
    expect(first).toMatchObject({ degraded: true, layers: ['hot'] });
    // A write while the cold tier hangs stays in the hot tier and is served.
    await env.log.append([upsert('c', 'fresh', Array.from({ length: DIM }, () => 0.5))]);
    const second = await p.search('c', q); // queued behind the hang: times out too
    expect(second.degraded).toBe(true);
    expect(second.results[0]?.id).toBe('fresh');
    expect(p.health().breakers['cold']).toBe('open');
    const third = await p.search('c', q); // breaker open: no cold call at all
    expect(third).toMatchObject({ degraded: true, layers: ['hot'] });
    expect(third.results[0]?.id).toBe('fresh');
    expect(await metric(env.registry, 'query_timeouts_total', { layer: 'cold' })).toBe(2);
    expect(await metric(env.registry, 'query_degradation_total', { fallback_to: 'hot' })).toBe(3);
    expect(await metric(env.registry, 'query_layer_circuit_breaker_state', { layer: 'cold', state: 'open' })).toBe(1);
    await untilColdAnswers(p);
    clock.advance(30_000);
    expect(p.health().breakers['cold']).toBe('half_open');
    expect(await metric(env.registry, 'query_layer_circuit_breaker_state', { layer: 'cold', state: 'half_open' })).toBe(1);
    const probe = await p.search('c', q);
    expect(probe.degraded).toBe(false);
    expect(probe.layers).toEqual(['hot', 'cold']);
    expect(p.health().breakers['cold']).toBe('closed');
    expect(probe.results).toEqual(exact(env, q));
  });

  it('projection.cold.search=panic: the worker crashes, answers degrade, it restarts from its checkpoint and catches up', async () => {
    env = await makeEnv();
    const p = await env.open({ query: { coldTimeoutMs: 2000 } });
    await seed(env, p);
    await p.checkpoint();
    // Changes after the checkpoint the restarted worker must replay: overwrites, deletes, new docs.
    const r = rng(9);
    await env.log.append([
      ...Array.from({ length: 10 }, (_, i) => upsert('c', `v${i}`, randomVector(r, DIM), { g: 5 })),
      ...Array.from({ length: 5 }, (_, i) => ({ type: 'vector.deleted' as const, collection: 'c', body: { id: `v${20 + i}` } })),
      ...Array.from({ length: 10 }, (_, i) => upsert('c', `new${i}`, randomVector(r, DIM))),
    ]);
    await p.waitForCold(env.log.head().seq);
    const q: SearchRequest = { vector: new Float32Array(randomVector(r, DIM)), k: 10 };
    env.failpoints.set('projection.cold.search', '1*panic');
    const crashed = await p.search('c', q);
    expect(crashed).toMatchObject({ degraded: true, layers: ['hot'] });
    // Degraded: only what the hot tier holds (the changes since the checkpoint the restarted
    // worker starts from), never a deleted or stale version.
    const live = materialize(env.log).collections.get('c')!.docs;
    for (const h of crashed.results) expect(live.get(h.id)?.seq).toBeGreaterThan(61);
    await env.log.append([upsert('c', 'during', randomVector(r, DIM))]);
    await p.waitForCold(env.log.head().seq);
    expect(await metric(env.registry, 'projection_cold_restarts_total')).toBe(1);
    const after = await p.search('c', q);
    expect(after.degraded).toBe(false);
    expect(after.results).toEqual(exact(env, q));
    expect(p.health().hotVectors).toBe(0);
    const f: SearchRequest = { ...q, filter: { g: 5 } };
    expect((await p.search('c', f)).results).toEqual(exact(env, f));
  });

  it('projection.cold.insert=panic: the worker crashes mid-insert, restarts without a checkpoint (rebuild) and catches up', async () => {
    env = await makeEnv();
    const p = await env.open();
    await seed(env, p, 30);
    env.failpoints.set('projection.cold.insert', '1*panic');
    const r = rng(11);
    await env.log.append(Array.from({ length: 20 }, (_, i) => upsert('c', `x${i}`, randomVector(r, DIM))));
    await p.waitForCold(env.log.head().seq);
    expect(await metric(env.registry, 'projection_cold_restarts_total')).toBe(1);
    expect((await p.coldStats())?.collections[0]?.live).toBe(50);
    const q: SearchRequest = { vector: new Float32Array(randomVector(r, DIM)), k: 7 };
    const s = await p.search('c', q);
    expect(s.degraded).toBe(false);
    expect(s.results).toEqual(exact(env, q));
  });

  it('checkpoints every event while the cold tier restarts: no retry per event, and checkpoints resume once it is back', async () => {
    env = await makeEnv();
    const logs: string[] = [];
    const p = await env.open({ checkpoint: { everyEvents: 1 }, logger: (_level, msg) => logs.push(msg) });
    await seed(env, p, 10);
    // Each insert is slow, and the first one crashes the worker: events go on while it restarts.
    env.failpoints.set('projection.cold.insert', '1*panic');
    const r = rng(12);
    for (let i = 0; i < 150; i++) await env.log.append([upsert('c', `y${i}`, randomVector(r, DIM))]);
    await p.waitForCold(env.log.head().seq);
    const failed = logs.filter((m) => m === 'checkpoint failed').length;
    expect(failed, `${failed} "checkpoint failed" lines`).toBeLessThanOrEqual(2); // before: one per event while the worker was down
    // Once the worker is back (and the retry delay after a failure, 5 s, has passed), writes take checkpoints again.
    const until = Date.now() + 20_000;
    for (let i = 0; (listGenerations(env.dir)[0]?.seq ?? 0) <= 11 && Date.now() < until; i++) {
      await env.log.append([upsert('c', `z${i}`, randomVector(r, DIM))]);
      await new Promise((res) => setTimeout(res, 200));
    }
    expect(listGenerations(env.dir)[0]?.seq ?? 0).toBeGreaterThan(11);
  });

  it('hot-tier bound: while the cold tier is stalled (projection.cold.insert=delay) the hot tier grows past maxVectors and admission() pushes back; it recovers once the cold tier absorbs', async () => {
    env = await makeEnv();
    const p = await env.open({ hotTier: { maxVectors: 20 } });
    await seed(env, p, 10);
    expect(p.admission()).toEqual({ ok: true });
    env.failpoints.set('projection.cold.insert', '1*delay(1500)');
    const r = rng(5);
    for (let i = 0; i < 40; i++) await env.log.append([upsert('c', `h${i}`, randomVector(r, DIM))]);
    expect(p.health().hotVectors).toBeGreaterThan(20);
    const adm = p.admission();
    expect(adm.ok).toBe(false);
    if (!adm.ok) expect(adm.retryAfterMs).toBeGreaterThan(0);
    const q: SearchRequest = { vector: new Float32Array(randomVector(r, DIM)), k: 5 };
    expect((await p.search('c', q)).results).toEqual(exact(env, q));
    await p.waitForCold(env.log.head().seq);
    expect(p.health().hotVectors).toBe(0);
    expect(p.admission()).toEqual({ ok: true });
  });
  it('backlog bound: overwrites of a few ids keep the hot tier small, but a cold tier more than maxVectors events behind pushes back; it recovers', async () => {
    env = await makeEnv();
    const p = await env.open({ hotTier: { maxVectors: 20 } });
    await seed(env, p, 10);
    env.failpoints.set('projection.cold.insert', '1*delay(1500)');
    const r = rng(7);
    for (let i = 0; i < 40; i++) await env.log.append([upsert('c', `o${i % 3}`, randomVector(r, DIM))]);
    expect(p.health().hotVectors).toBeLessThanOrEqual(3);
    expect(p.health().lagEvents).toBeGreaterThan(20);
    const adm = p.admission();
    expect(adm.ok).toBe(false);
    if (!adm.ok) expect(adm.retryAfterMs).toBeGreaterThan(0);
    await p.waitForCold(env.log.head().seq);
    expect(p.admission()).toEqual({ ok: true });
  });
  it('hot-tier byte bound: with room for many vectors but 20 vectors\' bytes, the stalled cold tier makes admission() push back at the bytes; it recovers', async () => {
    env = await makeEnv();
    const p = await env.open({ hotTier: { maxVectors: 1_000_000, maxBytes: 20 * DIM * 4 } });
    await seed(env, p, 10);
    expect(p.admission()).toEqual({ ok: true });
    env.failpoints.set('projection.cold.insert', '1*delay(1500)');
    const r = rng(6);
    for (let i = 0; i < 15; i++) await env.log.append([upsert('c', `h${i}`, randomVector(r, DIM))]);
    expect(p.health().hotBytes).toBe(p.health().hotVectors * DIM * 4);
    expect(p.admission()).toEqual({ ok: true });
    for (let i = 15; i < 40; i++) await env.log.append([upsert('c', `h${i}`, randomVector(r, DIM))]);
    expect(p.health().hotBytes).toBeGreaterThan(20 * DIM * 4);
    const adm = p.admission();
    expect(adm.ok).toBe(false);
    if (!adm.ok) expect(adm.retryAfterMs).toBeGreaterThan(0);
    await p.waitForCold(env.log.head().seq);
    expect(p.health().hotBytes).toBe(0);
    expect(p.admission()).toEqual({ ok: true });
  });
  it('a checkpoint whose index write is slow (projection.cold.save=delay) does not hold searches: they are answered by both tiers meanwhile, and after it', async () => {
    env = await makeEnv();
    const p = await env.open({ cache: undefined });
    await seed(env, p, 60);
    env.failpoints.set('projection.cold.save', '1*delay(1500)');
    let done = false;
    const cp = p.checkpoint().then((r) => {
      done = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 200));
    const r = rng(9);
    for (let i = 0; i < 5; i++) {
      const q: SearchRequest = { vector: new Float32Array(randomVector(r, DIM)), k: 5 };
      const s = await p.search('c', q);
      expect([s.degraded, s.layers, done]).toEqual([false, ['hot', 'cold'], false]);
      expect(s.results).toEqual(exact(env, q));
    }
    await cp;
    // After the save the worker's loop sleeps on the bell again, and wakes for every search.
    for (let i = 0; i < 5; i++) {
      const s = await p.search('c', { vector: new Float32Array(randomVector(r, DIM)), k: 5 });
      expect([s.degraded, s.layers]).toEqual([false, ['hot', 'cold']]);
    }
    expect(p.health().breakers['cold']).toBe('closed');
  });
  it('a slow hot tier (every search over its budget) is counted, but its answer is kept and its breaker stays closed: searches keep seeing the newest writes', async () => {
    env = await makeEnv();
    const p = await env.open({ query: { cacheTimeoutMs: 10, hotTimeoutMs: 0, coldTimeoutMs: 1000 } });
    await seed(env, p, 10);
    env.failpoints.set('projection.cold.insert', 'delay(2000)'); // the cold tier falls behind: new writes are only in the hot tier
    const r = rng(8);
    for (let i = 0; i < 10; i++) {
      const v = randomVector(r, DIM);
      await env.log.append([upsert('c', `new${i}`, v)]);
      await p.waitForApplied(env.log.head().seq);
      const res = await p.search('c', { vector: new Float32Array(v), k: 1 });
      expect(res.results[0]?.id, `search ${i}`).toBe(`new${i}`);
      expect(res.layers).toContain('hot');
    }
    expect(p.health().breakers.hot).toBe('closed');
    expect(await metric(env.registry, 'query_timeouts_total', { layer: 'hot' })).toBeGreaterThanOrEqual(10);
    env.failpoints.clear('projection.cold.insert');
  });

  it('a hung worker (no answer to the ping after the breaker opens) is terminated, restarted, and catches up; the next search probes the new worker; resetBreaker closes the breaker by hand', async () => {
    env = await makeEnv();
    const p = await env.open({ query: { coldTimeoutMs: 100, breakerThreshold: 1, breakerTimeoutMs: 600_000, coldHangRestartMs: 300 } });
    await seed(env, p);
    const q: SearchRequest = { vector: new Float32Array(DIM).fill(0.25), k: 8 };
    env.failpoints.set('projection.cold.search', '1*delay(20000)');
    expect((await p.search('c', q)).degraded).toBe(true);
    expect(p.health().breakers['cold']).toBe('open');
    await env.log.append([upsert('c', 'after-hang', Array.from({ length: DIM }, () => 0.25))]);
    for (let i = 0; i < 500 && (await metric(env.registry, 'projection_cold_restarts_total')) < 1; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await metric(env.registry, 'projection_cold_restarts_total')).toBe(1);
    await p.waitForCold(env.log.head().seq);
    // Half-opened by the restart: the next search probes the new worker, not after the 10-minute
    // timeout (meanwhile the hot tier shed what the worker absorbed, and answers were empty).
    expect(p.health().breakers['cold']).toBe('half_open');
    const s = await p.search('c', q);
    expect(s).toMatchObject({ degraded: false, layers: ['hot', 'cold'] });
    expect(s.results).toEqual(exact(env, q));
    expect(s.results[0]?.id).toBe('after-hang');
    expect(p.health().breakers['cold']).toBe('closed');
    // A failing search opens it again (threshold 1); resetBreaker closes it by hand.
    env.failpoints.set('projection.cold.search', '1*error(EIO)');
    expect((await p.search('c', q)).layers).toEqual(['hot']);
    expect(p.health().breakers['cold']).toBe('open');
    p.resetBreaker('cold');
    expect(await p.search('c', q)).toMatchObject({ degraded: false, layers: ['hot', 'cold'], results: exact(env, q) });
  });

  it('searches while a crashed worker restarts do not count against the breaker; once it is back, answers are exact, not hot-only', async () => {
    env = await makeEnv();
    const p = await env.open({ query: { breakerThreshold: 3, breakerTimeoutMs: 600_000 } });
    await seed(env, p);
    const q: SearchRequest = { vector: new Float32Array(DIM).fill(0.25), k: 8 };
    env.failpoints.set('projection.cold.search', '1*panic');
    // The crash, then searches while the worker is down (the restart waits ~100 ms).
    for (let i = 0; i < 5; i++) expect((await p.search('c', q)).degraded).toBe(true);
    expect(p.health().breakers['cold']).not.toBe('open');
    for (let i = 0; i < 500 && (await metric(env.registry, 'projection_cold_restarts_total')) < 1; i++) await new Promise((r) => setTimeout(r, 20));
    await p.waitForCold(env.log.head().seq);
    expect(p.health().hotVectors).toBe(0); // all shed: a hot-only answer would be empty
    expect(await p.search('c', q)).toMatchObject({ degraded: false, layers: ['hot', 'cold'], results: exact(env, q) });
  });

  it('writes applied while a cold answer is awaited leave it short of k: the cold tier is asked again, and the answer is the exact one', async () => {
    env = await makeEnv();
    const p = await env.open();
    await seed(env, p);
    const q: SearchRequest = { vector: new Float32Array(DIM).fill(0.5), k: 5 };
    const top = exact(env, q) as { id: string }[];
    // The worker sleeps in this search: it answers its five nearest as of before the writes below.
    env.failpoints.set('projection.cold.search', '1*delay(300)');
    const pending = p.search('c', q);
    // Meanwhile three of those five are moved far away: their cold copies are stale.
    await env.log.append(top.slice(0, 3).map((h) => upsert('c', h.id, Array.from({ length: DIM }, () => 100))));
    const r = await pending;
    expect(r).toMatchObject({ degraded: false, layers: ['hot', 'cold'] });
    // Not the two fresh cold hits topped up with the moved documents: the next three nearest.
    expect(r.results).toEqual(exact(env, q));
    expect(r.results.map((h) => h.id)).not.toContain(top[0]!.id);
  });

  it('a worker restart that finds the newest checkpoint damaged since it was written rebuilds from the log: every live doc indexed, answers exact', async () => {
    env = await makeEnv();
    const logs: string[] = [];
    const p = await env.open({ query: { coldTimeoutMs: 2000 }, logger: (_level, msg) => logs.push(msg) });
    await seed(env, p);
    await p.checkpoint();
    const g = listGenerations(env.dir)[0]!;
    const index = path.join(g.dir, collectionFiles(CHECKPOINT_FORMAT_VERSION, 'c').index);
    const fd = fs.openSync(index, 'r+');
    fs.writeSync(fd, Buffer.alloc(16, 0xff), 0, 16, 64);
    fs.closeSync(fd);
    const r = rng(21);
    const q: SearchRequest = { vector: new Float32Array(randomVector(r, DIM)), k: 10 };
    env.failpoints.set('projection.cold.search', '1*panic');
    expect(await p.search('c', q)).toMatchObject({ degraded: true });
    await env.log.append([upsert('c', 'during', randomVector(r, DIM))]);
    await p.waitForCold(env.log.head().seq);
    expect(logs).toContain('cold restart could not load the newest checkpoint; rebuilding the cold tier from the log');
    expect(await metric(env.registry, 'projection_cold_restarts_total')).toBe(1);
    const st = await p.coldStats();
    expect(st?.collections.find((c) => c.name === 'c')).toMatchObject({ live: 61, scored: 61 });
    const after = await p.search('c', q);
    expect(after.degraded).toBe(false);
    expect(after.results).toEqual(exact(env, q));
  });
});
