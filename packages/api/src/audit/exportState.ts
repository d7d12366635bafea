import fs from 'node:fs';
import readline from 'node:readline';
import { once } from 'node:events';
import { toHex } from '@kyrodb/log';
import type { EventLog, LogHead, Metadata, Metric } from '@kyrodb/log';
import { AuditError } from './errors.js';
import { stateAsOfAsync } from './state.js';
import type { AuditCollection, AuditDoc, AuditState } from './state.js';
import { formatMicros, parseInstant } from './time.js';

/**
 * The `kyrodb-state` export format, version 1: NDJSON (one JSON object per line, `\n`).
 *
 * 1. Header: `{"kind":"header","format":"kyrodb-state","version":1,"as_of":"<ISO µs Z>",
 *    "as_of_micros":T,"head":{"seq":S,"ts":µs,"ts_iso":"…"|null,"hash":"<64 hex>"},
 *    "collections":C,"documents":D}` — `head` is the digest of the last event with ts ≤ T
 *    (seq 0 and the genesis hash of 32 zero bytes when there is none: the state is empty).
 * 2. For each collection, in name order: `{"kind":"collection","name":…,"dimension":…,
 *    "metric":"cosine|l2|ip","hnsw":{"M","efConstruction","efSearch"},"created_seq":…,
 *    "version":…,"count":N}` followed by its N documents in id order:
 *    `{"kind":"doc","collection":…,"id":…,"vector":[…],"metadata":{…}|null,"seq":…,"ts":µs}`.
 *    Vector values are the Float32 values written as JSON numbers (shortest round-trip form,
 *    `-0` kept), so parsing them into a Float32Array gives back the exact bits.
 * 3. Footer: `{"kind":"footer","collections":C,"documents":D}`. A file without it is truncated.
 *
 * Names, ids and strings are compared by UTF-16 code units for the ordering.
 */
export const STATE_FORMAT = 'kyrodb-state';
/** Version of the export format. */
export const STATE_FORMAT_VERSION = 1;

/** Progress of an export: the replay phase, then the writing phase. */
export interface ExportProgress {
  phase: 'replay' | 'write';
  done: number;
  total: number;
}

/** What `exportStateAsOf` reports when it is done. */
export interface ExportSummary {
  asOf: number;
  head: LogHead;
  collections: number;
  documents: number;
  bytes: number;
}

function byKey(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function vectorJson(v: Float32Array): string {
  let s = '[';
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    if (i > 0) s += ',';
    s += Object.is(x, -0) ? '-0' : String(x);
  }
  return s + ']';
}

function headJson(h: LogHead): string {
  return JSON.stringify({ seq: h.seq, ts: h.ts, ts_iso: h.seq === 0 ? null : formatMicros(h.ts), hash: toHex(h.hash) });
}

/** The header line of a state export (without the newline). */
function headerLine(state: AuditState, collections: number, documents: number): string {
  return `{"kind":"header","format":"${STATE_FORMAT}","version":${STATE_FORMAT_VERSION},"as_of":${JSON.stringify(formatMicros(state.asOf))},"as_of_micros":${state.asOf},"head":${headJson(state.head)},"collections":${collections},"documents":${documents}}`;
}

function collectionLine(c: AuditCollection): string {
  const i = c.info;
  return JSON.stringify({ kind: 'collection', name: i.name, dimension: i.dimension, metric: i.metric, hnsw: { M: i.hnsw.M, efConstruction: i.hnsw.efConstruction, efSearch: i.hnsw.efSearch }, created_seq: i.createdSeq, version: i.version, count: c.docs.size });
}

function docLine(collection: string, d: AuditDoc): string {
  return `{"kind":"doc","collection":${JSON.stringify(collection)},"id":${JSON.stringify(d.id)},"vector":${vectorJson(d.vector)},"metadata":${JSON.stringify(d.metadata ?? null)},"seq":${d.seq},"ts":${d.ts}}`;
}

/** The reader of an export took nothing for `stallMs` (see `ExportOptions.stallMs`). */
export class ExportStalledError extends Error {
  constructor(readonly stallMs: number) {
    super(`the export's reader took nothing for ${stallMs} ms; the export was stopped`);
    this.name = 'ExportStalledError';
  }
}

/** Options of `writeState` and `exportStateAsOf`. */
export interface ExportOptions {
  onProgress?: (p: ExportProgress) => void;
  /**
   * Give up (ExportStalledError) once `out` has pushed back and not drained for this long: a
   * reader that holds its connection open but reads nothing must not hold the state in memory
   * (and its export slot) for ever. Default: wait as long as it takes.
   */
  stallMs?: number;
}

/** Writes lines in chunks of ~64 KiB (one syscall per chunk, not per line), honouring backpressure. */
class LineWriter {
  private parts: string[] = [];
  private size = 0;
  bytes = 0;
  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly stallMs?: number,
  ) {}
  async line(s: string): Promise<void> {
    this.parts.push(s, '\n');
    this.size += s.length + 1;
    if (this.size >= 64 * 1024) await this.flush();
  }
  async flush(): Promise<void> {
    if (this.parts.length === 0) return;
    const chunk = this.parts.join('');
    this.parts = [];
    this.size = 0;
    this.bytes += Buffer.byteLength(chunk);
    const w = this.out as NodeJS.WritableStream & { destroyed?: boolean };
    if (w.destroyed === true) throw new Error('the export stream was closed before the export finished');
    if (!w.write(chunk)) {
      // Wait for room, or give up if the reader went away (a closed stream never drains) or,
      // with `stallMs`, reads nothing for that long.
      const ac = new AbortController();
      let timer: NodeJS.Timeout | undefined;
      const waits = [
        once(w, 'drain', { signal: ac.signal }),
        once(w, 'close', { signal: ac.signal }).then(() => Promise.reject(new Error('the export stream was closed before the export finished'))),
      ];
      if (this.stallMs !== undefined) {
        const ms = this.stallMs;
        waits.push(new Promise((_resolve, reject) => (timer = setTimeout(() => reject(new ExportStalledError(ms)), ms))));
      }
      await Promise.race(waits).finally(() => {
        clearTimeout(timer);
        ac.abort();
      });
    }
  }
}

/**
 * Writes an already-built state in the `kyrodb-state` format, line by line, awaiting `drain`
 * when the stream pushes back (no giant strings). Does not end `out`.
 */
export async function writeState(state: AuditState, out: NodeJS.WritableStream, o: ExportOptions = {}): Promise<ExportSummary> {
  const { onProgress } = o;
  const names = [...state.collections.keys()].sort(byKey);
  let documents = 0;
  for (const c of state.collections.values()) documents += c.docs.size;
  const w = new LineWriter(out, o.stallMs);
  await w.line(headerLine(state, names.length, documents));
  let done = 0;
  for (const name of names) {
    const c = state.collections.get(name)!;
    await w.line(collectionLine(c));
    for (const id of [...c.docs.keys()].sort(byKey)) {
      await w.line(docLine(name, c.docs.get(id)!));
      done += 1;
      if (onProgress !== undefined && done % 10_000 === 0) onProgress({ phase: 'write', done, total: documents });
    }
  }
  await w.line(JSON.stringify({ kind: 'footer', collections: names.length, documents }));
  await w.flush();
  onProgress?.({ phase: 'write', done: documents, total: documents });
  return { asOf: state.asOf, head: state.head, collections: names.length, documents, bytes: w.bytes };
}

/**
 * Exports the state as of `tsMicros` (all events with ts ≤ T; validate T with `parseAsOf`
 * first) to `out` in the documented `kyrodb-state` NDJSON format, with the head digest at T.
 * Replays the log prefix (yielding to the event loop between chunks), then streams the lines.
 * Does not end `out`.
 */
export async function exportStateAsOf(log: EventLog, tsMicros: number, out: NodeJS.WritableStream, o: ExportOptions = {}): Promise<ExportSummary> {
  const { onProgress } = o;
  const state = await stateAsOfAsync(log, tsMicros, onProgress === undefined ? undefined : (done, total) => onProgress({ phase: 'replay', done, total }));
  return writeState(state, out, o);
}

/** A state read back from an export file, with the header's figures. */
export interface ImportedState extends AuditState {
  format: typeof STATE_FORMAT;
  version: number;
  documents: number;
}

function bad(line: number, message: string): never {
  throw new AuditError('AUDIT_BAD_EXPORT', `line ${line}: ${message}`, { line });
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function int(v: unknown, line: number, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(line, `${field} must be a non-negative integer`);
  return v;
}

function parseHead(v: unknown, line: number): LogHead {
  if (!isObj(v) || typeof v['hash'] !== 'string' || !/^[0-9a-f]{64}$/.test(v['hash'])) bad(line, 'head must be {seq, ts, ts_iso, hash}');
  return { seq: int(v['seq'], line, 'head.seq'), ts: int(v['ts'], line, 'head.ts'), hash: new Uint8Array(Buffer.from(v['hash'], 'hex')) };
}

/**
 * Reads a `kyrodb-state` export back (streaming, line by line): the same `AuditState` that was
 * exported, so `importState(export(T))` equals `stateAsOf(T)`. Throws AUDIT_BAD_EXPORT naming
 * the line on anything that does not follow the format, including counts that disagree with
 * the header/footer and a missing footer (a truncated file).
 */
export async function importState(file: string): Promise<ImportedState> {
  const rl = readline.createInterface({ input: fs.createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let n = 0;
  let state: ImportedState | undefined;
  let current: { c: AuditCollection; expected: number } | undefined;
  let footer = false;
  let collections = 0;
  let lastName: string | undefined;
  let lastId: string | undefined;
  const closeCollection = (): void => {
    if (current !== undefined && current.c.docs.size !== current.expected) bad(n, `collection ${current.c.info.name} declares ${current.expected} documents but has ${current.c.docs.size}`);
    current = undefined;
  };
  for await (const text of rl) {
    n += 1;
    if (text === '') continue;
    if (footer) bad(n, 'content after the footer');
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      bad(n, 'not JSON');
    }
    if (!isObj(v)) bad(n, 'not a JSON object');
    if (state === undefined) {
      if (v['kind'] !== 'header' || v['format'] !== STATE_FORMAT) bad(n, `the first line must be the ${STATE_FORMAT} header`);
      if (v['version'] !== STATE_FORMAT_VERSION) bad(n, `format version ${JSON.stringify(v['version'])} is not supported (expected ${STATE_FORMAT_VERSION})`);
      // Negative before 1970 (an export as of such a T is the empty state).
      const asOf = v['as_of_micros'];
      if (typeof asOf !== 'number' || !Number.isSafeInteger(asOf)) bad(n, 'as_of_micros must be an integer');
      if (typeof v['as_of'] !== 'string' || parseInstant(v['as_of']) !== asOf) bad(n, 'as_of and as_of_micros disagree');
      state = { format: STATE_FORMAT, version: STATE_FORMAT_VERSION, asOf, head: parseHead(v['head'], n), collections: new Map(), documents: int(v['documents'], n, 'documents') };
      collections = int(v['collections'], n, 'collections');
      continue;
    }
    switch (v['kind']) {
      case 'collection': {
        closeCollection();
        const name = v['name'];
        const hnsw = v['hnsw'];
        if (typeof name !== 'string' || state.collections.has(name)) bad(n, 'collection name missing or repeated');
        // The format's order (names, then ids, by UTF-16 code units): a file out of order was not written by an export.
        if (lastName !== undefined && byKey(lastName, name) >= 0) bad(n, `collection ${JSON.stringify(name)} is out of name order (after ${JSON.stringify(lastName)})`);
        lastName = name;
        lastId = undefined;
        if (!['cosine', 'l2', 'ip'].includes(v['metric'] as string)) bad(n, 'metric must be cosine, l2 or ip');
        if (!isObj(hnsw)) bad(n, 'hnsw must be an object');
        const c: AuditCollection = {
          info: {
            name,
            dimension: int(v['dimension'], n, 'dimension'),
            metric: v['metric'] as Metric,
            hnsw: { M: int(hnsw['M'], n, 'hnsw.M'), efConstruction: int(hnsw['efConstruction'], n, 'hnsw.efConstruction'), efSearch: int(hnsw['efSearch'], n, 'hnsw.efSearch') },
            createdSeq: int(v['created_seq'], n, 'created_seq'),
            version: int(v['version'], n, 'version'),
          },
          docs: new Map(),
        };
        state.collections.set(name, c);
        current = { c, expected: int(v['count'], n, 'count') };
        break;
      }
      case 'doc': {
        if (current === undefined || v['collection'] !== current.c.info.name) bad(n, 'a document must follow its collection line');
        const id = v['id'];
        const vec = v['vector'];
        const md = v['metadata'];
        if (typeof id !== 'string' || current.c.docs.has(id)) bad(n, 'document id missing or repeated');
        if (!Array.isArray(vec) || !vec.every((x) => typeof x === 'number')) bad(n, 'vector must be an array of numbers');
        if (lastId !== undefined && byKey(lastId, id) >= 0) bad(n, `document ${JSON.stringify(id)} is out of id order (after ${JSON.stringify(lastId)})`);
        lastId = id;
        if (vec.length !== current.c.info.dimension) bad(n, `document ${JSON.stringify(id)} has ${vec.length} values; its collection's dimension is ${current.c.info.dimension}`);
        if (md !== null && !isObj(md)) bad(n, 'metadata must be an object or null');
        const vector = Float32Array.from(vec);
        // JSON has no Infinity or NaN: a value that overflows float32 (1e999, 3.5e38) was never exported.
        if (!vector.every((x) => Number.isFinite(x))) bad(n, `document ${JSON.stringify(id)} has a value that is not a finite float32`);
        current.c.docs.set(id, { id, vector, ...(md !== null ? { metadata: md as Metadata } : {}), seq: int(v['seq'], n, 'seq'), ts: int(v['ts'], n, 'ts') });
        break;
      }
      case 'footer': {
        closeCollection();
        let docs = 0;
        for (const c of state.collections.values()) docs += c.docs.size;
        if (v['collections'] !== state.collections.size || v['documents'] !== docs || collections !== state.collections.size || state.documents !== docs) {
          bad(n, `counts disagree: header says ${collections} collections / ${state.documents} documents, footer ${JSON.stringify(v['collections'])} / ${JSON.stringify(v['documents'])}, file has ${state.collections.size} / ${docs}`);
        }
        footer = true;
        break;
      }
      default:
        bad(n, `unknown line kind ${JSON.stringify(v['kind'])}`);
    }
  }
  if (state === undefined) bad(n, 'empty file: no header');
  if (!footer) bad(n, 'no footer: the file is truncated');
  return state;
}
