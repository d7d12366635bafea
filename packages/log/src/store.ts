import fs from 'node:fs';
import path from 'node:path';
import { asBinary, open as openLmdb } from 'lmdb';
import type { Database, RootDatabase } from 'lmdb';
import { LogError } from './errors.js';

// LMDB, the log's read side: the records and the time and document indexes. Opened by the log on
// its own thread and, in the same process, by the thread that applies acknowledged groups
// (applyWorker.ts); both share one environment and write through `applyRows`.

export const HEAD_KEY = 'head';
/**
 * In `meta` while by-doc entries of applied rows are deferred (EventLog's `deferDocIndex`) and
 * not all written yet: the first seq whose entry may be missing. Written in the transaction that
 * applies the first deferred row, removed in the one that writes the last deferred entry.
 */
export const DOC_INDEX_PENDING_KEY = 'by-doc-pending';
/** Deferred by-doc entries are written in transactions of this many (sorted: each touches one stretch of the index). */
const DOC_WRITE_BATCH = 262_144;
export const DOC_LEVEL = ''; // by-doc id for collection-level events
const EMPTY = Buffer.alloc(0);
const APPEND = { append: true } as const;

/** The environment and its four databases. */
export interface Stores {
  env: RootDatabase;
  events: Database<Buffer, number>;
  byTime: Database<Buffer, [number, number]>;
  byDoc: Database<Buffer, [string, string, number]>;
  meta: Database<unknown, string>;
}

/** A record with the fields its index keys are made of. */
export interface IndexRow {
  seq: number;
  ts: number;
  collection: string;
  docId: string;
  /**
   * Holds the record: its bytes are `record[at, end)`. An append's row has its record to itself
   * (at 0, to its end); an import's rows share the write-ahead frame they came in, so that no view
   * is made per record (a restore imports millions).
   */
  record: Uint8Array;
  at: number;
  end: number;
}

/** `b[at, end)`: b itself when that is all of it. */
export function spanView(b: Uint8Array, at: number, end: number): Uint8Array {
  return at === 0 && end === b.byteLength ? b : b.subarray(at, end);
}

/** A row's record bytes (the row's own buffer when it holds nothing else). */
export function rowRecord(r: IndexRow): Uint8Array {
  return spanView(r.record, r.at, r.end);
}

/**
 * What `putRows` hands LMDB for a record: lmdb-js writes an `asBinary` value whose buffer has
 * `start` and `end` as the bytes [start, end) of that buffer's ArrayBuffer, read from `address`
 * (the ArrayBuffer's, looked up on first use and kept there) — how it writes msgpackr's reused
 * buffers. One such slice, re-aimed at each record, spares a view per record: the views of a 1M-event
 * restore cost its import thread ~0.2 s to make and more to collect. (Sync puts only: the bytes are
 * copied before `putSync` returns.)
 */
const NO_BYTES = new ArrayBuffer(0);
const slice = { buffer: NO_BYTES, start: 0, end: 0, address: 0 };
const SLICE = asBinary(slice as unknown as Uint8Array) as unknown as Buffer;

/** The fields of a by-doc key: collection, by-doc id, seq. */
export interface DocEntry {
  collection: string;
  docId: string;
  seq: number;
}

/** Where a head is kept in `meta`: seq, ts and the hash. */
export interface StoredHead {
  seq: number;
  ts: number;
  hash: Uint8Array;
}

/** Opens `<dir>/log.mdb` and its databases. */
export function openStores(dir: string, readOnly: boolean): Stores {
  const env = openLmdb({
    path: path.join(dir, 'log.mdb'),
    noSubdir: true,
    maxDbs: 8,
    readOnly,
    compression: false,
    // LMDB is the read side: records and the indexes. Durability comes from the write-ahead
    // segments (wal.ts), synced before a group is applied here, so LMDB commits without
    // syncing; it is synced at close, and rebuilt from the segments after an OS crash (whose
    // unsynced pages it could not be trusted with) or brought up to them after a process crash.
    noSync: !readOnly,
    overlappingSync: false,
    cache: false,
  });
  return {
    env,
    events: env.openDB<Buffer, number>({ name: 'events', encoding: 'binary' }),
    byTime: env.openDB<Buffer, [number, number]>({ name: 'by-time', encoding: 'binary' }),
    byDoc: env.openDB<Buffer, [string, string, number]>({ name: 'by-doc', encoding: 'binary' }),
    meta: env.openDB<unknown, string>({ name: 'meta', encoding: 'msgpack' }),
  };
}

/** LMDB's magic number, in every meta page, and a meta page's flag. */
const MDB_MAGIC = 0xbeefc0de;
const P_META = 0x08;

/**
 * Why `<dir>/log.mdb`'s first page is not an LMDB meta page (zeroed or overwritten by a damaged
 * disk or a stray write), or undefined when it is one, or the file is absent or shorter than a
 * page header (`lmdbCutShort` says so). lmdb-js's LMDB reads its page size and root from there
 * without checking it first: every process that opened such a file died of SIGSEGV, without a
 * word, `serve` included. Read raw, before any open: in the page header of this LMDB (pgno,
 * txnid: 8 bytes each; pad, flags: 2 each; lower, upper) the flags are at byte 18, the magic
 * number at 24.
 */
export function lmdbMetaDamaged(dir: string): string | undefined {
  let fd: number;
  try {
    fd = fs.openSync(path.join(dir, 'log.mdb'), 'r');
  } catch {
    return undefined;
  }
  try {
    const b = Buffer.alloc(32);
    if (fs.readSync(fd, b, 0, b.length, 0) < b.length) return undefined;
    if ((b.readUInt16LE(18) & P_META) === 0 || b.readUInt32LE(24) !== MDB_MAGIC) return 'its first page is not an LMDB meta page (zeroed or overwritten)';
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/** The smallest whole LMDB file: its two meta pages of the smallest page size. */
const LMDB_MIN_BYTES = 2 * 4096;

/**
 * Whether `<dir>/log.mdb` is shorter than its own pages reach, as its meta page (the last page
 * in use) says: cut short by an interrupted copy or a damaged disk. Such a file is memory-mapped
 * like any other, and the first read of a missing page kills the process with SIGBUS; this reads
 * only the meta page (and nothing of a file too short to hold one). Undefined when whole, absent,
 * or not readable as LMDB at all (the open that follows reports that).
 *
 * Exact, to the page: a file short by even one page was cut (a slack of 64 pages let files cut
 * by up to 256 KiB through, to die of SIGBUS on every start). LMDB leaves the pages at the end
 * of a file unwritten only where a transaction frees pages it dirtied itself (P_LOOSE pages of a
 * rebalance after deletes, overflow pages of a value overwritten in the same transaction), and
 * then by any number of pages (196 measured, delete-heavy): no slack would tell those from a cut.
 * This log never does that: records and indexes only grow, values are small and never replaced
 * by larger ones, and its one delete (a meta key) leaves that tiny database non-empty — so its
 * file always reaches its last page (measured: every commit of the log's own writes, see
 * lmdbCutShort.int.test.ts).
 */
export async function lmdbCutShort(dir: string): Promise<{ size: number; needed: number } | undefined> {
  const file = path.join(dir, 'log.mdb');
  if (!fs.existsSync(file)) return undefined;
  // Shorter than its two meta pages (LMDB's smallest page is 4 KiB): LMDB itself would read
  // past the end of the mapping to learn its size (a SIGBUS: the process dies without a word).
  const whole = fs.statSync(file).size;
  if (whole < LMDB_MIN_BYTES) return { size: whole, needed: LMDB_MIN_BYTES };
  let needed: number;
  let size: number;
  try {
    const env = openLmdb({ path: file, noSubdir: true, maxDbs: 8, readOnly: true, cache: false });
    try {
      const st = env.getStats() as { lastPageNumber: number; pageSize: number };
      needed = (st.lastPageNumber + 1) * st.pageSize;
      // The size after the meta: a writer writes a commit's pages before its meta, so a file
      // measured first could miss pages a commit made meanwhile (seen as "cut short" by mistake).
      size = fs.statSync(file).size;
    } finally {
      await env.close();
    }
  } catch {
    return undefined;
  }
  return size < needed ? { size, needed } : undefined;
}

/** What lmdb-js's putSync returns (typed void): false when MDB_APPEND refused the key (nothing written). */
function appended(result: void): boolean {
  return (result as unknown as boolean) !== false;
}

/** The by-doc key order (collection, id, seq) — the order LMDB keeps them in for plain strings. */
function byDocOrder(a: DocEntry, b: DocEntry): number {
  // The same collection is nearly always the very same string (one per source, or per append
  // group): told apart by reference. Ids are compared at most twice, and for distinct ids (nearly
  // all of them) half the time once: a restore of 1M random ids sorted for ~1 s here.
  if (a.collection !== b.collection) return a.collection < b.collection ? -1 : 1;
  if (a.docId < b.docId) return -1;
  if (a.docId > b.docId) return 1;
  return a.seq - b.seq;
}

/**
 * Writes `rows` (consecutive seqs, ts never going back, extending what LMDB has) and the new
 * head, in one transaction. Throws LMDB's error (nothing written) if it fails.
 *
 * `by-time` holds a key [ts, seq] where a run of equal ts begins (a group shares one ts), and at
 * the start of each call: every seq from an entry up to the next entry's (or the head) has the
 * entry's ts. (Data dirs of format 1 have an entry for every seq, which reads the same way.) A
 * dense index cost every append a third LMDB put: ~6% of the writer's time at 64 writers.
 *
 * With `deferDocs`, the rows' by-doc entries are not put but appended to it (see
 * `writeDocEntries`).
 */
export function applyRows(s: Stores, rows: readonly IndexRow[], head: StoredHead, deferDocs?: DocEntry[]): void {
  s.env.transactionSync(() => putRows(s, rows, head, deferDocs));
  // Only rows LMDB took: a failed transaction defers nothing.
  if (deferDocs !== undefined) for (const r of rows) deferDocs.push({ collection: r.collection, docId: r.docId, seq: r.seq });
}

/**
 * `applyRows`' puts, inside its transaction. A function of its own, not the transaction's
 * callback: a closure made per call had its loops compiled afresh (on-stack replacement) time and
 * again — 37 compiles, ~0.5 s of a 1M-event restore's CPU on V8's compiler threads.
 */
function putRows(s: Stores, rows: readonly IndexRow[], head: StoredHead, deferDocs: DocEntry[] | undefined): void {
  // One key array per index, refilled per put: a key is encoded as it is put (sync transaction).
  const timeKey: [number, number] = [0, 0];
  const docKey: [string, string, number] = ['', '', 0];
  // Seqs, and (ts, seq) pairs, only ever grow: those two go in with MDB_APPEND (no search, full pages).
  let runTs = Number.NaN;
  try {
    for (const r of rows) {
      // Never shorter than its two hashes and a header, never past the end of what holds it: an
      // emptied buffer is memory a bulk loader reused too early (see EventLog.importHeldFrom).
      // Refused (nothing written), never stored.
      const rec = r.record;
      if (r.end - r.at < 65 || r.end > rec.byteLength) throw new LogError('LOG_CORRUPT_RECORD', `seq ${r.seq}'s record has ${Math.min(r.end, rec.byteLength) - r.at} bytes`, { seq: r.seq });
      if (rec.buffer !== slice.buffer) {
        // LMDB reads an ArrayBuffer's address only (as lmdb-js does for any value it is given)
        if (!(rec.buffer instanceof ArrayBuffer)) throw new TypeError(`seq ${r.seq}'s record is not in an ArrayBuffer`);
        slice.buffer = rec.buffer;
        slice.address = 0;
      }
      slice.start = rec.byteOffset + r.at;
      slice.end = rec.byteOffset + r.end;
      // MDB_APPEND refuses a key not above the last (false, nothing written): never ignored, or a
      // commit begun on a stale snapshot (see lmdbReaderOpenRace.int.test.ts) would pass as written.
      if (!appended(s.events.putSync(r.seq, SLICE, APPEND))) throw new LogError('LOG_STORE_CORRUPT', `LMDB refused seq ${r.seq}: it already holds a record at or past it`, { seq: r.seq });
      if (r.ts !== runTs) {
        runTs = r.ts;
        timeKey[0] = r.ts;
        timeKey[1] = r.seq;
        if (!appended(s.byTime.putSync(timeKey, EMPTY, APPEND))) throw new LogError('LOG_STORE_CORRUPT', `LMDB refused the by-time entry of seq ${r.seq}: it already holds one at or past it`, { seq: r.seq });
      }
    }
  } finally {
    slice.buffer = NO_BYTES; // holds on to no caller's memory
    slice.address = 0;
  }
  if (deferDocs !== undefined) {
    if (deferDocs.length === 0 && rows.length > 0) s.meta.putSync(DOC_INDEX_PENDING_KEY, rows[0]!.seq);
  } else {
    // by-doc in key order: neighbouring keys share pages, so a big batch touches each page once
    const byDoc = rows.length > 256 ? [...rows].sort(byDocOrder) : rows;
    let append = true;
    for (const r of byDoc) {
      docKey[0] = r.collection;
      docKey[1] = r.docId;
      docKey[2] = r.seq;
      append = putDocKey(s, docKey, append);
    }
  }
  s.meta.putSync(HEAD_KEY, { seq: head.seq, ts: head.ts, hash: Buffer.from(head.hash) });
}

/**
 * Whether `rows` (in seq order) write their documents in about key order: of the neighbours in
 * the same collection among the first `sample` rows, at least `share` have ids that do not sort
 * below the one before. Such ids (`d<i>`, counters, time-ordered ids) put their by-doc entries
 * into a few stretches of the index; random ids (UUIDv4, hashes: about half in order) put them
 * all over it. Undefined when too few neighbours share a collection to tell.
 */
export function docsInKeyOrder(rows: readonly IndexRow[], share: number, sample = 2048): boolean | undefined {
  const n = Math.min(rows.length, sample);
  let pairs = 0;
  let ordered = 0;
  for (let i = 1; i < n; i++) {
    const a = rows[i - 1]!;
    const b = rows[i]!;
    if (a.collection !== b.collection) continue;
    pairs += 1;
    if (b.docId >= a.docId) ordered += 1;
  }
  return pairs < n / 2 ? undefined : ordered >= share * pairs;
}

/**
 * Sorts by-doc entries into key order (`byDocOrder`), in place. Entries of one collection (nearly
 * always, and at least 4096 of them: the ones deferred) are sorted by numbers made of their ids'
 * leading UTF-16 units (see `sortByLeadingUnits`); only ids that share their first ten units are
 * compared as strings. Ids with a unit above 0xFE among those fall back to bucketing by the
 * first two units and comparing strings (`sortBucketed`).
 */
export function sortDocEntries(entries: DocEntry[]): void {
  const n = entries.length;
  const c = entries[0]?.collection;
  if (n < 4096 || entries.some((e) => e.collection !== c)) {
    entries.sort(byDocOrder);
    return;
  }
  if (!sortByLeadingUnits(entries)) sortBucketed(entries);
}

/** Units of an id in the second number of `sortByLeadingUnits` (8 bits each: 48 bits, exact in a float64). */
const SECOND_UNITS = 6;

/**
 * Sorts entries of one collection by two numbers per id, each unit of it as unit + 1 in 8 bits (0
 * where the id has ended, so a prefix sorts before its extensions): the first of its first K
 * units followed by the entry's index (K = 4 up to 2M entries: K·8 + index bits ≤ 53), sorted as
 * one typed array; then, among entries whose first K units tie, the next SECOND_UNITS units; then
 * the ids as strings, and seq. Each id is read once, in entry order, and the comparisons are of
 * numbers: random ids are compared where they lie in memory, not through a million pointers. A
 * million UUIDs sort in ~0.5 s, against ~1.4-1.5 s bucketed by two units and compared as strings
 * (~17 comparisons an entry, ~50-80 ns each, mostly cache misses). False (entries untouched) when
 * an id has a unit above 0xFE among the units read.
 */
function sortByLeadingUnits(entries: DocEntry[]): boolean {
  const n = entries.length;
  const indexBits = Math.max(1, Math.ceil(Math.log2(n)));
  const first = Math.min(4, Math.floor((53 - indexBits) / 8));
  if (first < 1) return false;
  const scale = 2 ** indexBits;
  const keys = new Float64Array(n);
  const second = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const id = entries[i]!.docId;
    let a = 0;
    let b = 0;
    for (let u = 0; u < first + SECOND_UNITS; u++) {
      let v = 0;
      if (u < id.length) {
        v = id.charCodeAt(u) + 1;
        if (v > 0xff) return false;
      }
      if (u < first) a = a * 256 + v;
      else b = b * 256 + v;
    }
    keys[i] = a * scale + i;
    second[i] = b;
  }
  keys.sort();
  // The sorted keys split back into the first number (in `keys`) and the index (in `order`).
  const order = new Array<number>(n);
  for (let k = 0; k < n; k++) {
    const prefix = Math.floor(keys[k]! / scale);
    order[k] = keys[k]! - prefix * scale;
    keys[k] = prefix;
  }
  const byRest = (x: number, y: number): number => second[x]! - second[y]! || byDocOrder(entries[x]!, entries[y]!);
  let i = 0;
  while (i < n) {
    const prefix = keys[i]!;
    let j = i + 1;
    while (j < n && keys[j] === prefix) j++;
    if (j - i > 1) {
      const group = order.slice(i, j).sort(byRest);
      for (let k = i; k < j; k++) order[k] = group[k - i]!;
    }
    i = j;
  }
  const sorted = order.map((x) => entries[x]!);
  for (let k = 0; k < n; k++) entries[k] = sorted[k]!;
  return true;
}

/** Entries of one collection bucketed by their ids' first two UTF-16 units, each bucket sorted by itself. */
function sortBucketed(entries: DocEntry[]): void {
  const buckets = new Map<number, DocEntry[]>();
  for (const e of entries) {
    const id = e.docId;
    // Absent units count as -1: a prefix sorts before its extensions.
    const key = (id.length > 0 ? id.charCodeAt(0) + 1 : 0) * 65537 + (id.length > 1 ? id.charCodeAt(1) + 1 : 0);
    const b = buckets.get(key);
    if (b === undefined) buckets.set(key, [e]);
    else b.push(e);
  }
  let i = 0;
  for (const key of [...buckets.keys()].sort((a, b) => a - b)) {
    const b = buckets.get(key)!;
    if (b.length > 1) b.sort(byDocOrder);
    for (const e of b) entries[i++] = e;
  }
}

/**
 * Writes deferred by-doc entries (see applyRows' `deferDocs`), sorted, in transactions of
 * DOC_WRITE_BATCH, and removes DOC_INDEX_PENDING_KEY with the last. Measured with LMDB alone,
 * a million random ids (UUIDs) sorted as a whole took ~1.4 s of puts; put 12.5k at a time as
 * their rows are applied, each batch's ids land all over the index and the same million took
 * ~4.3 s of puts and commits (each touched leaf page is copied and written whole, again by every
 * later batch). Entries already in the index are put again (no change). `entries` is sorted in
 * place.
 */
export function writeDocEntries(s: Stores, entries: DocEntry[]): void {
  sortDocEntries(entries);
  const docKey: [string, string, number] = ['', '', 0];
  let i = 0;
  do {
    const end = Math.min(entries.length, i + DOC_WRITE_BATCH);
    const from = i;
    s.env.transactionSync(() => {
      putDocEntries(s, entries, from, end, docKey);
      if (end === entries.length) s.meta.removeSync(DOC_INDEX_PENDING_KEY);
    });
    i = end;
  } while (i < entries.length);
}

/** Puts by-doc entries [from, end) (a function of its own, for the reason putRows is). */
function putDocEntries(s: Stores, entries: readonly DocEntry[], from: number, end: number, docKey: [string, string, number]): void {
  let append = true;
  for (let j = from; j < end; j++) {
    const e = entries[j]!;
    docKey[0] = e.collection;
    docKey[1] = e.docId;
    docKey[2] = e.seq;
    append = putDocKey(s, docKey, append);
  }
}

/**
 * Puts a by-doc key (in a write transaction); returns whether the next key of the same sorted run
 * should be tried as an append. While `append`, the key goes in with MDB_APPEND: past the index's
 * last key, LMDB takes it without searching the tree (~25% of a million ordered puts); anywhere
 * else it refuses it, writing nothing, and the key is put the usual way, as is the rest of the run.
 * Keys sorted by `byDocOrder` (UTF-16 order) are in LMDB's byte order but for rare characters,
 * where an append is refused the same way.
 */
function putDocKey(s: Stores, docKey: [string, string, number], append: boolean): boolean {
  if (append && s.byDoc.putSync(docKey, EMPTY, APPEND)) return true;
  s.byDoc.putSync(docKey, EMPTY);
  return false;
}
