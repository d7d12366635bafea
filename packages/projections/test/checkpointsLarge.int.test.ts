import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { listGenerations } from '@kyrodb/projections';
import { create, makeEnv, metric, upsert } from './helpers.js';
import type { Env } from './helpers.js';

let env: Env | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

/** V8's longest string (2^29 − 24 UTF-16 units, ~512 MB): the rows of one collection were built in one. */
const MAX_STRING = 2 ** 29 - 24;
const DOCS = 9;
const BLOB = 60_000_000;
/** It peaks at ~3.1 GB of RSS (the metadata in this thread and in the cold worker, plus a line's worth of buffers). */
const NEEDS_BYTES = 5 * 2 ** 30;
/** Memory the kernel can give without swapping: MemAvailable (os.freemem() leaves out the page cache, which the suite's own writes fill). */
function availableBytes(): number {
  const m = /^MemAvailable:\s+(\d+) kB$/m.exec(fs.existsSync('/proc/meminfo') ? fs.readFileSync('/proc/meminfo', 'utf8') : '');
  return m !== null ? Number(m[1]) * 1024 : os.freemem();
}
const available = availableBytes();
const skip = available < NEEDS_BYTES ? `SKIPPED: needs ${NEEDS_BYTES / 2 ** 30} GiB of available memory, ${(available / 2 ** 30).toFixed(1)} GiB available` : undefined;

describe('checkpoints of a collection whose rows pass the longest JS string', () => {
  // 540 MB of metadata: the docs and label files are each past MAX_STRING, which the format-1
  // writer built in one string ("Invalid string length": no checkpoint, ever).
  it.skipIf(skip !== undefined)(`are written, and load back with the same docs${skip !== undefined ? ` — ${skip}` : ''}`, { timeout: 300_000 }, async () => {
    env = await makeEnv();
    let p = await env.open();
    await env.log.append([create('big', 2, 'l2')]);
    for (let i = 0; i < DOCS; i++) await env.log.append([upsert('big', `d${i}`, [i, 1], { i, blob: String.fromCharCode(97 + i).repeat(BLOB) })]);
    const { dir } = await p.checkpoint();
    expect(fs.statSync(path.join(dir, 'docs-big.ndjson')).size).toBeGreaterThan(MAX_STRING);
    expect(fs.statSync(path.join(dir, 'cold-big.labels.ndjson')).size).toBeGreaterThan(MAX_STRING);
    await p.close();

    p = await env.open();
    expect(listGenerations(env.dir).length).toBe(1);
    expect(await metric(env.registry, 'hnsw_recovery_attempts_total', { result: 'success' })).toBe(1);
    expect(await metric(env.registry, 'hnsw_corruption_detected_total')).toBe(0);
    expect(p.health().applied).toBe(env.log.head().seq);
    for (let i = 0; i < DOCS; i++) {
      const d = p.getDoc('big', `d${i}`)!;
      expect([...d.vector]).toEqual([i, 1]);
      expect(d.metadata!['i']).toBe(i);
      expect(d.metadata!['blob']).toBe(String.fromCharCode(97 + i).repeat(BLOB));
    }
    // The cold tier loaded its labels (with their metadata) from the checkpoint too.
    const res = await p.search('big', { vector: new Float32Array([4, 1]), k: 3, filter: { i: 4 } });
    expect(res.results.map((h) => h.id)).toEqual(['d4']);
    const st = await p.coldStats();
    expect(st?.collections.find((c) => c.name === 'big')?.live).toBe(DOCS);
  });
});
