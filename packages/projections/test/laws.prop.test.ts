import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FakeClock } from '@kyrodb/log';
import type { EventInput, Metric } from '@kyrodb/log';
import { exactSearch, materialize } from '@kyrodb/projections';
import type { MaterializedState, Projections, SearchHit, SearchRequest } from '@kyrodb/projections';
import { exactHnsw, makeEnv } from './helpers.js';
import type { Env } from './helpers.js';

const DIMS: Record<string, number> = { a: 3, b: 2 };
const COLLS = Object.keys(DIMS);
const IDS = ['x0', 'x1', 'x2', 'x3', 'x4', 'x5', 'x6', 'x7'];

const vec = (dim: number): fc.Arbitrary<number[]> =>
  fc.array(fc.integer({ min: -10_000, max: 10_000 }), { minLength: dim, maxLength: dim }).map((v) => (v.every((x) => x === 0) ? [1, ...v.slice(1)] : v).map((x) => x / 1000));

const eventArb: fc.Arbitrary<EventInput> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ c: fc.constantFrom(...COLLS), m: fc.constantFrom<Metric>('cosine', 'l2', 'ip') }).map(({ c, m }): EventInput => ({ type: 'collection.created', collection: c, body: { dimension: DIMS[c]!, metric: m, hnsw: exactHnsw } })) },
  { weight: 1, arbitrary: fc.constantFrom(...COLLS).map((c): EventInput => ({ type: 'collection.dropped', collection: c, body: {} })) },
  {
    weight: 12,
    arbitrary: fc.constantFrom(...COLLS).chain((c) =>
      fc.record({ id: fc.constantFrom(...IDS), v: vec(DIMS[c]!), g: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }) }).map(({ id, v, g }): EventInput =>
        g === undefined
          ? { type: 'vector.upserted', collection: c, body: { id, vector: new Float32Array(v) } }
          : { type: 'vector.upserted', collection: c, body: { id, vector: new Float32Array(v), metadata: { g } } },
      ),
    ),
  },
  { weight: 3, arbitrary: fc.record({ c: fc.constantFrom(...COLLS), id: fc.constantFrom(...IDS) }).map(({ c, id }): EventInput => ({ type: 'vector.deleted', collection: c, body: { id } })) },
);

/** A history: batches of events (each batch one atomic append). */
const historyArb = fc.array(fc.array(eventArb, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 25 });

const queryArb = fc.record({ c: fc.constantFrom(...COLLS), q: fc.tuple(vec(3), fc.integer({ min: 1, max: 6 }), fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined })) });

function request(c: string, [v, k, g]: [number[], number, number | undefined]): SearchRequest {
  const vector = new Float32Array(v.slice(0, DIMS[c]));
  return g === undefined ? { vector, k } : { vector, k, filter: { g } };
}

/** The (id, vector, metadata) set of every collection, plus the catalog, in a comparable form. */
function contents(s: MaterializedState): unknown {
  return [...s.collections.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, c]) => ({
      name,
      dimension: c.info.dimension,
      metric: c.info.metric,
      count: c.info.count,
      createdSeq: c.info.createdSeq,
      version: c.info.version,
      docs: [...c.docs.values()].sort((x, y) => (x.id < y.id ? -1 : 1)).map((d) => [d.id, [...d.vector], d.metadata ?? null, d.seq, d.ts]),
    }));
}

async function liveSearch(p: Projections, c: string, req: SearchRequest): Promise<SearchHit[] | 'unknown'> {
  if (p.getCollection(c) === undefined) return 'unknown';
  const r = await p.search(c, req);
  expect(r.degraded).toBe(false);
  return r.results;
}

function exactOrUnknown(s: MaterializedState, c: string, req: SearchRequest): SearchHit[] | 'unknown' {
  return s.collections.has(c) ? exactSearch(s, c, req) : 'unknown';
}

let env: Env | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

describe('projection laws (fast-check over random histories of creates, upserts, overwrites, deletes, drops)', () => {
  it('replay equivalence: live = replay from genesis = checkpoint at k + replay k+1..n; hot ∪ cold = exact search; as-of(T) = live search at T', async () => {
    await fc.assert(
      fc.asyncProperty(historyArb, fc.nat(), fc.array(queryArb, { minLength: 2, maxLength: 4 }), fc.boolean(), async (history, kRaw, queries, settle) => {
        const clock = new FakeClock();
        env = await makeEnv({ clock });
        try {
          const p = await env.open();
          const k = kRaw % (history.length + 1);
          const recorded: { ts: number; c: string; req: SearchRequest; results: SearchHit[] | 'unknown' }[] = [];
          let cpSeq = -1;
          for (let i = 0; i < history.length; i++) {
            if (i === k) cpSeq = (await p.checkpoint()).seq;
            clock.advance(1);
            const r = await env.log.append(history[i]!);
            expect(p.applied()).toBeGreaterThanOrEqual(r.lastSeq); // read-your-writes
            if (settle && i % 3 === 0) await p.waitForCold(r.lastSeq);
            for (const { c, q } of queries) {
              const req = request(c, q);
              const live = await liveSearch(p, c, req);
              // hot ∪ cold = exact search over the live set
              expect(live).toEqual(exactOrUnknown(p.liveState(), c, req));
              recorded.push({ ts: r.ts, c, req, results: live });
            }
          }
          if (k === history.length) cpSeq = (await p.checkpoint()).seq;
          const replayed = materialize(env.log);
          expect(contents(p.liveState())).toEqual(contents(replayed));
          await p.waitForCold(env.log.head().seq);
          for (const { c, q } of queries) {
            const req = request(c, q);
            expect(await liveSearch(p, c, req)).toEqual(exactOrUnknown(replayed, c, req));
          }
          // as-of T = the live search recorded at T
          for (const rec of recorded) {
            if (rec.results === 'unknown') {
              await expect(p.search(rec.c, { ...rec.req, asOf: rec.ts })).rejects.toMatchObject({ code: 'PROJ_UNKNOWN_COLLECTION' });
            } else {
              const a = await p.search(rec.c, { ...rec.req, asOf: rec.ts });
              expect(a.results).toEqual(rec.results);
            }
          }
          await p.close();
          // checkpoint at k + replay of k+1..n
          const reopened = await env.open();
          expect(reopened.health().lastCheckpointSeq).toBe(cpSeq);
          expect(contents(reopened.liveState())).toEqual(contents(replayed));
          for (const { c, q } of queries) {
            const req = request(c, q);
            expect(await liveSearch(reopened, c, req)).toEqual(exactOrUnknown(replayed, c, req));
          }
        } finally {
          await env.close();
          env = undefined;
        }
      }),
      { numRuns: 30, seed: Number(process.env['FC_SEED'] ?? 20261126), endOnFailure: true },
    );
  });

  it('materialize(toSeq) of every prefix equals the live state recorded at that seq', async () => {
    await fc.assert(
      fc.asyncProperty(historyArb, async (history) => {
        env = await makeEnv();
        try {
          const p = await env.open();
          const snaps: { seq: number; c: unknown }[] = [];
          for (const b of history) {
            const r = await env.log.append(b);
            snaps.push({ seq: r.lastSeq, c: contents(p.liveState()) });
          }
          for (const s of snaps) expect(contents(materialize(env.log, s.seq))).toEqual(s.c);
        } finally {
          await env.close();
          env = undefined;
        }
      }),
      { numRuns: 20, seed: Number(process.env['FC_SEED'] ?? 7), endOnFailure: true },
    );
  });
});
