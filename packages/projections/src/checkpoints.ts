import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fsyncPath, splitRecord, toHex } from '@kyrodb/log';
import type { EventLog, HnswParams, Metadata, Metric } from '@kyrodb/log';
import { CHECKPOINT_FORMAT_VERSION, IO_CHUNK_BYTES, JsonLines, READABLE_CHECKPOINT_FORMATS, collectionFiles, hashFile, hashFileSync, readFullySync, readJsonLinesSync, writeAll } from './checkpointFiles.js';
import { ProjectionError } from './errors.js';
import type { CollectionInfo, DocValue, MaterializedState } from './state.js';

export { CHECKPOINT_FORMAT_VERSION, READABLE_CHECKPOINT_FORMATS } from './checkpointFiles.js';
/** The metadata file of a checkpoint, written last. */
export const METADATA_FILE = 'metadata.json';

/** Options of checkpointing. */
export interface CheckpointOptions {
  /** Write a checkpoint after this many applied events. 0 = never by count. Default 100 000. */
  everyEvents: number;
  /** Write a checkpoint every this many seconds when something changed. 0 = never by time. Default 300. */
  everySecs: number;
  /** Generations kept; older ones are deleted after a successful write. Default 10. */
  keepGenerations: number;
}

/** Defaults (the sketch's `checkpoint:` keys). */
export const defaultCheckpointOptions: CheckpointOptions = Object.freeze({ everyEvents: 100_000, everySecs: 300, keepGenerations: 10 });

/** Per-collection entry of the metadata. */
export interface CheckpointCollection {
  name: string;
  dimension: number;
  metric: Metric;
  /** Live vectors in the projection state (docs files). */
  count: number;
  /** Live vectors in the cold index. */
  coldCount: number;
}

/** `metadata.json`. */
export interface CheckpointMetadata {
  format: number;
  /** When it was written, ms since the epoch. */
  createdMs: number;
  /** The projection state's watermark: the catalog and docs are exactly the log prefix 1..seq. */
  watermark: { seq: number; ts: number; hash: string };
  /** The cold indexes hold the log prefix 1..cold.seq (≤ watermark.seq). */
  cold: { seq: number };
  collections: CheckpointCollection[];
  /** Every other file of the directory with its size and SHA-256. */
  files: Record<string, { size: number; sha256: string }>;
}

/** A validated checkpoint, ready to load. */
export interface LoadedCheckpoint {
  dir: string;
  meta: CheckpointMetadata;
  state: MaterializedState;
}

/** One generation on disk. */
export interface Generation {
  seq: number;
  dir: string;
}

/** `<dataDir>/checkpoints`. */
export function checkpointsDir(dataDir: string): string {
  return path.join(dataDir, 'checkpoints');
}

/** The directory name of a generation: the seq zero-padded to 16 digits. */
export function generationName(seq: number): string {
  return String(seq).padStart(16, '0');
}

/** Generations on disk, newest first (temp dirs ignored). */
export function listGenerations(dataDir: string): Generation[] {
  const root = checkpointsDir(dataDir);
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory() && /^\d{16}$/.test(e.name))
    .map((e) => ({ seq: Number(e.name), dir: path.join(root, e.name) }))
    .sort((a, b) => b.seq - a.seq);
}

/**
 * Removes temp dirs left by a crash mid-write (and generations set aside as corrupt, named
 * like them). A `checkpoints` that is no directory (a file in the way) is moved aside, named in
 * the returned string: checkpoints are derived, and such a file must not keep the data dir from
 * opening.
 */
export function removeTempDirs(dataDir: string): string | undefined {
  const root = checkpointsDir(dataDir);
  const st = fs.lstatSync(root, { throwIfNoEntry: false });
  if (st === undefined) return undefined;
  if (!st.isDirectory()) {
    const aside = `${root}.not-a-dir-${Date.now()}`;
    fs.renameSync(root, aside);
    return aside;
  }
  for (const n of fs.readdirSync(root)) if (n.startsWith('.tmp-')) fs.rmSync(path.join(root, n), { recursive: true, force: true });
  return undefined;
}

/** Sets a generation found corrupt aside under a temp name (the next open removes it), so that it is never tried again. */
export function setCorruptAside(g: Generation): void {
  try {
    fs.renameSync(g.dir, path.join(path.dirname(g.dir), `.tmp-corrupt-${path.basename(g.dir)}-${Date.now()}`));
  } catch {
    // left where it is: tried (and refused) again at the next open
  }
}

/** Deletes all but the newest `keep` generations; returns the ones kept. */
export function pruneGenerations(dataDir: string, keep: number): Generation[] {
  const gens = listGenerations(dataDir);
  for (const g of gens.slice(Math.max(1, keep))) fs.rmSync(g.dir, { recursive: true, force: true });
  return gens.slice(0, Math.max(1, keep));
}

type DocRow = [string, number, number, Metadata | null];

/** What a checkpoint writes of the state, taken in one turn: the catalog, and each collection's docs (the immutable doc values, by reference). */
export interface StateSnapshot {
  seq: number;
  collections: { info: CollectionInfo; docs: DocValue[] }[];
}

/**
 * The catalog and docs of `state` as of now (`state.seq`), in one synchronous pass that copies
 * only references: a doc value is never changed once applied (a write replaces it), so the
 * snapshot stays exact while the state moves on and it is written out.
 */
export function snapshotState(state: MaterializedState): StateSnapshot {
  return { seq: state.seq, collections: [...state.collections.values()].map((c) => ({ info: { ...c.info, hnsw: { ...c.info.hnsw } }, docs: [...c.docs.values()] })) };
}

/** Docs serialized per turn by `writeStateFiles` (fewer when their vectors would pass IO_CHUNK_BYTES). */
const DOCS_PER_TURN = 10_000;

/**
 * Writes a snapshot into `dir` (format CHECKPOINT_FORMAT_VERSION; `sealCheckpoint` fsyncs every file):
 * `catalog.json`, and per collection `docs-<name>.ndjson` (a line `[id, seq, ts, metadata]` per
 * doc) + `docs-<name>.f32` (the vectors, doc after doc). Both go out a chunk at a time, DOCS_PER_TURN
 * docs a turn: in one call, a few hundred thousand docs held the event loop (and every search)
 * for hundreds of ms; in one string, ~512 MB of rows could not be written at all.
 */
export async function writeStateFiles(dir: string, snap: StateSnapshot): Promise<void> {
  const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
  for (const { info, docs } of snap.collections) {
    const files = collectionFiles(CHECKPOINT_FORMAT_VERSION, info.name);
    const dim = info.dimension;
    // (no more than the collection holds: a 16-d one of 10 docs took 640 KB, a thousand of them 640 MB)
    const perTurn = Math.max(1, Math.min(DOCS_PER_TURN, Math.floor(IO_CHUNK_BYTES / (dim * 4)), docs.length));
    const vec = new Float32Array(perTurn * dim);
    const lines = new JsonLines();
    const docsFile = await fs.promises.open(path.join(dir, files.docs), 'w');
    try {
      const vecFile = await fs.promises.open(path.join(dir, files.vectors), 'w');
      try {
        for (let from = 0; from < docs.length; from += perTurn) {
          const n = Math.min(perTurn, docs.length - from);
          for (let i = 0; i < n; i++) {
            const d = docs[from + i]!;
            vec.set(d.vector, i * dim);
            if (lines.add([d.id, d.seq, d.ts, d.metadata ?? null] satisfies DocRow)) await writeAll(docsFile, lines.take());
          }
          await writeAll(vecFile, new Uint8Array(vec.buffer, 0, n * dim * 4));
          await turn();
        }
      } finally {
        await vecFile.close();
      }
      await writeAll(docsFile, lines.take());
    } finally {
      await docsFile.close();
    }
  }
  await fs.promises.writeFile(path.join(dir, 'catalog.json'), JSON.stringify({ seq: snap.seq, collections: snap.collections.map((c) => c.info) }));
}

/** Files a seal fsyncs and hashes at once (libuv's pool runs four; the rest queue). */
const SEAL_CONCURRENCY = 8;

/**
 * Seals a temp dir as a generation: fsyncs and hashes every file (a chunk a turn), writes
 * `metadata.json` last, fsyncs it and the dir, renames it to `checkpoints/<seq>` and fsyncs the
 * parent. Resolves with the final dir.
 */
export async function sealCheckpoint(dataDir: string, tmp: string, meta: Omit<CheckpointMetadata, 'files'>): Promise<string> {
  const files: CheckpointMetadata['files'] = {};
  // Hundreds of MB of indexes: hashed a chunk a turn (hashed in one call, they held the event
  // loop, and every search with it, for a third of a second and more). Several files at once:
  // one fsync after another, a checkpoint of 1000 small collections (4000 files) took 15-30 s,
  // past any shutdown timeout; concurrent ones share the file system's journal commits.
  const names = fs.readdirSync(tmp).sort().filter((n) => n !== METADATA_FILE);
  let next = 0;
  const sealOne = async (): Promise<void> => {
    while (next < names.length) {
      const n = names[next++]!;
      files[n] = await hashFile(path.join(tmp, n), true);
    }
  };
  await Promise.all(Array.from({ length: SEAL_CONCURRENCY }, sealOne));
  const full: CheckpointMetadata = { ...meta, files };
  const mf = path.join(tmp, METADATA_FILE);
  fs.writeFileSync(mf, metadataText(full));
  fsyncPath(mf);
  fsyncPath(tmp);
  const final = path.join(checkpointsDir(dataDir), generationName(meta.watermark.seq));
  if (fs.existsSync(final)) fs.rmSync(final, { recursive: true, force: true });
  fs.renameSync(tmp, final);
  fsyncPath(checkpointsDir(dataDir));
  return final;
}

/** A fresh temp dir under `checkpoints/`. */
export function makeTempDir(dataDir: string): string {
  const root = checkpointsDir(dataDir);
  fs.mkdirSync(root, { recursive: true });
  return fs.mkdtempSync(path.join(root, '.tmp-'));
}

function corrupt(dir: string, why: string): never {
  throw new ProjectionError('PROJ_CHECKPOINT_CORRUPT', `checkpoint ${path.basename(dir)}: ${why}`, { dir, reason: why });
}

/** The hex hash of the event at `seq` in `log` ('' for seq 0, undefined when absent). */
export function logHashAt(log: EventLog, seq: number): string | undefined {
  if (seq === 0) return '';
  const rec = log.getRecord(seq);
  return rec === undefined ? undefined : toHex(splitRecord(rec).hash);
}

/**
 * Validates a generation against itself and the log, and decodes its projection state:
 * format version (any of READABLE_CHECKPOINT_FORMATS), SHA-256 and size of every listed file, no
 * listed file missing, the watermark's event present in the log with the recorded hash, the
 * catalog agreeing with the metadata (names, dimensions), and docs files holding exactly `count`
 * well-formed rows and `count × dimension` floats. Files are read a chunk at a time (no size limit
 * but memory for the state itself). Throws PROJ_CHECKPOINT_CORRUPT naming the problem. The cold
 * files are checked by the worker on load.
 */
export function validateCheckpoint(dir: string, log: EventLog): LoadedCheckpoint {
  try {
    return validateUnsafe(dir, log);
  } catch (err) {
    if (err instanceof ProjectionError) throw err;
    corrupt(dir, `unreadable: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * Every check of `validateCheckpoint` but the docs' rows (metadata, each file's size and SHA-256,
 * the watermark against the log, the catalog), with the files hashed asynchronously, a few MB at
 * a time; nothing is loaded. What a cold-tier restart needs of the newest generation while the
 * server keeps serving: validated with the docs loaded, a 50k-vector checkpoint held the event
 * loop (every request) for 160 ms, and the time grows with the checkpoint.
 */
export async function verifyCheckpointFiles(dir: string, log: EventLog): Promise<CheckpointMetadata> {
  try {
    const meta = readCheckpointMeta(dir);
    for (const [name, want] of Object.entries(meta.files)) checkFileHash(dir, name, want, await hashFile(path.join(dir, name)));
    checkCatalog(dir, meta, log);
    return meta;
  } catch (err) {
    if (err instanceof ProjectionError) throw err;
    corrupt(dir, `unreadable: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function validateUnsafe(dir: string, log: EventLog): LoadedCheckpoint {
  const meta = readCheckpointMeta(dir);
  for (const [name, want] of Object.entries(meta.files)) checkFileHash(dir, name, want, hashFileSync(path.join(dir, name)));
  const catalog = checkCatalog(dir, meta, log);
  const state: MaterializedState = { seq: meta.watermark.seq, collections: new Map() };
  for (const mc of meta.collections) {
    const info = catalog.get(mc.name)!;
    const docs = loadDocs(dir, meta.format, mc);
    const hnsw: HnswParams = { M: info.hnsw.M, efConstruction: info.hnsw.efConstruction, efSearch: info.hnsw.efSearch };
    state.collections.set(mc.name, { info: { ...info, hnsw, count: docs.size }, docs });
  }
  return { dir, meta, state };
}

/** A generation's metadata.json, checked for what every other check relies on. */
/**
 * metadata.json's text: the metadata, then `metadata_sha256`, the SHA-256 of the same text
 * without that field. The metadata lists every other file's hash, but nothing checked its own
 * bytes: a flipped digit in `cold.seq` made the cold tier apply 4000 events again onto an index
 * that held them (a search lost its top hit), with nothing said. Checkpoints written before it
 * have no such field, and are read as before.
 */
export function metadataText(meta: CheckpointMetadata): string {
  const { rest, sha256 } = metadataSum(meta);
  return JSON.stringify({ ...rest, metadata_sha256: sha256 }, null, 1);
}

type SummedMetadata = CheckpointMetadata & { metadata_sha256?: string };

/** The metadata without `metadata_sha256`, and the SHA-256 of its text (as metadataText writes it). */
function metadataSum(meta: SummedMetadata): { rest: Partial<SummedMetadata>; sha256: string } {
  const rest: Partial<SummedMetadata> = { ...meta };
  delete rest.metadata_sha256;
  return { rest, sha256: crypto.createHash('sha256').update(JSON.stringify(rest, null, 1)).digest('hex') };
}

function readCheckpointMeta(dir: string): CheckpointMetadata {
  const mf = path.join(dir, METADATA_FILE);
  if (!fs.existsSync(mf)) corrupt(dir, 'metadata.json is missing');
  let meta: SummedMetadata;
  try {
    meta = JSON.parse(fs.readFileSync(mf, 'utf8')) as SummedMetadata;
  } catch (err) {
    corrupt(dir, `metadata.json does not parse: ${String(err)}`);
  }
  if (meta.metadata_sha256 !== undefined && metadataSum(meta).sha256 !== meta.metadata_sha256) corrupt(dir, 'metadata.json fails its own SHA-256 (damaged or edited)');
  if (!READABLE_CHECKPOINT_FORMATS.includes(meta.format)) corrupt(dir, `format ${String(meta.format)} is not one of ${READABLE_CHECKPOINT_FORMATS.join(', ')}`);
  if (typeof meta.files !== 'object' || meta.files === null || !Array.isArray(meta.collections)) corrupt(dir, 'metadata.json lacks files or collections');
  if (!(meta.cold.seq <= meta.watermark.seq)) corrupt(dir, 'cold seq is beyond the watermark');
  for (const name of Object.keys(meta.files)) if (!fs.existsSync(path.join(dir, name))) corrupt(dir, `${name} is missing`);
  return meta;
}

/** PROJ_CHECKPOINT_CORRUPT unless file `name` has the size and SHA-256 the metadata lists. */
function checkFileHash(dir: string, name: string, want: { size: number; sha256: string }, got: { size: number; sha256: string }): void {
  if (got.size !== want.size) corrupt(dir, `${name} has ${got.size} bytes, expected ${want.size}`);
  if (got.sha256 !== want.sha256) corrupt(dir, `${name} fails its SHA-256`);
}

/**
 * The checks after the files' hashes: the watermark is this log's event, every collection's files
 * are listed, and the catalog agrees with the metadata. The catalog's collections by name.
 */
function checkCatalog(dir: string, meta: CheckpointMetadata, log: EventLog): Map<string, CollectionInfo> {
  const h = logHashAt(log, meta.watermark.seq);
  if (h === undefined) corrupt(dir, `its watermark seq ${meta.watermark.seq} is beyond the log head`);
  if (h !== meta.watermark.hash) corrupt(dir, `the log's event ${meta.watermark.seq} has a different hash: the checkpoint belongs to another history`);
  const format = meta.format;
  const need = ['catalog.json'];
  for (const { name } of meta.collections) {
    const f = collectionFiles(format, name);
    need.push(f.docs, f.vectors, f.index, f.labels);
  }
  for (const n of need) if (meta.files[n] === undefined) corrupt(dir, `${n} is not listed`);
  const catalog = JSON.parse(fs.readFileSync(path.join(dir, 'catalog.json'), 'utf8')) as { seq: number; collections: CollectionInfo[] };
  if (catalog.seq !== meta.watermark.seq) corrupt(dir, 'catalog seq differs from the watermark');
  if (catalog.collections.length !== meta.collections.length) corrupt(dir, 'catalog and metadata list different collections');
  const out = new Map<string, CollectionInfo>();
  for (const mc of meta.collections) {
    const info = catalog.collections.find((c) => c.name === mc.name);
    if (info === undefined) corrupt(dir, `collection ${mc.name} is not in the catalog`);
    if (info.dimension !== mc.dimension) corrupt(dir, `collection ${mc.name}: metadata dimension ${mc.dimension}, catalog ${info.dimension}`);
    if (info.metric !== mc.metric) corrupt(dir, `collection ${mc.name}: metadata metric ${mc.metric}, catalog ${info.metric}`);
    if (info.count !== mc.count) corrupt(dir, `collection ${mc.name}: the catalog counts ${info.count} docs, metadata ${mc.count}`);
    out.set(mc.name, info);
  }
  return out;
}

/** Bytes of vectors per allocation when loading: a doc's vector is a view into one of them. */
const VECTOR_CHUNK_BYTES = 64 * 1024 * 1024;

/**
 * The docs of collection `mc` from its docs and vector files, read a chunk at a time into the
 * vectors' final buffers (no whole-file string or buffer, no copy).
 */
function loadDocs(dir: string, format: number, mc: CheckpointCollection): Map<string, DocValue> {
  const files = collectionFiles(format, mc.name);
  const dim = mc.dimension;
  const docs = new Map<string, DocValue>();
  const vf = fs.openSync(path.join(dir, files.vectors), 'r');
  try {
    const bytes = fs.fstatSync(vf).size;
    if (bytes !== mc.count * dim * 4) corrupt(dir, `collection ${mc.name}: vector file has ${bytes} bytes, expected ${mc.count}×${dim}×4`);
    const perChunk = Math.max(1, Math.floor(VECTOR_CHUNK_BYTES / (dim * 4)));
    let chunk = new Float32Array(0);
    let n = 0;
    const take = (rows: unknown[]): void => {
      for (const row of rows) {
        if (n === mc.count) corrupt(dir, `collection ${mc.name}: ${files.docs} holds more than the ${mc.count} docs of the metadata`);
        if (!isDocRow(row)) corrupt(dir, `collection ${mc.name}: row ${n + 1} of ${files.docs} is not [id, seq, ts, metadata]`);
        const at = n % perChunk;
        if (at === 0) {
          chunk = new Float32Array(Math.min(perChunk, mc.count - n) * dim);
          readFullySync(vf, new Uint8Array(chunk.buffer), n * dim * 4);
        }
        const [id, seq, ts, md] = row;
        const d: DocValue = { id, vector: chunk.subarray(at * dim, (at + 1) * dim), seq, ts };
        if (md !== null) d.metadata = md;
        docs.set(id, d);
        n += 1;
      }
    };
    const df = path.join(dir, files.docs);
    if (format === 1) {
      // Format 1 wrote the rows as one string, so they fit in one (the loader of that release read them so).
      const rows: unknown = JSON.parse(fs.readFileSync(df, 'utf8'));
      if (!Array.isArray(rows)) corrupt(dir, `collection ${mc.name}: ${files.docs} is not an array`);
      take(rows);
    } else {
      const fd = fs.openSync(df, 'r');
      try {
        readJsonLinesSync(fd, take);
      } catch (err) {
        if (err instanceof ProjectionError) throw err;
        corrupt(dir, `collection ${mc.name}: ${files.docs}: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        fs.closeSync(fd);
      }
    }
    if (n !== mc.count) corrupt(dir, `collection ${mc.name}: ${n} docs, metadata says ${mc.count}`);
  } finally {
    fs.closeSync(vf);
  }
  return docs;
}

function isDocRow(row: unknown): row is DocRow {
  if (!Array.isArray(row) || row.length !== 4) return false;
  const [id, seq, ts, md] = row as unknown[];
  return typeof id === 'string' && Number.isSafeInteger(seq) && typeof ts === 'number' && typeof md === 'object';
}
