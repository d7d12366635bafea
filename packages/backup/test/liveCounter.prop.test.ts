import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { IndexFields } from '@kyrodb/log';
import { IdSet, LiveCounter, ReplayState, eventKind } from '@kyrodb/backup';

const SEED = Number(process.env['FC_SEED'] ?? 4242);

// Short ids collide in a small table and share prefixes; long and non-ASCII ones cross the arena's growth.
const idArb = fc.oneof(fc.constantFrom('a', 'b', 'ab', 'ba', 'd1', 'd10', 'd100', ''), fc.string({ unit: 'binary', maxLength: 40 }), fc.nat(5000).map((n) => `d${n}`));

describe('IdSet', () => {
  it('answers like a Set over random adds and deletes (through several resizes)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom('add', 'add', 'delete'), idArb), { minLength: 1, maxLength: 3000 }), (ops) => {
        const s = new IdSet();
        const ref = new Set<string>();
        for (const [op, id] of ops) {
          if (op === 'add') {
            s.add(id);
            ref.add(id);
          } else {
            s.delete(id);
            ref.delete(id);
          }
          expect(s.size).toBe(ref.size);
        }
        for (const [, id] of ops) expect(s.has(id)).toBe(ref.has(id));
        expect(s.has('never-added\u0000')).toBe(false);
      }),
      { seed: SEED, numRuns: 60 },
    );
  });

  it('tells apart ids with the same hash (found by search: k2232789/k2429192 and k2232788/k2429193 share one)', () => {
    const s = new IdSet();
    s.add('k2232789');
    expect(s.has('k2429192')).toBe(false);
    s.add('k2429192');
    s.add('k2232788');
    s.add('k2429193');
    expect(s.size).toBe(4);
    s.delete('k2232789');
    expect(s.has('k2429192')).toBe(true);
    expect(s.has('k2232789')).toBe(false);
    expect(s.size).toBe(3);
  });

  it('counts 200k distinct ids and their re-adds exactly', () => {
    const s = new IdSet();
    for (let i = 0; i < 200_000; i++) s.add(`d${i}`);
    for (let i = 0; i < 200_000; i += 2) s.add(`d${i}`);
    for (let i = 0; i < 200_000; i += 4) s.delete(`d${i}`);
    expect(s.size).toBe(150_000);
    expect(s.has('d4')).toBe(false);
    expect(s.has('d6')).toBe(true);
  });
});

describe('LiveCounter', () => {
  const collArb = fc.constantFrom('c1', 'c2', 'c3');
  const evArb: fc.Arbitrary<Omit<IndexFields, 'seq' | 'ts'>> = fc.oneof(
    { weight: 1, arbitrary: fc.tuple(collArb, fc.constantFrom(4, 4, 3)).map(([collection, dim]) => ({ type: 'collection.created', collection, dim })) },
    { weight: 1, arbitrary: collArb.map((collection) => ({ type: 'collection.dropped', collection })) },
    { weight: 6, arbitrary: fc.tuple(collArb, idArb, fc.constantFrom(4, 4, 3)).map(([collection, id, dim]) => ({ type: 'vector.upserted', collection, id, dim })) },
    { weight: 2, arbitrary: fc.tuple(collArb, idArb).map(([collection, id]) => ({ type: 'vector.deleted', collection, id })) },
  );

  it('counts live vectors per collection as ReplayState does (creates, drops, wrong dimensions, deletes)', () => {
    fc.assert(
      fc.property(fc.array(evArb, { maxLength: 400 }), (evs) => {
        const c = new LiveCounter();
        const ref = new ReplayState(false);
        evs.forEach((e, i) => {
          const f = { ...e, seq: i + 1, ts: i + 1 };
          c.applyLight(f);
          ref.applyLight(f);
        });
        expect(c.counts()).toEqual(ref.counts());
      }),
      { seed: SEED, numRuns: 200 },
    );
  });

  it('counts the same from columns (what a restore\'s codec sends across) as from the events one by one', () => {
    const otherArb = collArb.map((collection) => ({ type: 'collection.tagged', collection }));
    fc.assert(
      fc.property(fc.array(fc.oneof({ weight: 9, arbitrary: evArb }, { weight: 1, arbitrary: otherArb }), { maxLength: 400 }), fc.nat(400), (evs, cut) => {
        const one = new LiveCounter();
        for (const [i, e] of evs.entries()) one.applyLight({ ...e, seq: i + 1, ts: i + 1 });
        // Two batches (a source boundary anywhere), as a restore applies them.
        const cols = new LiveCounter();
        for (const part of [evs.slice(0, cut), evs.slice(cut)]) {
          cols.applyIndexed(
            Uint8Array.from(part, (e) => eventKind(e.type)),
            Int32Array.from(part, (e) => e.dim ?? -1),
            part.map((e) => e.collection),
            part.map((e) => e.id ?? ''),
          );
        }
        expect(cols.counts()).toEqual(one.counts());
      }),
      { seed: SEED, numRuns: 200 },
    );
  });
});
