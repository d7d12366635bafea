import { GENESIS_HASH, microsToIso, toHex } from '@kyrodb/log';
import { BackupError } from './errors.js';
import { compareNewestFirst, type BackupFile, type BackupManifest } from './manifest.js';
import type { SegmentInfo } from './pieces.js';

/** One source of events in a restore plan: a backup (its events files) or a continuous segment. */
export type PlanStep =
  | { kind: 'backup'; manifest: BackupManifest; first_seq: number; last_seq: number }
  | { kind: 'segment'; segment: SegmentInfo; first_seq: number; last_seq: number };

/** What to restore: a backup by id, the newest backup with a tag, or the state at a time (µs). None: the newest backup. */
export interface RestoreTarget {
  backupId?: string;
  tag?: string;
  /** µs since the epoch; events with ts ≤ pointInTime are restored. */
  pointInTime?: number;
}

/**
 * A restore plan, computed without I/O. Steps are applied in order; each event is taken once
 * (overlaps are skipped by seq). With `expected`, the result must match it exactly; with
 * `pointInTime`, events stop at the first ts > T. `gapAfterSeq`: more data exists beyond a gap
 * after this seq, so the executor refuses (BACKUP_CHAIN_GAP) unless T was reached before it.
 */
export interface RestorePlan {
  target: RestoreTarget;
  steps: PlanStep[];
  /** Last seq to restore (inclusive) for backup targets; for PITR the highest seq the steps can reach. */
  toSeq: number;
  pointInTime: number | null;
  expected: { to_seq: number; head_hash: string; vector_count: number; backup_id: string } | null;
  /** The checkpoint to copy (from a full backup), used only if its seq ≤ the restored seq. */
  checkpoint: { seq: number; backup_id: string; files: BackupFile[]; manifest: BackupManifest } | null;
  gapAfterSeq: number | null;
}

/** The backup id that names the backup reaching the highest seq (see `latestBackup`). */
export const LATEST = 'latest';

/** The backup reaching the highest seq; of those, the one created last. Undefined for none. */
export function latestBackup(manifests: readonly BackupManifest[]): BackupManifest | undefined {
  return manifests.reduce<BackupManifest | undefined>((a, m) => (a === undefined || m.to_seq > a.to_seq || (m.to_seq === a.to_seq && m.created > a.created) ? m : a), undefined);
}

/** The backup `ref` names: `latest` (see `latestBackup`), else the one with that id, else the newest with that tag. */
export function findBackup(manifests: readonly BackupManifest[], ref: string): BackupManifest | undefined {
  if (ref === LATEST) return latestBackup(manifests);
  return manifests.find((x) => x.backup_id === ref) ?? [...manifests].sort(compareNewestFirst).find((x) => x.tag === ref);
}

/** The chain base full → … → m, checked for gaps (BACKUP_CHAIN_GAP) and hash links (BACKUP_CHAIN_BROKEN). */
export function backupChain(manifests: readonly BackupManifest[], m: BackupManifest): BackupManifest[] {
  const byId = new Map(manifests.map((x) => [x.backup_id, x]));
  const chain = [m];
  let cur = m;
  while (cur.type === 'incremental') {
    const p = cur.parent === null ? undefined : byId.get(cur.parent);
    if (p === undefined) throw new BackupError('BACKUP_CHAIN_GAP', `backup ${cur.backup_id} needs parent ${String(cur.parent)}, which is not in the store`, { backupId: cur.backup_id, parent: cur.parent });
    if (cur.from_seq !== p.to_seq + 1) throw new BackupError('BACKUP_CHAIN_GAP', `backup ${cur.backup_id} starts at seq ${cur.from_seq} but its parent ends at ${p.to_seq}`, { backupId: cur.backup_id });
    if (cur.prev_hash !== p.head_hash) throw new BackupError('BACKUP_CHAIN_BROKEN', `backup ${cur.backup_id} does not link to the head hash of its parent ${p.backup_id}`, { backupId: cur.backup_id });
    if (chain.length > manifests.length) throw new BackupError('BACKUP_CHAIN_GAP', `backup ${m.backup_id} has a parent cycle`, { backupId: m.backup_id });
    chain.unshift(p);
    cur = p;
  }
  if (cur.from_seq !== 1 || cur.prev_hash !== toHex(GENESIS_HASH)) throw new BackupError('BACKUP_CHAIN_GAP', `full backup ${cur.backup_id} does not start at seq 1`, { backupId: cur.backup_id });
  return chain;
}

function stepOf(m: BackupManifest): PlanStep {
  return { kind: 'backup', manifest: m, first_seq: m.from_seq, last_seq: m.to_seq };
}

function checkpointOf(m: BackupManifest): RestorePlan['checkpoint'] {
  if (m.checkpoint_seq === null) return null;
  return { seq: m.checkpoint_seq, backup_id: m.backup_id, files: m.files.filter((f) => f.kind === 'checkpoint'), manifest: m };
}

/**
 * Decides which backups and segments a restore needs — pure, no I/O. The target is one of
 * `backupId`, `tag` and `pointInTime` (more: BACKUP_INVALID_ARGUMENT).
 * - `backupId` (`latest`: the one reaching the highest seq, see `latestBackup`) / `tag` / nothing
 *   (newest backup): that backup's chain (full + incrementals).
 * - `pointInTime` T: the smallest full backup whose range reaches past T (truncated at T), else
 *   the newest full ending at or before T (or nothing, from seq 1) extended by incrementals and
 *   segments in seq order (it ends where the next incremental of the chain starts after T: the
 *   steps then hold every event up to T). BACKUP_NOT_FOUND when nothing covers T; `gapAfterSeq`
 *   when the extension stops at a gap with more data beyond it.
 */
export function planRestore(input: { manifests: readonly BackupManifest[]; segments: readonly SegmentInfo[] }, target: RestoreTarget = {}): RestorePlan {
  const given = (['backupId', 'tag', 'pointInTime'] as const).filter((k) => target[k] !== undefined);
  if (given.length > 1) throw new BackupError('BACKUP_INVALID_ARGUMENT', `a restore targets one of backupId, tag and pointInTime, not ${given.join(' and ')}`, { given });
  const manifests = [...input.manifests].sort(compareNewestFirst);
  if (target.pointInTime === undefined) {
    let m: BackupManifest | undefined;
    if (target.backupId === LATEST) {
      m = latestBackup(manifests);
      if (m === undefined) throw new BackupError('BACKUP_NOT_FOUND', 'the store holds no backups', { backupId: LATEST });
    } else if (target.backupId !== undefined) {
      // An id, or a tag (as `backup verify` and `backup urls` take them).
      m = findBackup(manifests, target.backupId);
      if (m === undefined) throw new BackupError('BACKUP_NOT_FOUND', `no backup with id or tag ${target.backupId}`, { backupId: target.backupId });
    } else if (target.tag !== undefined) {
      m = manifests.find((x) => x.tag === target.tag);
      if (m === undefined) throw new BackupError('BACKUP_NOT_FOUND', `no backup tagged ${target.tag}`, { tag: target.tag });
    } else {
      m = manifests[0];
      if (m === undefined) throw new BackupError('BACKUP_NOT_FOUND', 'the store holds no backups');
    }
    const chain = backupChain(manifests, m);
    return {
      target,
      steps: chain.map(stepOf),
      toSeq: m.to_seq,
      pointInTime: null,
      expected: { to_seq: m.to_seq, head_hash: m.head_hash, vector_count: m.vector_count, backup_id: m.backup_id },
      checkpoint: checkpointOf(chain[0]!),
      gapAfterSeq: null,
    };
  }
  const T = target.pointInTime;
  if (!Number.isFinite(T)) throw new BackupError('BACKUP_INVALID_ARGUMENT', `point in time must be a number of µs, got ${T}`);
  const fulls = manifests.filter((m) => m.type === 'full');
  // A full backup that reaches past T covers T by itself.
  const covering = fulls.filter((m) => m.to_ts > T && m.event_count > 0).sort((a, b) => a.to_seq - b.to_seq)[0];
  if (covering !== undefined) {
    if (covering.from_ts > T) throw new BackupError('BACKUP_NOT_FOUND', `no events at or before ${T} µs`, { pointInTime: T });
    return { target, steps: [stepOf(covering)], toSeq: covering.to_seq, pointInTime: T, expected: null, checkpoint: checkpointOf(covering), gapAfterSeq: null };
  }
  const incs = manifests.filter((m) => m.type === 'incremental');
  const segs = [...input.segments];
  const beyond = Math.max(0, ...manifests.map((m) => m.to_seq), ...segs.map((s) => s.last_seq));
  // The chain from the newest full ending at or before T; where it stops at a gap with data beyond
  // (an incremental's parent pruned, segments missing), a chain from an older full (or from seq 1)
  // may go on: the first that has no gap is taken, else the one that reaches furthest. (Before, a
  // restore refused BACKUP_CHAIN_GAP although an older full's chain held every event up to T.)
  const bases: (BackupManifest | undefined)[] = [...fulls.filter((m) => m.to_ts <= T).sort((a, b) => b.to_seq - a.to_seq), undefined];
  let best: ReturnType<typeof chainToT> | undefined;
  for (const base of bases) {
    const c = chainToT(base, T, incs, segs, beyond);
    if (best === undefined || (best.gapAfterSeq !== null && (c.gapAfterSeq === null || c.toSeq > best.toSeq))) best = c;
    if (best.gapAfterSeq === null) break;
  }
  const { steps, toSeq, gapAfterSeq, base } = best!;
  if (steps.length === 0) throw new BackupError('BACKUP_NOT_FOUND', `no backup or segment covers ${T} µs`, { pointInTime: T });
  return {
    target,
    steps,
    toSeq,
    pointInTime: T,
    expected: null,
    checkpoint: base === undefined ? null : checkpointOf(base),
    gapAfterSeq,
  };
}

/**
 * The steps of a point-in-time restore to T from `base` (a full backup ending at or before T, or
 * nothing: from seq 1), extended by incrementals and segments in seq order; `gapAfterSeq` when it
 * stops at a gap with more data (`beyond`: the highest seq the store holds) after it.
 */
function chainToT(base: BackupManifest | undefined, T: number, incs: readonly BackupManifest[], segs: readonly SegmentInfo[], beyond: number): { steps: PlanStep[]; toSeq: number; gapAfterSeq: number | null; base: BackupManifest | undefined } {
  const steps: PlanStep[] = [];
  let cur = 0;
  let curHash = toHex(GENESIS_HASH);
  if (base !== undefined) {
    steps.push(stepOf(base));
    cur = base.to_seq;
    curHash = base.head_hash;
  }
  // Whether the chain goes on past T: then every event up to T is in the steps, gap or not beyond.
  let continuesAfterT = false;
  for (;;) {
    const inc = incs.find((m) => m.from_seq === cur + 1 && m.prev_hash === curHash && m.to_seq > cur);
    if (inc !== undefined) {
      // The next event (its first) is after T: the steps so far hold exactly the events up to T.
      if (inc.from_ts > T) {
        continuesAfterT = true;
        break;
      }
      steps.push(stepOf(inc));
      cur = inc.to_seq;
      curHash = inc.head_hash;
      if (inc.to_ts > T) break;
      continue;
    }
    const seg = segs.filter((s) => s.first_seq <= cur + 1 && s.last_seq > cur).sort((a, b) => b.last_seq - a.last_seq)[0];
    if (seg === undefined) break;
    steps.push({ kind: 'segment', segment: seg, first_seq: seg.first_seq, last_seq: seg.last_seq });
    cur = seg.last_seq;
    curHash = ''; // unknown until read; the executor checks links
  }
  const last = steps[steps.length - 1];
  const reachedT = continuesAfterT || (last?.kind === 'backup' && last.manifest.to_ts > T);
  return { steps, toSeq: cur, gapAfterSeq: !reachedT && beyond > cur ? cur : null, base };
}

/**
 * A backup's events as a user reads them: `seq 4..6`, or, for an incremental with nothing new
 * (its first seq past its last: still a link of the chain), `no new events after seq 3`.
 */
export function seqSpan(first: number, last: number): string {
  return last < first ? `no new events after seq ${last}` : `seq ${first}..${last}`;
}

/** A human-readable description of a plan (what `restore --dry-run` prints). */
export function describePlan(plan: RestorePlan): string {
  const lines: string[] = [];
  const t = plan.target;
  if (plan.pointInTime !== null) lines.push(`Point-in-time restore to ${microsToIso(plan.pointInTime)} (${plan.pointInTime} µs): events with ts ≤ T, reading the steps below in order up to the first event after T (at most seq ${plan.toSeq})`);
  else lines.push(`Restore backup ${plan.expected?.backup_id ?? '?'}${t.tag !== undefined ? ` (tag ${t.tag})` : ''} up to seq ${plan.toSeq}`);
  for (const [i, s] of plan.steps.entries()) {
    if (s.kind === 'backup') lines.push(`  ${i + 1}. ${s.manifest.type} backup ${s.manifest.backup_id}: ${seqSpan(s.first_seq, s.last_seq)} (${s.manifest.files.filter((f) => f.kind === 'events').length} files, ${s.manifest.files.reduce((n, f) => n + f.size, 0)} bytes)`);
    else lines.push(`  ${i + 1}. segment ${s.segment.key}: seq ${s.first_seq}..${s.last_seq}`);
  }
  // For a point in time, the events read decide: a checkpoint past the last event restored is not kept.
  if (plan.checkpoint !== null) lines.push(`  checkpoint at seq ${plan.checkpoint.seq} from ${plan.checkpoint.backup_id} (${plan.checkpoint.files.length} files)${plan.pointInTime !== null ? ', kept if the point in time reaches that seq (else the index is rebuilt from the events)' : ''}`);
  if (plan.expected !== null) lines.push(`  expect: head seq ${plan.expected.to_seq}, head hash ${plan.expected.head_hash.slice(0, 16)}…, ${plan.expected.vector_count} vectors`);
  if (plan.gapAfterSeq !== null) lines.push(`  WARNING: the chain has a gap after seq ${plan.gapAfterSeq}; the restore refuses unless T falls before it`);
  return lines.join('\n');
}
