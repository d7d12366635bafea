import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import { EventLog, Failpoints, readSegments } from '@kyrodb/log';
import type { EventInput, EventLogOptions, LogEvent, LogSink, Metadata, MetadataValue } from '@kyrodb/log';

/** A fresh temp dir under the OS temp dir. */
export function tempDir(prefix = 'kyro-log-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A quiet logger for tests (collects lines). */
export function quietLogger(lines: string[] = []): LogSink {
  return (level, msg, fields) => {
    lines.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
  };
}

/** Opens a log in a fresh dir with a private registry, failpoints and a quiet logger. */
export async function openTestLog(options: Partial<EventLogOptions> = {}): Promise<{ log: EventLog; dir: string; registry: Registry; failpoints: Failpoints }> {
  const dir = options.dir ?? tempDir();
  const registry = options.registry ?? new Registry();
  const failpoints = options.failpoints ?? new Failpoints();
  const log = await EventLog.open({ logger: quietLogger(), ...options, dir, registry, failpoints });
  return { log, dir, registry, failpoints };
}

/** The value of a metric sample from a registry (0 when absent). */
export async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metrics = await registry.getMetricsAsJSON();
  const m = metrics.find((x) => x.name === name);
  if (!m) return 0;
  const v = (m.values as { value: number; labels: Record<string, string | number> }[]).find((s) => Object.entries(labels).every(([k, val]) => String(s.labels[k]) === val));
  return v?.value ?? 0;
}

/** A collection.created event. */
export function created(collection = 'c', dimension = 4): EventInput {
  return { type: 'collection.created', collection, body: { dimension, metric: 'l2', hnsw: { M: 16, efConstruction: 100, efSearch: 50 } } };
}

/** A vector.upserted event. */
export function upsert(id: string, vector: number[] | Float32Array, collection = 'c', metadata?: Metadata): EventInput {
  return { type: 'vector.upserted', collection, body: { id, vector: vector instanceof Float32Array ? vector : new Float32Array(vector), ...(metadata !== undefined ? { metadata } : {}) } };
}

/** A random vector of `dim` floats. */
export function randomVector(dim: number): Float32Array {
  const v = new Float32Array(dim);
  for (let i = 0; i < dim; i++) v[i] = Math.random() * 2 - 1;
  return v;
}

/** Float32 values including -0, subnormals, extremes; never NaN/Infinity. */
export const float32Arb = fc.float({ noNaN: true, noDefaultInfinity: true });

/** Any finite Float32Array of length 1..dim. */
export const vectorArb = (maxDim = 16): fc.Arbitrary<Float32Array> =>
  fc.array(float32Arb, { minLength: 1, maxLength: maxDim }).map((xs) => Float32Array.from(xs));

const keyArb = fc.string({ minLength: 1, maxLength: 8 }).filter((k) => k !== '__proto__');
const jsonLeaf: fc.Arbitrary<MetadataValue> = fc.oneof(fc.string({ maxLength: 12 }), fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => (x === 0 ? 0 : x)), fc.integer(), fc.boolean(), fc.constant(null));
const { json: jsonValue } = fc.letrec<{ json: MetadataValue }>((tie) => ({
  json: fc.oneof({ depthSize: 'small', withCrossShrink: true }, jsonLeaf, fc.array(tie('json'), { maxLength: 4 }), fc.dictionary(keyArb, tie('json'), { maxKeys: 4 })),
}));
/** Metadata: a JSON object with nesting (JSON numbers: no -0, which JSON cannot express). */
export const metadataArb: fc.Arbitrary<Metadata> = fc.dictionary(keyArb, jsonValue, { maxKeys: 5 });

export const collectionArb = fc.constantFrom('c1', 'c2', 'Docs_9');
export const idArb = fc.constantFrom('a', 'b', 'doc-1', 'x~y', 'Z');
const actorArb = fc.option(fc.constantFrom('admin', 'key:writer', 'svc-7'), { nil: undefined });

/** Any valid event input (every shape). */
export const eventInputArb: fc.Arbitrary<EventInput> = fc.oneof(
  fc.record({ collection: collectionArb, actor: actorArb, dimension: fc.integer({ min: 1, max: 4096 }), metric: fc.constantFrom('cosine' as const, 'l2' as const, 'ip' as const), M: fc.integer({ min: 2, max: 256 }), efC: fc.integer({ min: 2, max: 10_000 }), efS: fc.integer({ min: 2, max: 10_000 }) }).map(
    (r): EventInput => ({ type: 'collection.created', collection: r.collection, ...(r.actor !== undefined ? { actor: r.actor } : {}), body: { dimension: r.dimension, metric: r.metric, hnsw: { M: r.M, efConstruction: r.efC, efSearch: r.efS } } }),
  ),
  fc.record({ collection: collectionArb, actor: actorArb }).map((r): EventInput => ({ type: 'collection.dropped', collection: r.collection, ...(r.actor !== undefined ? { actor: r.actor } : {}), body: {} })),
  fc.record({ collection: collectionArb, actor: actorArb, id: idArb, vector: vectorArb(), metadata: fc.option(metadataArb, { nil: undefined }) }).map(
    (r): EventInput => ({ type: 'vector.upserted', collection: r.collection, ...(r.actor !== undefined ? { actor: r.actor } : {}), body: { id: r.id, vector: r.vector, ...(r.metadata !== undefined ? { metadata: r.metadata } : {}) } }),
  ),
  fc.record({ collection: collectionArb, actor: actorArb, id: idArb }).map((r): EventInput => ({ type: 'vector.deleted', collection: r.collection, ...(r.actor !== undefined ? { actor: r.actor } : {}), body: { id: r.id } })),
);

/** The input part of a committed event (what was appended). */
export function inputOf(e: LogEvent): EventInput {
  const { seq: _s, ts: _t, prevHash: _p, hash: _h, ...rest } = e;
  return rest;
}

/** Bit-exact equality of two float arrays (distinguishes -0 and +0). */
export function sameBits(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Compares two event inputs exactly (vectors bit-for-bit, metadata deeply incl. -0). */
export function sameInput(a: EventInput, b: EventInput): boolean {
  if (a.type !== b.type || a.collection !== b.collection || a.actor !== b.actor) return false;
  if (a.type === 'vector.upserted' && b.type === 'vector.upserted') {
    return a.body.id === b.body.id && sameBits(a.body.vector, b.body.vector) && deepIs(a.body.metadata, b.body.metadata);
  }
  return deepIs(a.body, b.body);
}

/** Deep equality that uses Object.is on numbers (so -0 ≠ 0) and ignores key order. */
export function deepIs(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' || typeof b === 'number') return Object.is(a, b);
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return a === b;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => deepIs(x, b[i]));
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && deepIs((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** fast-check parameters: a fixed seed in CI (or from FC_SEED), printed on failure by fast-check. */
export function fcParams(numRuns: number): fc.Parameters<unknown> {
  const env = process.env['FC_SEED'];
  const seed = env !== undefined ? Number(env) : process.env['CI'] ? 20_261_126 : Date.now() % 2 ** 31;
  return { numRuns, seed, verbose: 1 };
}

/** Polls `cond` (on real time) until true; fails after `timeoutMs`. */
export async function waitFor(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error('waitFor: condition not met in time');
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** The seqs of every record in the write-ahead segments of `dir`, in file order. */
export function walSeqs(dir: string): number[] {
  return [...readSegments(path.join(dir, 'wal'), 1)].map((r) => r.seq);
}
