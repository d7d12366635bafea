import { score } from '@kyrodb/projections';
import type { ReplayCollection } from './state.js';

// Apart from state.ts, which the codec worker loads: this one loads the projections package.

/** Brute-force top-k (score descending, ties by id ascending) over a replayed collection. */
export function exactTopK(c: ReplayCollection, q: Float32Array, k: number): { id: string; score: number }[] {
  const all: { id: string; score: number }[] = [];
  for (const [id, d] of c.docs) if (d !== null) all.push({ id, score: score(c.metric, q, d.vector) });
  all.sort((x, y) => y.score - x.score || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
  return all.slice(0, k);
}
