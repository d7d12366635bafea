/** One access as returned by `AccessLog.entries()`. */
export interface AccessRecord {
  /** Position of the access in the global access sequence (0-based; the predictor's logical clock). */
  seq: number;
  /** The query's `nowMs` (the monotonic clock, ms). */
  timeMs: number;
  collection: string;
  /** The cache's fingerprint of the query: near-duplicate queries (within the similarity threshold) share one. */
  fingerprint: number;
  /** Ids of the documents the query returned, when known. */
  ids: readonly string[] | undefined;
}

/** The compact form of the log shipped to the training worker (transferable typed arrays). */
export interface AccessSnapshot {
  /** Sequence number of the first record in the arrays. */
  firstSeq: number;
  /** Fingerprints in access order. */
  fingerprints: Float64Array;
  /** Times in ms, same order. */
  timesMs: Float64Array;
}

/**
 * A bounded ring of recent query accesses: (time, collection, query fingerprint, result ids).
 * `record` is O(1) and allocates nothing (the ids array is kept by reference); once full the oldest
 * record is overwritten. The record count so far (`seq`) is the predictor's logical clock.
 */
export class AccessLog {
  readonly capacity: number;
  private readonly times: Float64Array;
  private readonly fps: Float64Array;
  private readonly colls: (string | undefined)[];
  private readonly ids: (readonly string[] | undefined)[];
  private total = 0;

  /** `capacity`: records kept (≥ 1). */
  constructor(capacity = 100_000) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`AccessLog capacity must be a positive integer, got ${capacity}`);
    this.capacity = capacity;
    this.times = new Float64Array(capacity);
    this.fps = new Float64Array(capacity);
    this.colls = new Array<string | undefined>(capacity).fill(undefined);
    this.ids = new Array<readonly string[] | undefined>(capacity).fill(undefined);
  }

  /** Records one access and returns its sequence number. O(1). */
  record(timeMs: number, collection: string, fingerprint: number, ids?: readonly string[]): number {
    const seq = this.total++;
    const i = seq % this.capacity;
    this.times[i] = timeMs;
    this.fps[i] = fingerprint;
    this.colls[i] = collection;
    this.ids[i] = ids;
    return seq;
  }

  /** Attaches result ids to record `seq` if it is still in the ring. */
  setIds(seq: number, ids: readonly string[]): void {
    if (seq < 0 || seq < this.total - this.capacity || seq >= this.total) return;
    this.ids[seq % this.capacity] = ids;
  }

  /** Number of accesses recorded since creation (the next record's seq). */
  get seq(): number {
    return this.total;
  }

  /** Number of records currently held. */
  get size(): number {
    return Math.min(this.total, this.capacity);
  }

  /** The held records, oldest first. O(size); meant for diagnostics and tests. */
  *entries(): IterableIterator<AccessRecord> {
    const first = this.total - this.size;
    for (let s = first; s < this.total; s++) {
      const i = s % this.capacity;
      yield { seq: s, timeMs: this.times[i]!, collection: this.colls[i]!, fingerprint: this.fps[i]!, ids: this.ids[i] };
    }
  }

  /** Copies the held fingerprints and times, oldest first, into fresh (transferable) arrays. O(size). */
  snapshot(): AccessSnapshot {
    const n = this.size;
    const firstSeq = this.total - n;
    const fingerprints = new Float64Array(n);
    const timesMs = new Float64Array(n);
    const start = firstSeq % this.capacity;
    const head = Math.min(n, this.capacity - start);
    fingerprints.set(this.fps.subarray(start, start + head), 0);
    timesMs.set(this.times.subarray(start, start + head), 0);
    if (head < n) {
      fingerprints.set(this.fps.subarray(0, n - head), head);
      timesMs.set(this.times.subarray(0, n - head), head);
    }
    return { firstSeq, fingerprints, timesMs };
  }
}
