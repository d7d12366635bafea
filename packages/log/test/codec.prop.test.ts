import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import zlib from 'node:zlib';
import { crc32Combine, sealFrame } from '@kyrodb/log/codec';
import { FrameArena, FrameBuilder, GENESIS_HASH, chainHash, encodeFrame, frameViews, decodePayload, decodePayloadHeader, decodeRecord, encodeEvent, encodePayload, sealEvent, splitRecord } from '@kyrodb/log';
import { eventInputArb, fcParams, float32Arb, metadataArb, sameBits, sameInput, inputOf } from './helpers.js';

const seqArb = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const tsArb = fc.integer({ min: 0, max: 2 ** 52 });

// Printable ASCII without / ? # % and whitespace (what ids and collections may hold), of lengths
// on both sides of msgpack's string header sizes (31/32, 255/256).
const asciiUnit = fc.constantFrom(...'abcXYZ019-_~.:@'.split(''));
const asciiArb = (max: number) =>
  fc.oneof(
    fc.string({ unit: asciiUnit, minLength: 1, maxLength: max }),
    fc.constantFrom(...[31, 32, 255, 256].filter((n) => n <= max)).chain((n) => fc.string({ unit: asciiUnit, minLength: n, maxLength: n })),
  );
const boundaryIntArb = fc.oneof(
  fc.constantFrom(0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER),
  fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
);

/** Whether the records `frameViews` reads out of `frame` are these very views (the same memory: what FrameBuilder hands out). */
function viewsOf(frame: Buffer, records: readonly Uint8Array[]): boolean {
  const v = frameViews(frame);
  return v !== undefined && v.length === records.length && v.every((x, i) => x.buffer === records[i]!.buffer && x.byteOffset === records[i]!.byteOffset && x.byteLength === records[i]!.byteLength);
}

describe('codec', () => {
  it('a frame built in place as records are sealed is the frame encodeFrame builds; one that outgrows its estimate is not built', () => {
    fc.assert(
      fc.property(fc.array(eventInputArb, { minLength: 1, maxLength: 12 }), fc.integer({ min: 1, max: 2 ** 40 }), fc.integer({ min: 0, max: 4000 }), (inputs, firstSeq, estimate) => {
        const fb = new FrameBuilder(estimate);
        let prev: Uint8Array = GENESIS_HASH;
        const records = inputs.map((input, i) => {
          const { event, record } = sealEvent(input, firstSeq + i, 7, prev, fb.alloc);
          prev = event.hash;
          return record;
        });
        const built = fb.finish(firstSeq);
        const need = records.reduce((n, r) => n + 4 + r.byteLength, 0);
        if (need > estimate) expect(built).toBeUndefined();
        else {
          expect(built).toBeDefined();
          expect(built!.equals(encodeFrame(records, firstSeq))).toBe(true);
          expect(viewsOf(built!, records)).toBe(true);
        }
      }),
      fcParams(300),
    );
  });

  it('frames carved one after another from an arena (small slabs, so some frames start a new slab or get their own buffer) never overlap: each keeps its bytes', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.array(eventInputArb, { minLength: 1, maxLength: 6 }), fc.integer({ min: 0, max: 6000 })), { minLength: 1, maxLength: 8 }), (groups) => {
        const arena = new FrameArena(4096);
        let prev: Uint8Array = GENESIS_HASH;
        let seq = 1;
        const built: { frame: Buffer; copy: Buffer; records: Uint8Array[]; firstSeq: number }[] = [];
        for (const [inputs, estimate] of groups) {
          const fb = new FrameBuilder(estimate, arena);
          const firstSeq = seq;
          const records = inputs.map((input) => {
            const { event, record } = sealEvent(input, seq++, 7, prev, fb.alloc);
            prev = event.hash;
            return record;
          });
          const frame = fb.finish(firstSeq);
          if (frame === undefined) {
            expect(records.reduce((n, r) => n + 4 + r.byteLength, 0)).toBeGreaterThan(estimate);
            continue;
          }
          expect(frame.byteOffset % 8).toBe(0);
          built.push({ frame, copy: Buffer.from(frame), records, firstSeq });
        }
        for (const b of built) {
          expect(b.frame.equals(b.copy)).toBe(true);
          expect(b.frame.equals(encodeFrame(b.records, b.firstSeq))).toBe(true);
          expect(viewsOf(b.frame, b.records)).toBe(true);
        }
      }),
      fcParams(300),
    );
  });

  it('crc32Combine(crc32(a), crc32(b), |b|) is the CRC-32 of a ‖ b, for any bytes and lengths (long runs of zeros too)', () => {
    const bytes = fc.uint8Array({ maxLength: 3000 });
    fc.assert(
      fc.property(bytes, bytes, (a, b) => {
        expect(crc32Combine(zlib.crc32(a), zlib.crc32(b), b.byteLength)).toBe(zlib.crc32(Buffer.concat([a, b])));
      }),
      fcParams(500),
    );
    // Lengths whose bits reach far up (the shift is taken bit by bit of the length).
    for (const n of [1, 7, 8, 4096, 65535, 65536, (1 << 20) + 3, 9 * (1 << 20) + 1]) {
      const a = Buffer.from('KyroDB frame header');
      const b = Buffer.alloc(n, n & 0xff);
      expect(crc32Combine(zlib.crc32(a), zlib.crc32(b), n)).toBe(zlib.crc32(Buffer.concat([a, b])));
    }
  });

  it('a frame sealed with its body CRC taken piece by piece is the frame encodeFrame builds', () => {
    fc.assert(
      fc.property(fc.array(eventInputArb, { minLength: 1, maxLength: 8 }), fc.integer({ min: 1, max: 2 ** 40 }), fc.array(fc.nat(), { maxLength: 6 }), (inputs, firstSeq, cuts) => {
        let prev: Uint8Array = GENESIS_HASH;
        const records = inputs.map((input, i) => {
          const { event, record } = sealEvent(input, firstSeq + i, 7, prev);
          prev = event.hash;
          return record;
        });
        const want = encodeFrame(records, firstSeq);
        const frame = Buffer.from(want);
        frame.fill(0, 0, 24); // the header is written by sealing
        const body = frame.subarray(24);
        const at = [0, ...cuts.map((c) => c % (body.byteLength + 1)).sort((x, y) => x - y), body.byteLength];
        let crc = 0;
        for (let i = 1; i < at.length; i++) crc = zlib.crc32(body.subarray(at[i - 1], at[i]), crc);
        expect(sealFrame(frame, records.length, firstSeq, crc).equals(want)).toBe(true);
        expect(sealFrame(Buffer.from(frame), records.length, firstSeq, crc ^ 1).equals(want)).toBe(false);
      }),
      fcParams(300),
    );
  });

  it('a vector.upserted is sealed by hand byte for byte as through msgpackr (payload, hash, record)', () => {
    fc.assert(
      fc.property(
        fc.record({
          collection: asciiArb(64),
          id: fc.oneof(asciiArb(40), asciiArb(300)),
          actor: fc.option(asciiArb(128), { nil: undefined }),
          dim: fc.oneof(fc.integer({ min: 1, max: 80 }), fc.integer({ min: 60, max: 4096 })),
          metadata: fc.option(metadataArb, { nil: undefined }),
          seed: float32Arb,
        }),
        boundaryIntArb.filter((n) => n >= 1),
        boundaryIntArb,
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (r, seq, ts, prev) => {
          const vector = Float32Array.from({ length: r.dim }, (_, i) => r.seed * (i + 1) - i);
          const input = { type: 'vector.upserted' as const, collection: r.collection, ...(r.actor !== undefined ? { actor: r.actor } : {}), body: { id: r.id, vector, ...(r.metadata !== undefined ? { metadata: r.metadata } : {}) } };
          const payload = encodePayload(input, seq, ts);
          const hash = chainHash(prev, payload);
          const { event, record } = sealEvent(input, seq, ts, prev);
          expect(Buffer.from(record.subarray(64)).equals(payload)).toBe(true);
          expect(Buffer.from(event.hash).equals(Buffer.from(hash))).toBe(true);
          expect(Buffer.from(record.subarray(0, 32)).equals(Buffer.from(prev))).toBe(true);
          expect(Buffer.from(record.subarray(32, 64)).equals(Buffer.from(hash))).toBe(true);
        },
      ),
      fcParams(1000),
    );
  });

  it('decode ∘ encode = id for every event shape (payload and sealed record)', () => {
    fc.assert(
      fc.property(eventInputArb, seqArb, tsArb, fc.uint8Array({ minLength: 32, maxLength: 32 }), (input, seq, ts, prev) => {
        const p = decodePayload(encodePayload(input, seq, ts));
        expect(p.seq).toBe(seq);
        expect(p.ts).toBe(ts);
        const { seq: _s, ts: _t, ...rest } = p;
        expect(sameInput(rest, input)).toBe(true);

        const { event, record } = sealEvent(input, seq, ts, prev);
        const back = decodeRecord(record);
        expect(back.seq).toBe(seq);
        expect(Buffer.from(back.prevHash).equals(Buffer.from(prev))).toBe(true);
        expect(Buffer.from(back.hash).equals(Buffer.from(event.hash))).toBe(true);
        expect(sameInput(inputOf(back), input)).toBe(true);
        // the stored hash is SHA-256(prevHash ‖ payload), and re-encoding is byte-identical
        const { payload, hash } = splitRecord(record);
        expect(Buffer.from(chainHash(prev, payload)).equals(Buffer.from(hash))).toBe(true);
        expect(encodeEvent(back).equals(record)).toBe(true);
      }),
      fcParams(500),
    );
  });

  it('the header decode (seq, ts) agrees with the full decode', () => {
    fc.assert(
      fc.property(eventInputArb, seqArb, fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (input, seq, ts) => {
        const payload = encodePayload(input, seq, ts);
        expect(decodePayloadHeader(payload)).toEqual({ seq, ts });
        const full = decodePayload(payload);
        expect([full.seq, full.ts]).toEqual([seq, ts]);
      }),
      fcParams(1000),
    );
    for (const bad of [Buffer.from([0x97, 0x01]), Buffer.from([0x90]), Buffer.from([0xc1, 1, 2])]) expect(() => decodePayloadHeader(bad)).toThrow(expect.objectContaining({ code: 'LOG_CORRUPT_RECORD' }));
  });

  it('vectors round-trip bit-exact: -0, subnormals, extremes', () => {
    const special = [-0, 0, 1.401298464324817e-45, -1.401298464324817e-45, 1.1754942106924411e-38, 3.4028234663852886e38, -3.4028234663852886e38, 1.1754943508222875e-38];
    const v = Float32Array.from(special);
    const metadata = { neg: -0, deep: { list: [-0, 1e-310, 2 ** 53, 'x', null, true] } };
    const { record } = sealEvent({ type: 'vector.upserted', collection: 'c', body: { id: 'a', vector: v, metadata } }, 1, 1, GENESIS_HASH);
    const back = decodeRecord(record);
    if (back.type !== 'vector.upserted') throw new Error('wrong type');
    expect(sameBits(back.body.vector, v)).toBe(true);
    // metadata is JSON: -0 is stored as 0 (as JSON.stringify does); everything else is exact
    expect(back.body.metadata).toEqual(JSON.parse(JSON.stringify(metadata)));
    expect(Object.is(back.body.metadata?.['neg'], 0)).toBe(true);
    expect(Object.is(back.body.vector[0], -0)).toBe(true);
    fc.assert(
      fc.property(fc.array(float32Arb, { minLength: 1, maxLength: 64 }), (xs) => {
        const vec = Float32Array.from(xs);
        const r = decodeRecord(sealEvent({ type: 'vector.upserted', collection: 'c', body: { id: 'a', vector: vec } }, 1, 1, GENESIS_HASH).record);
        return r.type === 'vector.upserted' && sameBits(r.body.vector, vec);
      }),
      fcParams(300),
    );
  });

  it('the encoding is canonical: metadata key order does not change the bytes', () => {
    const a = encodePayload({ type: 'vector.upserted', collection: 'c', body: { id: 'a', vector: new Float32Array([1]), metadata: { b: 1, a: { y: 2, x: [1, { q: 1, p: 2 }] } } } }, 1, 1);
    const b = encodePayload({ type: 'vector.upserted', collection: 'c', body: { id: 'a', vector: new Float32Array([1]), metadata: { a: { x: [1, { p: 2, q: 1 }], y: 2 }, b: 1 } } }, 1, 1);
    expect(a.equals(b)).toBe(true);
  });
});
