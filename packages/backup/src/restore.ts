import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EventLog, frameRecordCount, isLogError, lockHolder, microsToIso, processAlive, registerScratch, toHex, writerRunning, type Failpoints } from '@kyrodb/log';
import { Registry } from 'prom-client';
import { BackupError, isBackupError } from './errors.js';
import { backupMetrics } from './metrics.js';
import type { EncryptionKey } from './objectCodec.js';
import { WRAPPING_HEADER_BYTES, decodeObject, keyFor, objectWrapping } from './objectCodec.js';
import { eventsFileExpect, fetchChecked, getFile, loadManifests, loadSegments, refuseUnreadable, segmentHeaderOf, warnUnreadable } from './pieces.js';
import { openCodecRunner, useCodecWorker, type CodecRunner, type CodecThread } from './codecRunner.js';
import { checkedIndex, type OpenedSource, type SourceSpec } from './fileCodec.js';
import { LiveCounter } from './liveCounter.js';
import type { ProgressFn } from './progress.js';
import { LATEST, describePlan, planRestore, type RestorePlan, type RestoreTarget } from './restorePlan.js';
import { SEGMENT_HEADER_MAX_BYTES } from './segment.js';
import type { ReplayState } from './state.js';
import { timedId } from './manifest.js';
import { parentClaimKey } from './tagClaims.js';
import { readObjectPrefix, type GetOptions, type ObjectStore } from './stores/objectStore.js';
import { fsyncDir } from './stores/localDirStore.js';
import { formatBytes, freeBytes, noSpaceError } from './space.js';

/** Options of `executeRestore`. */
export interface ExecuteRestoreOptions {
  store: ObjectStore;
  /** The data dir to build. Its parent must be writable (staging happens beside it). */
  dataDir: string;
  /** Replace an existing non-empty data dir (it is kept as `<dataDir>.pre-restore-<ts>` until the new one verifies). Default false. */
  force?: boolean;
  /** Keep the previous data dir after a successful restore instead of removing it. Default false. */
  keepPrevious?: boolean;
  /** Registry for the restore metrics. Default: a private registry. */
  registry?: Registry;
  onProgress?: ProgressFn;
  /** Key for encrypted backups. */
  encryption?: EncryptionKey;
  /** Keep the replayed vectors in the report's `state` (deep verify uses it; always inline). Default false. */
  keepState?: boolean;
  /** Where downloading, checking, decoding and counting run beside the import (see CodecThread). Default 'auto'. */
  codecThread?: CodecThread;
  /** How the new log writes its by-doc index (`EventLogOptions.deferDocIndex`). Default true: deferred once putting it gets dear. */
  deferDocIndex?: boolean | 'always';
  /** Failpoints (testing): the new log's (`wal.import`), `restore.swap` between the swap's two renames, and `restore.cleanup` before the replaced data dir is deleted. */
  failpoints?: Failpoints;
  /** Where to say what `recoverInterruptedRestore` found. Default: nowhere. */
  logger?: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
}

/** What a restore did. */
export interface RestoreReport {
  dataDir: string;
  /**
   * False only for a dry run of a point-in-time restore: `seq` and `events` are then the most it
   * restores (it stops at the first event after T), and `vectorCount` is null (known once read).
   */
  exact: boolean;
  /** The backup restored, by id (`latest` or a tag resolved to it); null for a point in time. */
  backupId: string | null;
  /** Last restored seq and its hash (hex). */
  seq: number;
  headHash: string;
  headTs: number;
  events: number;
  vectorCount: number | null;
  pointInTime: number | null;
  checkpointSeq: number | null;
  /** The previous data dir if kept (`keepPrevious`), else null. */
  previousDir: string | null;
  durationMs: number;
  plan: string;
  /** At least this many bytes the restore writes into the data dir (`restoreSpaceNeeded`): checked against the free space before anything is written. */
  spaceNeededBytes: number;
  /** The replayed state (only with `keepState`). */
  state?: ReplayState;
  /**
   * Where the time went, ms: `open` the codec's busy time (checks, decoding, counting; beside the
   * import when in a worker), `waitOpen` the time the import waited for it, `import` the time
   * inside `EventLog.importFrames` and waiting for its imports to be written (the next import
   * is checked while the previous one is), `docIndex` writing deferred by-doc entries (while the
   * codec had nothing ready, and what was left at the end), `checkpoint` copying the checkpoint, `swap` closing,
   * renaming and re-opening the new data dir, `total` all of it.
   */
  phasesMs: { open: number; waitOpen: number; import: number; docIndex: number; checkpoint: number; swap: number; total: number };
  /**
   * Memory used again (only with the codec in a worker; 0 inline): `bodies`, sources the worker
   * decompressed into memory an earlier one had used and the import had done with
   * (`CodecRunner.recycle`); `reads`, files read into memory the worker had handed back
   * (`OpenedSource.spent`).
   */
  reused: { bodies: number; reads: number };
}

function stamp(): string {
  return new Date().toISOString().replace(/[-:.]/g, '');
}

/** The names a KyroDB data dir holds (see the README's "How a write becomes durable"), and its segments' names. */
const DATA_DIR_ENTRY = /^(log\.mdb|log\.mdb-lock|log\.open(\.tmp)?|kyrodb\.lock|wal|checkpoints|cursors\.json(\.tmp|\.damaged-.+)?|log\.mdb\.(cut-short|damaged)-.+)$/;
const SEGMENT_FILE = /^\d{20}\.seg$/;

/**
 * What a data dir's path holds: nothing (absent or an empty dir), a KyroDB data dir (`log.mdb`
 * or write-ahead segments, and nothing KyroDB does not write), or something else (`why`).
 */
async function targetKind(dir: string): Promise<{ kind: 'empty' | 'data' } | { kind: 'other'; why: string }> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'empty' };
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') return { kind: 'other', why: 'is a file' };
    throw err;
  }
  if (names.length === 0) return { kind: 'empty' };
  const foreign = names.filter((n) => !DATA_DIR_ENTRY.test(n));
  let segments: string[] = [];
  try {
    segments = await fsp.readdir(path.join(dir, 'wal'));
  } catch {
    // no wal/ (or not a dir: then it is foreign below)
  }
  foreign.push(...segments.filter((n) => !SEGMENT_FILE.test(n)).map((n) => `wal/${n}`));
  if (foreign.length > 0) return { kind: 'other', why: `holds ${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ` and ${foreign.length - 3} more` : ''}, which KyroDB does not write` };
  if (!names.includes('log.mdb') && segments.length === 0) return { kind: 'other', why: 'holds neither log.mdb nor write-ahead segments' };
  return { kind: 'data' };
}

/** The real path of `p`, or of its nearest existing ancestor joined with the rest. */
function realish(p: string): string {
  const rest: string[] = [];
  let cur = path.resolve(p);
  for (;;) {
    try {
      return path.join(fs.realpathSync(cur), ...rest.reverse());
    } catch {
      const up = path.dirname(cur);
      if (up === cur) return path.resolve(p);
      rest.push(path.basename(cur));
      cur = up;
    }
  }
}

/**
 * What a restore into `dataDir` refuses before it reads or writes anything (a dry run checks the
 * same): BACKUP_TARGET_IN_USE while a live process holds its writer lock; BACKUP_TARGET_NOT_DATA_DIR
 * for a file, a non-empty dir that is not a KyroDB data dir, or a dir that is, holds or lies in
 * the local backup store (a restore replaces the whole dir: never those, even with `force`);
 * BACKUP_TARGET_EXISTS for a data dir without `force`.
 */
async function checkTarget(dataDir: string, store: ObjectStore, force: boolean): Promise<void> {
  const holder = lockHolder(dataDir);
  if (holder !== undefined) throw new BackupError('BACKUP_TARGET_IN_USE', `data dir ${dataDir} is open for writing by process ${holder}; stop it first`, { pid: holder, dataDir });
  if (writerRunning(dataDir)) throw new BackupError('BACKUP_TARGET_IN_USE', `data dir ${dataDir} is open for writing by a running server (its lock file is missing); stop it first`, { dataDir });
  if (store.url.startsWith('file:')) {
    const root = realish(fileURLToPath(store.url));
    const target = realish(dataDir);
    const inside = (a: string, b: string): boolean => a === b || a.startsWith(b.endsWith(path.sep) ? b : b + path.sep);
    if (inside(target, root) || inside(root, target)) throw new BackupError('BACKUP_TARGET_NOT_DATA_DIR', `data dir ${dataDir} ${inside(root, target) ? 'holds' : 'lies in'} the backup store ${root}: a restore replaces the whole dir; restore somewhere else`, { dataDir, store: root });
  }
  // A mount point cannot be renamed aside (EBUSY), and the staging dir beside it is on another disk.
  const st = fs.statSync(dataDir, { throwIfNoEntry: false });
  if (st?.isDirectory() === true && st.dev !== fs.statSync(path.dirname(dataDir)).dev) throw new BackupError('BACKUP_TARGET_NOT_DATA_DIR', `${dataDir} is a mount point: a restore builds the new data dir beside its target and renames it in; restore into a dir inside it (e.g. ${path.join(dataDir, 'data')})`, { dataDir });
  const t = await targetKind(dataDir);
  if (t.kind === 'other') throw new BackupError('BACKUP_TARGET_NOT_DATA_DIR', `${dataDir} is not a KyroDB data dir (it ${t.why}): a restore never replaces it, even with force; give a new or empty dir`, { dataDir });
  if (t.kind === 'data' && !force) throw new BackupError('BACKUP_TARGET_EXISTS', `data dir ${dataDir} exists and is not empty; pass --force (the option force) to replace it`, { dataDir });
}

/**
 * Records an import takes (whole frames until it holds this many: about one frame). An import's
 * rows stay alive until the next one applies them to LMDB; at 25k, many outlived two scavenges
 * and were promoted (the import's thread spent ~0.6 s in GC over 1M events), and the restore
 * took 0.15-0.25 s longer.
 */
const IMPORT_BATCH = 12_500;
/** What makes a backup's checkpoint unusable (damaged, missing, unreadable with the keys given): restored without it. */
const UNUSABLE_CHECKPOINT: ReadonlySet<string> = new Set(['BACKUP_CHECKSUM_MISMATCH', 'BACKUP_FILE_MISSING', 'BACKUP_CORRUPT', 'BACKUP_DECRYPT_FAILED', 'BACKUP_KEY_REQUIRED', 'BACKUP_MANIFEST_INVALID']);

/** Read buffers kept for reuse at most (about the sources fetched ahead). */
const SPARE_READS = 4;

/**
 * While the next source is not opened yet, the import's thread writes the by-doc entries deferred
 * so far, once at least this many have gathered. Restoring 1M UUIDs: ~2.9 s of sorting and puts
 * in 100k chunks, much of it while the codec had nothing ready (restore 7.2-7.7 s); one flush at
 * the end took ~4.1 s with nothing to overlap it (9.2 s); chunks of 50k or 250k were no better.
 */
const DOC_FLUSH_MIN = 100_000;

/**
 * Carries out a plan: downloads each file into memory (a few ahead of the import, in plan
 * order), verifies checksums, the GCM tags and the hash chain (each record's own hash in the codec, the links between them in
 * `EventLog.importFrames`), imports the records into a NEW data dir built in a staging dir
 * beside the target, copies the checkpoint,
 * checks event count / head hash / vector count against the plan, and swaps the new dir in by
 * rename. Any failure removes the staging dir and leaves the target exactly as it was.
 * Refuses what `checkTarget` refuses (a target in use, not a data dir, or existing without `force`).
 */
export async function executeRestore(plan: RestorePlan, o: ExecuteRestoreOptions): Promise<RestoreReport & { exact: true; vectorCount: number }> {
  const metrics = backupMetrics(o.registry ?? new Registry());
  const started = performance.now();
  // Through a symlink, the dir it points at is restored (the link stays).
  const dataDir = realish(o.dataDir);
  let staging: string | undefined;
  let log: EventLog | undefined;
  let runner: CodecRunner | undefined;
  let copyingCheckpoint: Promise<void> | undefined;
  const phases = { open: 0, waitOpen: 0, import: 0, docIndex: 0, checkpoint: 0, swap: 0 };
  let reached = 0; // the last seq imported, for a failure's message
  let unregisterStaging: (() => void) | undefined;
  try {
    if (!writerRunning(dataDir)) await recoverInterruptedRestore(dataDir, o.logger);
    await checkTarget(dataDir, o.store, o.force === true);
    const space = checkSpace(plan, dataDir);
    await fsp.mkdir(path.dirname(dataDir), { recursive: true });
    staging = `${dataDir}.restore-staging-${stamp()}-${process.pid}`;
    unregisterStaging = registerScratch(staging); // a command interrupted before the swap removes it as it exits
    // Downloading, checking, decoding and counting (the codec; see CodecThread for where it runs)
    // run ahead of the import, in order; errors surface in plan order. A worker starts while the log opens.
    const inWorker = o.keepState !== true && useCodecWorker(o.codecThread, { kind: 'open', events: plan.toSeq });
    runner = openCodecRunner({ kind: 'open', options: { pointInTime: plan.pointInTime, toSeq: plan.toSeq, keepState: o.keepState === true, ...(o.encryption !== undefined ? { encryption: o.encryption } : {}) } }, inWorker);
    // By-doc entries that get dear to put one batch at a time (random ids) are deferred and
    // written in sorted chunks (see EventLogOptions.deferDocIndex and DOC_FLUSH_MIN).
    log = await EventLog.open({ dir: staging, deferDocIndex: o.deferDocIndex ?? true, ...(o.failpoints !== undefined ? { failpoints: o.failpoints } : {}) });
    const T = plan.pointInTime;
    let cur = 0;
    let curHash = '';
    let headTs = 0;
    let reachedT = false;
    let pending = 0; // records in pendingFrames
    let pendingFrames: Buffer[] = [];
    // The index fields the codec read while it checked each record's own hash (checkRecord):
    // the import checks only the links between records and neither re-hashes nor decodes them.
    let collections: string[] = [];
    let docIds: string[] = [];
    const total = plan.toSeq;
    // An import is checked and framed while the one before it is still being written (see
    // EventLog.importFrames): at most two are in flight, and the last is awaited after the loop.
    let importing: Promise<unknown> | undefined;
    const imported = async (p: Promise<unknown>): Promise<void> => {
      const t0 = performance.now();
      try {
        await p;
      } catch (err) {
        if (isLogError(err, 'LOG_CHAIN_BROKEN')) throw new BackupError('BACKUP_CHAIN_BROKEN', `the backup's hash chain does not verify: ${err.message}`, { ...err.details }, { cause: err });
        throw err;
      } finally {
        phases.import += performance.now() - t0;
      }
    };
    // Opened sources whose records are not all known to be out of the log's hands, in order, and
    // the last seq handed to the log (`pendingLast`: of what pendingFrames hold). A source the
    // log no longer reads gives its memory back to a worker codec, which decompresses later
    // sources into it (see CodecRunner.recycle).
    const held: { last: number; frames: Buffer[] }[] = [];
    let handed = 0;
    let pendingLast = 0;
    const release = (): void => {
      const from = log!.importHeldFrom() ?? Infinity;
      while (held.length > 0 && held[0]!.last <= handed && held[0]!.last < from) runner!.recycle(held.shift()!.frames);
    };
    const flush = async (): Promise<void> => {
      if (pending === 0) return;
      const t0 = performance.now();
      const p = log!.importFrames(pendingFrames, { checked: { collections, docIds } });
      phases.import += performance.now() - t0;
      p.catch(() => undefined); // awaited below, or by the next flush
      handed = pendingLast;
      const before = importing;
      importing = p;
      if (before !== undefined) await imported(before);
      release();
      pending = 0;
      pendingFrames = [];
      collections = [];
      docIds = [];
      reached = cur;
      o.onProgress?.({ phase: 'import', done: cur, total });
    };
    // Memory a worker codec handed back once it had decompressed a source (`OpenedSource.spent`):
    // the next files are read into it rather than into fresh memory (~70k fewer pages faulted
    // in by the reads of a 1M-event restore).
    const spare: ArrayBuffer[] = [];
    let readsReused = 0;
    const into = (): GetOptions => {
      const ab = spare.pop();
      if (ab === undefined) return {};
      readsReused += 1;
      return { into: ab };
    };
    // Sources in plan order. One covered by the sources before it is never fetched (the opener would skip it).
    const sources: { spec: SourceSpec; fetch: () => Promise<Buffer> }[] = [];
    let covered = 0;
    const add = (spec: SourceSpec, fetch: () => Promise<Buffer>): void => {
      if (spec.last <= covered) return;
      covered = spec.last;
      sources.push({ spec, fetch });
    };
    for (const step of plan.steps) {
      if (step.kind === 'backup') {
        const m = step.manifest;
        // Each file's size and SHA-256 are checked by the codec, beside its decompressing. (On
        // this thread, as they arrived, they cost the import ~18 ms a file of 50k events: once the
        // worker found its sources queued, the import became the slower of the two, and a 1M
        // restore was ~0.4 s faster with the check back in the codec, 5 of 6 interleaved pairs.)
        for (const f of m.files) if (f.kind === 'events') add({ name: f.key, stepFirst: step.first_seq, last: f.last_seq ?? 0, file: eventsFileExpect(m, f) }, () => getFile(o.store, f.key, 'backup file', into()));
      } else {
        const sg = step.segment;
        add({ name: sg.key, stepFirst: step.first_seq, last: sg.last_seq, segment: { key: sg.key, first_seq: sg.first_seq, last_seq: sg.last_seq } }, () => getFile(o.store, sg.key, 'segment', into()));
      }
    }
    // The checkpoint (if it can be a prefix of what is restored) is fetched, checked and written
    // into the staging dir while the events import; whether it is kept is decided after it.
    const cp = plan.checkpoint;
    copyingCheckpoint = cp !== null && (T !== null || cp.seq <= plan.toSeq) ? copyCheckpoint(cp, staging, o) : undefined;
    copyingCheckpoint?.catch(() => undefined); // awaited (or deliberately ignored) after the import
    // Sources fetched and handed to the codec ahead of the one being imported: a worker then has
    // up to three queued while this thread imports one (with two, it sometimes caught up and
    // idled while this thread was busy with LMDB; each source in flight holds its stored and
    // its decompressed bytes, ~60 MB for 50k events).
    const ahead = runner.inWorker ? 3 : 1;
    const opened: { p: Promise<OpenedSource>; ready: boolean }[] = [];
    // Live vectors, counted here from the kinds the codec read (with keepState its state counts them).
    const live = o.keepState === true ? undefined : new LiveCounter();
    let next = 0;
    while (!reachedT && (opened.length > 0 || next < sources.length)) {
      while (opened.length <= ahead && next < sources.length) {
        const src = sources[next++]!;
        const stored = src.fetch();
        stored.catch(() => undefined); // handed to the opener, which decides whether it matters
        const p = runner.open(src.spec, stored);
        const entry = { p, ready: false };
        p.then(
          () => (entry.ready = true),
          () => (entry.ready = true),
        ); // observed when awaited; never an unhandled rejection if we stop early
        opened.push(entry);
      }
      const first = opened.shift()!;
      // Time the import's thread would wait: it writes deferred by-doc entries meanwhile.
      if (!first.ready) {
        const tDoc = performance.now();
        log.flushDocIndex(DOC_FLUSH_MIN);
        phases.docIndex += performance.now() - tDoc;
      }
      const t0 = performance.now();
      const r = await first.p;
      phases.waitOpen += performance.now() - t0;
      if (r.spent !== undefined && spare.length < SPARE_READS) spare.push(r.spent);
      o.onProgress?.({ phase: 'download', done: r.seq, total });
      const idx = checkedIndex(r);
      if (live !== undefined) {
        if (r.kinds.length !== r.count || r.dims.length !== r.count) throw new BackupError('BACKUP_CORRUPT', `an opened source has ${r.count} records but event kinds for ${r.kinds.length}`, {});
        live.applyIndexed(r.kinds, r.dims, idx.collections, idx.docIds);
      }
      // Whole frames go into an import (written as they are); an import takes frames until it holds IMPORT_BATCH records.
      // The import reads the records out of the frames (and fails on a frame whose header's count
      // is not what it holds); here, the counts tell which index fields go with which frame.
      let i = 0;
      if (r.count > 0 && runner.inWorker) held.push({ last: r.seq, frames: r.frames });
      for (const frame of r.frames) {
        const n = frameRecordCount(frame);
        if (n === 0) throw new BackupError('BACKUP_CORRUPT', 'an opened source holds a frame without records', {});
        if (i + n > r.count) throw new BackupError('BACKUP_CORRUPT', `an opened source has ${r.count} records but its frames hold more`, {});
        appendIndex(idx, i, i + n, collections, docIds);
        i += n;
        pending += n;
        pendingLast = r.seq - r.count + i; // a source's kept records are consecutive and end at r.seq
        pendingFrames.push(frame);
        if (pending >= IMPORT_BATCH) {
          cur = r.seq; // progress only
          await flush();
        }
      }
      if (i !== r.count) throw new BackupError('BACKUP_CORRUPT', `an opened source has ${r.count} records but its frames hold ${i}`, {});
      cur = r.seq;
      curHash = r.hash;
      headTs = r.ts;
      reachedT = r.reachedT;
    }
    await flush();
    if (importing !== undefined) await imported(importing);
    const tDoc = performance.now();
    log.flushDocIndex();
    phases.docIndex += performance.now() - tDoc;
    const fin = await runner.finish();
    phases.open = fin.busyMs;
    const vectorCount = Object.values(live?.counts() ?? fin.counts).reduce((a, b) => a + b, 0);
    const state = runner.state;
    await runner.close();
    runner = undefined;
    if (T !== null && !reachedT && plan.gapAfterSeq !== null && cur <= plan.gapAfterSeq) throw chainGapError(cur, T);
    if (cur === 0) throw new BackupError('BACKUP_NOT_FOUND', 'the plan restores no events', {});
    const head = log.head();
    if (head.seq !== cur || toHex(head.hash) !== curHash) throw new BackupError('BACKUP_VERIFY_FAILED', `the new log's head is ${head.seq}, expected ${cur}`, { seq: head.seq });
    if (plan.expected !== null) {
      const x = plan.expected;
      if (cur !== x.to_seq) throw new BackupError('BACKUP_VERIFY_FAILED', `restored ${cur} events, backup ${x.backup_id} has ${x.to_seq}`, { seq: cur, expected: x.to_seq });
      if (curHash !== x.head_hash) throw new BackupError('BACKUP_VERIFY_FAILED', `restored head hash ${curHash} differs from the manifest's ${x.head_hash}`, {});
      if (vectorCount !== x.vector_count) throw new BackupError('BACKUP_VERIFY_FAILED', `restored ${vectorCount} vectors, the manifest says ${x.vector_count}`, {});
    }
    // The checkpoint (copied beside the import; kept only if it describes a prefix of what was restored).
    const tCheckpoint = performance.now();
    let checkpointSeq: number | null = null;
    if (copyingCheckpoint !== undefined && plan.checkpoint !== null) {
      if (plan.checkpoint.seq <= cur) {
        try {
          await copyingCheckpoint;
          checkpointSeq = plan.checkpoint.seq;
        } catch (err) {
          // Derived from the events, which all checked: a damaged one costs the server a rebuild of its index, never the restore.
          if (!isBackupError(err) || !UNUSABLE_CHECKPOINT.has(err.code)) throw err;
          const why = err;
          await fsp.rm(path.join(staging, 'checkpoints'), { recursive: true, force: true });
          o.logger?.('warn', `the backup's checkpoint (seq ${plan.checkpoint.seq}) cannot be used: ${why.message}. Restored without it: every event is there, and the server rebuilds its index from the log at its first start (slower); \`kyrodb backup verify\` reports the damaged file`, { code: why.code, checkpointSeq: plan.checkpoint.seq });
        }
      } else {
        await copyingCheckpoint.catch(() => undefined); // not used: its faults do not matter
        await fsp.rm(path.join(staging, 'checkpoints'), { recursive: true, force: true });
      }
    }
    phases.checkpoint = performance.now() - tCheckpoint;
    const tSwap = performance.now();
    await log.close();
    log = undefined;
    // Swap in: previous → .pre-restore-<ts>, staging → target; roll back if the new dir does not
    // open. A marker written first tells `recoverInterruptedRestore` how to undo a swap cut short
    // between the two renames (the process killed, the machine stopped), which leaves no data dir.
    let previousDir: string | null = null;
    const swap = swapMarkerPath(dataDir);
    const stagingDir = staging;
    unregisterStaging(); // from here an interruption is a swap cut short: its marker undoes it
    if (fs.existsSync(dataDir)) {
      if (writerRunning(dataDir)) throw new BackupError('BACKUP_TARGET_IN_USE', `data dir ${dataDir} was opened for writing during the restore`, { dataDir });
      // Checked again: what the target holds now may have come since the start (a server that
      // ran there meanwhile and acknowledged writes, another restore that finished first).
      const now = await targetKind(dataDir);
      if (now.kind === 'other') throw new BackupError('BACKUP_TARGET_NOT_DATA_DIR', `${dataDir} is no longer a KyroDB data dir (it ${now.why}, since the restore started); it was not replaced`, { dataDir });
      if (now.kind === 'data' && o.force !== true) throw new BackupError('BACKUP_TARGET_EXISTS', `data dir ${dataDir} was created during the restore (a server or another restore wrote there) and was not replaced; pass --force (the option force) to replace it`, { dataDir });
      previousDir = `${dataDir}.pre-restore-${stamp()}`;
      await writeSwapMarker(swap, { previous: previousDir, staging: stagingDir, pid: process.pid, expect: { seq: cur, hash: curHash }, ...(o.keepPrevious === true ? { keep: true } : {}) });
      try {
        await fsp.rename(dataDir, previousDir);
      } catch (err) {
        await fsp.rm(swap, { force: true }); // nothing was moved: no swap to undo
        throw err;
      }
    }
    try {
      if (o.failpoints?.active === true) await o.failpoints.hit('restore.swap');
      await fsp.rename(staging, dataDir);
      staging = undefined;
      await fsyncDir(path.dirname(dataDir));
      const h = await headOf(dataDir);
      if (h.seq !== cur || h.hash !== curHash) throw new BackupError('BACKUP_VERIFY_FAILED', `the swapped-in data dir has head ${h.seq}, expected ${cur}`, {});
      // Only now: a rollback after a failed check is a swap too, and may be cut short as well.
      if (previousDir === null || o.keepPrevious === true) await fsp.rm(swap, { force: true });
    } catch (err) {
      if (staging === undefined) await fsp.rm(dataDir, { recursive: true, force: true });
      if (previousDir !== null) {
        try {
          await fsp.rename(previousDir, dataDir);
        } catch (back) {
          // Another process made the path meanwhile (the marker stays: the next restore or serve names the kept dir).
          throw new BackupError('BACKUP_TARGET_IN_USE', `the restore failed (${err instanceof Error ? err.message : String(err)}), and the data dir it had moved aside could not be put back: ${dataDir} was made meanwhile by another process (${(back as NodeJS.ErrnoException).code ?? String(back)}). The previous data dir is kept at ${previousDir}`, { dataDir, previous: previousDir });
        }
      }
      await fsp.rm(swap, { force: true });
      throw err;
    }
    if (previousDir !== null && o.keepPrevious !== true) {
      // The new data dir is in place and checked. The marker stays while the previous one is
      // deleted, marked verified: a process killed during that delete (seconds for a large dir)
      // had left the rest of it behind, unnamed; the next restore or `serve` removes it. Marked
      // outside the rollback above (a rollback must never meet a verified marker), and if it
      // cannot be marked, the previous dir is kept and named, as after a kill before this point.
      let marked = true;
      try {
        await writeSwapMarker(swap, { previous: previousDir, staging: stagingDir, pid: process.pid, verified: true });
      } catch (err) {
        marked = false;
        o.logger?.('warn', `the restore is done, but its swap marker could not be updated (${err instanceof Error ? err.message : String(err)}): the previous data dir is kept at ${previousDir}; remove it when it is no longer needed`, { previous: previousDir });
      }
      if (marked) {
        if (o.failpoints?.active === true) await o.failpoints.hit('restore.cleanup');
        await fsp.rm(previousDir, { recursive: true, force: true });
        previousDir = null;
        await fsp.rm(swap, { force: true });
      }
    }
    phases.swap = performance.now() - tSwap;
    metrics.restoreSuccess.inc();
    if (T !== null) metrics.pitrSuccess.inc();
    const durationMs = performance.now() - started;
    metrics.restoreDuration.observe(durationMs / 1000);
    return {
      dataDir,
      exact: true,
      backupId: plan.expected?.backup_id ?? null,
      seq: cur,
      headHash: curHash,
      headTs,
      events: cur,
      vectorCount,
      pointInTime: T,
      checkpointSeq,
      previousDir,
      durationMs,
      plan: describePlan(plan),
      spaceNeededBytes: space.needed,
      phasesMs: { ...phases, total: durationMs },
      reused: { bodies: fin.bodiesReused, reads: readsReused },
      ...(o.keepState === true && state !== undefined ? { state } : {}),
    };
  } catch (err) {
    metrics.restoreFailure.inc();
    if (runner !== undefined) await runner.close().catch(() => undefined);
    await copyingCheckpoint?.catch(() => undefined); // it writes into the staging dir: let it finish before removing that
    if (log !== undefined) await log.close().catch(() => undefined);
    // Told while the staging dir still holds what filled the disk.
    const full = staging !== undefined ? noSpaceError(err, path.dirname(dataDir), `the restore into ${dataDir} ran out of space at seq ${reached} of ${plan.toSeq}`, `${dataDir} is untouched and the partial restore was removed`, { seq: reached }) : undefined;
    if (staging !== undefined) await fsp.rm(staging, { recursive: true, force: true });
    throw full ?? err;
  } finally {
    unregisterStaging?.();
  }
}

/**
 * Appends the index fields of records [from, to) of an opened source (`checkedIndex`) to an
 * import's. A loop of its own: inside executeRestore, a million turns made V8 compile the whole
 * restore function again each time its loop grew hot (on-stack replacement, ~60 ms a compile,
 * four of them).
 */
function appendIndex(idx: { collections: string[]; docIds: string[] }, from: number, to: number, collections: string[], docIds: string[]): void {
  for (let j = from; j < to; j++) {
    collections.push(idx.collections[j]!);
    docIds.push(idx.docIds[j]!);
  }
}

/**
 * At least the bytes a restore of `plan` writes into its data dir: every restored event's record
 * goes to the write-ahead segments and to LMDB (so twice its bytes; LMDB's pages and indexes add
 * ~7% more, 1M 128-d events: 628 MB of segments, 716 MB of LMDB), plus the checkpoint's files.
 * A lower bound, so that it never refuses a restore that would fit: an events file counts its
 * records (what it holds less its framing) only where all of it is restored; a file of a backup
 * written before `raw_size` was recorded counts its stored size (a compressed one counts short);
 * a point-in-time restore counts only backups that end at or before T (continuous segments
 * count nothing: which of them end before T is only known once they are read).
 */
export function restoreSpaceNeeded(plan: RestorePlan): number {
  const T = plan.pointInTime;
  let bytes = 0;
  let covered = 0;
  for (const step of plan.steps) {
    if (step.kind !== 'backup') {
      covered = Math.max(covered, step.last_seq);
      continue;
    }
    const whole = T === null || step.manifest.to_ts <= T;
    for (const f of step.manifest.files) {
      if (f.kind !== 'events' || f.first_seq === undefined || f.last_seq === undefined) continue;
      if (whole && f.first_seq > covered && f.last_seq <= plan.toSeq) {
        const events = f.last_seq - f.first_seq + 1;
        // A segment's header and each entry's 12 bytes of framing are not written as they are.
        bytes += 2 * Math.max(0, (f.raw_size ?? f.size) - SEGMENT_HEADER_MAX_BYTES - 12 * events);
      }
      covered = Math.max(covered, f.last_seq);
    }
  }
  const cp = plan.checkpoint;
  if (cp !== null && T === null && cp.seq <= plan.toSeq) for (const f of cp.files) bytes += f.raw_size ?? f.size;
  return bytes;
}

/**
 * BACKUP_NO_SPACE when the file system the restore writes into has less free space than
 * `restoreSpaceNeeded(plan)`; else what it needs and what is free (undefined: cannot be told).
 */
function checkSpace(plan: RestorePlan, dataDir: string): { needed: number; free: number | undefined } {
  const needed = restoreSpaceNeeded(plan);
  const dir = path.dirname(dataDir);
  const free = freeBytes(dir);
  if (free === undefined || free >= needed) return { needed, free };
  throw new BackupError(
    'BACKUP_NO_SPACE',
    `restoring into ${dataDir} needs at least ${formatBytes(needed)} free in ${dir} (every event goes into the write-ahead segments and into LMDB), but ${formatBytes(free)} is free; nothing was changed`,
    { dir, neededBytes: needed, freeBytes: free },
  );
}

/** Where a restore into `dataDir` notes the swap it is making (beside the data dir). */
function swapMarkerPath(dataDir: string): string {
  return `${dataDir}.restore-swap.json`;
}

interface SwapMarker {
  /** Where the data dir goes while the restored one takes its place. */
  previous: string;
  staging: string;
  pid: number;
  /** The restored data dir is in place and checked: `previous` is being deleted. */
  verified?: boolean;
  /** The head the restored data dir has (hash hex): what the check after the renames compares. */
  expect?: { seq: number; hash: string };
  /** The previous data dir is kept (`keepPrevious`). */
  keep?: boolean;
}

/** The head (hash hex) of the log in `dir`, opened read-only. */
async function headOf(dir: string): Promise<{ seq: number; hash: string }> {
  const log = await EventLog.open({ dir, readOnly: true, logger: () => undefined });
  try {
    const h = log.head();
    return { seq: h.seq, hash: toHex(h.hash) };
  } finally {
    await log.close();
  }
}

/** Whether the log in `dir` opens read-only with the head `expect` names (false for none, or a log that does not open): the check a swap makes after its renames. */
async function holdsHead(dir: string, expect: SwapMarker['expect']): Promise<boolean> {
  if (expect === undefined || !Number.isInteger(expect.seq) || typeof expect.hash !== 'string') return false;
  const h = await headOf(dir).catch(() => undefined);
  return h?.seq === expect.seq && h.hash === expect.hash;
}

/**
 * Writes the swap marker durably (file and directory synced) before the first rename; written
 * again (`verified`) by replacing it whole, so that it is never read torn once a rename is done.
 */
async function writeSwapMarker(file: string, m: SwapMarker): Promise<void> {
  const tmp = `${file}.tmp`;
  const fh = await fsp.open(tmp, 'w');
  try {
    await fh.writeFile(JSON.stringify(m));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, file);
  await fsyncDir(path.dirname(file));
}

/**
 * For a command that finds no data dir at `dataDir`: why, if a restore's swap explains it (its
 * marker is there and the data dir it moved aside exists), said as the end of a sentence
 * ("; a restore … moves it back"); undefined otherwise. Reads only: the commands that ask are
 * readers, and the data dir is put back by the next restore or `serve` (`recoverInterruptedRestore`).
 */
export function interruptedRestoreNote(dataDir: string): string | undefined {
  dataDir = path.resolve(dataDir);
  const swap = swapMarkerPath(dataDir);
  let marker: SwapMarker;
  try {
    marker = JSON.parse(fs.readFileSync(swap, 'utf8')) as SwapMarker;
  } catch {
    return undefined;
  }
  if (typeof marker.previous !== 'string' || fs.existsSync(dataDir)) return undefined;
  const previous = path.resolve(marker.previous);
  if (path.dirname(previous) !== path.dirname(dataDir) || !fs.existsSync(previous)) return undefined;
  if (marker.pid !== process.pid && processAlive(marker.pid)) return `; a restore into it (pid ${marker.pid}) is swapping it right now: try again in a moment`;
  return `; a restore into it was stopped while swapping data dirs (${swap} records it), and the data dir is at ${previous}: \`kyrodb restore\` or \`kyrodb serve\` with this data dir moves it back`;
}

/** What `recoverInterruptedRestore` did. */
export interface RestoreRecovery {
  /** The data dir a swap cut short had moved aside, moved back (null: none). */
  movedBack: string | null;
  /** Staging dirs of restores whose process is gone, removed. */
  removedStaging: string[];
  /** What was left of a data dir a finished restore had replaced and was deleting (null: none). */
  removedPrevious: string | null;
  /**
   * The pid of a restore that is swapping the data dir in right now (its marker not yet
   * verified): the path may be missing or about to be replaced. Null: none.
   */
  swappingBy: number | null;
}

/**
 * Tidies what a restore into `dataDir` left when its process was killed or its machine stopped:
 * - a swap cut short between its two renames (its marker names the data dir it moved aside, and
 *   `dataDir` is missing): the data dir is moved back, as any failed restore leaves it;
 * - a swap that finished and was checked (its marker says `verified`), stopped while deleting
 *   the data dir it replaced: the rest of that dir is removed;
 * - a swap that finished but whose marker remained unverified: the marker goes (a data dir it
 *   moved aside stays, and is named in the log: a restore point nothing else refers to);
 * - staging dirs (`<dataDir>.restore-staging-<ts>-<pid>`) of processes that are gone: removed
 *   (a killed 1M-event restore leaves ~1.3 GB).
 * Leaves everything to a restore whose process is still running (`swappingBy` names one that
 * is swapping dirs). Run by every restore before it starts, and by `kyrodb serve` before it opens
 * the data dir (which it refuses to open while a restore swaps it).
 */
export async function recoverInterruptedRestore(dataDir: string, logger?: ExecuteRestoreOptions['logger']): Promise<RestoreRecovery> {
  dataDir = path.resolve(dataDir);
  const parent = path.dirname(dataDir);
  const out: RestoreRecovery = { movedBack: null, removedStaging: [], removedPrevious: null, swappingBy: null };
  const swap = swapMarkerPath(dataDir);
  let marker: SwapMarker | undefined;
  try {
    marker = JSON.parse(await fsp.readFile(swap, 'utf8')) as SwapMarker;
  } catch (err) {
    // Absent, or torn: the marker is synced before the first rename, so that rename never happened.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') await fsp.rm(swap, { force: true });
  }
  if (marker !== undefined && marker.pid !== process.pid && processAlive(marker.pid)) {
    // Swapping right now; once verified, it only deletes the dir it replaced, beside the path.
    if (marker.verified !== true) out.swappingBy = marker.pid;
    return out;
  }
  await fsp.rm(`${swap}.tmp`, { force: true }); // a marker's rewrite cut short (the marker itself is whole, or absent)
  if (marker !== undefined) {
    const previous = typeof marker.previous === 'string' && path.dirname(path.resolve(marker.previous)) === parent ? path.resolve(marker.previous) : undefined;
    if (previous !== undefined && fs.existsSync(previous)) {
      if (!fs.existsSync(dataDir)) {
        await fsp.rename(previous, dataDir);
        out.movedBack = previous;
        logger?.('warn', `a restore into ${dataDir} was stopped in the middle of swapping data dirs: the data dir it had moved aside is back`, { from: previous });
      } else if (marker.verified === true) {
        // The restored dir was in place and checked; the restore was deleting the one it replaced.
        await fsp.rm(previous, { recursive: true, force: true });
        out.removedPrevious = previous;
        logger?.('info', `a restore into ${dataDir} was stopped while deleting the data dir it replaced: the rest of it is removed`, { previous });
      } else if (marker.keep !== true && !fs.existsSync(path.resolve(String(marker.staging))) && (await holdsHead(dataDir, marker.expect))) {
        // Stopped after both renames, before its check: the check, done now, passes (a kill there left a full copy of the old dir for good).
        await fsp.rm(previous, { recursive: true, force: true });
        out.removedPrevious = previous;
        logger?.('info', `a restore into ${dataDir} was stopped after swapping data dirs, before checking the new one: it checks (head ${marker.expect!.seq}), and the data dir it replaced is removed`, { previous });
      } else {
        logger?.('warn', `a restore into ${dataDir} was stopped after swapping data dirs: the previous data dir is kept at ${previous}; remove it when it is no longer needed`, { previous });
      }
    }
    await fsp.rm(swap, { force: true });
    await fsyncDir(parent);
  }
  const prefix = `${path.basename(dataDir)}.restore-staging-`;
  let names: string[];
  try {
    names = await fsp.readdir(parent);
  } catch {
    return out;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(/-(\d+)$/.exec(name)?.[1]);
    if (!Number.isInteger(pid) || pid === process.pid || processAlive(pid)) continue;
    await fsp.rm(path.join(parent, name), { recursive: true, force: true });
    out.removedStaging.push(name);
  }
  if (out.removedStaging.length > 0) logger?.('info', `removed ${out.removedStaging.length} staging dir(s) of restores into ${dataDir} that were stopped part way`, { dirs: out.removedStaging });
  return out;
}

/** Fetches, checks (size, SHA-256, decryption) and writes a backup's checkpoint files into `<dataDir>/checkpoints/<name>/`. */
async function copyCheckpoint(cp: NonNullable<RestorePlan['checkpoint']>, dataDir: string, o: ExecuteRestoreOptions): Promise<void> {
  const cpName = cp.manifest.checkpoint_dir ?? String(cp.seq).padStart(16, '0');
  if (!/^\d+$/.test(cpName)) throw new BackupError('BACKUP_MANIFEST_INVALID', `checkpoint dir name ${JSON.stringify(cpName)} is not a seq`, { backupId: cp.backup_id });
  const dir = path.join(dataDir, 'checkpoints', cpName);
  // Bytes written so far of each path: a file stored in parts gets them in order, each where the one before it ended.
  const written = new Map<string, number>();
  for (const f of cp.files) {
    const body = decodeObject(await fetchChecked(o.store, f), o.encryption, f.key, { encrypted: cp.manifest.encryption !== null, compression: cp.manifest.compression });
    const dest = path.join(dir, ...(f.path ?? '').split('/'));
    if (!dest.startsWith(dir + path.sep)) throw new BackupError('BACKUP_CORRUPT', `checkpoint file path ${f.path} escapes the checkpoint dir`, { key: f.key });
    const at = f.offset ?? 0;
    if (at !== (written.get(dest) ?? 0)) throw new BackupError('BACKUP_CORRUPT', `checkpoint file ${f.path} part ${f.key} starts at byte ${at}, but its parts before it end at ${written.get(dest) ?? 0}`, { key: f.key });
    await fsp.mkdir(path.dirname(dest), { recursive: true });
    if (at === 0) await fsp.writeFile(dest, body);
    else await fsp.appendFile(dest, body);
    written.set(dest, at + body.length);
  }
}

/** Options of `restore`: the target plus the executor's options. */
export interface RestoreOptions extends Omit<ExecuteRestoreOptions, 'keepState'>, RestoreTarget {
  /** Only plan and validate (every manifest/segment the plan needs exists); touch nothing. */
  dryRun?: boolean;
}

/**
 * Convenience: loads manifests and segments, plans, and executes (or, with `dryRun`, checks
 * that every file the plan needs is in the store with the right size and returns the plan
 * text with `seq` = the planned seq, touching nothing).
 */
export async function restore(o: RestoreOptions): Promise<RestoreReport> {
  const { manifests, incomplete, unreadable } = await loadManifests(o.store);
  if (o.backupId !== undefined && incomplete.includes(o.backupId) && !manifests.some((m) => m.backup_id === o.backupId)) {
    throw new BackupError('BACKUP_MANIFEST_MISSING', `backup ${o.backupId} has no manifest: it never completed`, { backupId: o.backupId });
  }
  // The backup asked for is the damaged one: say so. Any other plan is made from the readable
  // ones; a chain that needed a damaged one has a gap there (BACKUP_CHAIN_GAP).
  refuseUnreadable(unreadable, o.backupId);
  warnUnreadable(unreadable, o.logger, 'the restore is planned without it');
  const segments = await loadSegments(o.store);
  const target: RestoreTarget = {};
  if (o.backupId !== undefined) target.backupId = o.backupId;
  if (o.tag !== undefined) target.tag = o.tag;
  if (o.pointInTime !== undefined) target.pointInTime = o.pointInTime;
  if ((o.backupId === undefined || o.backupId === LATEST) && o.tag === undefined && o.pointInTime === undefined && manifests.length === 0 && o.dryRun !== true) {
    throw new BackupError('BACKUP_NOT_FOUND', `no backups in ${o.store.url}`);
  }
  const plan = planRestore({ manifests, segments }, target);
  if (o.dryRun === true) {
    for (const s of plan.steps) {
      if (s.kind === 'backup') {
        // The keys the restore will need (the manifest names its key; a segment's first bytes do).
        if (s.manifest.encryption !== null) keyFor(`backup ${s.manifest.backup_id}`, s.manifest.encryption.key_id, o.encryption);
        for (const f of s.manifest.files) {
          const h = await o.store.head(f.key);
          if (h === undefined) throw new BackupError('BACKUP_FILE_MISSING', `backup file ${f.key} is missing`, { key: f.key });
          if (h.size !== f.size) throw new BackupError('BACKUP_CHECKSUM_MISMATCH', `${f.key} has ${h.size} bytes, the manifest says ${f.size}`, { key: f.key });
        }
      } else {
        // Its first bytes (BACKUP_FILE_MISSING when it is gone) name its key.
        const w = objectWrapping(await readObjectPrefix(o.store, s.segment.key, WRAPPING_HEADER_BYTES));
        if (w.encrypted) keyFor(s.segment.key, w.keyId, o.encryption);
      }
    }
    const cpEnc = plan.checkpoint?.manifest.encryption;
    if (cpEnc != null) keyFor(`backup ${plan.checkpoint!.backup_id} (its checkpoint)`, cpEnc.key_id, o.encryption);
    // A chain that stops at a gap restores T only if its last event is after T (else events up to
    // T may be in the gap): the last step's ts says so (a segment's, from its header).
    if (plan.pointInTime !== null && plan.gapAfterSeq !== null) {
      const last = plan.steps[plan.steps.length - 1]!;
      const lastTs = last.kind === 'backup' ? last.manifest.to_ts : (await segmentHeaderOf(o.store, last.segment, o.encryption)).last_ts;
      if (lastTs <= plan.pointInTime) throw chainGapError(plan.gapAfterSeq, plan.pointInTime);
    }
    const dataDir = realish(o.dataDir);
    // What the restore itself would refuse, the dry run refuses too.
    await checkTarget(dataDir, o.store, o.force === true);
    const { needed, free } = checkSpace(plan, dataDir);
    // A point in time inside a backup: how much of it is restored is known once its files are read.
    const cut = plan.pointInTime !== null && plan.steps.some((st) => st.kind === 'backup' && st.manifest.to_ts > plan.pointInTime!);
    const space = `\n  space: needs at least ${formatBytes(needed)} in ${path.dirname(dataDir)}${cut ? ', more for the events read from the backup the point in time falls in' : ''}${free === undefined ? '' : ` (${formatBytes(free)} free)`}`;
    // A point-in-time plan's seq is where it stops reading at the latest: the events with ts ≤ T
    // and the vectors they leave are known only once the files are read (`exact: false`).
    return { dataDir, exact: plan.pointInTime === null, backupId: plan.expected?.backup_id ?? null, seq: plan.toSeq, headHash: plan.expected?.head_hash ?? '', headTs: 0, events: plan.toSeq, vectorCount: plan.pointInTime === null ? (plan.expected?.vector_count ?? 0) : null, pointInTime: plan.pointInTime, checkpointSeq: plan.checkpoint?.seq ?? null, previousDir: null, durationMs: 0, plan: describePlan(plan) + space, spaceNeededBytes: needed, phasesMs: { open: 0, waitOpen: 0, import: 0, docIndex: 0, checkpoint: 0, swap: 0, total: 0 }, reused: { bodies: 0, reads: 0 } };
  }
  // The backup the chain ends at is claimed while it is read, as an incremental claims its parent:
  // retention keeps a claimed backup and every one it builds on (a prune beside a long restore
  // deleted its files mid-way: BACKUP_FILE_MISSING, exit 5). Best effort: a store this process
  // may only read is restored from all the same.
  const newest = [...plan.steps].reverse().find((st) => st.kind === 'backup');
  const claim = newest?.kind === 'backup' ? parentClaimKey(newest.manifest.backup_id, timedId(Date.now(), 'restore')) : undefined;
  if (claim !== undefined) {
    try {
      await o.store.put(claim, Buffer.from(JSON.stringify({ restore: true, dataDir: o.dataDir, claimed: new Date().toISOString(), host: os.hostname(), pid: process.pid })));
    } catch (err) {
      o.logger?.('warn', `could not claim the backups this restore reads (${err instanceof Error ? err.message : String(err)}): a prune beside it could delete them`, {});
    }
  }
  try {
    return await executeRestore(plan, o);
  } finally {
    if (claim !== undefined) await o.store.delete(claim).catch(() => undefined); // left behind, a prune removes it a day on
  }
}

/** A point-in-time restore whose chain stops at `seq`, at a gap, before T's events end. */
function chainGapError(seq: number, T: number): BackupError {
  return new BackupError('BACKUP_CHAIN_GAP', `the chain stops at seq ${seq} with a gap before later data; cannot restore to ${microsToIso(T)} (${T} µs)`, { seq, pointInTime: T });
}
