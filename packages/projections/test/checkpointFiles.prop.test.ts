import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { IO_CHUNK_BYTES, JsonLines, hashFile, hashFileSync, readJsonLinesSync } from '../src/checkpointFiles.js';
import { tmpDir } from './helpers.js';

const dir = tmpDir();
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Writes `values` as JsonLines does, flushing whenever it says a chunk is full. */
function write(file: string, values: unknown[], chunkChars: number): Buffer {
  const lines = new JsonLines(chunkChars);
  const parts: Buffer[] = [];
  for (const v of values) if (lines.add(v)) parts.push(lines.take());
  parts.push(lines.take());
  const all = Buffer.concat(parts);
  fs.writeFileSync(file, all);
  return all;
}

/** Reads `file` back with chunks of `chunkBytes`; the values, and how many batches they came in. */
function read(file: string, chunkBytes: number): { values: unknown[]; batches: number } {
  const fd = fs.openSync(file, 'r');
  try {
    const values: unknown[] = [];
    let batches = 0;
    readJsonLinesSync(fd, (vs) => {
      batches += 1;
      values.push(...vs);
    }, chunkBytes);
    return { values, batches };
  } finally {
    fs.closeSync(fd);
  }
}

// Rows like a checkpoint's, with what is awkward for a line format: newlines, line and paragraph
// separators, multi-byte and astral characters (split across chunk edges), lone surrogates, nesting.
const text = fc.string({ unit: fc.oneof(fc.constantFrom('\n', '\r', '\u2028', '\u2029', '"', '\\', 'é', '\u{1F600}', '\ud800', ','), fc.string({ minLength: 1, maxLength: 1 })), maxLength: 40 });
const row = fc.tuple(text, fc.nat(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.option(fc.dictionary(text, fc.oneof(text, fc.integer(), fc.array(text, { maxLength: 3 }))), { nil: null }));

describe('NDJSON checkpoint files', () => {
  it('read ∘ write = id, for any rows, write chunk size and read chunk size', () => {
    fc.assert(
      fc.property(fc.array(row, { maxLength: 60 }), fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 300 }), (rows, writeChunk, readChunk) => {
        const f = path.join(dir, 'rt.ndjson');
        write(f, rows, writeChunk);
        expect(read(f, readChunk).values).toEqual(JSON.parse(JSON.stringify(rows)));
      }),
      { seed: 20260511, numRuns: 300 },
    );
  });

  it('a file cut anywhere but at a line end is refused; cut at a line end, it reads as the rows before the cut', () => {
    fc.assert(
      fc.property(fc.array(row, { minLength: 1, maxLength: 20 }), fc.nat(), fc.integer({ min: 1, max: 64 }), (rows, cutAt, readChunk) => {
        const f = path.join(dir, 'cut.ndjson');
        const all = write(f, rows, 50);
        const cut = cutAt % all.length;
        fs.truncateSync(f, cut);
        const whole = cut === 0 || all[cut - 1] === 0x0a;
        if (!whole) expect(() => read(f, readChunk)).toThrow(/cut short|not JSON/);
        else expect(read(f, readChunk).values).toEqual(JSON.parse(JSON.stringify(rows)).slice(0, all.subarray(0, cut).filter((b) => b === 0x0a).length));
      }),
      { seed: 7, numRuns: 300 },
    );
  });

  it('an empty line, or two values on a line, is refused', () => {
    const f = path.join(dir, 'bad.ndjson');
    for (const body of ['[1]\n\n[2]\n', '\n', '[1]\n[2] [3]\n', '[1]\n[2],[3]\n']) {
      fs.writeFileSync(f, body);
      for (const chunk of [1, 3, 1024]) expect(() => read(f, chunk), `${JSON.stringify(body)} in chunks of ${chunk}`).toThrow(/not JSON|not one JSON value/);
    }
  });

  it('a line longer than the read chunk is read whole; whole lines in a chunk are parsed in one batch', () => {
    const f = path.join(dir, 'long.ndjson');
    const big = 'x'.repeat(10_000);
    write(f, [[1], { big }, [2], [3], [4]], 1 << 20);
    expect(read(f, 64).values).toEqual([[1], { big }, [2], [3], [4]]);
    expect(read(f, 1 << 20).batches).toBe(1);
  });

  it('an empty file reads as no rows', () => {
    const f = path.join(dir, 'empty.ndjson');
    fs.writeFileSync(f, '');
    expect(read(f, 1024)).toEqual({ values: [], batches: 0 });
  });
});

describe('checkpoint file hashes', () => {
  // The read buffer is sized to the file (at most a chunk): each size around those edges.
  it('size and SHA-256 of files of any size, sync and async, fsynced first or not', async () => {
    const f = path.join(dir, 'hash.bin');
    for (const size of [0, 1, 2, 4095, 4096, 4097, IO_CHUNK_BYTES - 1, IO_CHUNK_BYTES, IO_CHUNK_BYTES + 1, 2 * IO_CHUNK_BYTES + 7]) {
      const body = crypto.randomBytes(size);
      fs.writeFileSync(f, body);
      const want = { size, sha256: crypto.createHash('sha256').update(body).digest('hex') };
      expect(hashFileSync(f), `${size} bytes`).toEqual(want);
      expect(await hashFile(f), `${size} bytes`).toEqual(want);
      expect(await hashFile(f, true), `${size} bytes`).toEqual(want);
    }
  });
});
