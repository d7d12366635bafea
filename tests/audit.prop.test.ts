import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { EventLog, FakeClock } from '@kyrodb/log';
import type { EventInput, Metadata } from '@kyrodb/log';
import { applyEvent, emptyState, materialize } from '@kyrodb/projections';
import type { MaterializedState } from '@kyrodb/projections';
import { collectionAsOf, docValueAsOf, exportStateAsOf, importState, stateAsOf, stateAsOfAsync, verifyDigest, verifyDigestAsync } from '../packages/api/src/audit/index.js';
import type { AuditState } from '../packages/api/src/audit/index.js';
import { tmpDir } from './auditHelpers.js';

const COLLS = ['c1', 'c2'] as const;
const IDS = ['a', 'b', 'doc-3'] as const;
const DIM = 3;

type Op =
  | { k: 'create'; c: string }
  | { k: 'drop'; c: string }
  | { k: 'upsert'; c: string; id: string; v: number[]; md: Metadata | undefined }
  | { k: 'delete'; c: string; id: string };

const f32 = fc.float({ noNaN: true, noDefaultInfinity: true });
const mdArb: fc.Arbitrary<Metadata | undefined> = fc.option(
  fc.dictionary(fc.constantFrom('tag', 'n', 'nested'), fc.oneof(fc.string({ maxLength: 6 }), fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 }))),
  { nil: undefined },
);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ k: fc.constant('create' as const), c: fc.constantFrom(...COLLS) }), weight: 2 },
  { arbitrary: fc.record({ k: fc.constant('drop' as const), c: fc.constantFrom(...COLLS) }), weight: 1 },
  { arbitrary: fc.record({ k: fc.constant('upsert' as const), c: fc.constantFrom(...COLLS), id: fc.constantFrom(...IDS), v: fc.oneof({ arbitrary: fc.array(f32, { minLength: DIM, maxLength: DIM }), weight: 9 }, { arbitrary: fc.array(f32, { minLength: 1, maxLength: DIM + 1 }), weight: 1 }), md: mdArb }), weight: 6 },
  { arbitrary: fc.record({ k: fc.constant('delete' as const), c: fc.constantFrom(...COLLS), id: fc.constantFrom(...IDS) }), weight: 2 },
);
// A history: steps of (clock advance in ms — 0 makes batches share a ts — and one batch).
const historyArb = fc.array(fc.record({ advanceMs: fc.constantFrom(0, 1, 1, 2, 5), batch: fc.array(opArb, { minLength: 1, maxLength: 4 }) }), { minLength: 1, maxLength: 14 });

type ModelDoc = { vector: Float32Array; metadata: Metadata | undefined; seq: number; ts: number };
type Model = Map<string, Map<string, ModelDoc>>;

function toInput(op: Op): EventInput {
  switch (op.k) {
    case 'create':
      return { type: 'collection.created', collection: op.c, body: { dimension: DIM, metric: 'l2', hnsw: { M: 16, efConstruction: 100, efSearch: 50 } } };
    case 'drop':
      return { type: 'collection.dropped', collection: op.c, body: {} };
    case 'upsert':
      return { type: 'vector.upserted', collection: op.c, actor: 'prop', body: { id: op.id, vector: Float32Array.from(op.v), ...(op.md !== undefined ? { metadata: op.md } : {}) } };
    case 'delete':
      return { type: 'vector.deleted', collection: op.c, body: { id: op.id } };
  }
}

/**
 * Keeps only ops the API would accept in order (no writes to absent collections, no double
 * create) — unless `raw`, which appends them all (the log accepts them; projections ignore them).
 */
function validOps(model: Model, batch: Op[], raw: boolean): Op[] {
  if (raw) return batch;
  const exists = new Set(model.keys());
  const out: Op[] = [];
  for (const op of batch) {
    if (op.k === 'create') {
      if (exists.has(op.c)) continue;
      exists.add(op.c);
    } else if (op.k === 'drop') {
      if (!exists.has(op.c)) continue;
      exists.delete(op.c);
    } else if (!exists.has(op.c)) continue;
    else if (op.k === 'upsert' && op.v.length !== DIM) continue;
    out.push(op);
  }
  return out;
}

function applyModel(model: Model, op: Op, seq: number, ts: number): void {
  if (op.k === 'create') model.set(op.c, new Map());
  else if (op.k === 'drop') model.delete(op.c);
  else if (op.k === 'upsert') model.get(op.c)?.set(op.id, { vector: Float32Array.from(op.v), metadata: op.md, seq, ts });
  else model.get(op.c)?.delete(op.id);
}

function cloneModel(m: Model): Model {
  return new Map([...m].map(([c, docs]) => [c, new Map(docs)]));
}

const bits = (v: Float32Array): string => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
const norm = (docs: Iterable<[string, { vector: Float32Array; metadata?: Metadata | undefined; seq: number; ts: number }]>): Record<string, unknown> =>
  Object.fromEntries([...docs].sort(([a], [b]) => (a < b ? -1 : 1)).map(([id, d]) => [id, { v: bits(d.vector), md: d.metadata ?? null, seq: d.seq, ts: d.ts }]));
const normState = (s: AuditState): Record<string, unknown> =>
  Object.fromEntries([...s.collections].sort(([a], [b]) => (a < b ? -1 : 1)).map(([c, col]) => [c, { info: col.info, docs: norm(col.docs) }]));

describe('audit as-of laws', () => {
  it('value-as-of(T) and collection-as-of(T) equal what the live system returned at T; import(export(T)) = state(T)', async () => {
    await fc.assert(
      fc.asyncProperty(historyArb, fc.array(fc.nat(), { minLength: 4, maxLength: 8 }), fc.boolean(), async (history, picks, raw) => {
        const dir = tmpDir();
        const clock = new FakeClock();
        const log = await EventLog.open({ dir, clock, logger: () => {} });
        try {
          // The live system: the projections' transition function applied to each commit, as
          // the live catalog and hot tier do; `model` is the test's own reference for valid histories.
          const liveState: MaterializedState = emptyState();
          const model: Model = new Map();
          // ts -> the live answers after the last batch committed at that ts.
          const live = new Map<number, { model: Model; docs: Map<string, ModelDoc | undefined> }>();
          for (const step of history) {
            clock.advance(step.advanceMs);
            const ops = validOps(model, step.batch, raw);
            if (ops.length === 0) continue;
            const r = await log.append(ops.map(toInput));
            ops.forEach((op, i) => applyModel(model, op, r.events[i]!.seq, r.ts));
            for (const e of r.events) applyEvent(liveState, e);
            if (raw) {
              // With ignored events the test model does not apply; the live projections are the truth.
              model.clear();
              for (const [c, col] of liveState.collections) model.set(c, new Map([...col.docs].map(([id, d]) => [id, { vector: d.vector, metadata: d.metadata, seq: d.seq, ts: d.ts }])));
            }
            // What the live system answers now (current reads, no T).
            const docs = new Map<string, ModelDoc | undefined>();
            for (const c of COLLS) {
              for (const id of IDS) {
                const d = liveState.collections.get(c)?.docs.get(id);
                docs.set(`${c}/${id}`, d === undefined ? undefined : { vector: d.vector, metadata: d.metadata, seq: d.seq, ts: d.ts });
                const m = model.get(c)?.get(id);
                expect(d === undefined ? undefined : bits(d.vector)).toEqual(m === undefined ? undefined : bits(m.vector));
                // The audit read without T (now) agrees with the live answer.
                const now = docValueAsOf(log, c, id);
                expect(now === undefined ? undefined : norm([[id, now]])).toEqual(d === undefined ? undefined : norm([[id, d]]));
              }
            }
            live.set(r.ts, { model: cloneModel(model), docs });
          }
          const stamps = [...live.keys()].sort((a, b) => a - b);
          const candidates = stamps.length === 0 ? [clock.nowMicros()] : [stamps[0]! - 1, ...stamps.flatMap((t) => [t, t + 1, t + 999])];
          for (const p of picks) {
            const T = candidates[p % candidates.length]!;
            const at = stamps.filter((t) => t <= T).pop();
            const expected = at === undefined ? undefined : live.get(at)!;
            for (const c of COLLS) {
              for (const id of IDS) {
                const got = docValueAsOf(log, c, id, T);
                const want = expected?.docs.get(`${c}/${id}`);
                expect(got === undefined ? undefined : norm([[id, got]])).toEqual(want === undefined ? undefined : norm([[id, want]]));
              }
              const col = collectionAsOf(log, c, T);
              const wantCol = expected?.model.get(c);
              expect(col === undefined ? undefined : norm(col.docs)).toEqual(wantCol === undefined ? undefined : norm(wantCol));
            }
            // Export at T, read it back: the same state, the same head digest.
            const state = stateAsOf(log, T);
            expect(state.head.seq).toBe(log.seqAtTime(T));
            expect(normState(await stateAsOfAsync(log, T, undefined, undefined, 1 + (p % 4)))).toEqual(normState(state));
            // The audit replay agrees with the projections' one transition function (materialize).
            const m = materialize(log, state.head.seq);
            expect(normState({ asOf: T, head: state.head, collections: new Map([...m.collections].map(([c, col]) => [c, { info: { name: col.info.name, dimension: col.info.dimension, metric: col.info.metric, hnsw: col.info.hnsw, createdSeq: col.info.createdSeq, version: col.info.version }, docs: col.docs }])) })).toEqual(normState(state));
            const file = path.join(dir, `state-${T}.ndjson`);
            const out = fs.createWriteStream(file);
            await exportStateAsOf(log, T, out);
            await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
            const back = await importState(file);
            expect(back.asOf).toBe(T);
            expect(back.head.seq).toBe(state.head.seq);
            expect(Buffer.from(back.head.hash).equals(Buffer.from(state.head.hash))).toBe(true);
            expect(normState(back)).toEqual(normState(state));
            const wantAll = Object.fromEntries([...(expected?.model ?? new Map<string, Map<string, ModelDoc>>())].sort(([a], [b]) => (a < b ? -1 : 1)).map(([c, docs]) => [c, norm(docs)]));
            expect(Object.fromEntries(Object.entries(normState(back)).map(([c, v]) => [c, (v as { docs: unknown }).docs]))).toEqual(wantAll);
          }
          // The whole history verifies (sync and chunked) and extends every intermediate digest.
          const h = log.head();
          if (h.seq > 0) {
            const mid = log.get(1 + (picks[0]! % h.seq))!;
            expect(verifyDigest(log, { seq: mid.seq, hash: mid.hash })).toMatchObject({ ok: true, extends: true, checked: h.seq });
            expect(await verifyDigestAsync(log, { seq: mid.seq, hash: mid.hash }, undefined, 3)).toMatchObject({ ok: true, extends: true, checked: h.seq });
          }
        } finally {
          await log.close();
          fs.rmSync(dir, { recursive: true, force: true });
        }
      }),
      { numRuns: 60, seed: 7, endOnFailure: true },
    );
  });
});
