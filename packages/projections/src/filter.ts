import type { Metadata, MetadataValue } from '@kyrodb/log';
import { ProjectionError } from './errors.js';

/** A range/set condition on one metadata key. Ranges compare numbers only. */
export interface FilterOps {
  $in?: (string | number | boolean | null)[];
  $gt?: number;
  $gte?: number;
  $lt?: number;
  $lte?: number;
}
/** One key's condition: a scalar for equality, or operators. */
export type FilterValue = string | number | boolean | null | FilterOps;
/** A metadata filter: every key's condition must hold (AND) on the top-level metadata key. */
export type Filter = Record<string, FilterValue>;

const OPS = ['$in', '$gt', '$gte', '$lt', '$lte'];

function bad(msg: string): never {
  throw new ProjectionError('PROJ_INVALID_FILTER', msg);
}

function isScalar(v: unknown): v is string | number | boolean | null {
  return v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));
}

/**
 * Checks a filter's shape and returns it typed: `{"k": v}` equality with a scalar,
 * `{"k": {"$in": [scalars]}}`, `{"k": {"$gte"|"$gt"|"$lte"|"$lt": number, ...}}`; keys AND-ed.
 * Throws ProjectionError PROJ_INVALID_FILTER naming the key.
 */
export function validateFilter(f: unknown): Filter {
  if (typeof f !== 'object' || f === null || Array.isArray(f)) bad('filter must be an object');
  for (const [k, v] of Object.entries(f as Record<string, unknown>)) {
    if (isScalar(v)) continue;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(`filter.${k} must be a scalar or an operator object`);
    const ops = Object.entries(v as Record<string, unknown>);
    if (ops.length === 0) bad(`filter.${k} has no operator`);
    for (const [op, arg] of ops) {
      if (!OPS.includes(op)) bad(`filter.${k}: unknown operator "${op}" (expected ${OPS.join(', ')})`);
      if (op === '$in') {
        if (!Array.isArray(arg) || !arg.every(isScalar)) bad(`filter.${k}.$in must be an array of scalars`);
      } else if (typeof arg !== 'number' || !Number.isFinite(arg)) bad(`filter.${k}.${op} must be a finite number`);
    }
  }
  return f as Filter;
}

/** True when `meta` satisfies every condition of `f` (an empty filter matches everything, absent metadata matches only `{}`). */
export function matchesFilter(meta: Metadata | undefined, f: Filter): boolean {
  for (const k in f) {
    const cond = f[k];
    const v: MetadataValue | undefined = meta?.[k];
    if (cond === null || typeof cond !== 'object') {
      if (v !== cond) return false;
      continue;
    }
    if (cond.$in !== undefined && (v === undefined || !cond.$in.some((x) => x === v))) return false;
    if (cond.$gt !== undefined || cond.$gte !== undefined || cond.$lt !== undefined || cond.$lte !== undefined) {
      if (typeof v !== 'number') return false;
      if (cond.$gt !== undefined && !(v > cond.$gt)) return false;
      if (cond.$gte !== undefined && !(v >= cond.$gte)) return false;
      if (cond.$lt !== undefined && !(v < cond.$lt)) return false;
      if (cond.$lte !== undefined && !(v <= cond.$lte)) return false;
    }
  }
  return true;
}

/** A canonical string for a filter (sorted keys), for cache keys; `''` for none. */
export function filterKey(f: Filter | undefined): string {
  if (f === undefined) return '';
  const keys = Object.keys(f).sort();
  if (keys.length === 0) return '';
  return JSON.stringify(
    keys.map((k) => {
      const c = f[k]!;
      if (c === null || typeof c !== 'object') return [k, c];
      return [k, Object.keys(c).sort().map((op) => [op, (c as Record<string, unknown>)[op]])];
    }),
  );
}
