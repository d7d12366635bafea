import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import fc from 'fast-check';
import { firstValueFrom, take, toArray } from 'rxjs';
import type { EventLog, LogEvent } from '@kyrodb/log';
import { created, fcParams, openTestLog, upsert } from './helpers.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** Collects `count` events from `log.tail(from)`. */
function collect(log: EventLog, from: number, count: number): Promise<LogEvent[]> {
  return firstValueFrom(log.tail(from, { chunk: 7 }).pipe(take(count), toArray()));
}

function tick(kind: number): Promise<void> {
  if (kind === 0) return Promise.resolve();
  if (kind === 1) return new Promise((r) => setImmediate(r));
  return new Promise((r) => setTimeout(r, kind - 2));
}

describe('tail', () => {
  it('no gap and no duplicate at the seam between catch-up and live, with appends racing the subscription', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 60 }), // events before subscribing
        fc.integer({ min: 1, max: 60 }), // events appended while subscribing
        fc.nat(), // where to start
        fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 12 }), // pauses between racing appends
        fc.integer({ min: 1, max: 3 }), // subscribers
        async (before, during, pick, pauses, subscribers) => {
          const { log, dir } = await openTestLog();
          dirs.push(dir);
          await log.append([created('c', 2)]);
          for (let i = 0; i < before; i += 5) await log.append(Array.from({ length: Math.min(5, before - i) }, (_, j) => upsert(`b${i + j}`, [i, j])));
          const head = log.head().seq;
          const total = head + during;
          const froms = Array.from({ length: subscribers }, (_, k) => 1 + ((pick + k * 17) % (total + 1)));
          // Start the racing appends first (not awaited), then subscribe in the middle of them.
          const racing: Promise<unknown>[] = [];
          let sent = 0;
          const subs: Promise<LogEvent[]>[] = [];
          for (let k = 0; sent < during; k++) {
            const n = Math.min(during - sent, 1 + (k % 3));
            racing.push(log.append(Array.from({ length: n }, (_, j) => upsert(`r${sent + j}`, [sent, j]))));
            sent += n;
            if (k === 0) for (const f of froms) subs.push(collect(log, f, total - f + 1));
            await tick(pauses[k % pauses.length]!);
          }
          await Promise.all(racing);
          const got = await Promise.all(subs);
          got.forEach((evs, k) => {
            const f = froms[k]!;
            expect(evs.map((e) => e.seq)).toEqual(Array.from({ length: total - f + 1 }, (_, i) => f + i));
          });
          await log.close();
        },
      ),
      fcParams(40),
    );
  });

  it('a tail that starts beyond the head waits for the events to come, then delivers them in order', async () => {
    const { log, dir } = await openTestLog();
    dirs.push(dir);
    await log.append([created('c', 2)]);
    const p = collect(log, 3, 3);
    await log.append([upsert('a', [1, 2])]); // seq 2: before the start, not delivered
    await log.append([upsert('b', [1, 2]), upsert('c', [1, 2]), upsert('d', [1, 2])]);
    expect((await p).map((e) => e.seq)).toEqual([3, 4, 5]);
    await log.close();
  });

  it('unsubscribing stops delivery; other subscribers go on', async () => {
    const { log, dir } = await openTestLog();
    dirs.push(dir);
    const seen: number[] = [];
    const sub = log.tail(1).subscribe((e) => seen.push(e.seq));
    const other = collect(log, 1, 4);
    await log.append([created('c', 2)]);
    await log.append([upsert('a', [1, 2])]);
    await new Promise((r) => setImmediate(r));
    sub.unsubscribe();
    await log.append([upsert('b', [1, 2]), upsert('c', [1, 2])]);
    expect((await other).map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(seen).toEqual([1, 2]);
    await log.close();
  });
});
