// The shared-memory search channel between the main thread and the cold worker: a fixed set of
// slots in SharedArrayBuffers, each holding one search request and, later, its answer. A search
// costs two Atomics wake-ups instead of two structured-clone messages and two event-loop turns.
//
// Slot life cycle (the state word is the only synchronisation; every transition is a CAS or a
// store by the one side that owns the slot in that state):
//   free --main writes the request--> request --worker takes it--> busy --worker answers--> done
//   done --main reads the answer--> free
//   request --main gives up (timeout)--> free             (the worker never saw it)
//   busy --main gives up (timeout)--> abandoned --worker finishes--> free
import { Buffer } from 'node:buffer';
import type { ColdAnswer, ColdFault, ColdHit } from './coldProtocol.js';

/** Searches that can be in flight through the channel at once; more go by message. */
export const CHANNEL_SLOTS = 8;
/** Largest query vector a slot holds (the log's MAX_DIMENSION). */
export const SLOT_MAX_DIM = 4096;
/** Most hits a slot answers; a larger k goes by message. */
export const SLOT_MAX_HITS = 256;
/** Bytes for the collection name and the filter's JSON. */
const REQ_BYTES = 16 * 1024;
/** Bytes for the answer's ids (ids are at most 256 ASCII characters) or an error message. */
const ID_BYTES = SLOT_MAX_HITS * 256;
/**
 * One slot's answer, packed from the start so a usual answer (k = 10) spans ~5 cache lines, each
 * of which crosses from the worker's core to the caller's (~0.1–0.2 µs a line on this VM): the
 * applied seq and the µs spent (float64), flags, hit count and id bytes (int32), then for n hits
 * n (seq, score) pairs of float64, n id lengths (int32), and the ids' bytes. None of it shares a
 * cache line with the state word the caller polls: written there, each store would pull the line
 * back from the polling core (measured: the answer took 1.5 µs to write).
 */
const RESP_META = 32;
const RM = { seq: 0, tookUs: 1, flags: 4, count: 5, respLen: 6 } as const; // float64 / int32 indices within the meta
const RESP_BYTES = RESP_META + SLOT_MAX_HITS * 20 + ID_BYTES;

type WaitAsync = (a: Int32Array, index: number, value: number, timeoutMs?: number) => { async: false; value: string } | { async: true; value: Promise<string> };
/** `Atomics.waitAsync` (Node 16+; not in this TypeScript lib's typings). */
export const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/** Slot states. */
export const SLOT = { free: 0, request: 1, busy: 2, done: 3, abandoned: 4 } as const;

/** Control words: [0] rings on every message or search request (the worker sleeps on it), [2] POLL. */
export const BELL = 0;
/** Control word: 1 while the main thread wants the worker to watch the bell between searches (polling pays off). */
export const POLL = 2;
/** Control word: 1 once the owner is closing: the worker exits at its next message, skipping the work still queued. */
export const STOP = 3;
/** Control word: the worker adds 1 for every op it applies, message it handles and search it serves: busy is not hung. */
export const PROGRESS = 4;
const CTL_INTS = 16;
/** Header words of one slot (the request), one cache line. `collGen` changes whenever the request area holds a new collection name. */
const H = { state: 0, ticket: 1, k: 2, dim: 3, collLen: 4, filterLen: 5, faultKind: 6, faultMs: 7, collGen: 8 } as const;
const HDR_INTS = 16;
/** `flags` bits of an answer. */
const FLAG_OK = 1;
const FLAG_ASCII = 2;
const FAULT_KIND = { none: 0, delay: 1, panic: 2 } as const;

/** The shared buffers, as sent to the worker in `workerData`. */
export interface ChannelBuffers {
  ints: SharedArrayBuffer;
  vecs: SharedArrayBuffer;
  req: SharedArrayBuffer;
  resp: SharedArrayBuffer;
}

/** A request as the worker reads it. */
export interface SlotRequest {
  coll: string;
  vector: Float32Array;
  k: number;
  filterJson: string | undefined;
  fault: ColdFault | undefined;
}

/** What the main thread reads from a finished slot. */
export type SlotAnswer = { ok: true; answer: ColdAnswer } | { ok: false; error: string };

/** Set in a hit's id length when the hit has metadata. */
const META_BIT = 1 << 30;

/** Both ends of the channel share this view of the buffers. */
export class SearchChannel {
  /** Control words, then one header per slot. */
  readonly ints: Int32Array;
  private readonly vecs: Float32Array;
  /** Request areas: the collection name, then the filter's JSON. */
  private readonly req: Buffer;
  /** Answer areas (see RESP_BYTES), as float64, int32 and bytes. */
  private readonly resp64: Float64Array;
  private readonly resp32: Int32Array;
  private readonly resp: Buffer;
  /** The collection name each slot's request area holds: written by the main thread, decoded by the worker, each once per change. */
  private readonly collName: (string | undefined)[] = new Array<string | undefined>(CHANNEL_SLOTS).fill(undefined);
  /** The `collGen` each slot's `collName` was decoded at (worker). */
  private readonly collGenSeen = new Int32Array(CHANNEL_SLOTS).fill(-1);
  private constructor(readonly buffers: ChannelBuffers) {
    this.ints = new Int32Array(buffers.ints);
    this.vecs = new Float32Array(buffers.vecs);
    this.req = Buffer.from(buffers.req);
    this.resp64 = new Float64Array(buffers.resp);
    this.resp32 = new Int32Array(buffers.resp);
    this.resp = Buffer.from(buffers.resp);
  }

  /** New buffers (main thread). */
  static create(): SearchChannel {
    return new SearchChannel({
      ints: new SharedArrayBuffer((CTL_INTS + CHANNEL_SLOTS * HDR_INTS) * 4),
      vecs: new SharedArrayBuffer(CHANNEL_SLOTS * SLOT_MAX_DIM * 4),
      req: new SharedArrayBuffer(CHANNEL_SLOTS * REQ_BYTES),
      resp: new SharedArrayBuffer(CHANNEL_SLOTS * RESP_BYTES),
    });
  }

  /** The worker's view of buffers made by `create`. */
  static attach(b: ChannelBuffers): SearchChannel {
    return new SearchChannel(b);
  }

  /** Index in `ints` of a slot's state word (for Atomics.wait / waitAsync). */
  stateIndex(slot: number): number {
    return CTL_INTS + slot * HDR_INTS + H.state;
  }

  state(slot: number): number {
    return Atomics.load(this.ints, this.stateIndex(slot));
  }

  /** Atomically moves a slot from `from` to `to`; true when it was in `from`. */
  cas(slot: number, from: number, to: number): boolean {
    return Atomics.compareExchange(this.ints, this.stateIndex(slot), from, to) === from;
  }

  /** Sets a slot's state and wakes whoever waits on it. */
  set(slot: number, to: number): void {
    Atomics.store(this.ints, this.stateIndex(slot), to);
    Atomics.notify(this.ints, this.stateIndex(slot));
  }

  /** Wakes the worker for a message or a search request. */
  ring(): void {
    Atomics.add(this.ints, BELL, 1);
    Atomics.notify(this.ints, BELL); // every waiter: the worker's loop, and any async waiter of a save
  }

  // ------------------------------------------------------------ main thread

  /** A free slot (not yet claimed: the caller writes and publishes it in the same turn), or -1. */
  findFree(): number {
    for (let s = 0; s < CHANNEL_SLOTS; s++) if (this.state(s) === SLOT.free) return s;
    return -1;
  }

  /**
   * Writes a request into a free slot and publishes it (state → request). False, with the slot
   * left free, when it does not fit (dimension, k, name and filter size, or an `error` fault).
   */
  publish(slot: number, ticket: number, coll: string, vector: Float32Array, k: number, filterJson: string | undefined, fault: ColdFault | undefined): boolean {
    if (vector.length > SLOT_MAX_DIM || k > SLOT_MAX_HITS || (fault !== undefined && fault.kind === 'error')) return false;
    const h = CTL_INTS + slot * HDR_INTS;
    const base = slot * REQ_BYTES;
    // Names and filters are mostly ASCII; `write` stops at the end, so an overflow shows as a short write.
    if (coll.length * 3 + (filterJson?.length ?? 0) * 3 > REQ_BYTES) return false;
    const ints = this.ints;
    // The same collection as this slot's last request (the usual case) is already written.
    let collLen = ints[h + H.collLen]!;
    if (coll !== this.collName[slot]) {
      collLen = this.req.write(coll, base, 'utf8');
      this.collName[slot] = coll;
      ints[h + H.collGen] = (ints[h + H.collGen]! + 1) | 0;
    }
    const filterLen = filterJson === undefined ? -1 : this.req.write(filterJson, base + collLen, 'utf8');
    this.vecs.set(vector, slot * SLOT_MAX_DIM);
    ints[h + H.ticket] = ticket;
    ints[h + H.k] = k;
    ints[h + H.dim] = vector.length;
    ints[h + H.collLen] = collLen;
    ints[h + H.filterLen] = filterLen;
    ints[h + H.faultKind] = fault === undefined ? FAULT_KIND.none : fault.kind === 'delay' ? FAULT_KIND.delay : FAULT_KIND.panic;
    ints[h + H.faultMs] = fault !== undefined && fault.kind === 'delay' ? fault.ms : 0;
    // The store publishes everything written above (Atomics are sequentially consistent).
    Atomics.store(ints, h + H.state, SLOT.request);
    return true;
  }

  /** Reads a done slot's answer and frees the slot. */
  take(slot: number): SlotAnswer {
    const h = CTL_INTS + slot * HDR_INTS;
    const ints = this.ints;
    const base = slot * RESP_BYTES;
    const m32 = base / 4;
    const flags = this.resp32[m32 + RM.flags]!;
    let r: SlotAnswer;
    if ((flags & FLAG_OK) !== 0) {
      const n = this.resp32[m32 + RM.count]!;
      const f = (base + RESP_META) / 8;
      const l = (base + RESP_META + 16 * n) / 4;
      const idsAt = base + RESP_META + 20 * n;
      const hits: ColdHit[] = new Array<ColdHit>(n);
      // All-ASCII ids (the usual case) are decoded in one call and sliced apart.
      const all = (flags & FLAG_ASCII) !== 0 ? this.resp.toString('latin1', idsAt, idsAt + this.resp32[m32 + RM.respLen]!) : undefined;
      let off = 0;
      for (let i = 0; i < n; i++) {
        const lm = this.resp32[l + i]!;
        const len = lm & ~META_BIT;
        const id = all !== undefined ? all.slice(off, off + len) : this.resp.toString('utf8', idsAt + off, idsAt + off + len);
        hits[i] = { id, seq: this.resp64[f + 2 * i]!, score: this.resp64[f + 2 * i + 1]!, meta: (lm & META_BIT) !== 0 };
        off += len;
      }
      r = { ok: true, answer: { hits, seq: this.resp64[base / 8 + RM.seq]!, tookUs: this.resp64[base / 8 + RM.tookUs]! } };
    } else r = { ok: false, error: this.resp.toString('utf8', base + RESP_META, base + RESP_META + this.resp32[m32 + RM.respLen]!) };
    Atomics.store(ints, h + H.state, SLOT.free);
    return r;
  }

  /** True while the worker is still busy with a search the main thread gave up on (it is slow or hung). */
  anyAbandoned(): boolean {
    for (let s = 0; s < CHANNEL_SLOTS; s++) if (this.state(s) === SLOT.abandoned) return true;
    return false;
  }

  /** Gives up on a slot the worker has not answered; false when it has answered meanwhile (take it). */
  abandon(slot: number): boolean {
    if (this.cas(slot, SLOT.request, SLOT.free)) return true;
    return this.cas(slot, SLOT.busy, SLOT.abandoned);
  }

  // ------------------------------------------------------------ worker

  /** The published slot with the lowest ticket, or -1. */
  nextRequest(): number {
    let best = -1;
    let bestTicket = 0;
    for (let s = 0; s < CHANNEL_SLOTS; s++) {
      if (this.state(s) !== SLOT.request) continue;
      const t = this.ints[CTL_INTS + s * HDR_INTS + H.ticket]!;
      if (best < 0 || t - bestTicket < 0) {
        best = s;
        bestTicket = t;
      }
    }
    return best;
  }

  /** Claims a published slot (request → busy) and reads it; undefined when main took it back. */
  claim(slot: number): SlotRequest | undefined {
    if (!this.cas(slot, SLOT.request, SLOT.busy)) return undefined;
    const h = CTL_INTS + slot * HDR_INTS;
    const ints = this.ints;
    const base = slot * REQ_BYTES;
    const collLen = ints[h + H.collLen]!;
    const filterLen = ints[h + H.filterLen]!;
    const kind = ints[h + H.faultKind]!;
    const dim = ints[h + H.dim]!;
    // The name is decoded again only when the main thread wrote a new one into this slot.
    const gen = ints[h + H.collGen]!;
    let coll = this.collName[slot];
    if (coll === undefined || this.collGenSeen[slot] !== gen) {
      coll = this.req.toString('utf8', base, base + collLen);
      this.collName[slot] = coll;
      this.collGenSeen[slot] = gen;
    }
    return {
      coll,
      vector: this.vecs.subarray(slot * SLOT_MAX_DIM, slot * SLOT_MAX_DIM + dim),
      k: ints[h + H.k]!,
      filterJson: filterLen < 0 ? undefined : this.req.toString('utf8', base + collLen, base + collLen + filterLen),
      fault: kind === FAULT_KIND.delay ? { kind: 'delay', ms: ints[h + H.faultMs]! } : kind === FAULT_KIND.panic ? { kind: 'panic' } : undefined,
    };
  }

  /**
   * Writes the answer of a claimed slot and hands it back (busy → done, or abandoned → free).
   * Hits are nearest first; beyond SLOT_MAX_HITS (only ties past the requested k) they are cut.
   */
  answer(slot: number, a: SlotAnswer): void {
    const h = CTL_INTS + slot * HDR_INTS;
    const ints = this.ints;
    const base = slot * RESP_BYTES;
    const m32 = base / 4;
    if (a.ok) {
      const hits = a.answer.hits;
      // Ids are ≤ 256 ASCII characters, so only hits beyond SLOT_MAX_HITS are ever cut.
      let n = 0;
      let chars = 0;
      for (; n < hits.length && n < SLOT_MAX_HITS && (chars + hits[n]!.id.length) * 3 <= ID_BYTES; n++) chars += hits[n]!.id.length;
      const f = (base + RESP_META) / 8;
      const l = (base + RESP_META + 16 * n) / 4;
      const idsAt = base + RESP_META + 20 * n;
      for (let i = 0; i < n; i++) {
        const hit = hits[i]!;
        this.resp64[f + 2 * i] = hit.seq;
        this.resp64[f + 2 * i + 1] = hit.score;
        this.resp32[l + i] = hit.meta ? hit.id.length | META_BIT : hit.id.length;
      }
      // The log admits only ASCII ids: copied unit by unit, cheaper than a call into C++ per id.
      // Anything else (never, today) is encoded as UTF-8, id by id.
      const bytes = this.resp;
      let off = idsAt;
      let ascii = true;
      for (let i = 0; i < n && ascii; i++) {
        const id = hits[i]!.id;
        for (let j = 0; j < id.length; j++) {
          const u = id.charCodeAt(j);
          if (u > 0x7f) {
            ascii = false;
            break;
          }
          bytes[off++] = u;
        }
      }
      if (!ascii) {
        off = idsAt;
        for (let i = 0; i < n; i++) {
          const len = bytes.write(hits[i]!.id, off, 'utf8');
          this.resp32[l + i] = (this.resp32[l + i]! & META_BIT) | len;
          off += len;
        }
      }
      this.resp64[base / 8 + RM.seq] = a.answer.seq;
      this.resp64[base / 8 + RM.tookUs] = a.answer.tookUs;
      this.resp32[m32 + RM.count] = n;
      this.resp32[m32 + RM.respLen] = off - idsAt;
      this.resp32[m32 + RM.flags] = ascii ? FLAG_OK | FLAG_ASCII : FLAG_OK;
    } else {
      this.resp32[m32 + RM.respLen] = this.resp.write(a.error.slice(0, 4096), base + RESP_META, 'utf8');
      this.resp32[m32 + RM.flags] = 0;
    }
    if (!this.cas(slot, SLOT.busy, SLOT.done)) Atomics.store(ints, h + H.state, SLOT.free); // abandoned
    Atomics.notify(ints, h + H.state);
  }
}

/**
 * Loads of a polled word per read of the clock. `performance.now()` returns a freshly allocated
 * heap number: read on every turn of a poll loop (~10M turns/s), it made ~200 MB/s of garbage in
 * each polling thread, and the scavenges (with their helper threads, on a 2-core machine where
 * both ends poll) stalled 1–2% of searches by 1–5 ms. Read once per 64 loads, the spinning worker
 * still made ~48 MB/s (a scavenge every ~330 ms); once per 1024, one in the 1.4 s of 4000
 * searches. 1024 loads take a few microseconds, nothing against the deadlines they check.
 */
export const POLL_CLOCK_STRIDE = 1024;

/** A polled search costing more than this beyond the worker's search time is a stalled one, µs. */
export const POLL_HOP_LIMIT_US = 200;
/** The searches the governor looks back over. */
export const POLL_WINDOW = 32;
/** Stalled searches among the last POLL_WINDOW that switch polling off. */
export const POLL_STALLS_OFF = 24;
/**
 * How long both ends sleep after polling stopped paying in the long run (POLL_STALLS_OFF of the
 * last POLL_WINDOW stalled), ms, and the first back-off after a failed try (see POLL_PROBATION).
 */
export const POLL_BACKOFF_MS = 100;
/** The longest back-off, ms: while polling keeps failing its tries, it is tried at least this often. */
export const POLL_BACKOFF_MAX_MS = 1600;
/**
 * The first searches of every polling period (the first search, or a try after a back-off) are
 * on probation: POLL_PROBATION_STALLS stalls among them switch polling straight back off, for
 * twice the previous back-off (up to POLL_BACKOFF_MAX_MS). A period that gets through resets the
 * back-off to POLL_BACKOFF_MS.
 */
export const POLL_PROBATION = 8;
export const POLL_PROBATION_STALLS = 4;

/**
 * Decides whether the two ends of the channel poll for each other or sleep, from what each
 * synchronous search cost beyond the worker's own search time (`hopUs`; the caller leaves out
 * searches that waited for inserts). Polling on both ends makes that ~2–10 µs, sleeping ~80–100 µs
 * (two futex wake-ups on this VM). When other work holds the cores, a polling thread takes the
 * CPU the other end needs: with one busy process beside us on 2 cores, three threads want two
 * cores, and a search waits for the scheduler to give the worker (or the caller) its turn back,
 * 1–5 ms. Sleeping ends need one core at a time and answer in ~0.1–0.2 ms.
 *
 * So polling is switched off when it stalls, and tried again after a back-off:
 * - In the long run, once POLL_STALLS_OFF of the last POLL_WINDOW searches stalled. Bursts of
 *   stalls without contention do not do it: a V8 background job (a TurboFan compile, a GC helper)
 *   preempting one end stalls the next 5–10 searches on a 2-core machine; a smoothed average that
 *   switched off after five such stalls did so once or twice a second on a quiet machine, and each
 *   time ~300 searches paid the futex wake-ups (+75 µs).
 * - On probation (the first POLL_PROBATION searches of a try), after POLL_PROBATION_STALLS, with
 *   the back-off doubled. Under lasting contention nearly every polled search stalls: with a fixed
 *   100 ms back-off and only the long-run rule, each try cost ~24 stalls of several ms (~100 ms
 *   stalled in every ~200 ms; with the stalls that outlast the synchronous wait not counted then
 *   either, 30–37% of searches took over 1 ms beside one busy process, now under 1%); now a try
 *   costs four, and tries come at most every POLL_BACKOFF_MAX_MS. A burst that fails a try on a quiet
 *   machine (stalls after a heavy ingest) costs one back-off of sleeping ends; the next try that
 *   gets through resets it.
 */
export class PollGovernor {
  /** Whether both ends poll. Starts off; the first search turns it on. */
  polling = false;
  /** Bit i set: the i-th most recent search while polling stalled. */
  private stalls = 0;
  /** Searches noted since polling was last switched on. */
  private since = 0;
  /** When polling may be tried again (ms, the caller's clock). */
  private offUntil = 0;
  /** The back-off after the next failed try, ms. */
  private backoffMs = POLL_BACKOFF_MS;

  /** One synchronous search's cost beyond the worker's search time, µs, at `nowMs`. */
  note(hopUs: number, nowMs: number): void {
    if (!this.polling) {
      if (nowMs < this.offUntil) return;
      this.polling = true;
      this.stalls = 0;
      this.since = 0;
      return;
    }
    this.stalls = ((this.stalls << 1) | (hopUs > POLL_HOP_LIMIT_US ? 1 : 0)) >>> 0;
    this.since += 1;
    if (this.since <= POLL_PROBATION) {
      if (popcount32(this.stalls) >= POLL_PROBATION_STALLS) {
        this.switchOff(nowMs, this.backoffMs);
        this.backoffMs = Math.min(2 * this.backoffMs, POLL_BACKOFF_MAX_MS);
        return;
      }
      if (this.since === POLL_PROBATION) this.backoffMs = POLL_BACKOFF_MS;
    }
    if (popcount32(this.stalls) >= POLL_STALLS_OFF) this.switchOff(nowMs, POLL_BACKOFF_MS);
  }

  private switchOff(nowMs: number, forMs: number): void {
    this.polling = false;
    this.offUntil = nowMs + forMs;
  }
}

/** Set bits of a 32-bit word. */
function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

