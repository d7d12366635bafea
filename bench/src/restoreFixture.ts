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

/** How the fixture's documents are named (`--ids`): see `docId`. */
export type FixtureIds = 'seq' | 'uuid' | 'uuid7';
const ID_KINDS: readonly FixtureIds[] = ['seq', 'uuid', 'uuid7'];

/** Where the fixture of `n` events is kept by default: <tmp>/kyro-bench-restore-<n>-<vectors>[-<ids>] (no suffix for seq). */
export function restoreFixtureDir(n: number, vectors: string, ids: FixtureIds): string {
  return path.join(os.tmpdir(), `kyro-bench-restore-${n}-${vectors}${idsSuffix(ids)}`);
}

/** The suffix of a fixture's dir and result file for its ids: '' for seq, else `-<ids>`. */
export function idsSuffix(ids: FixtureIds): string {
  return ids === 'seq' ? '' : `-${ids}`;
}

/**
 * Document `i`'s id, the same on every run: `d<i>` (not zero-padded: later ids sort among earlier
 * ones), or a UUID made of the MD5 of i — random-looking (`uuid`, as v4 UUIDs), or (`uuid7`) with
 * its first 48 bits a millisecond timestamp one ms apart per document, so that the ids ascend as
 * time-ordered ids (UUIDv7, ULID) written one after another do.
 */
function docId(i: number, ids: FixtureIds): string {
  if (ids === 'seq') return `d${i}`;
  let h = createHash('md5').update(String(i)).digest('hex');
  if (ids === 'uuid7') h = (1_700_000_000_000 + i).toString(16).padStart(12, '0') + '7' + h.slice(13);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Builds the fixture in `base` unless it is there already (`base/fixture-ready`): the log in
 * `base/data`, its full zstd backup in the local store `base/backups`.
 */
export async function buildRestoreFixture(base: string, n: number, vectors: string, ids: FixtureIds): Promise<void> {
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
  /** Document ids (`--ids seq|uuid|uuid7`, default seq). */
  ids: FixtureIds;
  /** What the documents' vectors are like (`--vectors`, vectors.ts; default clustered). */
  vectors: string;
  /** The fixture's dir (`--dir`, default `restoreFixtureDir`). */
  base: string;
  /** Seconds the disk is left to settle before each timed run (`--settle`, default 4; see cliRestore.ts `settleDisk`). */
  settleS: number;
  /** The checkouts to compare (the other arguments; default this one). */
  checkouts: string[];
  /** This repo's root. */
  root: string;
}

/** Reads the restore benches' flags: [--n N] [--reps R] [--ids seq|uuid|uuid7] [--vectors V] [--dir DIR] [--settle S] [CHECKOUT…]. */
export function restoreBenchArgs(argv: readonly string[], defaultReps: number): RestoreBenchArgs {
  const value = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const n = Number(value('n') ?? 1_000_000);
  const reps = Number(value('reps') ?? defaultReps);
  const ids = (value('ids') ?? 'seq') as FixtureIds;
  if (!ID_KINDS.includes(ids)) throw new Error(`--ids must be one of ${ID_KINDS.join(', ')}, not ${ids}`);
  const vectors = value('vectors') ?? 'clustered';
  const base = value('dir') ?? restoreFixtureDir(n, vectors, ids);
  const settleS = Number(value('settle') ?? 4);
  if (!(settleS >= 0)) throw new Error(`--settle must be a number of seconds ≥ 0, not ${value('settle')}`);
  const flagged = new Set(['--n', '--reps', '--dir', '--ids', '--vectors', '--settle'].flatMap((f) => (argv.includes(f) ? [argv.indexOf(f), argv.indexOf(f) + 1] : [])));
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  const checkouts = argv.filter((_, i) => !flagged.has(i));
  if (checkouts.length === 0) checkouts.push(root);
  return { n, reps, ids, vectors, base, settleS, checkouts, root };
}
