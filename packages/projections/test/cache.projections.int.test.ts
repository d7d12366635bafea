import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import { EventLog } from '@kyrodb/log';
import type { EventInput } from '@kyrodb/log';
import { Projections, exactSearch, materialize } from '@kyrodb/projections';
import type { MaterializedState } from '@kyrodb/projections';
import { SemanticCache } from '../src/cache/index.js';
import { randomVector, rng } from './cacheWorkload.js';

// The semantic cache plugged into the real tiered executor (real LMDB log, hot tier, HNSW cold
// tier in its worker): every answer the executor serves from the cache equals an exact search of
// the log prefix at that moment.

const DIM = 6;
const r = rng(11);
const docPool = Array.from({ length: 10 }, () => randomVector(r, DIM));
const queryPool = Array.from({ length: 4 }, () => randomVector(r, DIM));

let dir: string;
let log: EventLog;
let proj: Projections;
let cache: SemanticCache;
let state: MaterializedState | undefined;
let collectionNo = 0;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kyro-cache-'));
  log = await EventLog.open({ dir, logger: () => {} });
  cache = new SemanticCache({ options: { capacity: 8 } });
  proj = await Projections.open({ log, dataDir: dir, cache, registry: new Registry(), logger: () => {}, checkpoint: { everyEvents: 0, everySecs: 0 } });
});

afterAll(async () => {
  await proj.close();
  await log.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const step = fc.oneof(
  { weight: 2, arbitrary: fc.record({ t: fc.constant('upsert' as const), id: fc.integer({ min: 0, max: 5 }), vec: fc.integer({ min: 0, max: docPool.length - 1 }), tag: fc.integer({ min: 0, max: 1 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('delete' as const), id: fc.integer({ min: 0, max: 5 }) }) },
  // A query also comes scaled: the same direction, another length (under l2 and ip, another question).
  { weight: 6, arbitrary: fc.record({ t: fc.constant('query' as const), pool: fc.integer({ min: 0, max: queryPool.length - 1 }), scale: fc.constantFrom(1, 1, 3), far: fc.boolean(), k: fc.constantFrom(1, 3), tagged: fc.boolean() }) },
);

describe('SemanticCache in the tiered executor', () => {
  it('under l2 and ip only the very same query is answered from the cache: not one of the same length and nearly the same direction', async () => {
    for (const metric of ['l2', 'ip'] as const) {
      const coll = `same-${metric}`;
      const res = await log.append([
        { type: 'collection.created', collection: coll, body: { dimension: 2, metric, hnsw: { M: 16, efConstruction: 200, efSearch: 200 } } },
        { type: 'vector.upserted', collection: coll, body: { id: 'A', vector: Float32Array.of(1000, 0.03) } },
        { type: 'vector.upserted', collection: coll, body: { id: 'B', vector: Float32Array.of(1000, -0.03) } },
      ]);
      await proj.waitForApplied(res.lastSeq);
      // Bit for bit the same length, and directions within 1e-8 of each other.
      const first = await proj.search(coll, { vector: Float32Array.of(1000, 0.03), k: 1 });
      expect(first.results.map((h) => h.id), metric).toEqual(['A']);
      const second = await proj.search(coll, { vector: Float32Array.of(1000, -0.03), k: 1 });
      // B is the answer under both: l2 distance 0; ip 1e6 + 0.0009 against A's 1e6 - 0.0009.
      expect([second.layers.includes('cache'), second.results.map((h) => h.id)], metric).toEqual([false, ['B']]);
      // The same query again is answered from the cache.
      const again = await proj.search(coll, { vector: Float32Array.of(1000, -0.03), k: 1 });
      expect(again.layers, metric).toEqual(['cache']);
    }
  });

  it('every answer served from the cache equals exactSearch(materialize(log)) at that moment, under every metric', async () => {
    let served = 0;
    const hitsBefore = cache.stats().hits;
    const servedScaled = { cosine: 0, l2: 0, ip: 0 };
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 10, maxLength: 40 }), fc.constantFrom('cosine' as const, 'l2' as const, 'ip' as const), async (steps, metric) => {
        const coll = `c${++collectionNo}`;
        const append = async (events: EventInput[]): Promise<void> => {
          const res = await log.append(events);
          await proj.waitForApplied(res.lastSeq);
        };
        await append([{ type: 'collection.created', collection: coll, body: { dimension: DIM, metric, hnsw: { M: 16, efConstruction: 200, efSearch: 200 } } }]);
        const live = new Set<number>();
        for (const s of steps) {
          if (s.t === 'upsert') {
            // A per-id nudge: no two ids share a vector, so there are no exact score ties (the executor's
            // HNSW path does not yet break k-boundary ties by id the way exactSearch does).
            const vector = Float32Array.from(docPool[s.vec]!, (x, j) => (j === 0 ? x + (s.id + 1) * 1e-3 : x));
            await append([{ type: 'vector.upserted', collection: coll, body: { id: `d${s.id}`, vector, metadata: { tag: s.tag } } }]);
            live.add(s.id);
          } else if (s.t === 'delete') {
            if (!live.delete(s.id)) continue;
            await append([{ type: 'vector.deleted', collection: coll, body: { id: `d${s.id}` } }]);
          } else {
            // Far from the origin (under l2 and ip): every such query points almost the same way
            // (cosine > 0.999 between any two), yet each has its own answer.
            const shift = s.far && metric !== 'cosine' ? 100 : 0;
            const req = { vector: Float32Array.from(queryPool[s.pool]!, (x) => x * s.scale + shift), k: s.k, ...(s.tagged ? { filter: { tag: 1 } } : {}) };
            const res = await proj.search(coll, req);
            if (!res.layers.includes('cache')) continue;
            served++;
            if (s.scale !== 1) servedScaled[metric]++;
            state = materialize(log, undefined, undefined, state);
            const exact = exactSearch(state, coll, req);
            // (Under cosine a scaled query's scores differ from the remembered one's by rounding only.)
            expect(res.results.map((h) => h.id)).toEqual(exact.map((h) => h.id));
            res.results.forEach((h, i) => expect(h.score).toBeCloseTo(exact[i]!.score, 5));
          }
        }
      }),
      { seed: 424242, numRuns: 40 },
    );
    expect(served).toBeGreaterThan(20);
    expect(cache.stats().hits - hitsBefore).toBe(served);
    // Only cosine may answer a scaled query from a remembered one (it did, so the property saw it).
    expect(servedScaled.cosine).toBeGreaterThan(0);
  });
});

describe('SemanticCache with maxStalenessMs in the tiered executor', () => {
  it('a collection dropped and created again under the same name never gets its predecessor\'s answers, within the staleness bound too', async () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'kyro-cache-'));
    const l = await EventLog.open({ dir: d, logger: () => {} });
    const c = new SemanticCache({ options: { maxStalenessMs: 3_600_000 } });
    const p = await Projections.open({ log: l, dataDir: d, cache: c, registry: new Registry(), logger: () => {}, checkpoint: { everyEvents: 0, everySecs: 0 } });
    try {
      const query = { vector: Float32Array.of(1, 0), k: 2 };
      let res = await l.append([
        { type: 'collection.created', collection: 's', body: { dimension: 2, metric: 'l2', hnsw: { M: 16, efConstruction: 200, efSearch: 200 } } },
        { type: 'vector.upserted', collection: 's', body: { id: 'far', vector: Float32Array.of(100, 0) } },
        { type: 'vector.upserted', collection: 's', body: { id: 'near', vector: Float32Array.of(1, 0) } },
      ]);
      await p.waitForApplied(res.lastSeq);
      expect((await p.search('s', query)).layers).not.toEqual(['cache']);
      expect((await p.search('s', query)).layers).toEqual(['cache']); // cached
      expect(c.stats().entries).toBe(1);
      res = await l.append([{ type: 'collection.dropped', collection: 's', body: {} }]);
      await p.waitForApplied(res.lastSeq);
      // Its answers go with it (they held memory, and counted in cache_entries, until evicted).
      expect([c.stats().entries, c.stats().invalidations]).toEqual([0, 1]);
      res = await l.append([
        { type: 'collection.created', collection: 's', body: { dimension: 2, metric: 'cosine', hnsw: { M: 16, efConstruction: 200, efSearch: 200 } } },
        { type: 'vector.upserted', collection: 's', body: { id: 'other', vector: Float32Array.of(0, 1) } },
      ]);
      await p.waitForApplied(res.lastSeq);
      // The same query, then a near one (under cosine the second may be the first's new answer).
      for (const [i, vector] of [query.vector, Float32Array.of(1, 0.01)].entries()) {
        const again = await p.search('s', { vector, k: 2 });
        if (i === 0) expect(again.layers).not.toEqual(['cache']);
        if (i === 0) expect(again.results).toEqual(exactSearch(p.liveState(), 's', { vector, k: 2 }));
        expect(again.results.map((h) => h.id)).toEqual(['other']);
      }
    } finally {
      await p.close();
      await l.close();
      fs.rmSync(d, { recursive: true, force: true });
    }
  });
});
