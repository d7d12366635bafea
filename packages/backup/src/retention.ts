import { begunBefore, compareNewestFirst, createdMs, type BackupManifest } from './manifest.js';
import type { SegmentInfo } from './pieces.js';
import { claimState, staleTagClaims, type ParentClaim, type TagClaim } from './tagClaims.js';
import { historyClaimKey } from './historyClaims.js';

/**
 * Grandfather-father-son retention: keep the newest backup in each of the N most recent hours
 * (days, weeks, months) that hold one; a slot with no backup does not count.
 */
export interface RetentionPolicy {
  /** Hourly slots kept. Default 24. */
  hourly: number;
  /** Daily slots kept. Default 7. */
  daily: number;
  /** Weekly (ISO week, UTC) slots kept. Default 4. */
  weekly: number;
  /** Monthly slots kept. Default 12. */
  monthly: number;
}

/** The sketch's defaults: hourly 24, daily 7, weekly 4, monthly 12. */
export const defaultRetentionPolicy: RetentionPolicy = Object.freeze({ hourly: 24, daily: 7, weekly: 4, monthly: 12 });

/** Inputs of a retention plan. */
export interface RetentionOptions {
  /** GFS slots (used when given, or when `retentionDays` is absent). */
  policy?: Partial<RetentionPolicy>;
  /** Keep every backup created in the last N days, and keep PITR possible to any instant in them. */
  retentionDays?: number;
  /** Now, ms since the epoch (plans are pure: the caller passes the time). */
  now: number;
  /** Ids of backups with objects but no manifest (`loadManifests`' `incomplete`). */
  incomplete?: readonly string[];
  /** An incomplete backup older than this (by the time in its id) is one whose process is gone: deleted. Default 24 h. */
  incompleteAfterMs?: number;
  /** The store's tag claims (`parseTagClaims` of the keys under `tags/`). */
  tagClaims?: readonly TagClaim[];
  /** The store's parent claims (`parseParentClaims` of the keys under `parents/`): a claimed parent of a backup under way is kept. */
  parentClaims?: readonly ParentClaim[];
  /** The seqs of the store's history claims (`historyClaimSeq` of the keys under `history/`). */
  historyClaims?: readonly number[];
}

/** Default `incompleteAfterMs`: a day (a full backup of 1M events takes seconds). */
export const INCOMPLETE_AFTER_MS = 24 * 3_600_000;

/** The result of planning: what to delete and why each kept backup stays. */
export interface RetentionPlan {
  keep: { backup_id: string; reasons: string[] }[];
  delete: string[];
  /** Segments no kept restore point needs (wholly before the PITR base). */
  deleteSegments: string[];
  /**
   * Incomplete backups (objects, no manifest: never listed or used) made longer than
   * `incompleteAfterMs` ago: what a backup killed mid-upload left. Younger ones may still be uploading.
   */
  deleteIncomplete: string[];
  /** Keys of tag claims whose backup has no manifest and began longer than `incompleteAfterMs` ago (see tagClaims.ts): a killed backup's. */
  deleteTagClaims: string[];
  /** Keys of parent claims no longer needed: their backup completed (its manifest names the parent), or has no manifest and began longer than `incompleteAfterMs` ago. */
  deleteParentClaims: string[];
  /**
   * Keys of history claims (see historyClaims.ts) in the stretch retention gives up (at or below
   * the seq whose segments go) where no kept backup or segment starts: they go with what they
   * claimed. Never one past it, where a segment or an incremental under way may have just claimed.
   */
  deleteHistoryClaims: string[];
}

function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const y = t.getUTCFullYear();
  const w = Math.ceil(((t.getTime() - Date.UTC(y, 0, 1)) / 86_400_000 + 1) / 7);
  return `${y}-W${w}`;
}

const slotKeys: Record<keyof RetentionPolicy, (d: Date) => string> = {
  hourly: (d) => d.toISOString().slice(0, 13),
  daily: (d) => d.toISOString().slice(0, 10),
  weekly: isoWeek,
  monthly: (d) => d.toISOString().slice(0, 7),
};

/**
 * Decides, without I/O, which backups retention deletes. Kept: tagged backups (always), the
 * newest backup, the GFS slots (when a policy is given or no `retentionDays`), everything
 * created within `retentionDays`, plus the newest full backup ending before the window start
 * (the PITR base). Then every parent of a kept backup is kept too, so nothing kept ever loses
 * what it depends on. Segments are deletable only if they end at or before the PITR base (or,
 * with no window, before the oldest kept full backup). Incomplete backups older than
 * `incompleteAfterMs` are deleted too, and so are tag claims of backups with no manifest that
 * old; a committed backup's claim stays while it does. A parent claimed by an incremental under
 * way (see tagClaims.ts) is kept; the claims no longer needed are deleted.
 */
export function planRetention(manifests: readonly BackupManifest[], segments: readonly SegmentInfo[], o: RetentionOptions): RetentionPlan {
  const sorted = [...manifests].sort((a, b) => createdMs(b) - createdMs(a) || compareNewestFirst(a, b));
  const reasons = new Map<string, string[]>();
  const keep = (m: BackupManifest, why: string): void => {
    const r = reasons.get(m.backup_id) ?? [];
    if (r.includes(why)) return; // a parent of two kept backups' chains is reached twice
    r.push(why);
    reasons.set(m.backup_id, r);
  };
  const newest = [...manifests].sort(compareNewestFirst)[0];
  if (newest !== undefined) keep(newest, 'newest');
  for (const m of sorted) if (m.tag !== undefined) keep(m, `tag ${m.tag}`);
  const usePolicy = o.policy !== undefined || o.retentionDays === undefined;
  if (usePolicy) {
    const p = { ...defaultRetentionPolicy, ...o.policy };
    for (const kind of ['hourly', 'daily', 'weekly', 'monthly'] as const) {
      const seen = new Set<string>();
      for (const m of sorted) {
        if (seen.size >= p[kind]) break;
        const slot = slotKeys[kind](new Date(createdMs(m)));
        if (seen.has(slot)) continue;
        seen.add(slot);
        keep(m, `${kind} ${slot}`);
      }
    }
  }
  let pitrBaseSeq: number | undefined;
  if (o.retentionDays !== undefined) {
    const start = o.now - o.retentionDays * 86_400_000;
    for (const m of sorted) if (createdMs(m) >= start) keep(m, `within ${o.retentionDays} days`);
    const base = sorted.filter((m) => m.type === 'full' && m.to_ts <= start * 1000).sort(compareNewestFirst)[0];
    if (base !== undefined) {
      keep(base, 'PITR window base');
      pitrBaseSeq = base.to_seq;
      // Incrementals after the base carry the window's history even if created before it.
      for (const m of sorted) if (m.type === 'incremental' && m.to_seq > base.to_seq) keep(m, 'PITR window');
    } else {
      pitrBaseSeq = 0;
    }
  }
  const byId = new Map(manifests.map((m) => [m.backup_id, m]));
  const staleAfterMs = o.incompleteAfterMs ?? INCOMPLETE_AFTER_MS;
  // The parent of an incremental under way (claimed before its upload) is kept as if it were listed.
  const deleteParentClaims: string[] = [];
  for (const c of o.parentClaims ?? []) {
    if (claimState(c.backupId, byId.has(c.backupId), o.now, staleAfterMs) !== 'under-way') deleteParentClaims.push(c.key);
    else if (byId.has(c.parentId)) keep(byId.get(c.parentId)!, `parent of ${c.backupId}, under way`);
  }
  // Close over parents.
  for (const id of [...reasons.keys()]) {
    let m = byId.get(id);
    while (m?.parent != null) {
      const p = byId.get(m.parent);
      if (p === undefined) break;
      keep(p, `parent of ${m.backup_id}`);
      m = p;
    }
  }
  const keptFulls = manifests.filter((m) => m.type === 'full' && reasons.has(m.backup_id));
  const segLimit = pitrBaseSeq ?? (keptFulls.length === 0 ? 0 : Math.min(...keptFulls.map((m) => m.to_seq)));
  return {
    keep: sorted.filter((m) => reasons.has(m.backup_id)).map((m) => ({ backup_id: m.backup_id, reasons: reasons.get(m.backup_id)! })),
    delete: sorted.filter((m) => !reasons.has(m.backup_id)).map((m) => m.backup_id),
    deleteSegments: segments.filter((s) => s.last_seq <= segLimit).map((s) => s.key),
    deleteIncomplete: (o.incomplete ?? []).filter((id) => begunBefore(id, o.now, staleAfterMs)),
    deleteTagClaims: staleTagClaims(o.tagClaims ?? [], new Set(byId.keys()), o.now, staleAfterMs),
    deleteParentClaims,
    deleteHistoryClaims: staleHistoryClaims(o.historyClaims ?? [], segLimit, [...manifests.filter((m) => reasons.has(m.backup_id)).map((m) => m.from_seq), ...segments.filter((s) => s.last_seq > segLimit).map((s) => s.first_seq)]),
  };
}

function staleHistoryClaims(claims: readonly number[], limit: number, keptStarts: readonly number[]): string[] {
  const kept = new Set(keptStarts);
  return claims.filter((seq) => seq <= limit && !kept.has(seq)).map(historyClaimKey);
}
