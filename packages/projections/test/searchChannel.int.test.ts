// The shared-memory search channel to the cold worker (real worker thread, real hnswlib).
import { afterEach, describe, expect, it } from 'vitest';
import { exactSearch, materialize } from '@kyrodb/projections';
import type { Filter, Projections, SearchRequest, SearchResponse } from '@kyrodb/projections';
import { POLL_BACKOFF_MS, POLL_PROBATION_STALLS } from '../src/searchChannel.js';
import { create, makeEnv, metric, randomVector, rng, upsert } from './helpers.js';
import type { Env } from './helpers.js';

let env: Env | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

const DIM = 8;

async function seed(e: Env, p: Projections, n: number, seedValue = 3): Promise<void> {
  const r = rng(seedValue);
  await e.log.append([create('c', DIM, 'l2')]);
  const res = await e.log.append(Array.from({ length: n }, (_, i) => upsert('c', `v${i}`, randomVector(r, DIM), { g: i % 3 })));
  await p.waitForCold(res.lastSeq);
}

/** The longest gap between the ticks of a 5 ms interval while `fn` runs: how long the event loop was blocked. */
async function maxEventLoopGap<T>(fn: () => Promise<T>): Promise<{ value: T; gapMs: number }> {
  let last = performance.now();
  let gapMs = 0;
  const t = setInterval(() => {
    const now = performance.now();
    gapMs = Math.max(gapMs, now - last);
    last = now;
  }, 5);
  try {
    const value = await fn();
    return { value, gapMs: Math.max(gapMs, performance.now() - last) };
  } finally {
    clearInterval(t);
  }
}

describe('search channel (SharedArrayBuffer + Atomics) to the cold worker', () => {
  it('concurrent searches each get their own answer: more than the channel has slots, filters, a filter too big for a slot, k too big for a slot', async () => {
    env = await makeEnv();
    const p = await env.open({ query: { coldTimeoutMs: 10_000 } });
    await seed(env, p, 300);
    const r = rng(17);
    const reqs: SearchRequest[] = Array.from({ length: 24 }, (_, i) => {
      const q: SearchRequest = { vector: new Float32Array(randomVector(r, DIM)), k: 1 + (i % 9) };
      if (i % 4 === 1) q.filter = { g: i % 3 };
      if (i % 4 === 2) q.filter = { g: { $in: [0, 2] } };
      return q;
    });
    // Larger than a slot's request area: goes by message.
    const big: Filter = { g: { $in: [1, ...Array.from({ length: 5000 }, (_, i) => `not-a-group-${i}`)] } };
    reqs.push({ vector: new Float32Array(randomVector(r, DIM)), k: 7, filter: big });
    reqs.push({ vector: new Float32Array(randomVector(r, DIM)), k: 290 }); // more hits than a slot holds
    // The first search holds the worker for 300 ms, so the others pile up: the channel's 8 slots
    // fill (oldest first), the rest go by message, and all wait asynchronously.
    env.failpoints.set('projection.cold.search', '1*delay(300)');
    const answers = await Promise.all(reqs.map((q) => p.search('c', q)));
    const state = materialize(env.log);
    answers.forEach((a, i) => {
      expect(a.degraded).toBe(false);
      expect(a.layers).toEqual(['hot', 'cold']);
      expect(a.results).toEqual(exactSearch(state, 'c', reqs[i]!));
    });
    // And one at a time, through the synchronous wait.
    for (const q of reqs.slice(0, 6)) expect((await p.search('c', q)).results).toEqual(exactSearch(state, 'c', q));
  });

  it('a hung worker: degraded hot answers after the cold timeout, and the event loop is never blocked for long (one bounded wait, then asynchronous)', async () => {
    env = await makeEnv();
    const p = await env.open({ query: { coldTimeoutMs: 1000, breakerThreshold: 100 } });
    await seed(env, p, 100);
    const r = rng(23);
    const q = (): SearchRequest => ({ vector: new Float32Array(randomVector(r, DIM)), k: 5 });
    // Hung for ~3x what the 13 searches below take (each waits 1 s at most), so that a loaded machine
    // cannot stretch them past the hang; closing then waits out the rest of it.
    env.failpoints.set('projection.cold.search', '1*delay(10000)');
    const { value, gapMs } = await maxEventLoopGap(async () => {
      const first = p.search('c', q()); // the worker hangs in this one
      // Written while the worker hangs: the hot tier serves it.
      await env!.log.append([upsert('c', 'fresh', Array.from({ length: DIM }, () => 0.5))]);
      const concurrent = await Promise.all([first, ...Array.from({ length: 10 }, () => p.search('c', q()))]);
      const sequential: SearchResponse[] = [];
      for (let i = 0; i < 2; i++) sequential.push(await p.search('c', { vector: new Float32Array(DIM).fill(0.5), k: 3 }));
      return [...concurrent, ...sequential];
    });
    for (const a of value) expect(a).toMatchObject({ degraded: true, layers: ['hot'] });
    expect(value.at(-1)!.results[0]!.id).toBe('fresh');
    expect(await metric(env.registry, 'query_timeouts_total', { layer: 'cold' })).toBe(13);
    // Blocking until the 1000 ms timeout would show here as a gap of a second or more; the
    // synchronous wait is 2 ms. The bound leaves room for a loaded machine.
    expect(gapMs).toBeLessThan(500);
  });

  it('hits come back with their ids, exact scores and metadata whatever the ids hold (every printable ASCII character the log admits, 1 to 256 of them) and whichever tier scored them', async () => {
    env = await makeEnv();
    const p = await env.open();
    const r = rng(9);
    const odd = ['plain', '!"$&\'()*+,-.:;<=>@[\\]^_`{|}~', 'x'.repeat(253), 'Z', ''];
    await env.log.append([create('c', DIM, 'cosine')]);
    const ids = Array.from({ length: 90 }, (_, i) => `${odd[i % odd.length]}${i}`);
    // Every third doc has metadata (looked up here), the rest are scored by the worker alone.
    const res = await env.log.append(ids.map((id, i) => upsert('c', id, randomVector(r, DIM), i % 3 === 0 ? { i } : undefined)));
    await p.waitForCold(res.lastSeq);
    const state = materialize(env.log);
    for (let i = 0; i < 20; i++) {
      const req: SearchRequest = { vector: new Float32Array(randomVector(r, DIM)), k: 1 + (i % 12) };
      const got = await p.search('c', req);
      expect(got.layers).toEqual(['hot', 'cold']);
      expect(got.results).toEqual(exactSearch(state, 'c', req));
    }
  });

  it('ties at the k-th score are broken by id, as the exact search breaks them', async () => {
    env = await makeEnv();
    const p = await env.open();
    const r = rng(5);
    await env.log.append([create('c', DIM, 'l2')]);
    // 40 copies of one vector under ids inserted in a shuffled order, among other vectors.
    const same = randomVector(r, DIM);
    const ids = Array.from({ length: 40 }, (_, i) => `t${String(i).padStart(2, '0')}`);
    for (let i = ids.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [ids[i], ids[j]] = [ids[j]!, ids[i]!];
    }
    const res = await env.log.append([
      ...Array.from({ length: 60 }, (_, i) => upsert('c', `o${i}`, randomVector(r, DIM))),
      ...ids.map((id) => upsert('c', id, same)),
    ]);
    await p.waitForCold(res.lastSeq);
    const state = materialize(env.log);
    for (const k of [1, 5, 17, 39]) {
      const req: SearchRequest = { vector: new Float32Array(same), k };
      const got = await p.search('c', req);
      expect(got.layers).toEqual(['hot', 'cold']);
      expect(got.results).toEqual(exactSearch(state, 'c', req));
    }
  });

  it('answers that come only after the synchronous wait (a thread kept off its core for milliseconds) switch the channel from polling to sleeping; after the back-off it polls again', async () => {
    env = await makeEnv();
    const p = await env.open({ query: { coldTimeoutMs: 10_000 } });
    await seed(env, p, 100);
    const q: SearchRequest = { vector: new Float32Array(DIM).fill(0.5), k: 3 };
    // The first searches switch polling on, on probation.
    for (let i = 0; i < 3; i++) await p.search('c', q);
    expect(p.health().searchChannel).toBe('polling');
    // Each of the next four is answered 10 ms late: past COLD_SYNC_WAIT_MS, so the caller waits
    // asynchronously, and the answer still counts as a stall.
    env.failpoints.set('projection.cold.search', `${POLL_PROBATION_STALLS}*delay(10)`);
    for (let i = 0; i < POLL_PROBATION_STALLS; i++) {
      const r = await p.search('c', q);
      expect(r.layers).toEqual(['hot', 'cold']);
    }
    expect(p.health().searchChannel).toBe('sleeping');
    // Searches go on (sleeping ends), and after the back-off one of them tries polling again.
    const before = performance.now();
    for (let i = 0; i < 5; i++) await p.search('c', q);
    if (performance.now() - before < POLL_BACKOFF_MS) expect(p.health().searchChannel).toBe('sleeping');
    await new Promise((r) => setTimeout(r, POLL_BACKOFF_MS + 20));
    let tries = 0;
    while (p.health().searchChannel !== 'polling' && tries < 20) {
      await p.search('c', q);
      tries++;
    }
    expect(p.health().searchChannel).toBe('polling');
    expect(tries).toBeGreaterThan(0);
  });
});
