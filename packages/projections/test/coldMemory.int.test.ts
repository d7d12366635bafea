import { afterEach, describe, expect, it } from 'vitest';
import type { EventInput } from '@kyrodb/log';
import { create, makeEnv, upsert } from './helpers.js';
import type { Env } from './helpers.js';

let env: Env | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

const MB = 2 ** 20;

// Each hnswlib index holds 65 536 mutexes (~2.6 MB) whatever its size, in memory V8 is not told
// of: a dropped collection's index was freed only if V8 happened to collect its wrapper, which it
// had no reason to do (2000 collections dropped and created again: +5 GB a round, never returned).
describe('the cold tier gives back the native memory of dropped collections', () => {
  it('200 collections created, dropped and created again, three rounds: the process holds about one round\'s memory, not three', async () => {
    env = await makeEnv();
    const p = await env.open();
    const N = 200;
    const rss = (): number => process.memoryUsage().rss;
    const settle = async (): Promise<void> => {
      await p.waitForCold(env!.log.head().seq);
      // The worker collects between messages: the stats request is one, answered after it.
      await p.coldStats();
    };
    const round = async (dim: number): Promise<number> => {
      const before = rss();
      const events: EventInput[] = [];
      for (let i = 0; i < N; i++) events.push(create(`c${i}`, dim, 'l2'), upsert(`c${i}`, 'a', Array.from({ length: dim }, (_, j) => i + j)));
      await env!.log.append(events);
      await settle();
      const grown = rss() - before;
      await env!.log.append(Array.from({ length: N }, (_, i) => ({ type: 'collection.dropped' as const, collection: `c${i}`, body: {} })));
      await settle();
      expect((await p.coldStats())?.collections ?? []).toEqual([]);
      return grown;
    };
    await settle();
    const start = rss();
    const first = await round(4);
    // The indexes' locks alone are ~2.6 MB each.
    expect(first, `RSS grew ${(first / MB).toFixed(0)} MB for ${N} collections`).toBeGreaterThan(N * 2 * MB);
    await round(8);
    await round(4);
    // Freed memory may stay with the allocator (not returned to the system), but it is reused:
    // before, every round added as much again.
    const held = rss() - start;
    expect(held, `after three rounds the process holds ${(held / MB).toFixed(0)} MB more; one round took ${(first / MB).toFixed(0)} MB`).toBeLessThan(first * 1.5);
  });
});
