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

/**
 * The most keys a filter may name, and the most values its `$in` lists may hold together. A filter
 * is checked against every document a search visits: one of 100 000 keys (1.6 MB of JSON) held
 * the event loop for seconds and kept the cold worker inside a native search until it was judged
 * hung, and terminating it there aborted the process.
 */
export const MAX_FILTER_KEYS = 64;
export const MAX_FILTER_IN_VALUES = 10_000;

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
  const entries = Object.entries(f as Record<string, unknown>);
  if (entries.length > MAX_FILTER_KEYS) bad(`filter has ${entries.length} keys; at most ${MAX_FILTER_KEYS}`);
  let inValues = 0;
  for (const [k, v] of entries) {
    if (isScalar(v)) continue;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(`filter.${k} must be a scalar or an operator object`);
    const ops = Object.entries(v as Record<string, unknown>);
    if (ops.length === 0) bad(`filter.${k} has no operator`);
    for (const [op, arg] of ops) {
      if (!OPS.includes(op)) bad(`filter.${k}: unknown operator "${op}" (expected ${OPS.join(', ')})`);
      if (op === '$in') {
        if (!Array.isArray(arg) || !arg.every(isScalar)) bad(`filter.${k}.$in must be an array of scalars`);
        inValues += arg.length;
        if (inValues > MAX_FILTER_IN_VALUES) bad(`filter's $in lists hold more than ${MAX_FILTER_IN_VALUES} values`);
      } else if (typeof arg !== 'number' || !Number.isFinite(arg)) bad(`filter.${k}.${op} must be a finite number`);
    }
  }
  return f as Filter;
}

/** True when `meta` satisfies every condition of `f` (an empty filter matches everything, absent metadata matches only `{}`). */
export function matchesFilter(meta: Metadata | undefined, f: Filter): boolean {
  return compileFilter(f)(meta);
}

/**
 * `f` as a predicate, for checking many documents against one filter: its keys listed once (a
 * `for … in` lists every key of the filter on each call, though the first may decide), and each
 * `$in` a set. Same answers as `matchesFilter`: `===` on scalars (a set's SameValueZero differs
 * from it only on NaN, which no filter or metadata holds).
 */
export function compileFilter(f: Filter): (meta: Metadata | undefined) => boolean {
  const conds = Object.keys(f).map((k) => {
    const cond = f[k]!;
    if (cond === null || typeof cond !== 'object') return { k, eq: cond, in: undefined, range: undefined };
    const range = cond.$gt !== undefined || cond.$gte !== undefined || cond.$lt !== undefined || cond.$lte !== undefined ? cond : undefined;
    return { k, eq: undefined, in: cond.$in !== undefined ? new Set<unknown>(cond.$in) : undefined, range };
  });
  return (meta) => {
    for (const c of conds) {
      const v: MetadataValue | undefined = meta?.[c.k];
      if (c.in === undefined && c.range === undefined) {
        if (v !== c.eq) return false;
        continue;
      }
      if (c.in !== undefined && (v === undefined || !c.in.has(v))) return false;
      const r = c.range;
      if (r !== undefined) {
        if (typeof v !== 'number') return false;
        if (r.$gt !== undefined && !(v > r.$gt)) return false;
        if (r.$gte !== undefined && !(v >= r.$gte)) return false;
        if (r.$lt !== undefined && !(v < r.$lt)) return false;
        if (r.$lte !== undefined && !(v <= r.$lte)) return false;
      }
    }
    return true;
  };
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
