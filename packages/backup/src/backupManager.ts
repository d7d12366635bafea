import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { EventLog, GENESIS_HASH, decodeRecord, makeScratchDir, processAlive, splitRun, toHex, segmentsChain, walDirOf, type IndexFields, type RecordRun } from '@kyrodb/log';
import { Registry } from 'prom-client';
import { BackupError, isBackupError, type BackupErrorCode } from './errors.js';
import { HISTORY_CLAIM_PREFIX, claimHistory, historyClaimSeq } from './historyClaims.js';
import { BACKUP_FORMAT_VERSION, backupIdTime, backupPrefix, compareNewestFirst, createdMs, manifestKey, newBackupId, padSeq, type BackupFile, type BackupManifest } from './manifest.js';
import { backupMetrics, type BackupMetrics } from './metrics.js';
import { encodeObject, sha256Hex, type Compression, type EncryptionKey } from './objectCodec.js';
import { checkChain, fetchChecked, fetchEventsFile, loadManifests, loadSegments, refuseUnreadable, warnUnreadable } from './pieces.js';
import { defaultBackupLogger, type BackupLogger, type ProgressFn } from './progress.js';
import { executeRestore } from './restore.js';
import { LATEST, backupChain, findBackup, planRestore } from './restorePlan.js';
import { INCOMPLETE_AFTER_MS, planRetention, type RetentionPlan, type RetentionPolicy } from './retention.js';
import { checkLogHoldsStore } from './storeHistory.js';
import { PARENT_CLAIMS_PREFIX, TAG_CLAIMS_PREFIX, claimState, parentClaimKey, parseParentClaims, parseTagClaims, tagClaimKey, tagClaimPrefix, tagHolder } from './tagClaims.js';
import { SegmentBuilder } from './segment.js';
import { LiveCounter } from './liveCounter.js';
import { IncrementalCounter } from './state.js';
import { exactTopK } from './topK.js';
import { openCodecRunner, useCodecWorker, type CodecRunner, type CodecThread } from './codecRunner.js';
import { abortableStore, type AbortableStore } from './stores/abortable.js';
import type { ObjectStore } from './stores/objectStore.js';

/** Options of BackupManager. */
export interface BackupManagerOptions {
  /** The log to back up (read-only is fine; a server may write it meanwhile). */
  log: EventLog;
  /** The data dir (checkpoints are read from `<dataDir>/checkpoints/<seq>/`). */
  dataDir: string;
  store: ObjectStore;
  /** Registry for the backup metrics. Default: a private registry. */
  registry?: Registry;
  /** Compression of files. Default 'zstd'. */
  compression?: Compression;
  /** Encrypt files with this AES-256-GCM key (see `loadKey`). Default: none. */
  encryption?: EncryptionKey;
  /** Events per events file. Default 50 000. */
  eventsPerFile?: number;
  /**
   * Largest part of a checkpoint file stored as one object, bytes. Default 256 MiB. A larger file
   * (a collection's vectors or index: 350k × 1536-d is 2.1 GB) is stored as consecutive parts,
   * each read, compressed, encrypted and uploaded on its own: read whole, a file over 2 GiB failed
   * the full backup (Node reads at most 2 GiB at once), and one under it held it twice in memory.
   */
  checkpointPartBytes?: number;
  /** Where a full backup counts, compresses, encrypts and hashes its files (see CodecThread). Default 'auto'. */
  codecThread?: CodecThread;
  onProgress?: ProgressFn;
  logger?: BackupLogger;
  /** Time source for `created`, ms. Default Date.now. */
  now?: () => number;
}

/**
 * Events files a full backup keeps sealing and uploading beyond the one it reads (the codec in a
 * worker; inline, one): their uploads overlap. Each holds its raw and sealed bytes (~60 MB at
 * 50k events of 128-d vectors).
 */
const WRITE_AHEAD_FILES = 3;
/** How many times an incremental chooses its parent again when a prune deleted the one it chose. */
const PARENT_ATTEMPTS = 3;
/** How long a backup stopped by `abort` tries to remove what it stored before it lets the shutdown go on (see `discard`). */
export const DISCARD_AFTER_ABORT_MS = 2000;

/** Defaults of BackupManagerOptions. */
export const defaultBackupManagerOptions: Readonly<{ compression: Compression; eventsPerFile: number; checkpointPartBytes: number }> = Object.freeze({ compression: 'zstd', eventsPerFile: 50_000, checkpointPartBytes: 256 * 2 ** 20 });

/** What `verify` found. `ok: false` carries the error code naming the problem. */
export interface BackupVerifyReport {
  ok: boolean;
  backupId: string;
  /** The chain checked, base full first. */
  chain: string[];
  files: number;
  events: number;
  code?: BackupErrorCode;
  message?: string;
  /** With `deep`: what the scratch restore found. */
  deep?: { events: number; headHash: string; vectorCount: number; segmentEvents: number; probes: number; probeHits: number; indexProbeHits: number };
}

/** What `prune` did (or would do, with dryRun). */
export interface PruneResult extends RetentionPlan {
  dryRun: boolean;
  /** Objects removed from the store: each deleted backup's manifest and files, segments, an incomplete backup's files, stale tag claims (0 in a dry run). */
  deletedObjects: number;
  /** Temp files of dead processes' puts removed from a local store (in a dry run: that would be). */
  sweptTempFiles: number;
}

/** `len` bytes of an open file from `offset` (a file that ends sooner changed under the backup: ENOENT-like, see writeCheckpoint). */
async function readAt(fh: fsp.FileHandle, offset: number, len: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(len);
  for (let got = 0; got < len; ) {
    const { bytesRead } = await fh.read(buf, got, len - got, offset + got);
    if (bytesRead === 0) throw Object.assign(new Error(`checkpoint file ended at ${offset + got} bytes, ${len - got} bytes short`), { code: 'ENOENT' });
    got += bytesRead;
  }
  return buf;
}

/** How long a deep verify waits for the restored index to absorb one more event before it probes the index as it is. */
const INDEX_STALL_MS = 60_000;

/** Backup errors that refuse a request before anything is stored (or stop it at shutdown): not counted as failed backups. */
const REFUSED: ReadonlySet<BackupErrorCode> = new Set(['BACKUP_INVALID_ARGUMENT', 'BACKUP_NOT_FOUND', 'BACKUP_TAG_EXISTS', 'BACKUP_ABORTED']);
/** A request refused before anything was stored (REFUSED): not a failed backup. */
const isRefusal = (err: unknown): boolean => isBackupError(err) && REFUSED.has(err.code);

/** A tag: 1–128 of letters, digits and `. _ - : @ +`, starting with a letter or digit. */
export const TAG_RE = /^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$/;

/**
 * A new backup's tag names one restore point: BACKUP_INVALID_ARGUMENT unless it has TAG_RE's
 * shape and cannot be read as a backup id or `latest` (which `--backup-id`/`--tag` also take);
 * BACKUP_TAG_EXISTS if a backup in the store already has it.
 */
export function checkTag(tag: string | undefined, manifests: readonly BackupManifest[]): void {
  if (tag === undefined) return;
  if (!TAG_RE.test(tag)) throw new BackupError('BACKUP_INVALID_ARGUMENT', `tag ${JSON.stringify(tag)}: 1 to 128 letters, digits and . _ - : @ +, starting with a letter or digit`, { tag });
  if (tag === LATEST || backupIdTime(tag) !== undefined) throw new BackupError('BACKUP_INVALID_ARGUMENT', `tag ${JSON.stringify(tag)} would read as a backup id`, { tag });
  const holder = manifests.find((m) => m.tag === tag);
  if (holder !== undefined) throw new BackupError('BACKUP_TAG_EXISTS', `tag ${JSON.stringify(tag)} already names backup ${holder.backup_id}; a tag names one restore point`, { tag, backupId: holder.backup_id });
}

/** `parent`, then its parent, and so on, as far as `manifests` hold them. */
function ancestorsOf(manifests: readonly BackupManifest[], parent: BackupManifest): BackupManifest[] {
  const byId = new Map(manifests.map((m) => [m.backup_id, m]));
  const out: BackupManifest[] = [];
  for (let m: BackupManifest | undefined = parent; m !== undefined && !out.includes(m); m = m.parent === null ? undefined : byId.get(m.parent)) out.push(m);
  return out;
}

/**
 * Backups of this process (any manager, any store) whose tag claim is under way: a claim this
 * process made for a backup not in it is one whose backup failed (see `claimAbandoned`).
 */
const claimsInProcess = new Set<string>();

/**
 * Creates, lists, verifies and prunes backups of one log in one object store. A backup is a
 * prefix of the log from one snapshot (the head read at start; records are immutable once
 * committed) plus, for full backups, the newest checkpoint ≤ it; its manifest is written
 * last, so a backup interrupted at any point is never listed.
 */
export class BackupManager {
  private readonly o: BackupManagerOptions & typeof defaultBackupManagerOptions;
  private readonly metrics: BackupMetrics;
  private readonly logger: BackupLogger;
  private readonly now: () => number;
  /**
   * Where the last createFull/createIncremental spent its time, ms (for benchmarks): `read`
   * reading and framing the log, `seal` the codec's busy time (counting, compressing,
   * encrypting, hashing; beside the read when in a worker), `wait` the time the read waited for
   * sealing and uploads, `checkpoint` copying the checkpoint, `total` all of it.
   */
  lastPhasesMs = { read: 0, seal: 0, wait: 0, checkpoint: 0, total: 0 };
  /** Set by `abort`: running backups stop at once, new ones are refused (BACKUP_ABORTED). */
  private aborted = false;
  private abortReason = '';
  private readonly abortCtl = new AbortController();
  /** The options' store, every call of which ends with BACKUP_ABORTED once `abort` is called (see abortableStore). */
  private readonly store: AbortableStore;
  private backupsRunning = 0;
  /** Backups and prunes under way (`idle` waits for them). */
  private readonly running = new Set<Promise<unknown>>();
  /** Tags of backups under way, and the id of each: two at once may not take the same one. */
  private readonly tagsUnderWay = new Map<string, string>();
  /** Parent claims of incrementals under way: backup id → claim key (see tagClaims.ts). */
  private readonly parentClaimsUnderWay = new Map<string, string>();

  constructor(o: BackupManagerOptions) {
    this.o = { ...defaultBackupManagerOptions, ...o };
    this.metrics = backupMetrics(o.registry ?? new Registry());
    this.logger = o.logger ?? defaultBackupLogger;
    this.now = o.now ?? Date.now;
    this.store = abortableStore(this.o.store, this.abortCtl.signal, () => this.abortedError());
  }

  /** A full backup of events 1..head (+ newest checkpoint ≤ head). Tagged backups are never pruned. */
  async createFull(opts: { tag?: string; description?: string } = {}): Promise<BackupManifest> {
    return this.timed('full', async (id) => {
      const head = this.o.log.head();
      if (head.seq === 0) throw new BackupError('BACKUP_INVALID_ARGUMENT', 'the log is empty; nothing to back up');
      const { manifests, unreadable } = await loadManifests(this.store);
      warnUnreadable(unreadable, this.logger, 'its tag and history are not checked against it');
      await this.reserveTag(opts.tag, manifests, id);
      await checkLogHoldsStore(this.o.log, this.store, this.o.encryption, manifests);
      const runner = openCodecRunner({ kind: 'seal', options: { compression: this.o.compression, ...(this.o.encryption !== undefined ? { encryption: this.o.encryption } : {}) } }, useCodecWorker(this.o.codecThread, { kind: 'seal', events: head.seq }));
      let files: BackupFile[];
      // Live vectors are counted here, from the index fields each record's encoding reads anyway.
      const counter = new LiveCounter();
      try {
        files = await this.writeEvents(id, 1, head.seq, toHex(head.hash), runner, (f) => counter.applyLight(f));
        const fin = await runner.finish();
        this.lastPhasesMs.seal = fin.busyMs;
      } finally {
        await runner.close();
      }
      const counts = counter.counts();
      const tCheckpoint = performance.now();
      const cp = await this.writeCheckpoint(id, head.seq);
      this.lastPhasesMs.checkpoint = performance.now() - tCheckpoint;
      files.push(...cp.files);
      const first = decodeRecord(this.o.log.getRecord(1)!);
      const m: BackupManifest = {
        ...this.base(id, 'full', null, opts),
        from_seq: 1,
        to_seq: head.seq,
        from_ts: first.ts,
        to_ts: head.ts,
        prev_hash: toHex(GENESIS_HASH),
        head_hash: toHex(head.hash),
        event_count: head.seq,
        vector_count: Object.values(counts).reduce((a, b) => a + b, 0),
        collections: counts,
        checkpoint_seq: cp.seq,
        ...(cp.dir !== undefined ? { checkpoint_dir: cp.dir } : {}),
        files,
      };
      this.checkAborted();
      await this.store.put(manifestKey(id), Buffer.from(JSON.stringify(m, null, 1)));
      return m;
    });
  }

  /**
   * An incremental backup of (parent.to_seq, head]. The parent is the newest backup, or with
   * `since` (µs) the newest backup ending at or before that time. BACKUP_NOT_FOUND without a
   * parent; BACKUP_LOG_DIVERGED if the log's hash at the parent's head differs.
   */
  async createIncremental(opts: { since?: number; tag?: string; description?: string } = {}): Promise<BackupManifest> {
    return this.timed('incremental', async (id) => {
      // A prune beside it (another process) must not delete what it builds on: claimed first,
      // then checked; checked again once its manifest is written (see `checkParents`). A prune
      // that chose to delete the parent before the claim was made may delete it at once: then
      // the parent is chosen again from what the store holds (a few times), as a person would.
      let tagReserved = false;
      let parent: BackupManifest;
      let ancestors: BackupManifest[];
      let claim: string;
      for (let attempt = 1; ; attempt++) {
        const { manifests, unreadable } = await loadManifests(this.store);
        warnUnreadable(unreadable, this.logger, 'the incremental builds on the newest readable backup');
        if (!tagReserved) await this.reserveTag(opts.tag, manifests, id);
        tagReserved = true;
        const sorted = manifests.sort(compareNewestFirst);
        const chosen = opts.since === undefined ? sorted[0] : sorted.find((m) => m.to_ts <= opts.since!);
        if (chosen === undefined) throw new BackupError('BACKUP_NOT_FOUND', opts.since === undefined ? 'no backup to base an incremental on; take a full backup first' : `no backup ends at or before ${opts.since} µs`);
        parent = chosen;
        const head = this.o.log.head();
        const at = this.o.log.getRecord(parent.to_seq);
        if (at === undefined || toHex(decodeRecord(at).hash) !== parent.head_hash || head.seq < parent.to_seq) {
          throw new BackupError('BACKUP_LOG_DIVERGED', `the log does not extend backup ${parent.backup_id} (seq ${parent.to_seq}): it holds another history; back it up to a fresh store prefix or directory`, { parent: parent.backup_id });
        }
        // With `since`, the parent may be older than what the store holds: the log must hold that too.
        await checkLogHoldsStore(this.o.log, this.store, this.o.encryption, manifests);
        ancestors = ancestorsOf(manifests, parent);
        claim = parentClaimKey(parent.backup_id, id);
        this.parentClaimsUnderWay.set(id, claim);
        await this.store.put(claim, Buffer.from(JSON.stringify({ backup_id: id, parent: parent.backup_id, claimed: new Date(this.now()).toISOString(), host: os.hostname(), pid: process.pid })));
        try {
          await this.checkParents(ancestors, parent.backup_id);
          break;
        } catch (err) {
          if (!isBackupError(err, 'BACKUP_NOT_FOUND') || attempt >= PARENT_ATTEMPTS) throw err;
          this.logger('warn', `${err instanceof Error ? err.message : String(err)}; choosing the parent again`, { attempt });
          await this.store.delete(claim).catch(() => undefined);
        }
      }
      const head = this.o.log.head();
      const from = parent.to_seq + 1;
      const counter = new IncrementalCounter(this.o.log, from, parent.collections);
      let files: BackupFile[] = [];
      if (head.seq >= from) {
        // Another data dir's incremental on the same parent (a copy of this one gone its own way) stops one of the two here (see historyClaims.ts).
        await claimHistory(this.store, from, toHex(decodeRecord(this.o.log.getRecord(from)!).hash), `incremental backup ${id} of seq ${from}..${head.seq}`);
        // Inline: incrementals are small, and the counter reads the log's per-document index.
        const runner = openCodecRunner({ kind: 'seal', options: { compression: this.o.compression, ...(this.o.encryption !== undefined ? { encryption: this.o.encryption } : {}) } }, false);
        files = await this.writeEvents(id, from, head.seq, toHex(head.hash), runner, (f) => counter.applyLight(f));
      }
      const firstTs = head.seq >= from ? decodeRecord(this.o.log.getRecord(from)!).ts : parent.to_ts;
      const m: BackupManifest = {
        ...this.base(id, 'incremental', parent.backup_id, opts),
        from_seq: from,
        to_seq: Math.max(head.seq, parent.to_seq),
        from_ts: firstTs,
        to_ts: head.seq >= from ? head.ts : parent.to_ts,
        prev_hash: parent.head_hash,
        head_hash: head.seq >= from ? toHex(head.hash) : parent.head_hash,
        event_count: Math.max(0, head.seq - parent.to_seq),
        vector_count: counter.total(),
        collections: counter.record(),
        checkpoint_seq: null,
        files,
      };
      this.checkAborted();
      await this.store.put(manifestKey(id), Buffer.from(JSON.stringify(m, null, 1)));
      await this.checkParents(ancestors, parent.backup_id);
      // Its manifest now keeps the parent; a claim left behind (the store failed) is pruned.
      await this.store.delete(claim).catch((err: unknown) => this.logger('warn', `could not remove the parent claim ${claim}; a prune removes it`, { error: String(err) }));
      return m;
    });
  }

  /**
   * BACKUP_NOT_FOUND unless every backup an incremental builds on (its parent, then the parent's
   * parents) still has its manifest and every file it lists (one listing each). A prune respects
   * the claim and looks again before it deletes files; this catches anything else that removed
   * them (an older KyroDB's prune, a person).
   */
  private async checkParents(ancestors: readonly BackupManifest[], parentId: string): Promise<void> {
    for (const a of ancestors) {
      const keys = new Set(await this.store.list(backupPrefix(a.backup_id)));
      const missing = [manifestKey(a.backup_id), ...a.files.map((f) => f.key)].find((k) => !keys.has(k));
      if (missing === undefined) continue;
      const via = a.backup_id === parentId ? '' : ` (the parent ${parentId} builds on it)`;
      throw new BackupError('BACKUP_NOT_FOUND', `backup ${a.backup_id}, which this incremental builds on${via}, was deleted while it was taken (${missing} is gone); nothing of the incremental was kept: take it again`, { parent: parentId, missing: a.backup_id, key: missing });
    }
  }

  /** Complete backups (with a manifest), newest first; `before` (µs): only those created before it. */
  async list(opts: { before?: number } = {}): Promise<BackupManifest[]> {
    const { manifests, unreadable } = await loadManifests(this.store);
    warnUnreadable(unreadable, this.logger, 'not listed');
    return manifests.filter((m) => opts.before === undefined || createdMs(m) * 1000 < opts.before).sort(compareNewestFirst);
  }

  /**
   * Checks a backup (or `latest`) and its chain: every file's size and SHA-256, decryption,
   * decoding, and the hash chain across files and backups. With `deep`, also restores into a
   * scratch dir, compares event count / head hash / vector count with the manifest, checks that
   * the restored write-ahead segments hold that same chain (every frame's CRC good), and runs
   * recall probes: `probes` stored vectors (default 32) searched by brute force must each find
   * themselves on top, and searched through the restored data dir's own index (the projections'
   * HNSW + hot tier, loaded from the restored checkpoint if any) at least `minIndexRecall`
   * (default 0.95) of them must. The scratch dir goes under `scratchDir` (default: the system
   * temp dir), which needs what the restore needs (see `restoreSpaceNeeded`).
   * Never throws for a bad backup: the report's `code` names the problem. Throws what is not
   * the backup's fault: BACKUP_NO_SPACE when the scratch dir's disk cannot hold the restore.
   */
  async verify(idOrLatest: string, opts: { deep?: boolean; probes?: number; minIndexRecall?: number; scratchDir?: string } = {}): Promise<BackupVerifyReport> {
    const report: BackupVerifyReport = { ok: false, backupId: idOrLatest, chain: [], files: 0, events: 0 };
    try {
      const { manifests, incomplete, unreadable } = await loadManifests(this.store);
      if (idOrLatest === LATEST) warnUnreadable(unreadable, this.logger, 'latest is the newest readable backup');
      const m = findBackup(manifests, idOrLatest);
      if (m === undefined) {
        refuseUnreadable(unreadable, idOrLatest);
        if (incomplete.includes(idOrLatest)) throw new BackupError('BACKUP_MANIFEST_MISSING', `backup ${idOrLatest} has no manifest: it never completed`, { backupId: idOrLatest });
        throw new BackupError('BACKUP_NOT_FOUND', `no backup ${idOrLatest}`, { backupId: idOrLatest });
      }
      report.backupId = m.backup_id;
      const chain = backupChain(manifests, m);
      report.chain = chain.map((x) => x.backup_id);
      let prev = toHex(GENESIS_HASH);
      let total = 0;
      for (const b of chain) {
        if (b.prev_hash !== prev) throw new BackupError('BACKUP_CHAIN_BROKEN', `backup ${b.backup_id} does not link to its parent's head`, { backupId: b.backup_id });
        let expectSeq = b.from_seq;
        for (const f of b.files) {
          if (f.kind === 'checkpoint') {
            await fetchChecked(this.store, f);
            report.files += 1;
            continue;
          }
          if (f.first_seq !== expectSeq) throw new BackupError('BACKUP_CHAIN_GAP', `backup ${b.backup_id}: file ${f.key} starts at seq ${String(f.first_seq)}, expected ${expectSeq}`, { key: f.key });
          const seg = await fetchEventsFile(this.store, b, f, this.o.encryption);
          prev = checkChain(seg.entries, prev, f.key);
          expectSeq = seg.header.last_seq + 1;
          report.files += 1;
          report.events += seg.entries.length;
          total += seg.entries.length;
          this.o.onProgress?.({ phase: 'verify', done: total, total: m.to_seq });
        }
        if (expectSeq !== b.to_seq + 1) throw new BackupError('BACKUP_CHAIN_GAP', `backup ${b.backup_id} holds events up to ${expectSeq - 1}, its manifest says ${b.to_seq}`, { backupId: b.backup_id });
        if (prev !== b.head_hash) throw new BackupError('BACKUP_CHAIN_BROKEN', `backup ${b.backup_id}: the last event's hash differs from the manifest's head hash`, { backupId: b.backup_id });
      }
      if (opts.deep === true) report.deep = await this.deepCheck(manifests, m, opts.probes ?? 32, opts.minIndexRecall ?? 0.95, opts.scratchDir ?? os.tmpdir());
      report.ok = true;
    } catch (err) {
      if (!isBackupError(err) || err.code === 'BACKUP_NO_SPACE') throw err;
      report.code = err.code;
      report.message = err.message;
      // A file gone with its whole backup (retention beside the verify) is no damaged backup: not found.
      const gone = err.code === 'BACKUP_FILE_MISSING' ? await this.firstWithoutManifest(report.chain) : undefined;
      if (gone !== undefined) {
        report.code = 'BACKUP_NOT_FOUND';
        report.message = `backup ${gone}${gone === report.backupId ? '' : `, which ${report.backupId} builds on,`} was deleted while it was verified (a prune or retention beside it): ${err.message}`;
      }
    }
    return report;
  }

  /** The first of `ids` whose manifest is no longer in the store (undefined: all there, or the store cannot say). */
  private async firstWithoutManifest(ids: readonly string[]): Promise<string | undefined> {
    try {
      for (const id of ids) if ((await this.store.head(manifestKey(id))) === undefined) return id;
    } catch {
      // the store cannot be read: the first error stands
    }
    return undefined;
  }

  private async deepCheck(manifests: BackupManifest[], m: BackupManifest, probes: number, minIndexRecall: number, scratchDir: string): Promise<NonNullable<BackupVerifyReport['deep']>> {
    // Named with this pid: one a killed verify left is removed by the next (see makeScratchDir).
    const { dir: scratch, release } = makeScratchDir(scratchDir, 'kyrodb-verify-');
    try {
      const plan = planRestore({ manifests, segments: await loadSegments(this.store) }, { backupId: m.backup_id });
      const dataDir = path.join(scratch, 'data');
      const r = await executeRestore(plan, { store: this.store, dataDir, keepState: true, ...(this.o.encryption !== undefined ? { encryption: this.o.encryption } : {}), ...(this.o.onProgress !== undefined ? { onProgress: this.o.onProgress } : {}) });
      // What the restored data dir's LMDB is rebuilt from after a crash: its write-ahead segments
      // must hold the same chain, every frame's CRC good (LMDB reading back right does not show it).
      const seg = segmentsChain(walDirOf(dataDir));
      if (seg.brokenAt !== null || seg.events !== r.events || toHex(seg.headHash) !== r.headHash) {
        const why = seg.brokenAt !== null ? `the chain breaks at seq ${seg.brokenAt}` : seg.events !== r.events ? `they hold ${seg.events} events, the restore ${r.events}` : `they end in another hash than the restore's`;
        throw new BackupError('BACKUP_VERIFY_FAILED', `the restored write-ahead segments do not hold the backup's chain: ${why}`, { segmentEvents: seg.events, events: r.events });
      }
      const state = r.state!;
      // Probes: evenly spaced live vectors; each must be its own top hit (or tie with it). Under
      // ip a longer vector the same way scores higher than the vector itself: there the top hit
      // of the exact search is what the index must find.
      const all: { c: string; id: string; v: Float32Array }[] = [];
      for (const [c, col] of state.collections) for (const [id, d] of col.docs) if (d !== null) all.push({ c, id, v: d.vector });
      const n = Math.min(probes, all.length);
      const picks = Array.from({ length: n }, (_, i) => all[Math.floor((i * all.length) / n)]!);
      const selfScore = (p: (typeof picks)[number]): number => {
        const col = state.collections.get(p.c)!;
        return exactTopK({ ...col, docs: new Map([[p.id, col.docs.get(p.id)!]]) }, p.v, 1)[0]!.score;
      };
      const tops = picks.map((p) => exactTopK(state.collections.get(p.c)!, p.v, 1)[0]!);
      const expected = picks.map((p, i) => (state.collections.get(p.c)!.metric === 'ip' ? tops[i]! : { id: p.id, score: selfScore(p) }));
      let hits = 0;
      tops.forEach((top, i) => {
        if (top.id === expected[i]!.id || top.score === expected[i]!.score) hits += 1;
      });
      if (hits < n) throw new BackupError('BACKUP_VERIFY_FAILED', `exact probes: ${hits} of ${n} vectors found themselves`, { hits, probes: n });
      // The same probes against the index the restored data dir serves (HNSW + hot tier, from its checkpoint if any).
      let indexHits = 0;
      let degraded = 0;
      const { Projections } = await import('@kyrodb/projections');
      const log = await EventLog.open({ dir: dataDir, readOnly: true, logger: () => undefined });
      try {
        const proj = await Projections.open({ log, dataDir, checkpoint: { everyEvents: 0, everySecs: 0 }, logger: () => undefined });
        try {
          // The index first absorbs the events after the backup's checkpoint (a busy server's
          // checkpoint can be tens of thousands of events behind its head). Probed meanwhile, the
          // searches were the hot tier's alone (degraded) and missed what only the index held: a
          // valid backup failed its deep verify ("30 of 32 vectors found themselves").
          const head = log.head().seq;
          let seen = -1;
          let movedAt = performance.now();
          for (let w = proj.health().coldWatermark; w < head; w = proj.health().coldWatermark) {
            if (w !== seen) {
              seen = w;
              movedAt = performance.now();
              this.o.onProgress?.({ phase: 'index', done: w, total: head });
            } else if (performance.now() - movedAt > INDEX_STALL_MS) break; // probed as it is: the probes say how it fares
            await new Promise((r) => setTimeout(r, 20));
          }
          this.o.onProgress?.({ phase: 'index', done: proj.health().coldWatermark, total: head });
          for (const [i, p] of picks.entries()) {
            const res = await proj.search(p.c, { vector: p.v, k: 1 });
            if (res.degraded) degraded += 1;
            const top = res.results[0];
            const want = expected[i]!;
            if (top !== undefined && (top.id === want.id || Math.abs(top.score - want.score) <= 1e-6 * Math.max(1, Math.abs(top.score)))) indexHits += 1;
          }
        } finally {
          await proj.close();
        }
      } finally {
        await log.close();
      }
      if (n > 0 && indexHits / n < minIndexRecall) throw new BackupError('BACKUP_VERIFY_FAILED', `index probes: ${indexHits} of ${n} vectors found themselves (recall below ${minIndexRecall})${degraded > 0 ? `; ${degraded} answered without the index (degraded): it did not absorb the restored events` : ''}`, { hits: indexHits, probes: n, degraded });
      return { events: r.events, headHash: r.headHash, vectorCount: r.vectorCount, segmentEvents: seg.events, probes: n, probeHits: hits, indexProbeHits: indexHits };
    } finally {
      release();
    }
  }

  /**
   * Applies retention: plans (pure, see `planRetention`) then, unless `dryRun`, deletes the
   * pruned backups (manifest first, so a half-deleted backup is never listed), segments,
   * incomplete backups older than `incompleteAfterMs` (default a day) and tag claims of backups
   * with no manifest that old (see tagClaims.ts), and sweeps the store's temp files left by dead processes.
   */
  prune(opts: { retentionDays?: number; policy?: Partial<RetentionPolicy>; dryRun?: boolean; now?: number; incompleteAfterMs?: number }): Promise<PruneResult> {
    return this.track(this.pruneRun(opts));
  }

  private async pruneRun(opts: Parameters<BackupManager['prune']>[0]): Promise<PruneResult> {
    const { manifests, incomplete, unreadable } = await loadManifests(this.store);
    // A backup whose manifest cannot be read may be the parent or child of one that could be
    // deleted, and its own range is unknown: nothing is deleted until it is repaired or removed.
    if (unreadable.length > 0) {
      throw new BackupError('BACKUP_MANIFEST_INVALID', `cannot apply retention while ${unreadable.length} manifest(s) cannot be read (${unreadable.map((u) => u.backupId).join(', ')}): repair or remove those backups first; nothing was deleted`, { backupIds: unreadable.map((u) => u.backupId) });
    }
    const segments = await loadSegments(this.store);
    const tagClaims = parseTagClaims(await this.store.list(TAG_CLAIMS_PREFIX));
    const parentClaims = parseParentClaims(await this.store.list(PARENT_CLAIMS_PREFIX));
    const historyClaims = (await this.store.list(HISTORY_CLAIM_PREFIX)).map(historyClaimSeq).filter((s): s is number => s !== undefined);
    const now = opts.now ?? this.now();
    const plan = planRetention(manifests, segments, {
      now,
      incomplete,
      tagClaims,
      parentClaims,
      historyClaims,
      ...(opts.incompleteAfterMs !== undefined ? { incompleteAfterMs: opts.incompleteAfterMs } : {}),
      ...(opts.retentionDays !== undefined ? { retentionDays: opts.retentionDays } : {}),
      ...(opts.policy !== undefined ? { policy: opts.policy } : {}),
    });
    let deletedObjects = 0;
    if (opts.dryRun !== true) {
      const remove = async (k: string): Promise<void> => {
        await this.store.delete(k);
        deletedObjects += 1;
      };
      // Manifests first: a backup half deleted is never listed. Each is read before it goes (one
      // already gone is another prune's to finish: left to it).
      const removed = new Map<string, Buffer>();
      for (const id of plan.delete) {
        let body: Buffer;
        try {
          body = await this.store.get(manifestKey(id));
        } catch (err) {
          if (isBackupError(err, 'BACKUP_FILE_MISSING')) continue;
          throw err;
        }
        removed.set(id, body);
        await remove(manifestKey(id));
      }
      // A backup taken since the plan was made (another process) may build on one of them, or on
      // an "incomplete" one (another prune removed its manifest, and is putting it back): those
      // are put back, or left, before any of their files goes.
      const needed = await this.neededSince(manifests, [...removed.keys(), ...plan.deleteIncomplete], now, opts.incompleteAfterMs ?? INCOMPLETE_AFTER_MS);
      for (const [id, why] of needed) {
        if (removed.has(id)) {
          await this.store.put(manifestKey(id), removed.get(id)!);
          deletedObjects -= 1;
          removed.delete(id);
          plan.delete = plan.delete.filter((x) => x !== id);
          plan.keep.push({ backup_id: id, reasons: [why] });
        } else plan.deleteIncomplete = plan.deleteIncomplete.filter((x) => x !== id);
      }
      for (const id of removed.keys()) for (const k of await this.store.list(backupPrefix(id))) await remove(k);
      for (const k of plan.deleteSegments) await remove(k);
      for (const id of plan.deleteIncomplete) for (const k of await this.store.list(backupPrefix(id))) await remove(k);
      for (const k of [...plan.deleteTagClaims, ...plan.deleteParentClaims, ...plan.deleteHistoryClaims]) await remove(k);
    }
    // Temp files of puts whose process died (a local store's; see ObjectStore.sweep).
    const sweptTempFiles = this.store.sweep === undefined ? 0 : (await this.store.sweep({ dryRun: opts.dryRun === true })).length;
    return { ...plan, dryRun: opts.dryRun === true, deletedObjects, sweptTempFiles };
  }

  /**
   * Of the backups `deleted` (their manifests just removed, or found without one; `planned` is
   * what the plan was made from), those a backup listed now, or an incremental under way now,
   * builds on: id → why.
   */
  private async neededSince(planned: readonly BackupManifest[], deleted: readonly string[], now: number, staleAfterMs: number): Promise<Map<string, string>> {
    const needed = new Map<string, string>();
    if (deleted.length === 0) return needed;
    const { manifests } = await loadManifests(this.store);
    const claims = parseParentClaims(await this.store.list(PARENT_CLAIMS_PREFIX));
    const byId = new Map([...planned, ...manifests].map((m) => [m.backup_id, m]));
    const gone = new Set(deleted);
    const listed = new Set(manifests.map((m) => m.backup_id));
    const walk = (parentId: string | null, why: string): void => {
      // Up the chain; an id with no manifest known (an incomplete backup) ends it, after it is
      // marked. A parent cycle (a damaged store) ends it too.
      for (let id = parentId, steps = 0; id !== null && steps <= byId.size; id = byId.get(id)?.parent ?? null, steps++) {
        if (gone.has(id) && !needed.has(id)) needed.set(id, why);
      }
    };
    const known = new Set(planned.map((m) => m.backup_id));
    for (const m of manifests) walk(m.parent, known.has(m.backup_id) ? `parent of ${m.backup_id}` : `parent of ${m.backup_id}, taken during the prune`);
    for (const c of claims) {
      if (!listed.has(c.backupId) && claimState(c.backupId, false, now, staleAfterMs) === 'under-way') walk(c.parentId, `parent of ${c.backupId}, under way`);
    }
    return needed;
  }

  // ---------------------------------------------------------------- internals

  private base(id: string, type: 'full' | 'incremental', parent: string | null, opts: { tag?: string; description?: string }): Pick<BackupManifest, 'backup_id' | 'type' | 'parent' | 'created' | 'format_version' | 'compression' | 'encryption'> & { tag?: string; description?: string } {
    return {
      backup_id: id,
      type,
      parent,
      created: new Date(this.now()).toISOString(),
      ...(opts.tag !== undefined ? { tag: opts.tag } : {}),
      ...(opts.description !== undefined ? { description: opts.description } : {}),
      format_version: BACKUP_FORMAT_VERSION,
      compression: this.o.compression,
      encryption: this.o.encryption === undefined ? null : { algorithm: 'aes-256-gcm', key_id: this.o.encryption.keyId },
    };
  }

  /**
   * Stops backups for good (a server shutting down, a CLI interrupted): each running one ends at
   * once with BACKUP_ABORTED (its store calls end, see abortableStore) and what it stored is
   * removed (within DISCARD_AFTER_ABORT_MS); later ones are refused. See `idle`.
   */
  abort(reason = 'the server is shutting down'): void {
    this.aborted = true;
    this.abortReason = reason;
    this.abortCtl.abort();
  }

  /** Resolves once no backup or prune of this manager is under way (a failed one's objects removed). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  /**
   * `checkTag`, then the tag held for backup `id` until it completes or fails (see `timedRun`):
   * in this process (`tagsUnderWay`), and across processes by its claim in the store (see
   * tagClaims.ts), which a failed backup's `discard` removes. BACKUP_TAG_EXISTS when another
   * backup has it or is being given it; two claiming it at once may both be refused.
   */
  private async reserveTag(tag: string | undefined, manifests: readonly BackupManifest[], id: string): Promise<void> {
    checkTag(tag, manifests);
    if (tag === undefined) return;
    const other = this.tagsUnderWay.get(tag);
    if (other !== undefined) throw new BackupError('BACKUP_TAG_EXISTS', `tag ${JSON.stringify(tag)} is being given to backup ${other}, under way; a tag names one restore point`, { tag, backupId: other });
    this.tagsUnderWay.set(tag, id);
    claimsInProcess.add(id);
    await this.store.put(tagClaimKey(tag, id), Buffer.from(JSON.stringify({ backup_id: id, tag, claimed: new Date(this.now()).toISOString(), host: os.hostname(), pid: process.pid })));
    const others = parseTagClaims(await this.store.list(tagClaimPrefix(tag))).filter((c) => c.backupId !== id);
    const seen = (
      await Promise.all(
        others.map(async (c) => {
          const hasManifest = (await this.store.head(manifestKey(c.backupId))) !== undefined;
          if (!hasManifest && (await this.claimAbandoned(tag, c.backupId))) {
            // Its backup failed and could not remove its claim (the store was down then): the tag is free.
            await this.store.delete(tagClaimKey(tag, c.backupId)).catch(() => undefined);
            return undefined;
          }
          return { backupId: c.backupId, hasManifest };
        }),
      )
    ).filter((c) => c !== undefined);
    const holder = tagHolder(id, seen, this.now(), INCOMPLETE_AFTER_MS);
    if (holder === undefined) return;
    if (holder.state === 'committed') throw new BackupError('BACKUP_TAG_EXISTS', `tag ${JSON.stringify(tag)} already names backup ${holder.backupId}; a tag names one restore point`, { tag, backupId: holder.backupId });
    throw new BackupError('BACKUP_TAG_EXISTS', `tag ${JSON.stringify(tag)} is being given to backup ${holder.backupId}, under way in another process (or killed: its claim ${tagClaimKey(tag, holder.backupId)} lapses a day after it began); a tag names one restore point. Backups given one tag at the same time may all be refused: retry`, { tag, backupId: holder.backupId });
  }

  /**
   * Whether the claim of `tag` for backup `backupId` (no manifest) is one nobody works on: made on
   * this host by a process that is gone, or by this process for a backup no longer under way. A
   * backup that failed because the store was down could not remove its claim then, and the tag
   * was refused for a day (BACKUP_TAG_EXISTS naming a backup "under way"). A claim of another
   * host (or without host and pid, from before they were written) is under way until it lapses.
   */
  private async claimAbandoned(tag: string, backupId: string): Promise<boolean> {
    let c: { host?: unknown; pid?: unknown };
    try {
      c = JSON.parse((await this.store.get(tagClaimKey(tag, backupId))).toString('utf8')) as { host?: unknown; pid?: unknown };
    } catch {
      return false;
    }
    if (c.host !== os.hostname() || typeof c.pid !== 'number') return false;
    if (c.pid === process.pid) return !claimsInProcess.has(backupId);
    return !processAlive(c.pid);
  }

  private checkAborted(): void {
    if (this.aborted) throw this.abortedError();
  }

  private abortedError(): BackupError {
    return new BackupError('BACKUP_ABORTED', `the backup was stopped before it completed (${this.abortReason}); what it stored is removed`);
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.running.add(p);
    const done = (): void => void this.running.delete(p);
    p.then(done, done);
    return p;
  }

  /**
   * Counts a backup that failed before it began (its caller could not read the store to choose
   * what to take) in `backup_failure_total`, as `timedRun` counts one that failed under way, so
   * that the BackupFailing alert sees it. A refusal (bad input) is not a failure.
   */
  countFailure(type: 'full' | 'incremental', err: unknown): void {
    if (!isRefusal(err)) this.metrics.failure.inc({ type });
  }

  /** Runs a backup `fn` under a new id, with its metrics; if it fails, what it stored is removed (`discard`). */
  private timed(type: 'full' | 'incremental', fn: (id: string) => Promise<BackupManifest>): Promise<BackupManifest> {
    return this.track(this.timedRun(type, fn));
  }

  /** Full and incremental backups of this manager under way (a server answers a request for another with 409 while one runs). */
  get backupsUnderWay(): number {
    return this.backupsRunning;
  }

  private async timedRun(type: 'full' | 'incremental', fn: (id: string) => Promise<BackupManifest>): Promise<BackupManifest> {
    this.backupsRunning += 1; // before any await: a second request checked right after sees this one
    const t0 = performance.now();
    this.lastPhasesMs = { read: 0, seal: 0, wait: 0, checkpoint: 0, total: 0 };
    const id = newBackupId(this.now(), type);
    try {
      this.checkAborted();
      const m = await fn(id);
      this.lastPhasesMs.total = performance.now() - t0;
      this.metrics.success.inc({ type });
      this.metrics.duration.observe({ type }, (performance.now() - t0) / 1000);
      this.metrics.size.set({ type }, m.files.reduce((n, f) => n + f.size, 0));
      this.logger('info', `${type} backup ${m.backup_id} done`, { seq: m.to_seq, files: m.files.length });
      return m;
    } catch (err) {
      // A request refused before anything was stored (bad input, no parent, a tag in use) is not a
      // failed backup: it must not trip the BackupFailing alert.
      const refused = isRefusal(err);
      this.countFailure(type, err);
      this.logger(refused ? 'warn' : 'error', `${type} backup ${refused ? 'refused' : 'failed'}`, { error: String(err) });
      await this.discard(id);
      throw err;
    } finally {
      this.backupsRunning -= 1;
      for (const [tag, holder] of this.tagsUnderWay) if (holder === id) this.tagsUnderWay.delete(tag);
      this.parentClaimsUnderWay.delete(id);
      claimsInProcess.delete(id);
    }
  }

  /**
   * Removes what a failed backup stored, manifest first (so it is never listed, even if its put
   * failed after the store took it). A failure on a full backup disk would otherwise keep the
   * disk full and fail every backup after it. Best effort: what cannot be removed stays unlisted
   * (no manifest) and is logged.
   */
  private async discard(id: string): Promise<void> {
    // The store as given (the manager's own refuses every call once stopped). Stopped by a
    // shutdown, this gets DISCARD_AFTER_ABORT_MS: a store that does not answer held it for each
    // request's timeout and retries; what is left is never listed, and a prune removes it.
    const store = this.o.store;
    const work = (async (): Promise<void> => {
      // Stopped: a put the abort let go of may still be writing (a local file); it lands first, then goes.
      // (Not otherwise: a failed backup's own calls are done by now, and another backup's may go on for long.)
      if (this.aborted) await this.store.settled();
      await store.delete(manifestKey(id));
      for (const k of await store.list(backupPrefix(id))) await store.delete(k);
      // Its claims last: the tag is free, and the parent prunable, once nothing of the backup is left.
      for (const [tag, holder] of this.tagsUnderWay) if (holder === id) await store.delete(tagClaimKey(tag, id));
      const claim = this.parentClaimsUnderWay.get(id);
      if (claim !== undefined) await store.delete(claim);
    })();
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      work.then(
        () => 'done' as const,
        (err: unknown) => err,
      ),
      ...(this.aborted ? [new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), DISCARD_AFTER_ABORT_MS)))] : []),
    ]);
    clearTimeout(timer);
    if (outcome === 'late') {
      work.catch(() => undefined);
      this.logger('warn', `the objects of the stopped backup ${id} were not all removed within ${DISCARD_AFTER_ABORT_MS} ms; they are never listed (no manifest), and a prune removes them`, {});
    } else if (outcome !== 'done') {
      this.logger('warn', `could not remove the objects of the failed backup ${id}; they are never listed (no manifest)`, { error: String(outcome) });
    }
  }

  /**
   * Writes events from..to as events files, in seq order: the log is read (in runs, see
   * `EventLog.recordRuns`) and encoded here, each record's index fields handed to `onRecord`,
   * while the runner seals (compresses, encrypts, hashes) the files read before and their
   * uploads run, side by side: a local store's put (write, fsync, link, fsync of the dir) took
   * ~0.2 s for a 25 MB file, and one at a time they took most of a full backup of 1M events.
   * The record at `to` must hash to `headHash` (the log's head, from LMDB): records are read from
   * the write-ahead segments, and a data dir whose two copies of the log disagree (only a writer's
   * open checks that) is refused, BACKUP_CHAIN_BROKEN, rather than backed up with a head it does not hold.
   * Returns the files in seq order, once every upload is done; on a failure, once none is left running.
   */
  private async writeEvents(id: string, from: number, to: number, headHash: string, runner: CodecRunner, onRecord?: (f: IndexFields) => void): Promise<BackupFile[]> {
    const files: BackupFile[] = [];
    const ahead = runner.inWorker ? WRITE_AHEAD_FILES : 1; // files sealed/uploaded ahead of the read (worker / inline)
    const steps: Promise<void>[] = [];
    const inFlight: Promise<void>[] = [];
    let uploaded = 0;
    const runs = this.o.log.recordRuns(from, to);
    // The rest of a run that went past the last file's end (a run is used up before the next is read).
    let carry: RecordRun | undefined;
    try {
      for (let start = from; start <= to; start += this.o.eventsPerFile) {
        this.checkAborted();
        const t0 = performance.now();
        const end = Math.min(to, start + this.o.eventsPerFile - 1);
        const want = end - start + 1;
        const seg = new SegmentBuilder(start, want, onRecord);
        while (seg.count < want) {
          let r = carry;
          carry = undefined;
          if (r === undefined) {
            const it = await runs.next();
            if (it.done === true) break;
            r = it.value;
          }
          if (r.count > want - seg.count) [r, carry] = splitRun(r, want - seg.count);
          seg.add(r);
        }
        if (seg.count !== want) throw new BackupError('BACKUP_CHAIN_GAP', `the log holds ${seg.count} of seqs ${start}..${end}`, { from: start, to: end });
        const { body: raw, header } = seg.finish();
        if (end === to && header.last_hash !== headHash) {
          throw new BackupError('BACKUP_CHAIN_BROKEN', `the log's record at seq ${to} has hash ${header.last_hash} in the write-ahead segments but ${headHash} in LMDB: the data dir is damaged (a writer's open refuses it, LOG_CHAIN_BROKEN); nothing was backed up`, { seq: to });
        }
        const rawSize = raw.length; // `raw` may be handed over to the codec's worker
        const sealed = runner.seal(raw);
        this.lastPhasesMs.read += performance.now() - t0;
        const key = `${backupPrefix(id)}events-${padSeq(start)}-${padSeq(end)}`;
        const at = files.length;
        files.push({ key, kind: 'events', size: 0, raw_size: rawSize, sha256: '', first_seq: start, last_seq: end });
        const step = sealed.then(async ({ body, sha256 }) => {
          files[at] = { ...files[at]!, size: body.length, sha256 };
          await this.store.put(key, body);
          uploaded += want;
          this.o.onProgress?.({ phase: 'events', done: uploaded, total: to - from + 1 });
        });
        step.catch(() => undefined); // observed below; never unhandled if the read fails first
        steps.push(step);
        inFlight.push(step);
        if (inFlight.length > ahead) {
          const t1 = performance.now();
          await inFlight.shift();
          this.lastPhasesMs.wait += performance.now() - t1;
        }
      }
    } catch (err) {
      // Nothing is left uploading once this fails: what a failed backup stored is then removed (see `timed`).
      await Promise.allSettled(steps);
      throw err;
    } finally {
      await runs.return(undefined);
    }
    const t1 = performance.now();
    const results = await Promise.allSettled(steps);
    this.lastPhasesMs.wait += performance.now() - t1;
    for (const r of results) if (r.status === 'rejected') throw r.reason instanceof Error ? r.reason : new Error(String(r.reason));
    return files;
  }

  /** Copies the newest `<dataDir>/checkpoints/<seq>/` with seq ≤ `maxSeq`, if any (a checkpoint vanishing mid-copy is skipped). */
  private async writeCheckpoint(id: string, maxSeq: number): Promise<{ seq: number | null; dir?: string; files: BackupFile[] }> {
    const root = path.join(this.o.dataDir, 'checkpoints');
    let names: string[];
    try {
      names = await fsp.readdir(root);
    } catch {
      return { seq: null, files: [] };
    }
    const gens = names.filter((n) => /^\d+$/.test(n)).map((name) => ({ name, seq: Number(name) })).filter((g) => g.seq <= maxSeq).sort((a, b) => b.seq - a.seq);
    const gen = gens[0];
    if (gen === undefined) return { seq: null, files: [] };
    const seq = gen.seq;
    const dir = path.join(root, gen.name);
    const files: BackupFile[] = [];
    try {
      const walk = async (d: string, rel: string): Promise<void> => {
        for (const e of await fsp.readdir(d, { withFileTypes: true })) {
          const r = rel === '' ? e.name : `${rel}/${e.name}`;
          if (e.isDirectory()) await walk(path.join(d, e.name), r);
          else if (e.isFile()) {
            const fh = await fsp.open(path.join(d, e.name), 'r');
            try {
              const size = (await fh.stat()).size;
              const part = this.o.checkpointPartBytes;
              const parts = Math.max(1, Math.ceil(size / part));
              for (let n = 0; n < parts; n++) {
                const offset = n * part;
                const raw = await readAt(fh, offset, Math.min(part, size - offset));
                const body = encodeObject(raw, this.o.compression, this.o.encryption);
                const key = `${backupPrefix(id)}checkpoint/${r}${parts > 1 ? `.part-${String(n).padStart(5, '0')}` : ''}`;
                await this.store.put(key, body);
                files.push({ key, kind: 'checkpoint', size: body.length, raw_size: raw.length, sha256: sha256Hex(body), path: r, ...(parts > 1 ? { offset } : {}) });
              }
            } finally {
              await fh.close();
            }
          }
        }
      };
      await walk(dir, '');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.logger('warn', `checkpoint ${seq} vanished during the backup; backing up without it`, {});
        return { seq: null, files: [] };
      }
      throw err;
    }
    return { seq, dir: gen.name, files };
  }
}
