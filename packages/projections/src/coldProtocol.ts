import type { Metadata, Metric } from '@kyrodb/log';
import type { Filter } from './filter.js';

/** One change for the cold tier, in log order. Upsert vectors live in the batch's buffer at `off`. */
export type ColdOp =
  | { op: 'create'; coll: string; dim: number; metric: Metric; M: number; efC: number; efS: number; createdSeq: number }
  | { op: 'drop'; coll: string; seq: number }
  | { op: 'upsert'; coll: string; id: string; seq: number; off: number; len: number; meta?: Metadata }
  | { op: 'delete'; coll: string; id: string; seq: number };

/** An injected fault, decided in the main thread from the failpoints and carried out by the worker. */
export type ColdFault = { kind: 'panic' } | { kind: 'error'; code: string } | { kind: 'delay'; ms: number };

/** Messages to the cold worker. */
export type ToCold =
  | { type: 'apply'; ops: ColdOp[]; vectors: Float32Array; seq: number; fault?: ColdFault }
  /** A search that does not fit the shared channel (or finds no free slot). */
  | { type: 'search'; reqId: number; coll: string; vector: Float32Array; k: number; filter?: Filter; fault?: ColdFault }
  /**
   * Copies of vectors for labels loaded from a checkpoint (which holds hnswlib's copies only:
   * normalised for cosine): doc `ids[i]` at version `seqs[i]` has the vector at i·dim. Applied
   * only to the label holding that very version, so it is exact in any order with the batches.
   */
  | { type: 'vectors'; coll: string; ids: string[]; seqs: number[]; vectors: Float32Array }
  | { type: 'save'; reqId: number; dir: string; fault?: ColdFault }
  /** `format`: the checkpoint's format version (its file names and layout). */
  | { type: 'load'; reqId: number; dir: string; collections: string[]; seq: number; format: number }
  | { type: 'stats'; reqId: number }
  /** Ends the worker between messages, never inside an hnswlib call. */
  | { type: 'stop' };

/** What the cold worker saved for one collection. */
export interface ColdSavedCollection {
  name: string;
  dim: number;
  live: number;
  files: string[];
}

/** Per-collection cold stats. */
export interface ColdStats {
  watermark: number;
  /** `scored`: live labels whose vector the worker holds (their hits come back scored). */
  collections: { name: string; dim: number; live: number; capacity: number; scored: number }[];
}

/**
 * A cold hit: the id and the seq of the version the index holds; `score`, that version's exact
 * score (`scoreAt` over the worker's copy of its vector: the number the main thread would
 * compute), or NaN when the worker holds no copy (labels loaded from a checkpoint and not
 * filled); `meta` when that version has metadata.
 */
export interface ColdHit {
  id: string;
  seq: number;
  score: number;
  meta: boolean;
}

/**
 * A cold answer. `seq`: the last event the index had applied when it searched (it may answer
 * between the ops of a batch); the caller's hot tier must still hold everything after it.
 */
export interface ColdAnswer {
  hits: ColdHit[];
  seq: number;
  /** Time spent inside hnswlib, µs. */
  tookUs: number;
}

/** Messages from the cold worker. */
export type FromCold =
  | { type: 'ready' }
  | { type: 'applied'; seq: number }
  | { type: 'reply'; reqId: number; ok: true; value: unknown }
  | { type: 'reply'; reqId: number; ok: false; error: string };
