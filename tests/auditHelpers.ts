// Shared helpers of the audit tests (not a test file itself).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { decodeRecord, encodePayload, chainHash, walDirOf } from '@kyrodb/log';
import type { EventInput, LogEvent } from '@kyrodb/log';
import type { auditRoutes } from '../packages/api/src/audit/index.js';

/** The fastify instance type, reached through the plugin's signature (fastify is not a dependency of tests/). */
export type App = Parameters<typeof auditRoutes>[0];

/** The few lmdb calls the tamper helpers use. */
export interface RawDb {
  get(key: unknown): Buffer;
  putSync(key: unknown, value: unknown): void;
  removeSync(key: unknown): void;
  getRange(o: { start: unknown }): Iterable<{ key: number; value: Buffer }>;
}
interface RawEnv {
  openDB(o: { name: string; encoding: string }): RawDb;
  transactionSync(fn: () => void): void;
  close(): void;
}

export const ROOT = path.resolve(import.meta.dirname, '..');

// lmdb and fastify are dependencies of the packages, not of tests/: resolve them from there.
const requireFromLog = createRequire(path.join(ROOT, 'packages/log/package.json'));
const requireFromApi = createRequire(path.join(ROOT, 'packages/api/package.json'));
export const lmdb = requireFromLog('lmdb') as { open: (o: Record<string, unknown>) => RawEnv };
export const Fastify = requireFromApi('fastify') as (o?: Record<string, unknown>) => App;

export function tmpDir(prefix = 'kyro-audit-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A copy of a closed data dir, as an auditor takes one: LMDB and the write-ahead segments. */
export function copyDir(src: string): string {
  const dst = tmpDir('kyro-audit-copy-');
  fs.copyFileSync(path.join(src, 'log.mdb'), path.join(dst, 'log.mdb'));
  fs.cpSync(walDirOf(src), walDirOf(dst), { recursive: true });
  return dst;
}

export const createColl = (collection: string, dimension: number, actor?: string): EventInput => ({
  type: 'collection.created',
  collection,
  ...(actor !== undefined ? { actor } : {}),
  body: { dimension, metric: 'l2', hnsw: { M: 16, efConstruction: 100, efSearch: 50 } },
});

export const upsert = (collection: string, id: string, vector: number[], metadata?: Record<string, unknown>, actor?: string): EventInput => ({
  type: 'vector.upserted',
  collection,
  ...(actor !== undefined ? { actor } : {}),
  body: { id, vector: new Float32Array(vector), ...(metadata !== undefined ? { metadata: metadata as never } : {}) },
});

/**
 * Raw access to a (closed) data dir's LMDB, the way an attacker with disk access would edit it:
 * read/write the stored record bytes of `events`, delete records, rewrite `meta.head`.
 */
export function rawEdit(dir: string, fn: (db: { events: RawDb; meta: RawDb; byDoc: RawDb; env: RawEnv }) => void): void {
  const env = lmdb.open({ path: path.join(dir, 'log.mdb'), noSubdir: true, maxDbs: 8, compression: false, cache: false });
  const events = env.openDB({ name: 'events', encoding: 'binary' });
  const meta = env.openDB({ name: 'meta', encoding: 'msgpack' });
  const byDoc = env.openDB({ name: 'by-doc', encoding: 'binary' });
  try {
    env.transactionSync(() => fn({ events, meta, byDoc, env }));
  } finally {
    env.close();
  }
}

/** Rewrites the event at `seq` with `change` applied, keeping the stored hashes (a naive edit). */
export function alterEvent(dir: string, seq: number, change: (e: LogEvent) => EventInput & { seq: number; ts: number }): void {
  rawEdit(dir, ({ events }) => {
    const rec = events.get(seq);
    const e = decodeRecord(rec);
    const changed = change(e);
    const payload = encodePayload(changed, changed.seq, changed.ts);
    events.putSync(seq, Buffer.concat([rec.subarray(0, 64), payload]));
  });
}

/**
 * Rewrites the event at `seq` and re-chains every later record and the stored head, so the
 * chain verifies on its own: only a digest taken before the edit can catch it.
 */
export function rewriteHistory(dir: string, seq: number, change: (e: LogEvent) => EventInput): void {
  rawEdit(dir, ({ events, meta }) => {
    let prev: Uint8Array | undefined;
    let last: { seq: number; ts: number; hash: Uint8Array } | undefined;
    for (const { key, value } of events.getRange({ start: seq })) {
      const e = decodeRecord(value);
      const input = key === seq ? change(e) : e;
      const prevHash = prev ?? e.prevHash;
      const payload = encodePayload(input, e.seq, e.ts);
      const hash = chainHash(prevHash, payload);
      events.putSync(key, Buffer.concat([Buffer.from(prevHash), Buffer.from(hash), payload]));
      prev = hash;
      last = { seq: e.seq, ts: e.ts, hash };
    }
    if (last !== undefined) meta.putSync('head', { seq: last.seq, ts: last.ts, hash: Buffer.from(last.hash) });
  });
}
