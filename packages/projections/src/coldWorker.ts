// The cold tier: one hnswlib-node index per collection, in a worker thread. Receives batches of
// ops in log order, answers searches, saves and loads checkpoint files. It trusts its input; the
// main thread validates everything.
//
// It runs one synchronous loop instead of an event loop: it takes messages with
// receiveMessageOnPort and searches from the shared channel, and sleeps in Atomics.wait on the
// channel's bell, which the main thread rings after every message and every search request. A
// search request is also served between the ops of an insert batch, so a search never waits
// behind a whole batch. After a search it polls the bell for SEARCH_SPIN_MS before sleeping,
// while the main thread says polling pays (the POLL word; see ColdTier.notePoll).
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import hnswlib from 'hnswlib-node';
import type { Metadata, Metric } from '@kyrodb/log';
import type { ColdFault, ColdHit, ColdOp, ColdSavedCollection, ColdStats, FromCold, ToCold } from './coldProtocol.js';
import { CHECKPOINT_FORMAT_VERSION, JsonLines, collectionFiles, readJsonLinesSync, writeAllSync } from './checkpointFiles.js';
import { compileFilter } from './filter.js';
import { cosineOf, dotAt, normSqAt, scoreAt } from './scoring.js';
import type { Filter } from './filter.js';
import { BELL, POLL_CLOCK_STRIDE, POLL, PROGRESS, STOP, SearchChannel, waitAsync } from './searchChannel.js';
import type { ChannelBuffers } from './searchChannel.js';

interface Entry {
  id: string;
  seq: number;
  /** Whether `Coll.vecs` holds this version's vector (false for labels loaded from a checkpoint until filled). */
  vec: boolean;
  meta?: Metadata;
}
interface Coll {
  index: hnswlib.HierarchicalNSW;
  dim: number;
  metric: Metric;
  M: number;
  efC: number;
  efS: number;
  /** The ef the index was last set to (0 = not yet). */
  ef: number;
  createdSeq: number;
  labels: (Entry | undefined)[];
  byId: Map<string, number>;
  /** Labels marked deleted (a deleted or overwritten document's): slots the index still holds, until `compact`. */
  dead: number;
  capacity: number;
  /**
   * The vectors as written (hnswlib keeps cosine vectors normalised), label-dense: label l at
   * l·dim; `capacity`·dim floats. Hits are scored from it exactly, in this thread.
   */
  vecs: Float32Array;
  /** For cosine, the squared norm of each label's vector in `vecs` (`normSqAt`), so a hit is scored with one sum. */
  norms: Float64Array;
}

/**
 * hnswlib-node does not tell V8 how much native memory an index holds (2.6 MB of locks even when
 * empty, plus its graph), so V8 saw no reason to collect the wrapper of a dropped or replaced
 * index, and never freed it: 2000 collections dropped and created again grew the process by
 * 5 GB a round. A full collection (between messages) frees them: at once when GC_NOW_INDEXES
 * wait, else at most every GC_EVERY_MS (one takes 100-250 ms with a 100 MB heap, and searches
 * wait for it: one per drop held them that long at every drop).
 */
v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;
const GC_NOW_INDEXES = 64;
const GC_EVERY_MS = 10_000;
/** Indexes discarded (dropped, compacted, replaced by a load) since the last collection. */
let discardedIndexes = 0;
let lastGcMs = 0;

/** Collects the discarded indexes if it is time (see GC_NOW_INDEXES); returns ms until it will be, or undefined when none waits. */
async function collectDiscarded(): Promise<number | undefined> {
  if (discardedIndexes === 0) return undefined;
  const wait = lastGcMs + GC_EVERY_MS - performance.now();
  if (discardedIndexes < GC_NOW_INDEXES && wait > 0) return wait;
  discardedIndexes = 0;
  collectGarbage();
  lastGcMs = performance.now();
  // Node-API finalizers (hnswlib-node's, which free the index) run from the event loop, which
  // the message loop otherwise never yields to.
  await new Promise((resolve) => setImmediate(resolve));
  return undefined;
}

const port = parentPort!;
const channel = SearchChannel.attach(workerData as ChannelBuffers);
const colls = new Map<string, Coll>();
/** The seq of the last complete batch. */
let watermark = 0;
/** The seq of the last op applied (inside a batch: ahead of `watermark`); what a search answer reflects. */
let appliedSeq = 0;
/** The bell as of the last scan of the channel (it rings for messages too: a scan that finds nothing costs eight loads). */
let bellServed = 0;

function send(m: FromCold): void {
  port.postMessage(m);
}

function hang(ms: number): void {
  // On the STOP word: a close ends a hang as it ends a backlog (see `stopRequested`).
  Atomics.wait(channel.ints, STOP, 0, ms);
  if (stopRequested()) exitNow();
}

/** Whether the owner is closing: the work still queued is of no use then (the log has it all). */
function stopRequested(): boolean {
  return Atomics.load(channel.ints, STOP) === 1;
}

/** Exits between native calls, the only safe way to end a worker that holds hnswlib indexes. */
function exitNow(): never {
  port.close();
  process.exit(0);
}

/** Carries out an injected fault: a panic is a real uncaught crash, a delay a real hang. */
function injure(f: ColdFault | undefined, what: string): void {
  if (f === undefined) return;
  if (f.kind === 'delay') hang(f.ms);
  // A panic escapes the message handler: an uncaught exception ends the thread, a real crash.
  else if (f.kind === 'panic') throw new Error(`failpoint ${what} panicked`);
  else throw new Error(`${f.code}: injected by failpoint ${what}`);
}

function newIndex(metric: Metric, dim: number, capacity: number, M: number, efC: number): hnswlib.HierarchicalNSW {
  const idx = new hnswlib.HierarchicalNSW(metric, dim);
  idx.initIndex({ maxElements: capacity, m: M, efConstruction: efC, randomSeed: 100 });
  return idx;
}

function apply(ops: ColdOp[], vectors: Float32Array): void {
  for (const o of ops) {
    // A close does not wait for the rest of a batch either (2000 inserts can take seconds): the
    // log has every event, and the next start indexes them again. Between two inserts is between
    // two native calls, where the thread may exit.
    if (stopRequested()) exitNow();
    applyOne(o, vectors);
    if (o.op === 'upsert' || o.op === 'delete') {
      const c = colls.get(o.coll);
      if (c !== undefined && c.dead > COMPACT_MIN_DEAD && c.dead > c.byId.size) compact(c);
    }
    appliedSeq = o.op === 'create' ? o.createdSeq : o.seq;
    Atomics.add(channel.ints, PROGRESS, 1);
    if (Atomics.load(channel.ints, BELL) !== bellServed) serveChannel();
  }
}

/** Deleted slots a collection's index may hold before `compact` (and never more than its live ones). */
const COMPACT_MIN_DEAD = 1024;

/**
 * Rebuilds a collection's index from its live documents once it holds more deleted slots than
 * live ones. An overwrite or a delete leaves its slot in the graph, marked deleted, for good
 * (hnswlib reuses a slot only through `updatePoint`, measured at ~5x an insert): a soak of ~140
 * overwrites/s grew one collection to 91k slots for 5k live vectors, its inserts slowed from
 * 3.7k/s to 25/s and its searches from 0.1 to 8.5 ms, until the index could no longer keep up.
 * A rebuild costs one insert per live document, at most one per slot freed since the last: the
 * index stays within twice its live size (and COMPACT_MIN_DEAD) for an amortised insert a write.
 * Searches are answered from the old index meanwhile (between inserts); no op is applied until
 * the new one takes its place. Labels are renumbered; documents are found by id everywhere else.
 */
function compact(c: Coll): void {
  const capacity = Math.max(1024, 2 * c.byId.size);
  const index = newIndex(c.metric, c.dim, capacity, c.M, c.efC);
  const labels: (Entry | undefined)[] = [];
  const byId = new Map<string, number>();
  const vecs = new Float32Array(capacity * c.dim);
  const norms = new Float64Array(c.metric === 'cosine' ? capacity : 0);
  for (const [id, old] of c.byId) {
    const e = c.labels[old]!;
    const label = labels.length;
    if (e.vec) {
      const v = c.vecs.subarray(old * c.dim, (old + 1) * c.dim);
      index.addPoint(hnswInput(c.metric, v), label);
      vecs.set(v, label * c.dim);
      if (c.metric === 'cosine') norms[label] = c.norms[old]!;
    } else {
      // Loaded from a checkpoint and not filled yet: hnswlib's copy (normalised under cosine, the
      // same direction); `fillVectors` fills this label's copy later, by id.
      index.addPoint(c.index.getPoint(old), label);
    }
    labels.push(e);
    byId.set(id, label);
    if (stopRequested()) exitNow();
    Atomics.add(channel.ints, PROGRESS, 1);
    if (Atomics.load(channel.ints, BELL) !== bellServed) serveChannel();
  }
  Object.assign(c, { index, labels, byId, vecs, norms, capacity, dead: 0, ef: 0 });
  discardedIndexes += 1;
}

function applyOne(o: ColdOp, vectors: Float32Array): void {
  switch (o.op) {
    case 'create':
      if (colls.has(o.coll)) break;
      colls.set(o.coll, { index: newIndex(o.metric, o.dim, 1024, o.M, o.efC), dim: o.dim, metric: o.metric, M: o.M, efC: o.efC, efS: o.efS, ef: 0, createdSeq: o.createdSeq, labels: [], byId: new Map(), dead: 0, capacity: 1024, vecs: new Float32Array(1024 * o.dim), norms: new Float64Array(o.metric === 'cosine' ? 1024 : 0) });
      break;
    case 'drop':
      if (colls.delete(o.coll)) discardedIndexes += 1;
      break;
    case 'upsert': {
      const c = colls.get(o.coll);
      if (c === undefined || o.len !== c.dim) break;
      const old = c.byId.get(o.id);
      if (old !== undefined) {
        c.index.markDelete(old);
        c.labels[old] = undefined;
        c.dead += 1;
      }
      const label = c.labels.length;
      if (label >= c.capacity) {
        c.capacity = Math.max(c.capacity * 2, label + 1);
        c.index.resizeIndex(c.capacity);
        const grown = new Float32Array(c.capacity * c.dim);
        grown.set(c.vecs);
        c.vecs = grown;
        if (c.metric === 'cosine') {
          const norms = new Float64Array(c.capacity);
          norms.set(c.norms);
          c.norms = norms;
        }
      }
      const v = vectors.subarray(o.off, o.off + c.dim);
      c.index.addPoint(hnswInput(c.metric, v), label);
      c.vecs.set(v, label * c.dim);
      if (c.metric === 'cosine') c.norms[label] = normSqAt(v, 0, c.dim);
      const e: Entry = { id: o.id, seq: o.seq, vec: true };
      if (o.meta !== undefined) e.meta = o.meta;
      c.labels.push(e);
      c.byId.set(o.id, label);
      break;
    }
    case 'delete': {
      const c = colls.get(o.coll);
      const old = c?.byId.get(o.id);
      if (c === undefined || old === undefined) break;
      c.index.markDelete(old);
      c.labels[old] = undefined;
      c.byId.delete(o.id);
      c.dead += 1;
      break;
    }
  }
}

/**
 * The nearest `k` (fewer when the collection or the filter has fewer), plus every hit tied with
 * the k-th by distance: the caller orders ties by id, as the exact search does, so it needs all
 * of them to choose from. It asks for one more than `k` and widens while the last is still tied.
 */
function search(coll: string, vector: Float32Array, k: number, f: Filter | undefined): ColdHit[] {
  const c = colls.get(coll);
  // A query of another dimension is for a newer incarnation of the collection (dropped and created
  // again with another dimension) whose drop and create wait behind this search (the channel is
  // served between queued messages): this index holds nothing of it, the hot tier holds all of it.
  // Asked of hnswlib, it threw, and three such searches opened the cold breaker for every collection.
  if (c === undefined || c.byId.size === 0 || k <= 0 || vector.length !== c.dim) return [];
  const live = c.byId.size;
  const kk = Math.min(k, live);
  // A walk whose ef covers the whole collection is meant to see every document, but a graph may
  // leave some unreachable (after deletes, with a small M, and under ip, which is no distance:
  // a live ip document of a 73-document collection was never returned, even for k = 78). Scoring
  // every document gives that answer for certain, at no more cost than such a walk.
  if (live <= Math.max(c.efS, kk + 1)) return exactSearch(c, vector, kk, f);
  const labels = c.labels;
  const q = hnswInput(c.metric, vector);
  // Deleted labels are excluded by hnswlib itself (markDelete); a filter callback costs a call
  // into JS per visited node, so it is passed only for a metadata filter.
  // On the STOP word every label is accepted: the walk then fills its ef at once and ends, and
  // the worker leaves the native call (terminating it inside one, a worker judged hung, aborts the
  // process). Refusing them all instead made hnswlib visit every node. The answer is not sent.
  const matches = f === undefined ? undefined : compileFilter(f);
  const ints = channel.ints;
  const accept =
    matches === undefined
      ? undefined
      : (label: number): boolean => {
          const e = labels[label];
          return e !== undefined && (Atomics.load(ints, STOP) !== 0 || matches(e.meta));
        };
  for (let want = Math.min(kk + 1, live); ; want = Math.min(live, want * 2)) {
    const ef = Math.max(c.efS, want);
    if (ef !== c.ef) {
      c.index.setEf(ef);
      c.ef = ef;
    }
    const r = accept === undefined ? c.index.searchKnn(q, want) : c.index.searchKnn(q, want, accept);
    const d = r.distances;
    const n = r.neighbors.length;
    // hnswlib-node returns the hits nearest first; sorted here only if that ever changes.
    let sorted = true;
    for (let i = 1; i < n && sorted; i++) sorted = d[i - 1]! <= d[i]!;
    const byDistance = sorted ? d : Array.from(Float64Array.from(d).sort());
    const kth = n <= kk ? Infinity : byDistance[kk - 1]!;
    // Done when there is no tie to chase: fewer than asked came back, or the farthest is farther than the k-th.
    if (n < want || want >= live || byDistance[n - 1]! > kth) {
      // hnswlib's float32 distances only rank: two documents that score the same in float64 may
      // come back a hair apart, and the one cut off was the one the id order puts first. Those
      // that came back are kept for the rescoring (the walk is not widened for them: that cost
      // searches a second walk).
      const cut = kth + distanceSlack(c.metric, kth);
      const kept: number[] = [];
      for (let i = 0; i < n; i++) if (d[i]! <= cut && labels[r.neighbors[i]!] !== undefined) kept.push(r.neighbors[i]!);
      // A walk that found fewer than k missed documents: a node the graph does not reach is
      // never found, and a selective filter leaves the matching nodes far apart (a filter
      // matching one document answered nothing). Then every (matching) document is scored.
      if (kept.length < kk && !stopRequested()) return exactSearch(c, vector, kk, f);
      return scoreHits(c, vector, kept);
    }
  }
}

/**
 * How far past the k-th float32 distance a hit may tie with it once scored in float64: the
 * error of a float32 distance (a sum of `dim` float32 terms) relative to its scale, which for
 * cosine and ip (1 − dot) is the dot's, and for l2 (a sum of squares) its own.
 */
function distanceSlack(metric: Metric, kth: number): number {
  const RELATIVE = 1e-5;
  return RELATIVE * (metric === 'l2' ? Math.abs(kth) : Math.abs(kth) + Math.abs(1 - kth));
}

/** Squared lengths outside which hnswlib's float32 sum of squares under- or overflows (components below ~1e-19 or above ~1e19). */
const FLOAT32_SAFE_NORM_SQ = { min: 1e-30, max: 1e30 } as const;

/**
 * A vector as hnswlib-node takes it (a plain array; a loop builds it several times faster than
 * Array.from). Under cosine, hnswlib normalises it with a float32 sum of squares, which is 0 for
 * a vector of tiny components (1e-25 each: an ordinary float32 vector) and infinite for one of
 * huge ones, so that such a vector was put in the graph with a length of ~1e30 × its own and never
 * found once indexed (found while in the hot tier, then lost: the answer changed with no write).
 * Such a vector is given normalised here, in float64; others as they are, for hnswlib's own
 * normalisation (the graph is the one raw hnswlib-node builds).
 */
function hnswInput(metric: Metric, v: Float32Array): number[] {
  const n = v.length;
  const q = new Array<number>(n);
  let s = 0;
  for (let i = 0; i < n; i++) {
    const x = v[i]!;
    q[i] = x;
    s += x * x;
  }
  if (metric === 'cosine' && s > 0 && (s < FLOAT32_SAFE_NORM_SQ.min || s > FLOAT32_SAFE_NORM_SQ.max)) {
    const inv = 1 / Math.sqrt(s);
    for (let i = 0; i < n; i++) q[i] = v[i]! * inv;
  }
  return q;
}

/**
 * Exact top-k (plus the hits tied with the k-th) of the live labels (whose metadata matches `f`,
 * if given): O(labels) filter checks, one score per match. Labels loaded from a checkpoint whose vector
 * copy is not filled yet are ranked by hnswlib's copy (cosine: normalised, the same ranking)
 * and left for the caller to rescore, as `scoreHits` does.
 */
function exactSearch(c: Coll, vector: Float32Array, k: number, f: Filter | undefined): ColdHit[] {
  const { labels, dim, metric } = c;
  const found: { label: number; score: number }[] = [];
  const matches = f === undefined ? undefined : compileFilter(f);
  for (let l = 0; l < labels.length; l++) {
    const e = labels[l];
    if (e === undefined || (matches !== undefined && !matches(e.meta))) continue;
    const score = e.vec ? scoreAt(metric, vector, c.vecs, l * dim) : scoreAt(metric, vector, Float32Array.from(c.index.getPoint(l)), 0);
    found.push({ label: l, score });
  }
  found.sort((a, b) => b.score - a.score);
  if (found.length > k) {
    const kth = found[k - 1]!.score;
    let n = k;
    while (n < found.length && found[n]!.score === kth) n++;
    found.length = n;
  }
  return scoreHits(c, vector, found.map((x) => x.label));
}

/** Float32 values in one 64-byte cache line. */
const FLOATS_PER_LINE = 16;
/** Keeps the touching loads of `scoreHits` from being optimised away. */
const sink = { touch: 0 };

/**
 * The hits of `kept` (live labels) with their exact scores. What scoring reads was last touched
 * long ago (hnswlib searched its own copies), so it is loaded first, hit by hit, where nothing
 * waits on a load and the misses overlap instead of queueing one by one: each hit's entry, the
 * start of its id and its norm (read in the scoring loop, each miss came after a ~0.2 µs sum:
 * ~0.5 µs of 11 hits), then every cache line of the vectors, line by line across the hits.
 */
function scoreHits(c: Coll, vector: Float32Array, kept: number[]): ColdHit[] {
  const { vecs, dim, labels, metric, norms } = c;
  const cosine = metric === 'cosine';
  let touch = 0;
  for (const l of kept) {
    const e = labels[l]!;
    touch += e.seq + e.id.length + (cosine ? norms[l]! : 0);
  }
  for (let off = 0; off < dim; off += FLOATS_PER_LINE) for (const l of kept) touch += vecs[l * dim + off]!;
  sink.touch = touch;
  // Cosine: the query's norm once, each hit's from `norms` (bit-identical to `scoreAt`).
  const qNorm = cosine ? normSqAt(vector, 0, dim) : 0;
  return kept.map((l) => {
    const e = labels[l]!;
    const s = !e.vec ? NaN : cosine ? cosineOf(dotAt(vector, vecs, l * dim), qNorm, norms[l]!) : scoreAt(metric, vector, vecs, l * dim);
    return { id: e.id, seq: e.seq, score: s, meta: e.meta !== undefined };
  });
}
/** Fills the vector copies of the labels that hold the given versions (see the `vectors` message). */
function fillVectors(coll: string, ids: string[], seqs: number[], vectors: Float32Array): void {
  const c = colls.get(coll);
  if (c === undefined || vectors.length !== ids.length * c.dim) return;
  for (let i = 0; i < ids.length; i++) {
    const label = c.byId.get(ids[i]!);
    const e = label === undefined ? undefined : c.labels[label];
    if (e === undefined || e.vec || e.seq !== seqs[i]) continue;
    c.vecs.set(vectors.subarray(i * c.dim, (i + 1) * c.dim), label! * c.dim);
    if (c.metric === 'cosine') c.norms[label!] = normSqAt(vectors, i * c.dim, c.dim);
    e.vec = true;
  }
}

/**
 * Saves every index and its labels into `dir` (checkpoint format CHECKPOINT_FORMAT_VERSION). Each
 * index is written by hnswlib on libuv's pool while this thread keeps serving searches (they only
 * read the index; no insert runs until the save is done: the messages wait in the port): written
 * here synchronously, a checkpoint of a few large indexes held every search for seconds, the cold
 * breaker opened, and searches answered from the hot tier alone for a minute. The label map goes
 * out a chunk at a time, searches served between chunks.
 */
async function save(dir: string, fault: ColdFault | undefined): Promise<{ watermark: number; collections: ColdSavedCollection[] }> {
  // A slow disk (failpoint delay): waited out as native work is, serving searches.
  if (fault?.kind === 'delay') await whileServing(new Promise((r) => setTimeout(r, fault.ms)));
  else injure(fault, 'projection.cold.save');
  const out: ColdSavedCollection[] = [];
  for (const [name, c] of colls) {
    // A close does not wait for the rest of a save (a thousand collections took seconds past the
    // shutdown timeout): between two indexes no native write is in flight, and the thread may exit.
    if (stopRequested()) exitNow();
    const files = collectionFiles(CHECKPOINT_FORMAT_VERSION, name);
    await whileServing(c.index.writeIndex(path.join(dir, files.index)));
    writeLabels(path.join(dir, files.labels), { name, dim: c.dim, metric: c.metric, M: c.M, efC: c.efC, efS: c.efS, createdSeq: c.createdSeq, capacity: c.capacity, nextLabel: c.labels.length, live: c.byId.size }, c.labels);
    out.push({ name, dim: c.dim, live: c.byId.size, files: [files.index, files.labels] });
  }
  return { watermark, collections: out };
}

/** Writes a label map as NDJSON: `head`, then `[label, id, seq, metadata | null]` per live label. */
function writeLabels(file: string, head: LabelsHead & { live: number }, labels: (Entry | undefined)[]): void {
  const fd = fs.openSync(file, 'w');
  try {
    const lines = new JsonLines();
    lines.add(head);
    labels.forEach((e, i) => {
      if (e === undefined || !lines.add([i, e.id, e.seq, e.meta ?? null] satisfies LabelRow)) return;
      writeAllSync(fd, lines.take());
      serveChannel();
    });
    writeAllSync(fd, lines.take());
  } finally {
    fs.closeSync(fd);
  }
}

/** Waits for `work` (native, off this thread) while serving the search channel. */
async function whileServing<T>(work: Promise<T>): Promise<T> {
  let settled = false;
  const done = work.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  while (!settled) {
    const bell = Atomics.load(channel.ints, BELL);
    serveChannel();
    // Asleep until a search rings or the work ends (a short timeout covers a ring missed in between).
    const w = waitAsync(channel.ints, BELL, bell, 20);
    if (w.async) await Promise.race([w.value, done]);
    else await new Promise((r) => setImmediate(r));
  }
  // An async waiter left on the bell stays in its waiter list until this thread's event loop
  // runs again, which the message loop (asleep in Atomics.wait) never lets it do: a ring would
  // wake that stale waiter instead of the loop, and a search waited out its whole timeout.
  Atomics.notify(channel.ints, BELL);
  return work;
}

/** What a label map says besides its labels. */
interface LabelsHead {
  name: string;
  dim: number;
  metric: Metric;
  M: number;
  efC: number;
  efS: number;
  createdSeq: number;
  capacity: number;
  /** Labels handed out (live or not): the index holds this many points. */
  nextLabel: number;
}
type LabelRow = [number, string, number, Metadata | null];

/** A checkpoint's label map of collection `name`, in the layout of `format`. */
function readLabels(dir: string, name: string, format: number): { head: LabelsHead; labels: (Entry | undefined)[]; byId: Map<string, number> } {
  const file = path.join(dir, collectionFiles(format, name).labels);
  let head: LabelsHead | undefined;
  let live = -1;
  let labels: (Entry | undefined)[] = [];
  const byId = new Map<string, number>();
  const take = (rows: unknown[]): void => {
    for (const row of rows) {
      const [label, id, s, meta] = row as LabelRow;
      if (!(Number.isInteger(label) && label >= 0 && label < labels.length)) throw new Error(`cold labels ${name}: label ${String(label)} is outside 0..${labels.length - 1}`);
      const e: Entry = { id, seq: s, vec: false };
      if (meta !== null) e.meta = meta;
      labels[label] = e;
      byId.set(id, label);
    }
  };
  const start = (h: LabelsHead): void => {
    head = h;
    labels = new Array<Entry | undefined>(h.nextLabel).fill(undefined);
  };
  if (format === 1) {
    // One JSON document: format 1 wrote it as one string, so it fits in one.
    const lf = JSON.parse(fs.readFileSync(file, 'utf8')) as LabelsHead & { labels: LabelRow[] };
    start(lf);
    take(lf.labels);
    live = lf.labels.length;
  } else {
    const fd = fs.openSync(file, 'r');
    try {
      readJsonLinesSync(fd, (values) => {
        if (head === undefined) {
          const h = values[0] as LabelsHead & { live: number };
          start(h);
          live = h.live;
          values = values.slice(1);
        }
        take(values);
      });
    } finally {
      fs.closeSync(fd);
    }
  }
  if (head === undefined) throw new Error(`cold labels ${name}: the file is empty`);
  if (byId.size !== live) throw new Error(`cold labels ${name}: ${byId.size} live labels, the file says ${live}`);
  return { head, labels, byId };
}

function load(dir: string, names: string[], seq: number, format: number): ColdStats {
  // The indexes it replaces, or those it read before it failed, go.
  discardedIndexes += Math.max(1, colls.size);
  const loaded = new Map<string, Coll>();
  for (const name of names) {
    const { head: lf, labels, byId } = readLabels(dir, name, format);
    const index = new hnswlib.HierarchicalNSW(lf.metric, lf.dim);
    index.readIndexSync(path.join(dir, collectionFiles(format, name).index));
    if (index.getNumDimensions() !== lf.dim) throw new Error(`cold index ${name} has dimension ${index.getNumDimensions()}, its labels say ${lf.dim}`);
    if (index.getCurrentCount() !== lf.nextLabel) throw new Error(`cold index ${name} holds ${index.getCurrentCount()} points, its labels say ${lf.nextLabel}`);
    const capacity = Math.max(index.getMaxElements(), lf.nextLabel);
    loaded.set(name, { index, dim: lf.dim, metric: lf.metric, M: lf.M, efC: lf.efC, efS: lf.efS, ef: 0, createdSeq: lf.createdSeq, labels, byId, dead: labels.length - byId.size, capacity, vecs: new Float32Array(capacity * lf.dim), norms: new Float64Array(lf.metric === 'cosine' ? capacity : 0) });
  }
  colls.clear();
  for (const [k, v] of loaded) colls.set(k, v);
  watermark = appliedSeq = seq;
  return stats();
}

function stats(): ColdStats {
  return {
    watermark,
    collections: [...colls].map(([name, c]) => ({ name, dim: c.dim, live: c.byId.size, capacity: c.capacity, scored: c.labels.reduce((n, e) => (e?.vec === true ? n + 1 : n), 0) })),
  };
}

/**
 * How long the worker watches the bell after serving a search before it sleeps, ms: a little
 * longer than a slow search, so a caller issuing searches back to back (with its own work in
 * between) finds it awake. Measured at 100k vectors, ef 256 (searches 0.4–0.9 ms): 0.5 ms let it
 * fall asleep between searches, +101 µs a search.
 */
const SEARCH_SPIN_MS = 2;

/** Polls the bell for up to `ms`; true when it rang (the caller goes round again without sleeping). */
function watchBell(bell: number, ms: number): boolean {
  const until = performance.now() + ms;
  const ints = channel.ints;
  // The clock is read once per POLL_CLOCK_STRIDE loads: each performance.now() allocates a heap
  // number, and read on every turn the poll made ~200 MB/s of garbage, a scavenge every 80 ms.
  for (let n = 1; ; n++) {
    if (Atomics.load(ints, BELL) !== bell) return true;
    if (n % POLL_CLOCK_STRIDE === 0 && performance.now() >= until) return false;
  }
}

/** Serves every published search request, oldest first; returns how many it took. */
function serveChannel(): number {
  bellServed = Atomics.load(channel.ints, BELL);
  let served = 0;
  for (let slot = channel.nextRequest(); slot >= 0; slot = channel.nextRequest()) {
    const r = channel.claim(slot);
    if (r === undefined) continue; // the main thread gave up on it first
    served += 1;
    Atomics.add(channel.ints, PROGRESS, 1);
    if (r.fault?.kind === 'panic') injure(r.fault, 'projection.cold.search');
    try {
      injure(r.fault, 'projection.cold.search');
      const t0 = performance.now();
      const hits = search(r.coll, r.vector, r.k, r.filterJson === undefined ? undefined : (JSON.parse(r.filterJson) as Filter));
      // Cut short by the STOP word (its filter refused every label): no answer, only an exit.
      if (stopRequested()) exitNow();
      channel.answer(slot, { ok: true, answer: { hits, seq: appliedSeq, tookUs: (performance.now() - t0) * 1000 } });
    } catch (err) {
      channel.answer(slot, { ok: false, error: err instanceof Error ? err.message : String(err) });
    }
  }
  return served;
}

/** Handles one message; a promise for a save (the next message waits for it). */
function handle(m: ToCold): Promise<void> | undefined {
  Atomics.add(channel.ints, PROGRESS, 1);
  switch (m.type) {
    case 'apply':
      injure(m.fault, 'projection.cold.insert');
      apply(m.ops, m.vectors);
      watermark = appliedSeq = m.seq;
      send({ type: 'applied', seq: m.seq });
      return;
    case 'search':
      if (m.fault?.kind === 'panic') injure(m.fault, 'projection.cold.search');
      try {
        injure(m.fault, 'projection.cold.search');
        const t0 = performance.now();
        const hits = search(m.coll, m.vector, m.k, m.filter);
        if (stopRequested()) exitNow();
        send({ type: 'reply', reqId: m.reqId, ok: true, value: { hits, seq: appliedSeq, tookUs: (performance.now() - t0) * 1000 } });
      } catch (err) {
        send({ type: 'reply', reqId: m.reqId, ok: false, error: err instanceof Error ? err.message : String(err) });
      }
      return;
    case 'vectors':
      fillVectors(m.coll, m.ids, m.seqs, m.vectors);
      return;
    case 'save':
      if (m.fault?.kind === 'panic') injure(m.fault, 'projection.cold.save'); // kills the thread, as a crash in the write would
      return save(m.dir, m.fault).then(
        (value) => send({ type: 'reply', reqId: m.reqId, ok: true, value }),
        (err: unknown) => send({ type: 'reply', reqId: m.reqId, ok: false, error: err instanceof Error ? err.message : String(err) }),
      );
    case 'load':
    case 'stats':
      try {
        const value = m.type === 'load' ? load(m.dir, m.collections, m.seq, m.format) : stats();
        send({ type: 'reply', reqId: m.reqId, ok: true, value });
      } catch (err) {
        send({ type: 'reply', reqId: m.reqId, ok: false, error: err instanceof Error ? err.message : String(err) });
      }
      return;
    case 'stop':
      // Exiting here, between messages, is the only safe way to end a worker that holds
      // native indexes: terminate() landing inside an hnswlib call aborts the whole process.
      exitNow();
  }
}

send({ type: 'ready' });
for (;;) {
  const bell = Atomics.load(channel.ints, BELL);
  // Messages first (in order), then searches; an exception here (an injected panic) ends the thread.
  for (let r = receiveMessageOnPort(port); r !== undefined; r = receiveMessageOnPort(port)) {
    if (stopRequested()) exitNow(); // a close does not wait for a backlog of inserts
    const pending = handle(r.message as ToCold);
    if (pending !== undefined) await pending;
  }
  const gcInMs = await collectDiscarded();
  // Searches come in streams: after serving one, watch the bell for a while before sleeping, so
  // the next request is taken in ~1 µs instead of after a futex wake-up (~40 µs on this VM) —
  // unless the main thread measured that polling does not pay (the cores are busy elsewhere).
  if (serveChannel() > 0 && Atomics.load(channel.ints, POLL) === 1 && watchBell(bell, SEARCH_SPIN_MS)) continue;
  // Asleep until a message or a search rings, or a collection is due.
  Atomics.wait(channel.ints, BELL, bell, gcInMs);
}
