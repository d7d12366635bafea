// The fixture the restore benches share (restoreCli.ts, restoreCodec.ts): a log of n 128-d
// upserts into one collection and one full zstd backup of it, built once and kept.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EventLog, type EventInput } from '@kyrodb/log';
import { BackupManager, LocalDirStore } from '@kyrodb/backup';
import { vectorsOf } from './vectors.js';

const DIM = 128;

/** Where the fixture of `n` events is kept by default: <tmp>/kyro-bench-restore-<n>-<vectors>[-uuid]. */
export function restoreFixtureDir(n: number, vectors: string, ids: 'seq' | 'uuid'): string {
  return path.join(os.tmpdir(), `kyro-bench-restore-${n}-${vectors}${ids === 'uuid' ? '-uuid' : ''}`);
}

/** Document `i`'s id: `d<i>`, or (`uuid`) a UUID made of the MD5 of i (the same on every run). */
function docId(i: number, ids: 'seq' | 'uuid'): string {
  if (ids === 'seq') return `d${i}`;
  const h = createHash('md5').update(String(i)).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Builds the fixture in `base` unless it is there already (`base/fixture-ready`): the log in
 * `base/data`, its full zstd backup in the local store `base/backups`.
 */
export async function buildRestoreFixture(base: string, n: number, vectors: string, ids: 'seq' | 'uuid'): Promise<void> {
  const done = path.join(base, 'fixture-ready');
  if (fs.existsSync(done)) return;
  fs.rmSync(base, { recursive: true, force: true });
  console.error(`building the fixture in ${base}: ${n} events and a full zstd backup…`);
  const vec = vectorsOf(vectors, DIM);
  const dataDir = path.join(base, 'data');
  const log = await EventLog.open({ dir: dataDir, logger: () => undefined });
  try {
    await log.append([{ type: 'collection.created', collection: 'bench', body: { dimension: DIM, metric: 'l2', hnsw: { M: 16, efConstruction: 200, efSearch: 64 } } }]);
    for (let i = 0; i < n; i += 1000) {
      const batch: EventInput[] = [];
      for (let j = i; j < Math.min(i + 1000, n); j++) batch.push({ type: 'vector.upserted', collection: 'bench', body: { id: docId(j, ids), vector: vec(j), metadata: { i: j } } });
      await log.append(batch);
    }
    const mgr = new BackupManager({ log, dataDir, store: new LocalDirStore(path.join(base, 'backups')), compression: 'zstd', logger: () => undefined });
    await mgr.createFull();
  } finally {
    await log.close();
  }
  fs.writeFileSync(done, '');
  // The fixture's 1.5 GB is still being written back: the first restore would pay for it.
  spawnSync('sync');
}

/** The flags the restore benches share, read from `argv`. */
export interface RestoreBenchArgs {
  /** Events in the fixture (`--n`, default 1M). */
  n: number;
  /** Reps (`--reps`). */
  reps: number;
  /** Document ids (`--ids seq|uuid`, default seq). */
  ids: 'seq' | 'uuid';
  /** What the documents' vectors are like (`--vectors`, vectors.ts; default clustered). */
  vectors: string;
  /** The fixture's dir (`--dir`, default `restoreFixtureDir`). */
  base: string;
  /** The checkouts to compare (the other arguments; default this one). */
  checkouts: string[];
  /** This repo's root. */
  root: string;
}

/** Reads the restore benches' flags: [--n N] [--reps R] [--ids seq|uuid] [--vectors V] [--dir DIR] [CHECKOUT…]. */
export function restoreBenchArgs(argv: readonly string[], defaultReps: number): RestoreBenchArgs {
  const value = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const n = Number(value('n') ?? 1_000_000);
  const reps = Number(value('reps') ?? defaultReps);
  const ids = value('ids') ?? 'seq';
  if (ids !== 'seq' && ids !== 'uuid') throw new Error(`--ids must be seq or uuid, not ${ids}`);
  const vectors = value('vectors') ?? 'clustered';
  const base = value('dir') ?? restoreFixtureDir(n, vectors, ids);
  const flagged = new Set(['--n', '--reps', '--dir', '--ids', '--vectors'].flatMap((f) => (argv.includes(f) ? [argv.indexOf(f), argv.indexOf(f) + 1] : [])));
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  const checkouts = argv.filter((_, i) => !flagged.has(i));
  if (checkouts.length === 0) checkouts.push(root);
  return { n, reps, ids, vectors, base, checkouts, root };
}
