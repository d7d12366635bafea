import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { LogEvent } from '@kyrodb/log';
import { applyEvent, emptyState } from '@kyrodb/projections';
import type { MaterializedState } from '@kyrodb/projections';
import { HotTier } from '../src/hotTier.js';
import { exactHnsw } from './helpers.js';

// The hot tier's byte count (what `storage.hot_tier_max_bytes` bounds) is kept incrementally;
// this law holds it to the set it describes: every live doc the cold tier has not absorbed.

const COLLS = ['a', 'b'];
const IDS = ['x0', 'x1', 'x2', 'x3', 'x4'];

type Step =
  | { op: 'create'; c: string; dim: number }
  | { op: 'drop'; c: string }
  | { op: 'upsert'; c: string; id: string; dim: number }
  | { op: 'delete'; c: string; id: string }
  | { op: 'shed' };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ op: fc.constant('create' as const), c: fc.constantFrom(...COLLS), dim: fc.integer({ min: 1, max: 40 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('drop' as const), c: fc.constantFrom(...COLLS) }) },
  // A dimension other than the collection's is an event that does not apply.
  { weight: 10, arbitrary: fc.record({ op: fc.constant('upsert' as const), c: fc.constantFrom(...COLLS), id: fc.constantFrom(...IDS), dim: fc.integer({ min: 1, max: 40 }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('delete' as const), c: fc.constantFrom(...COLLS), id: fc.constantFrom(...IDS) }) },
  { weight: 2, arbitrary: fc.constant({ op: 'shed' as const }) },
);

/** 4 × Σ dims of the live docs with seq > `watermark`: what the hot tier holds. */
function expectedBytes(state: MaterializedState, watermark: number): number {
  let n = 0;
  for (const c of state.collections.values()) for (const d of c.docs.values()) if (d.seq > watermark) n += d.vector.length * 4;
  return n;
}

describe('hot tier byte accounting', () => {
  it('bytes() is always 4 × the dimensions of the live docs past the shed watermark, through creates, overwrites, deletes, drops and sheds', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 80 }), fc.array(fc.nat(), { minLength: 80, maxLength: 80 }), (steps, picks) => {
        const state = emptyState();
        const hot = new HotTier();
        let seq = 0;
        let watermark = 0;
        // The dimension a collection was created with, so most upserts apply.
        const dims = new Map<string, number>();
        steps.forEach((s, i) => {
          if (s.op === 'shed') {
            // The cold tier absorbs a prefix: any seq from the last watermark up to the head.
            watermark = Math.min(seq, watermark + (picks[i]! % (seq - watermark + 1)));
            hot.shed(watermark);
          } else {
            seq += 1;
            let e: LogEvent;
            const base = { seq, ts: seq, prevHash: new Uint8Array(32), hash: new Uint8Array(32), collection: s.c };
            if (s.op === 'create') {
              if (!state.collections.has(s.c)) dims.set(s.c, s.dim);
              e = { ...base, type: 'collection.created', body: { dimension: s.dim, metric: 'l2', hnsw: exactHnsw } };
            } else if (s.op === 'drop') {
              e = { ...base, type: 'collection.dropped', body: {} };
            } else if (s.op === 'upsert') {
              const dim = picks[i]! % 4 === 0 ? s.dim : (dims.get(s.c) ?? s.dim);
              e = { ...base, type: 'vector.upserted', body: { id: s.id, vector: new Float32Array(dim).fill(1) } };
            } else {
              e = { ...base, type: 'vector.deleted', body: { id: s.id } };
            }
            hot.onApplied(applyEvent(state, e));
          }
          expect(hot.bytes()).toBe(expectedBytes(state, watermark));
        });
        let vectors = 0;
        for (const c of state.collections.values()) for (const d of c.docs.values()) if (d.seq > watermark) vectors += 1;
        expect(hot.vectors()).toBe(vectors);
      }),
      { numRuns: 300 },
    );
  });
});
