import { backupIdTime, begunBefore } from './manifest.js';

/**
 * Tag claims: how a tag stays unique across processes sharing a store, on any store whose
 * listing is read-after-write consistent (a local dir, S3), without conditional writes.
 *
 * A tagged backup puts a claim `tags/<tag>/<backup id>` before it uploads anything, then lists
 * `tags/<tag>/`. Of two creators, the one that lists second sees the other's claim (each puts
 * before it lists), so at most one of them proceeds; both may be refused. A claim stays while
 * its backup does: committed, it is the tag's record; a failed backup removes it with its
 * objects. A claim with no manifest older than the incomplete-backup expiry is a killed
 * backup's: creators ignore it and `prune` deletes it, so a tag is never blocked for good.
 */

/** Store key prefix of every tag claim. */
export const TAG_CLAIMS_PREFIX = 'tags/';

/** Store key prefix of the claims on `tag` (a tag never holds `/`, see TAG_RE). */
export function tagClaimPrefix(tag: string): string {
  return `${TAG_CLAIMS_PREFIX}${tag}/`;
}

/** Store key of backup `backupId`'s claim on `tag`. */
export function tagClaimKey(tag: string, backupId: string): string {
  return `${tagClaimPrefix(tag)}${backupId}`;
}

/** A claim as listed: its key, the tag and the claiming backup's id. */
export interface TagClaim {
  key: string;
  tag: string;
  backupId: string;
}

/** Claims among store keys `<prefix><name>/<backup id>`; other keys, and names that are no backup id, are skipped. */
function parseClaimKeys(keys: readonly string[], prefix: string): { key: string; name: string; backupId: string }[] {
  const out: { key: string; name: string; backupId: string }[] = [];
  for (const key of keys) {
    const parts = key.split('/');
    if (parts.length !== 3 || `${parts[0]}/` !== prefix) continue;
    const [, name, backupId] = parts as [string, string, string];
    if (name === '' || backupIdTime(backupId) === undefined) continue;
    out.push({ key, name, backupId });
  }
  return out;
}

/** The claims among store keys (`tags/<tag>/<backup id>`); other keys, and names that are no backup id, are skipped. */
export function parseTagClaims(keys: readonly string[]): TagClaim[] {
  return parseClaimKeys(keys, TAG_CLAIMS_PREFIX).map((c) => ({ key: c.key, tag: c.name, backupId: c.backupId }));
}

/**
 * Parent claims: an incremental backup under way puts `parents/<parent id>/<its id>` before it
 * uploads anything, and removes it once its manifest is written (or with its objects when it
 * fails). Retention keeps a parent claimed by a backup under way, with the parent's own chain,
 * as it keeps the parent of a listed backup; claims of committed backups, and of backups
 * with no manifest older than the incomplete-backup expiry (killed), are deleted by `prune`.
 */
export const PARENT_CLAIMS_PREFIX = 'parents/';

/** Store key of backup `backupId`'s claim on its parent `parentId`. */
export function parentClaimKey(parentId: string, backupId: string): string {
  return `${PARENT_CLAIMS_PREFIX}${parentId}/${backupId}`;
}

/** A parent claim as listed: its key, the parent's id and the claiming backup's id. */
export interface ParentClaim {
  key: string;
  parentId: string;
  backupId: string;
}

/** The parent claims among store keys (`parents/<parent id>/<backup id>`). */
export function parseParentClaims(keys: readonly string[]): ParentClaim[] {
  return parseClaimKeys(keys, PARENT_CLAIMS_PREFIX)
    .filter((c) => backupIdTime(c.name) !== undefined)
    .map((c) => ({ key: c.key, parentId: c.name, backupId: c.backupId }));
}

/**
 * What a claim means to a new claimant: `committed` (its backup has a manifest: the tag is
 * taken), `under-way` (no manifest yet, made within `staleAfterMs` of `now`, ms: its backup may
 * still complete), or `stale` (no manifest, older: its process is gone, see INCOMPLETE_AFTER_MS).
 */
export function claimState(backupId: string, hasManifest: boolean, now: number, staleAfterMs: number): 'committed' | 'under-way' | 'stale' {
  if (hasManifest) return 'committed';
  // An id without a time is never a claim (parseTagClaims skips it): under way, as the safe side.
  return begunBefore(backupId, now, staleAfterMs) ? 'stale' : 'under-way';
}

/**
 * The claim that keeps backup `own` from its tag: the first other claim (by backup id) that is
 * committed or under way; undefined when `own` may have it. `others` are the other claims on
 * the tag, each with whether its backup has a manifest.
 */
export function tagHolder(own: string, others: readonly { backupId: string; hasManifest: boolean }[], now: number, staleAfterMs: number): { backupId: string; state: 'committed' | 'under-way' } | undefined {
  for (const c of [...others].sort((a, b) => (a.backupId < b.backupId ? -1 : a.backupId > b.backupId ? 1 : 0))) {
    if (c.backupId === own) continue;
    const state = claimState(c.backupId, c.hasManifest, now, staleAfterMs);
    if (state !== 'stale') return { backupId: c.backupId, state };
  }
  return undefined;
}

/** The keys of stale claims (no manifest among `manifestIds`, older than `staleAfterMs` before `now`): what `prune` deletes. */
export function staleTagClaims(claims: readonly TagClaim[], manifestIds: ReadonlySet<string>, now: number, staleAfterMs: number): string[] {
  return claims.filter((c) => claimState(c.backupId, manifestIds.has(c.backupId), now, staleAfterMs) === 'stale').map((c) => c.key);
}
