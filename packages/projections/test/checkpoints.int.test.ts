import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { exactSearch, listGenerations, materialize } from '@kyrodb/projections';
import type { Projections, SearchRequest } from '@kyrodb/projections';
import { create, makeEnv, metric, randomVector, rng, upsert } from './helpers.js';
import type { Env } from './helpers.js';

let env: Env | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

const DIM = 8;
const r = rng(42);
const queries: SearchRequest[] = Array.from({ length: 5 }, (_, i) => ({ vector: new Float32Array(randomVector(r, DIM)), k: 10, ...(i % 2 === 0 ? { filter: { g: i % 3 } } : {}) }));

/** Two generations (seq s1 < s2) and a tail after the newest; returns the expected answers. */
async function build(): Promise<{ env: Env; gens: number[]; expected: unknown }> {
  const e = await makeEnv();
  const p = await e.open();
  const rr = rng(7);
  await e.log.append([create('c', DIM, 'cosine'), create('d', 4, 'l2')]);
  await e.log.append(Array.from({ length: 150 }, (_, i) => upsert('c', `v${i}`, randomVector(rr, DIM), { g: i % 3 })));
  await e.log.append(Array.from({ length: 20 }, (_, i) => upsert('d', `w${i}`, randomVector(rr, 4))));
  const g1 = await p.checkpoint();
  await e.log.append(Array.from({ length: 40 }, (_, i) => upsert('c', `v${i * 2}`, randomVector(rr, DIM), { g: 1 })));
  await e.log.append(Array.from({ length: 10 }, (_, i) => ({ type: 'vector.deleted' as const, collection: 'c', body: { id: `v${i * 3}` } })));
  const g2 = await p.checkpoint();
  await e.log.append(Array.from({ length: 15 }, (_, i) => upsert('c', `n${i}`, randomVector(rr, DIM), { g: 0 })));
  await e.log.append([{ type: 'vector.deleted', collection: 'c', body: { id: 'v1' } }]);
  const expected = await answers(p);
  expect(expected).toEqual(exactAnswers(e));
  await p.close();
  return { env: e, gens: [g2.seq, g1.seq], expected };
}

async function answers(p: Projections): Promise<unknown> {
  const out: unknown[] = [p.listCollections().map((c) => [c.name, c.count, c.dimension])];
  for (const q of queries) out.push((await p.search('c', q)).results);
  return out;
}

function exactAnswers(e: Env): unknown {
  const s = materialize(e.log);
  return [[...s.collections.values()].map((c) => [c.info.name, c.docs.size, c.info.dimension]).sort(), ...queries.map((q) => exactSearch(s, 'c', q))];
}

function genDir(e: Env, seq: number): string {
  return listGenerations(e.dir).find((g) => g.seq === seq)!.dir;
}

const corruptions: [string, (dir: string) => void][] = [
  ['overwritten bytes in the HNSW index', (dir) => {
    const f = path.join(dir, 'cold-c.hnsw');
    const fd = fs.openSync(f, 'r+');
    fs.writeSync(fd, Buffer.from('garbage!garbage!'), 0, 16, 200);
    fs.closeSync(fd);
  }],
  ['a truncated vector file', (dir) => fs.truncateSync(path.join(dir, 'docs-c.f32'), 100)],
  ['a deleted metadata file', (dir) => fs.rmSync(path.join(dir, 'metadata.json'))],
  ['a metadata file that is not JSON', (dir) => fs.writeFileSync(path.join(dir, 'metadata.json'), '{"format": 1, "wat')],
  ['a metadata file without its fields', (dir) => fs.writeFileSync(path.join(dir, 'metadata.json'), '{"format": 1}')],
  ['a wrong dimension in the metadata', (dir) => {
    const f = path.join(dir, 'metadata.json');
    const m = JSON.parse(fs.readFileSync(f, 'utf8'));
    m.collections[0].dimension += 1;
    fs.writeFileSync(f, JSON.stringify(m));
  }],
  ['a wrong dimension in the cold label map (hash recomputed, so only the index check can see it)', (dir) => {
    const f = path.join(dir, 'cold-c.labels.json');
    const l = JSON.parse(fs.readFileSync(f, 'utf8'));
    l.dim += 1;
    fs.writeFileSync(f, JSON.stringify(l));
    const mf = path.join(dir, 'metadata.json');
    const m = JSON.parse(fs.readFileSync(mf, 'utf8'));
    const buf = fs.readFileSync(f);
    m.files['cold-c.labels.json'] = { size: buf.length, sha256: sha256(buf) };
    fs.writeFileSync(mf, JSON.stringify(m));
  }],
];

function sha256(buf: Buffer): string {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

describe('checkpoint corruption (chaos): a corrupt checkpoint costs time, never data', () => {
  it.each(corruptions)('newest generation with %s: falls back to the older one, same counts and results', async (_name, corruptFn) => {
    const b = await build();
    env = b.env;
    corruptFn(genDir(env, b.gens[0]!));
    const p = await env.open();
    expect(await answers(p)).toEqual(b.expected);
    expect(await metric(env.registry, 'hnsw_corruption_detected_total')).toBe(1);
    expect(await metric(env.registry, 'hnsw_recovery_attempts_total', { result: 'failure' })).toBe(1);
    expect(await metric(env.registry, 'hnsw_recovery_attempts_total', { result: 'success' })).toBe(1);
    await p.waitForCold(env.log.head().seq);
    expect(await answers(p)).toEqual(b.expected);
  });

  it('every generation corrupt: rebuilds from the log, same counts and results', async () => {
    const b = await build();
    env = b.env;
    for (const s of b.gens) fs.truncateSync(path.join(genDir(env, s), 'cold-c.hnsw'), 10);
    const p = await env.open();
    expect(await answers(p)).toEqual(b.expected);
    expect(await metric(env.registry, 'hnsw_corruption_detected_total')).toBe(2);
    expect(await metric(env.registry, 'hnsw_recovery_attempts_total', { result: 'rebuild' })).toBe(1);
    await p.waitForCold(env.log.head().seq);
    expect(await answers(p)).toEqual(b.expected);
  });

  it('a valid newest generation loads without fallback; generations are pruned to keepGenerations; snapshot ages are exported', async () => {
    const b = await build();
    env = b.env;
    const p = await env.open({ checkpoint: { everyEvents: 0, everySecs: 0, keepGenerations: 2 } });
    expect(await metric(env.registry, 'hnsw_corruption_detected_total')).toBe(0);
    expect(await metric(env.registry, 'hnsw_recovery_attempts_total', { result: 'success' })).toBe(1);
    expect(p.health().lastCheckpointSeq).toBe(b.gens[0]);
    await env.log.append([upsert('c', 'zz', randomVector(r, DIM))]);
    await p.checkpoint();
    expect(listGenerations(env.dir).length).toBe(2);
    expect((await env.registry.getSingleMetric('hnsw_snapshot_age_seconds')!.get()).values.map((v) => v.labels['generation'])).toEqual(['0', '1']);
  });

  it('a cold tier loaded from a checkpoint (hnswlib keeps cosine vectors normalised) gets exact copies of its vectors back: same answers while this thread scores its hits and once the worker does; a restarted worker too', async () => {
    const b = await build();
    env = b.env;
    const dq: SearchRequest[] = Array.from({ length: 4 }, () => ({ vector: new Float32Array(randomVector(r, 4)), k: 6 }));
    const both = async (p: Projections): Promise<unknown> => [await answers(p), ...(await Promise.all(dq.map(async (q) => (await p.search('d', q)).results)))];
    const s = materialize(env.log);
    const expected = [b.expected, ...dq.map((q) => exactSearch(s, 'd', q))];
    const p = await env.open({ query: { coldTimeoutMs: 10_000 } });
    expect(await both(p)).toEqual(expected); // scored here or by the worker, as far as the copies have arrived
    const allScored = async (): Promise<void> => {
      for (;;) {
        const st = await p.coldStats();
        if (st !== undefined && st.collections.length === 2 && st.collections.every((c) => c.scored === c.live)) return;
        await new Promise((res) => setTimeout(res, 10));
      }
    };
    await allScored();
    expect(await both(p)).toEqual(expected);
    // A killed worker restarts from the newest checkpoint and is sent the copies again.
    env.failpoints.set('projection.cold.search', '1*panic');
    await p.search('d', dq[0]!);
    await p.waitForCold(env.log.head().seq);
    await allScored();
    expect(await both(p)).toEqual(expected);
  });

  it('a checkpoint from another history (the log hash differs) is rejected', async () => {
    const b = await build();
    env = b.env;
    const f = path.join(genDir(env, b.gens[0]!), 'metadata.json');
    const m = JSON.parse(fs.readFileSync(f, 'utf8'));
    m.watermark.hash = '00'.repeat(32);
    fs.writeFileSync(f, JSON.stringify(m));
    const p = await env.open();
    expect(await answers(p)).toEqual(b.expected);
    expect(await metric(env.registry, 'hnsw_corruption_detected_total')).toBe(1);
  });

  it('automatic checkpoints every N events', async () => {
    env = await makeEnv();
    const p = await env.open({ checkpoint: { everyEvents: 50, everySecs: 0 } });
    await env.log.append([create('c', 2, 'l2')]);
    for (let i = 0; i < 6; i++) await env.log.append(Array.from({ length: 10 }, (_, j) => upsert('c', `v${i}-${j}`, [i, j])));
    for (let i = 0; i < 200 && listGenerations(env.dir).length === 0; i++) await new Promise((res) => setTimeout(res, 10));
    expect(listGenerations(env.dir).length).toBeGreaterThanOrEqual(1);
    expect(p.health().lastCheckpointSeq).toBeGreaterThanOrEqual(50);
  });
});
