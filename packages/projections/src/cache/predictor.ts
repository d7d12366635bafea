import { CacheError } from './errors.js';
import type { AccessSnapshot } from './accessLog.js';
import { seededRandom } from '@kyrodb/log';

/*
 * The model. Every query fingerprint (a cluster of near-duplicate queries) carries O(1) access
 * statistics on a logical clock that ticks once per logged query: three exponentially decayed access
 * counts (half-lives of 64, 1024 and 16384 ticks), the tick of its last access and its total count.
 * From them we take five features — log1p of each decayed count as of now, log1p(ticks since the last
 * access) and log1p(total count) — standardize them, and a logistic regression gives
 * P(the fingerprint is asked again within `horizon` ticks). Training replays the access log: for each
 * access it makes one example at the access itself and one at a random later instant before the
 * next access (so recency varies), labels them by whether the next access falls within the horizon
 * (examples whose horizon runs past the end of the log are censored and dropped), and fits the
 * weights by full-batch gradient descent on the L2-regularized log loss. The cache uses the logit as a
 * score: admission keeps the candidate only if it scores above the weakest of a sample of resident
 * entries, and eviction removes that weakest one. Without trained weights the cache is plain LRU.
 */

/** Number of features of the model. */
export const FEATURE_COUNT = 5;
/** Names of the features, in order (recorded in the weights). */
export const FEATURE_NAMES: readonly string[] = Object.freeze(['log1p_decayed_count_h64', 'log1p_decayed_count_h1024', 'log1p_decayed_count_h16384', 'log1p_ticks_since_last', 'log1p_total_count']);
const HALF_LIVES = [64, 1024, 16384] as const;
/** Version of the serialized weights format. */
export const WEIGHTS_FORMAT = 1;

/** Per-fingerprint access statistics, updated in O(1) on every access. */
export interface AccessStats {
  d0: number;
  d1: number;
  d2: number;
  /** Tick of the last access (-1 = never). */
  last: number;
  /** Accesses so far. */
  count: number;
}

/** Fresh statistics of a fingerprint never seen. */
export function newAccessStats(): AccessStats {
  return { d0: 0, d1: 0, d2: 0, last: -1, count: 0 };
}

/** Records an access at `tick` (ticks are non-decreasing). */
export function touchAccessStats(s: AccessStats, tick: number): void {
  if (s.last >= 0) {
    const age = tick - s.last;
    s.d0 *= Math.pow(2, -age / HALF_LIVES[0]);
    s.d1 *= Math.pow(2, -age / HALF_LIVES[1]);
    s.d2 *= Math.pow(2, -age / HALF_LIVES[2]);
  }
  s.d0 += 1;
  s.d1 += 1;
  s.d2 += 1;
  s.last = tick;
  s.count += 1;
}

/** Writes the raw (unstandardized) features of `s` as of `tick` into `out[offset..offset+5)`. */
export function accessFeatures(s: AccessStats, tick: number, out: Float64Array, offset = 0): void {
  const age = s.last >= 0 ? Math.max(0, tick - s.last) : 1e9;
  out[offset] = Math.log1p(s.d0 * Math.pow(2, -age / HALF_LIVES[0]));
  out[offset + 1] = Math.log1p(s.d1 * Math.pow(2, -age / HALF_LIVES[1]));
  out[offset + 2] = Math.log1p(s.d2 * Math.pow(2, -age / HALF_LIVES[2]));
  out[offset + 3] = Math.log1p(age);
  out[offset + 4] = Math.log1p(s.count);
}

/** Serializable model weights (plain JSON; what the training worker ships back). */
export interface PredictorWeights {
  format: number;
  features: string[];
  /** Per-feature mean and standard deviation used to standardize. */
  mean: number[];
  std: number[];
  /** Per-feature weights and the bias, on standardized features. */
  w: number[];
  b: number;
  /** Training examples used, how many were positive, final mean log loss. */
  samples: number;
  positives: number;
  loss: number;
  /** Label horizon in ticks. */
  horizon: number;
}

/** Options of `trainPredictor`. */
export interface PredictorTrainingOptions {
  /** Label horizon in ticks (logged queries): "asked again within this many queries"; at most a quarter of the log is used. Default 2048. */
  horizon: number;
  /** Full-batch gradient steps. Default 60. */
  epochs: number;
  /** Gradient step size. Default 0.5. */
  learningRate: number;
  /** L2 penalty on the weights (not the bias). Default 1e-4. */
  l2: number;
  /** Seed of the sampler of later instants (training is deterministic given the log and the seed). Default 1. */
  seed: number;
  /** Fewest usable examples to fit a model; with fewer `trainPredictor` returns undefined. Default 100. */
  minSamples: number;
}

/** Defaults for PredictorTrainingOptions. */
export const defaultPredictorTrainingOptions: Readonly<PredictorTrainingOptions> = Object.freeze({
  horizon: 2048,
  epochs: 60,
  learningRate: 0.5,
  l2: 1e-4,
  seed: 1,
  minSamples: 100,
});

const mulberry32 = seededRandom;

/**
 * Fits the model to an access-log snapshot (pure and deterministic; runs in the training worker).
 * `onProgress` is called after every epoch (the worker heartbeats from it). Returns undefined when the
 * log yields fewer than `minSamples` usable examples or only one class.
 */
export function trainPredictor(snapshot: Pick<AccessSnapshot, 'fingerprints'>, options: Partial<PredictorTrainingOptions> = {}, onProgress?: (epoch: number) => void): PredictorWeights | undefined {
  const o = { ...defaultPredictorTrainingOptions, ...options };
  if (!(o.horizon >= 1) || !(o.epochs >= 1) || !(o.learningRate > 0) || !(o.l2 >= 0)) throw new CacheError('CACHE_INVALID_OPTIONS', 'trainPredictor: horizon and epochs must be ≥ 1, learningRate > 0, l2 ≥ 0', { ...o });
  const fps = snapshot.fingerprints;
  const n = fps.length;
  // A log shorter than a few horizons would censor every example: shrink the horizon to a quarter of it.
  const H = Math.max(1, Math.min(o.horizon, Math.floor(n / 4)));
  // next[i]: index of the next access of the same fingerprint, or Infinity.
  const next = new Float64Array(n);
  const seen = new Map<number, number>();
  for (let i = n - 1; i >= 0; i--) {
    const f = fps[i]!;
    next[i] = seen.get(f) ?? Infinity;
    seen.set(f, i);
  }
  const rand = mulberry32(o.seed);
  const xs = new Float64Array(2 * n * FEATURE_COUNT);
  const ys = new Uint8Array(2 * n);
  let m = 0;
  const stats = new Map<number, AccessStats>();
  for (let i = 0; i < n; i++) {
    const f = fps[i]!;
    let s = stats.get(f);
    if (s === undefined) stats.set(f, (s = newAccessStats()));
    touchAccessStats(s, i);
    const nx = next[i]!;
    if (i + H < n) {
      accessFeatures(s, i, xs, m * FEATURE_COUNT);
      ys[m++] = nx - i <= H ? 1 : 0;
    }
    const t = i + 1 + Math.floor(rand() * 4 * H);
    if (nx > t && t + H < n) {
      accessFeatures(s, t, xs, m * FEATURE_COUNT);
      ys[m++] = nx - t <= H ? 1 : 0;
    }
  }
  let positives = 0;
  for (let j = 0; j < m; j++) positives += ys[j]!;
  if (m < o.minSamples || positives === 0 || positives === m) return undefined;

  const mean = new Array<number>(FEATURE_COUNT).fill(0);
  const std = new Array<number>(FEATURE_COUNT).fill(0);
  for (let j = 0; j < m; j++) for (let k = 0; k < FEATURE_COUNT; k++) mean[k]! += xs[j * FEATURE_COUNT + k]!;
  for (let k = 0; k < FEATURE_COUNT; k++) mean[k] = mean[k]! / m;
  for (let j = 0; j < m; j++)
    for (let k = 0; k < FEATURE_COUNT; k++) {
      const d = xs[j * FEATURE_COUNT + k]! - mean[k]!;
      std[k]! += d * d;
    }
  for (let k = 0; k < FEATURE_COUNT; k++) std[k] = Math.sqrt(std[k]! / m) || 1;
  for (let j = 0; j < m; j++) for (let k = 0; k < FEATURE_COUNT; k++) xs[j * FEATURE_COUNT + k] = (xs[j * FEATURE_COUNT + k]! - mean[k]!) / std[k]!;

  const w = new Array<number>(FEATURE_COUNT).fill(0);
  let b = Math.log(positives / (m - positives));
  const g = new Array<number>(FEATURE_COUNT).fill(0);
  let loss = 0;
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    g.fill(0);
    let gb = 0;
    loss = 0;
    for (let j = 0; j < m; j++) {
      let z = b;
      const base = j * FEATURE_COUNT;
      for (let k = 0; k < FEATURE_COUNT; k++) z += w[k]! * xs[base + k]!;
      const p = 1 / (1 + Math.exp(-z));
      const y = ys[j]!;
      loss -= y === 1 ? Math.log(p + 1e-12) : Math.log(1 - p + 1e-12);
      const err = p - y;
      gb += err;
      for (let k = 0; k < FEATURE_COUNT; k++) g[k]! += err * xs[base + k]!;
    }
    for (let k = 0; k < FEATURE_COUNT; k++) w[k] = w[k]! - o.learningRate * (g[k]! / m + o.l2 * w[k]!);
    b -= o.learningRate * (gb / m);
    loss /= m;
    onProgress?.(epoch);
  }
  return { format: WEIGHTS_FORMAT, features: [...FEATURE_NAMES], mean, std, w, b, samples: m, positives, loss, horizon: H };
}

/** Checks the shape of serialized weights; throws CacheError CACHE_INVALID_WEIGHTS. */
export function validateWeights(x: unknown): PredictorWeights {
  const v = x as Partial<PredictorWeights> | null;
  const okArr = (a: unknown): a is number[] => Array.isArray(a) && a.length === FEATURE_COUNT && a.every((e) => typeof e === 'number' && Number.isFinite(e));
  if (v === null || typeof v !== 'object' || v.format !== WEIGHTS_FORMAT || !okArr(v.mean) || !okArr(v.std) || !okArr(v.w) || typeof v.b !== 'number' || !Number.isFinite(v.b))
    throw new CacheError('CACHE_INVALID_WEIGHTS', `predictor weights must be format ${WEIGHTS_FORMAT} with ${FEATURE_COUNT} finite mean/std/w entries and a finite bias`);
  return v as PredictorWeights;
}

/**
 * Scores query fingerprints with the learned model. Holds no access data itself (the cache keeps
 * per-fingerprint `AccessStats`); it only holds the current weights. `trained` is false until weights
 * are loaded and again after `clear()` — callers then fall back to LRU.
 */
export class LearnedPredictor {
  private model: PredictorWeights | undefined;
  private readonly buf = new Float64Array(FEATURE_COUNT);
  private readonly wz = new Float64Array(FEATURE_COUNT);
  private bz = 0;
  private generation = 0;

  /** True when a model is loaded. */
  get trained(): boolean {
    return this.model !== undefined;
  }

  /** Increases every time the model is replaced or cleared. */
  get modelGeneration(): number {
    return this.generation;
  }

  /** Installs weights (validated; throws CACHE_INVALID_WEIGHTS). */
  load(weights: unknown): void {
    const m = validateWeights(weights);
    this.model = structuredClone(m);
    // Fold the standardization into the weights: logit = bz + Σ wz_k · x_k.
    let bz = m.b;
    for (let k = 0; k < FEATURE_COUNT; k++) {
      this.wz[k] = m.w[k]! / m.std[k]!;
      bz -= (m.w[k]! * m.mean[k]!) / m.std[k]!;
    }
    this.bz = bz;
    this.generation++;
  }

  /** Drops the model: the cache falls back to LRU. */
  clear(): void {
    this.model = undefined;
    this.generation++;
  }

  /** A copy of the current weights, or undefined. */
  weights(): PredictorWeights | undefined {
    return this.model === undefined ? undefined : structuredClone(this.model);
  }

  /** The logit of "asked again within the horizon" for `s` as of `tick`; 0 when untrained. */
  score(s: AccessStats, tick: number): number {
    if (this.model === undefined) return 0;
    accessFeatures(s, tick, this.buf);
    let z = this.bz;
    for (let k = 0; k < FEATURE_COUNT; k++) z += this.wz[k]! * this.buf[k]!;
    return z;
  }

  /** Probability form of `score`. */
  predict(s: AccessStats, tick: number): number {
    return 1 / (1 + Math.exp(-this.score(s, tick)));
  }
}
