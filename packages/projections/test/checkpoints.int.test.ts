import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CHECKPOINT_FORMAT_VERSION, exactSearch, listGenerations, materialize, metadataText, validateCheckpoint } from '@kyrodb/projections';
import type { CheckpointMetadata, MaterializedState, Projections, SearchRequest } from '@kyrodb/projections';
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
    editLines(dir, 'cold-c.labels.ndjson', (lines) => {
      const head = JSON.parse(lines[0]!);
      head.dim += 1;
      lines[0] = JSON.stringify(head);
    });
  }],
  ['a docs file cut short', (dir) => fs.truncateSync(path.join(dir, 'docs-c.ndjson'), 300)],
  ['a flipped byte in the docs file', (dir) => flipByte(path.join(dir, 'docs-c.ndjson'), 40)],
  ['a docs file cut mid-row (hash recomputed, so only the reader can see it)', (dir) => {
    editBytes(dir, 'docs-c.ndjson', (b) => b.subarray(0, b.length - 5));
  }],
  ['a docs file missing its last row (hash recomputed)', (dir) => editLines(dir, 'docs-c.ndjson', (lines) => void lines.pop())],
  ['a docs file with a row too many (hash recomputed)', (dir) => editLines(dir, 'docs-c.ndjson', (lines) => void lines.push(JSON.stringify(['extra', 1, 1, null])))],
  ['a docs row of the wrong shape (hash recomputed)', (dir) => editLines(dir, 'docs-c.ndjson', (lines) => void (lines[3] = '{"id":"v3"}'))],
  ['a docs file with an empty line (hash recomputed)', (dir) => editLines(dir, 'docs-c.ndjson', (lines) => void lines.splice(2, 0, ''))],
  ['a vector file a doc short (hash recomputed)', (dir) => editBytes(dir, 'docs-c.f32', (b) => b.subarray(0, b.length - DIM * 4))],
  ['a label map missing a label (hash recomputed)', (dir) => editLines(dir, 'cold-c.labels.ndjson', (lines) => void lines.pop())],
  ['a label map cut mid-row (hash recomputed)', (dir) => editBytes(dir, 'cold-c.labels.ndjson', (b) => b.subarray(0, b.length - 3))],
];

function flipByte(file: string, at: number): void {
  const b = fs.readFileSync(file);
  b[at] = b[at]! ^ 0x20;
  fs.writeFileSync(file, b);
}

/** Rewrites checkpoint file `name` with `edit` and records its new size and hash in metadata.json, as a consistent writer would have. */
function editBytes(dir: string, name: string, edit: (b: Buffer) => Buffer): void {
  const f = path.join(dir, name);
  const buf = edit(fs.readFileSync(f));
  fs.writeFileSync(f, buf);
  const mf = path.join(dir, 'metadata.json');
  const m = JSON.parse(fs.readFileSync(mf, 'utf8'));
  m.files[name] = { size: buf.length, sha256: sha256(buf) };
  fs.writeFileSync(mf, metadataText(m));
}

/** `editBytes` on the lines of an NDJSON file. */
function editLines(dir: string, name: string, edit: (lines: string[]) => void): void {
  editBytes(dir, name, (b) => {
    const lines = b.toString('utf8').split('\n');
    lines.pop(); // after the last newline
    edit(lines);
    return Buffer.from(lines.map((l) => `${l}\n`).join(''));
  });
}

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
    // The corrupt generation is set aside: health names the one loaded, and the next open does not meet it again.
    expect(p.health().lastCheckpointSeq).toBe(b.gens[1]);
    expect(listGenerations(env.dir).map((g) => g.seq)).toEqual([b.gens[1]]);
    await p.close();
    const again = await env.open();
    expect(await metric(env.registry, 'hnsw_corruption_detected_total')).toBe(0);
    expect(await metric(env.registry, 'hnsw_recovery_attempts_total', { result: 'success' })).toBe(1);
    expect(await answers(again)).toEqual(b.expected);
    expect(fs.readdirSync(path.join(env.dir, 'checkpoints')).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
  });

  it('a generation whose name is not its metadata\'s seq (copied or renamed) is corrupt; a file named like a generation is ignored; a checkpoints path that is a file is moved aside', async () => {
    const b = await build();
    env = b.env;
    const root = path.join(env.dir, 'checkpoints');
    fs.cpSync(genDir(env, b.gens[0]!), path.join(root, '0000000000099999'), { recursive: true });
    fs.writeFileSync(path.join(root, '0000000000088888'), 'not a generation');
    const p = await env.open();
    expect(await metric(env.registry, 'hnsw_corruption_detected_total')).toBe(1);
    expect(p.health().lastCheckpointSeq).toBe(b.gens[0]);
    expect(await answers(p)).toEqual(b.expected);
    await p.close();
    fs.rmSync(root, { recursive: true });
    fs.writeFileSync(root, 'in the way');
    const q = await env.open();
    expect(await answers(q)).toEqual(b.expected);
    expect(fs.readdirSync(env.dir).filter((n) => n.startsWith('checkpoints.not-a-dir-')).length).toBe(1);
    expect((await q.checkpoint()).seq).toBe(env.log.head().seq);
  });

  it('a checkpoint that fails at run time is counted and named in health until one succeeds (the data is untouched)', async () => {
    const b = await build();
    env = b.env;
    const p = await env.open({ checkpoint: { everyEvents: 0, everySecs: 0 } });
    expect(p.health().checkpointFailures).toEqual({ consecutive: 0, lastError: '' });
    const root = path.join(env.dir, 'checkpoints');
    fs.renameSync(root, `${root}.kept`);
    fs.writeFileSync(root, 'in the way');
    await env.log.append([upsert('c', 'late', randomVector(r, DIM))]);
    for (let i = 1; i <= 2; i++) {
      await expect(p.checkpoint()).rejects.toThrow(/EEXIST|ENOTDIR/);
      expect(await metric(env.registry, 'hnsw_checkpoint_failures_total')).toBe(i);
      expect(await metric(env.registry, 'hnsw_checkpoint_consecutive_failures')).toBe(i);
      expect(p.health().checkpointFailures.consecutive).toBe(i);
      expect(p.health().checkpointFailures.lastError).toMatch(/EEXIST|ENOTDIR/);
    }
    expect(p.health().lastCheckpointSeq).toBe(b.gens[0]);
    fs.rmSync(root);
    fs.renameSync(`${root}.kept`, root);
    expect((await p.checkpoint()).seq).toBe(env.log.head().seq);
    expect(await metric(env.registry, 'hnsw_checkpoint_failures_total')).toBe(2);
    expect(await metric(env.registry, 'hnsw_checkpoint_consecutive_failures')).toBe(0);
    expect(p.health().checkpointFailures).toEqual({ consecutive: 0, lastError: '' });
  });

  it('a new, empty data dir is no recovery; a log with no checkpoint is a rebuild', async () => {
    env = await makeEnv();
    const p = await env.open();
    expect(await metric(env.registry, 'hnsw_recovery_attempts_total', { result: 'rebuild' })).toBe(0);
    await env.log.append([create('c', DIM, 'cosine')]);
    await p.close();
    await env.open();
    expect(await metric(env.registry, 'hnsw_recovery_attempts_total', { result: 'rebuild' })).toBe(1);
  });

  it('a close during the cold tier\'s save of many indexes (the worker stops between two of them): the checkpoint fails, nothing of it is left, the next open has every event', async () => {
    env = await makeEnv();
    const p = await env.open();
    const N = 300;
    await env.log.append(Array.from({ length: N }, (_, i) => [create(`m${i}`, 4, 'l2'), upsert(`m${i}`, 'a', [i, 1, 2, 3])]).flat());
    await p.waitForCold(env.log.head().seq);
    const cp = p.checkpoint();
    cp.catch(() => undefined);
    // The save is under way (one index after another); the close stops the worker at the next one.
    await new Promise((r) => setTimeout(r, 20));
    await p.close();
    await expect(cp).rejects.toThrow();
    expect(listGenerations(env.dir)).toEqual([]);
    expect(fs.readdirSync(path.join(env.dir, 'checkpoints')).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
    const again = await env.open();
    expect(again.listCollections().length).toBe(N);
    await again.waitForCold(env.log.head().seq);
    expect((await again.search('m7', { vector: new Float32Array([7, 1, 2, 3]), k: 1 })).results.map((h) => h.id)).toEqual(['a']);
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
    fs.writeFileSync(f, metadataText(m)); // as a consistent writer would: only the history check can see it
    const p = await env.open();
    expect(await answers(p)).toEqual(b.expected);
    expect(await metric(env.registry, 'hnsw_corruption_detected_total')).toBe(1);
  });

  it('a flipped digit in metadata.json (its cold seq; every file it lists still checks) fails the metadata\'s own SHA-256: the older generation is used', async () => {
    const b = await build();
    env = b.env;
    const f = path.join(genDir(env, b.gens[0]!), 'metadata.json');
    const text = fs.readFileSync(f, 'utf8');
    const m = JSON.parse(text) as { cold: { seq: number } };
    expect(m.cold.seq).toBeGreaterThan(1);
    fs.writeFileSync(f, text.replace(`"seq": ${m.cold.seq}\n`, `"seq": ${m.cold.seq - 1}\n`));
    expect(fs.readFileSync(f, 'utf8')).not.toBe(text);
    const logged: string[] = [];
    const p = await env.open({ logger: (_l: string, msg: string, fields?: Record<string, unknown>) => void logged.push(`${msg} ${JSON.stringify(fields ?? {})}`) });
    expect(await answers(p)).toEqual(b.expected);
    expect(await metric(env.registry, 'hnsw_corruption_detected_total')).toBe(1);
    expect(logged.join('\n')).toMatch(/metadata\.json fails its own SHA-256/);
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

/** The bytes of a vector, to compare bit for bit. */
function bits(v: Float32Array): string {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
}

/** A materialized state as plain data: catalog, and per doc id, seq, ts, metadata and the vector's bits. */
function plain(s: MaterializedState): unknown {
  return [s.seq, [...s.collections.values()].map((c) => [c.info, [...c.docs.values()].map((d) => [d.id, d.seq, d.ts, d.metadata ?? null, bits(d.vector)]).sort()])];
}

/**
 * Rewrites a format-2 generation in the layout the format-1 release wrote: `docs-<name>.json`, the
 * rows as one JSON array (`[${rows.join(',')}]`, which is JSON.stringify of them), and
 * `cold-<name>.labels.json`, one object `{name, dim, metric, M, efC, efS, createdSeq, capacity,
 * nextLabel, labels}`; the vector and index files unchanged; metadata.json format 1 over the new files.
 */
function toFormat1(dir: string): void {
  const mf = path.join(dir, 'metadata.json');
  const m = JSON.parse(fs.readFileSync(mf, 'utf8')) as CheckpointMetadata;
  const ndjson = (name: string): unknown[] => fs.readFileSync(path.join(dir, name), 'utf8').split('\n').slice(0, -1).map((l) => JSON.parse(l) as unknown);
  const put = (name: string, body: string): void => {
    fs.writeFileSync(path.join(dir, name), body);
    m.files[name] = { size: Buffer.byteLength(body), sha256: sha256(Buffer.from(body)) };
  };
  for (const c of m.collections) {
    put(`docs-${c.name}.json`, JSON.stringify(ndjson(`docs-${c.name}.ndjson`)));
    const [head, ...labels] = ndjson(`cold-${c.name}.labels.ndjson`) as [Record<string, unknown>, ...unknown[]];
    const { live: _live, ...old } = head;
    put(`cold-${c.name}.labels.json`, JSON.stringify({ ...old, labels }));
    for (const n of [`docs-${c.name}.ndjson`, `cold-${c.name}.labels.ndjson`]) {
      fs.rmSync(path.join(dir, n));
      delete m.files[n];
    }
  }
  m.format = 1;
  delete (m as { metadata_sha256?: string }).metadata_sha256; // the format-1 release wrote none
  fs.writeFileSync(mf, JSON.stringify(m, null, 1));
}

describe('checkpoint formats', () => {
  it('format 2 round trip: the loaded state equals replaying the log to the watermark (ids, seqs, ts, metadata, vectors bit for bit)', async () => {
    env = await makeEnv();
    const p = await env.open();
    await env.log.append([create('c', DIM, 'cosine'), create('e', 3, 'l2')]);
    const rr = rng(3);
    // Awkward floats (-0, the smallest subnormal, the largest float) and metadata (unicode, a line separator, nesting, escapes).
    await env.log.append([
      upsert('e', 'odd', [-0, 1.4e-45, 3.4028234663852886e38]),
      { type: 'vector.upserted', collection: 'e', body: { id: 'odd"id\\x', vector: new Float32Array([1, 2, 3]), metadata: { s: 'a\nb\u2028c\u{1F600}', n: -1.5e-300, nested: { list: [1, 'two', null, true] } } } },
    ]);
    await env.log.append(Array.from({ length: 300 }, (_, i) => upsert('c', `v${i}`, randomVector(rr, DIM), { g: i % 3, t: `x${i}` })));
    await env.log.append(Array.from({ length: 30 }, (_, i) => ({ type: 'vector.deleted' as const, collection: 'c', body: { id: `v${i * 7}` } })));
    const { seq, dir } = await p.checkpoint();
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'metadata.json'), 'utf8')).format).toBe(CHECKPOINT_FORMAT_VERSION);
    expect(fs.readdirSync(dir).sort()).toEqual(['catalog.json', 'cold-c.hnsw', 'cold-c.labels.ndjson', 'cold-e.hnsw', 'cold-e.labels.ndjson', 'docs-c.f32', 'docs-c.ndjson', 'docs-e.f32', 'docs-e.ndjson', 'metadata.json']);
    expect(plain(validateCheckpoint(dir, env.log).state)).toEqual(plain(materialize(env.log, seq)));
  });

  it('a format-1 checkpoint (the previous release) still loads, with the same state and answers; the next checkpoint is format 2', async () => {
    const b = await build();
    env = b.env;
    const seq = b.gens[0]!;
    const dir = genDir(env, seq);
    const before = plain(validateCheckpoint(dir, env.log).state);
    toFormat1(dir);
    expect(fs.existsSync(path.join(dir, 'docs-c.json'))).toBe(true);
    expect(plain(validateCheckpoint(dir, env.log).state)).toEqual(before);
    expect(before).toEqual(plain(materialize(env.log, seq)));
    const p = await env.open();
    expect(await metric(env.registry, 'hnsw_corruption_detected_total')).toBe(0);
    expect(await metric(env.registry, 'hnsw_recovery_attempts_total', { result: 'success' })).toBe(1);
    expect(await answers(p)).toEqual(b.expected);
    await p.waitForCold(env.log.head().seq);
    expect(await answers(p)).toEqual(b.expected);
    const next = await p.checkpoint();
    expect(JSON.parse(fs.readFileSync(path.join(next.dir, 'metadata.json'), 'utf8')).format).toBe(2);
  });

  it('a format-1 checkpoint with a flipped byte in its docs file is still rejected', async () => {
    const b = await build();
    env = b.env;
    const dir = genDir(env, b.gens[0]!);
    toFormat1(dir);
    flipByte(path.join(dir, 'docs-c.json'), 40);
    expect(() => validateCheckpoint(dir, env!.log)).toThrow(/docs-c\.json fails its SHA-256/);
    const p = await env.open();
    expect(await metric(env.registry, 'hnsw_corruption_detected_total')).toBe(1);
    expect(await answers(p)).toEqual(b.expected);
  });

  it('a checkpoint of a format this release does not know is rejected', async () => {
    const b = await build();
    env = b.env;
    const f = path.join(genDir(env, b.gens[0]!), 'metadata.json');
    const m = JSON.parse(fs.readFileSync(f, 'utf8'));
    m.format = 3;
    fs.writeFileSync(f, metadataText(m)); // written whole by that release
    expect(() => validateCheckpoint(path.dirname(f), env!.log)).toThrow(/format 3 is not one of 1, 2/);
  });
});
