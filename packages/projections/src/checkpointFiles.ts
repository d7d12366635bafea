// The files of a checkpoint, by format version, and the bounded-chunk I/O they are written and
// read with. A collection's files can be far larger than what one JS string (V8: 2^29 − 24
// UTF-16 units, ~512 MB) or one readFileSync (2 GiB) can hold, so nothing here builds or reads a
// whole file at once: the rows are NDJSON (one JSON value per line) and every file moves a chunk
// at a time. Node builtins only: the cold worker uses it too.
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';

/**
 * Format version of a checkpoint directory written now. 1: `docs-<name>.json` and
 * `cold-<name>.labels.json` each one JSON document (a collection past ~512 MB of rows could not
 * be written). 2: the same rows as NDJSON, in `docs-<name>.ndjson` and `cold-<name>.labels.ndjson`.
 */
export const CHECKPOINT_FORMAT_VERSION = 2;

/** The format versions a checkpoint may have and still be loaded. */
export const READABLE_CHECKPOINT_FORMATS: readonly number[] = Object.freeze([1, 2]);

/** The per-collection files of a checkpoint in `format` (1 or 2). */
export interface CollectionFiles {
  /** Per live doc, in order: `[id, seq, ts, metadata | null]`. Format 1: one JSON array; 2: NDJSON. */
  docs: string;
  /** The docs' vectors, doc after doc, little-endian float32: exactly count × dimension × 4 bytes. */
  vectors: string;
  /** The cold tier's hnswlib index. */
  index: string;
  /** The cold tier's label map. Format 1: one JSON object; 2: NDJSON, a header line then one line per live label. */
  labels: string;
}

/** The file names of collection `name` in a checkpoint of `format`. */
export function collectionFiles(format: number, name: string): CollectionFiles {
  const rows = format === 1 ? 'json' : 'ndjson';
  return { docs: `docs-${name}.${rows}`, vectors: `docs-${name}.f32`, index: `cold-${name}.hnsw`, labels: `cold-${name}.labels.${rows}` };
}

/** Bytes moved per read or write call: a few ms of work, whatever the file's size. */
export const IO_CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * JSON values gathered as lines (NDJSON) into chunks of about `chunkChars` UTF-16 units, for a
 * writer that writes a chunk at a time. A single value still has to fit in one string.
 */
export class JsonLines {
  private parts: string[] = [];
  private chars = 0;

  constructor(private readonly chunkChars = IO_CHUNK_BYTES) {}

  /** Adds `value` as one line. Returns true when the chunk is full: `take` it. */
  add(value: unknown): boolean {
    const s = JSON.stringify(value);
    this.parts.push(s);
    this.chars += s.length + 1;
    return this.chars >= this.chunkChars;
  }

  /** The lines added since the last take, UTF-8, each ending in `\n` (empty when none). */
  take(): Buffer {
    if (this.parts.length === 0) return Buffer.alloc(0);
    this.parts.push('');
    const out = Buffer.from(this.parts.join('\n'));
    this.parts = [];
    this.chars = 0;
    return out;
  }
}

/** Writes all of `buf` at the handle's current position. */
export async function writeAll(fh: FileHandle, buf: Uint8Array): Promise<void> {
  for (let off = 0; off < buf.byteLength; ) off += (await fh.write(buf, off, buf.byteLength - off)).bytesWritten;
}

/** Writes all of `buf` at the descriptor's current position. */
export function writeAllSync(fd: number, buf: Uint8Array): void {
  for (let off = 0; off < buf.byteLength; ) off += fs.writeSync(fd, buf, off, buf.byteLength - off);
}

/**
 * A buffer to read a file of `size` bytes through, `chunkBytes` at a time: no larger than the
 * file (at least 1 byte; a file that grew since is read in more chunks). A checkpoint of 1000
 * small collections holds 4000 files of a few KB: a 4 MiB buffer for each, allocated outside
 * V8's heap, drove a full collection every few files — sealing one took 24 s, most of it GC.
 */
function chunkBuffer(size: number, chunkBytes = IO_CHUNK_BYTES): Buffer {
  return Buffer.allocUnsafe(Math.max(1, Math.min(chunkBytes, size)));
}

/** Fills `into` from `fd` at byte `position`. Throws if the file ends first. */
export function readFullySync(fd: number, into: Uint8Array, position: number): void {
  for (let off = 0; off < into.byteLength; ) {
    const n = fs.readSync(fd, into, off, Math.min(into.byteLength - off, IO_CHUNK_BYTES), position + off);
    if (n === 0) throw new Error(`the file ends at byte ${position + off}, ${into.byteLength - off} bytes short`);
    off += n;
  }
}

/**
 * Parses the NDJSON file open at `fd` from its start, `chunkBytes` at a time: calls `onValues`
 * with the values of each run of whole lines, in file order. Throws on a line that is not JSON
 * (an empty line included) and on a last line without its `\n` (a file cut short). A line may
 * span any number of chunks; no string longer than a chunk or the longest line is made.
 */
export function readJsonLinesSync(fd: number, onValues: (values: unknown[]) => void, chunkBytes = IO_CHUNK_BYTES): void {
  const buf = chunkBuffer(fs.fstatSync(fd).size, chunkBytes);
  // The start of a line begun in an earlier chunk (copied: `buf` is reused).
  let carry: Buffer[] = [];
  let lineNo = 1;
  const parse = (text: string, lines: number): unknown => {
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new Error(`line ${lines === 1 ? lineNo : `${lineNo}..${lineNo + lines - 1}`} is not JSON: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  };
  for (let pos = 0; ; ) {
    const n = fs.readSync(fd, buf, 0, buf.byteLength, pos);
    if (n === 0) break;
    pos += n;
    const b = buf.subarray(0, n);
    const first = b.indexOf(0x0a);
    if (first < 0) {
      carry.push(Buffer.from(b));
      continue;
    }
    let start = 0;
    if (carry.length > 0) {
      carry.push(b.subarray(0, first));
      onValues([parse(Buffer.concat(carry).toString('utf8'), 1)]);
      lineNo += 1;
      carry = [];
      start = first + 1;
    }
    const last = b.lastIndexOf(0x0a);
    if (last >= start) {
      // The whole lines of this chunk in one parse: a line is one JSON value and holds no raw
      // newline (JSON.stringify escapes them), so joining them with commas makes an array.
      const text = b.toString('utf8', start, last);
      const lines = countNewlines(b, start, last) + 1;
      const values = parse(`[${text.replaceAll('\n', ',')}]`, lines) as unknown[];
      if (values.length !== lines) throw new Error(`lines ${lineNo}..${lineNo + lines - 1} are not one JSON value each`);
      onValues(values);
      lineNo += lines;
    }
    if (last + 1 < n) carry.push(Buffer.from(b.subarray(Math.max(last + 1, start))));
  }
  if (carry.length > 0) throw new Error(`line ${lineNo} has no end: the file is cut short`);
}

function countNewlines(b: Buffer, from: number, to: number): number {
  let n = 0;
  for (let i = b.indexOf(0x0a, from); i >= 0 && i < to; i = b.indexOf(0x0a, i + 1)) n += 1;
  return n;
}

/**
 * `hashFileSync`, read and hashed a chunk (IO_CHUNK_BYTES, ~4 ms of hashing) a turn: the event
 * loop runs between chunks. With `fsyncFirst` (sealing a checkpoint), the file is fsynced first.
 */
export async function hashFile(file: string, fsyncFirst = false): Promise<{ size: number; sha256: string }> {
  const fh = await fsp.open(file, 'r');
  try {
    if (fsyncFirst) await fh.sync();
    const h = crypto.createHash('sha256');
    const buf = chunkBuffer((await fh.stat()).size);
    let size = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.byteLength, size);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      size += bytesRead;
    }
    return { size, sha256: h.digest('hex') };
  } finally {
    await fh.close();
  }
}

/** Size and SHA-256 (hex) of `file`, read a chunk at a time (files past 2 GiB too). */
export function hashFileSync(file: string): { size: number; sha256: string } {
  const fd = fs.openSync(file, 'r');
  try {
    const h = crypto.createHash('sha256');
    const buf = chunkBuffer(fs.fstatSync(fd).size);
    let size = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.byteLength, size);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      size += n;
    }
    return { size, sha256: h.digest('hex') };
  } finally {
    fs.closeSync(fd);
  }
}
