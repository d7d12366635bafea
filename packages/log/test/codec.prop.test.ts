import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { GENESIS_HASH, chainHash, decodePayload, decodePayloadHeader, decodeRecord, encodeEvent, encodePayload, sealEvent, splitRecord } from '@kyrodb/log';
import { eventInputArb, fcParams, float32Arb, sameBits, sameInput, inputOf } from './helpers.js';

const seqArb = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const tsArb = fc.integer({ min: 0, max: 2 ** 52 });

describe('codec', () => {
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
