// The shared-memory search channel carries requests and answers intact: both ends are views of the
// same buffers, so a round trip runs here in one thread (`create` for the caller, `attach` for the
// worker, exactly as the cold tier and its worker do).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CHANNEL_SLOTS, SLOT, SLOT_MAX_HITS, SearchChannel } from '../src/searchChannel.js';
import type { ColdHit } from '../src/coldProtocol.js';

const id = fc.oneof(
  fc.string({ minLength: 1, maxLength: 256, unit: fc.constantFrom(...'abcXYZ019-_.:') }),
  fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' }), // not admitted by the log today; the channel still carries it
);
const hit = fc.record({ id, seq: fc.integer({ min: 1, max: 2 ** 52 }), score: fc.oneof(fc.double({ noNaN: false }), fc.constant(Number.NaN)), meta: fc.boolean() });
const request = fc.record({
  slot: fc.integer({ min: 0, max: CHANNEL_SLOTS - 1 }),
  coll: fc.constantFrom('a', 'b', 'docs', 'ünïcode'),
  vector: fc.array(fc.float({ noNaN: true }), { minLength: 1, maxLength: 64 }).map((v) => Float32Array.from(v)),
  k: fc.integer({ min: 1, max: SLOT_MAX_HITS }),
  filter: fc.option(fc.json({ maxDepth: 2 }), { nil: undefined }),
  answer: fc.oneof(
    fc.record({ ok: fc.constant(true as const), hits: fc.array(hit, { maxLength: 40 }), seq: fc.integer({ min: 0, max: 2 ** 52 }), tookUs: fc.double({ min: 0, max: 1e6, noNaN: true }) }),
    fc.record({ ok: fc.constant(false as const), error: fc.string({ maxLength: 200 }) }),
  ),
});

describe('search channel', () => {
  it('a request reaches the worker and its answer reaches the caller, through any sequence of slots and collections', () => {
    fc.assert(
      fc.property(fc.array(request, { minLength: 1, maxLength: 30 }), (reqs) => {
        const caller = SearchChannel.create();
        const worker = SearchChannel.attach(caller.buffers);
        let ticket = 0;
        for (const r of reqs) {
          expect(caller.state(r.slot)).toBe(SLOT.free);
          expect(caller.publish(r.slot, ++ticket, r.coll, r.vector, r.k, r.filter, undefined)).toBe(true);
          expect(worker.nextRequest()).toBe(r.slot);
          const got = worker.claim(r.slot)!;
          expect(got.coll).toBe(r.coll);
          expect(Array.from(got.vector)).toEqual(Array.from(r.vector));
          expect(got.k).toBe(r.k);
          expect(got.filterJson).toBe(r.filter);
          expect(worker.state(r.slot)).toBe(SLOT.busy);
          if (r.answer.ok) {
            const hits: ColdHit[] = r.answer.hits;
            worker.answer(r.slot, { ok: true, answer: { hits, seq: r.answer.seq, tookUs: r.answer.tookUs } });
            expect(caller.state(r.slot)).toBe(SLOT.done);
            const a = caller.take(r.slot);
            expect(a).toEqual({ ok: true, answer: { hits, seq: r.answer.seq, tookUs: r.answer.tookUs } });
          } else {
            worker.answer(r.slot, { ok: false, error: r.answer.error });
            expect(caller.take(r.slot)).toEqual({ ok: false, error: r.answer.error });
          }
          expect(caller.state(r.slot)).toBe(SLOT.free);
        }
      }),
    );
  });

  it('an abandoned search is freed by its answer and never read', () => {
    const caller = SearchChannel.create();
    const worker = SearchChannel.attach(caller.buffers);
    expect(caller.publish(3, 1, 'c', Float32Array.of(1, 2), 5, undefined, undefined)).toBe(true);
    expect(worker.claim(3)).toBeDefined();
    expect(caller.abandon(3)).toBe(true);
    expect(caller.anyAbandoned()).toBe(true);
    worker.answer(3, { ok: true, answer: { hits: [{ id: 'x', seq: 1, score: 1, meta: false }], seq: 1, tookUs: 1 } });
    expect(caller.state(3)).toBe(SLOT.free);
    expect(caller.anyAbandoned()).toBe(false);
    // Taken back before the worker saw it: the worker finds nothing to claim.
    expect(caller.publish(4, 2, 'c', Float32Array.of(1, 2), 5, undefined, undefined)).toBe(true);
    expect(caller.abandon(4)).toBe(true);
    expect(worker.nextRequest()).toBe(-1);
    expect(worker.claim(4)).toBeUndefined();
  });
});
