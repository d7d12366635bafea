import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { checkRecord, checkRecordInPlace, decodePayload, indexFieldsOf, isLogError, recordHashOk, recordIndexFields, recordIndexFieldsAt, sealEvent, splitRecord } from '@kyrodb/log';
import { eventInputArb, fcParams } from './helpers.js';

// Every msgpack integer width a seq or ts is written with (fixint, uint 8/16/32, float 64), each at its edges too.
const widths = (min: number): fc.Arbitrary<number> =>
  fc.oneof(
    ...[[min, 127], [128, 255], [256, 65_535], [65_536, 2 ** 32 - 1], [2 ** 32, Number.MAX_SAFE_INTEGER]].map(([lo, hi]) => fc.oneof(fc.constantFrom(lo!, hi!), fc.integer({ min: lo!, max: hi! }))),
  );
const seqArb = widths(1);
const tsArb = widths(0);
const prevArb = fc.uint8Array({ minLength: 32, maxLength: 32 });

describe('checkRecord', () => {
  it('checkRecord ∘ sealEvent = indexFieldsOf ∘ decodePayload, for Buffers and plain Uint8Arrays, record after record', () => {
    // Several records per run, so that strings remembered from one record (type, collection,
    // keys) are never handed out for another record's different bytes.
    fc.assert(
      fc.property(fc.array(fc.tuple(eventInputArb, seqArb, tsArb, prevArb), { minLength: 1, maxLength: 6 }), (xs) => {
        for (const [input, seq, ts, prev] of xs) {
          const { record } = sealEvent(input, seq, ts, prev);
          const want = indexFieldsOf(decodePayload(splitRecord(record).payload));
          expect(checkRecord(record)).toEqual(want);
          const copy = new Uint8Array(record.byteLength + 8).subarray(4, 4 + record.byteLength);
          copy.set(record);
          expect(checkRecord(copy)).toEqual(want);
          expect(recordIndexFields(record)).toEqual(want);
          // In place inside a larger buffer (a write-ahead frame), with bytes on both sides.
          const framed = Buffer.concat([Buffer.from([1, 2, 3]), record, Buffer.from([0x97, 0xc0, 9])]);
          expect(recordIndexFieldsAt(framed, 3, 3 + record.byteLength)).toEqual(want);
          // Given an end one byte short, the bytes past it are not read as the record's.
          expect(() => recordIndexFieldsAt(framed, 3, 2 + record.byteLength)).toThrow(expect.objectContaining({ code: 'LOG_CORRUPT_RECORD' }) as Error);
          expect(recordHashOk(copy)).toBe(true);
          // In place: the same answer, and the bytes as they were.
          expect(checkRecordInPlace(copy)).toEqual(want);
          expect(Buffer.from(copy).equals(record)).toBe(true);
          // In place by offsets inside the larger buffer: the same answer, every byte (both sides too) as it was.
          const framedBefore = Buffer.from(framed);
          expect(checkRecordInPlace(framed, 3, 3 + record.byteLength)).toEqual(want);
          expect(framed.equals(framedBefore)).toBe(true);
          expect(() => checkRecordInPlace(framed, 3, framed.byteLength + 1)).toThrow(RangeError);
        }
      }),
      fcParams(300),
    );
  });

  it('every single flipped bit of a sealed record is refused (hash_mismatch, or LOG_CORRUPT_RECORD where the payload no longer decodes)', () => {
    fc.assert(
      fc.property(eventInputArb, seqArb, tsArb, prevArb, fc.nat(), fc.integer({ min: 0, max: 7 }), (input, seq, ts, prev, at, bit) => {
        const bad = Buffer.from(sealEvent(input, seq, ts, prev).record);
        bad[at % bad.length]! ^= 1 << bit;
        expect(recordHashOk(bad)).toBe(false);
        let err: unknown;
        try {
          checkRecord(bad);
        } catch (e) {
          err = e;
        }
        expect(isLogError(err, 'LOG_CORRUPT_RECORD') || (isLogError(err, 'LOG_CHAIN_BROKEN') && err.details['problem'] === 'hash_mismatch')).toBe(true);
        // In place: refused the same way, and the bad bytes left exactly as they were.
        const before = Buffer.from(bad);
        let inPlace: unknown;
        try {
          checkRecordInPlace(bad);
        } catch (e) {
          inPlace = e;
        }
        expect((inPlace as { code?: string } | undefined)?.code).toBe((err as { code?: string }).code);
        expect(bad.equals(before)).toBe(true);
      }),
      fcParams(1000),
    );
  });

  it('every bit of a record of each kind, flipped in turn, is refused with a log error (no TypeError from a mangled payload)', () => {
    const inputs = [
      { type: 'collection.created' as const, collection: 'c', body: { dimension: 3, metric: 'l2' as const, hnsw: { M: 16, efConstruction: 200, efSearch: 64 } } },
      { type: 'collection.dropped' as const, collection: 'c', actor: 'ops', body: {} },
      { type: 'vector.upserted' as const, collection: 'c', body: { id: 'a', vector: new Float32Array([1, -0, 2.5]), metadata: { k: ['v', 1, null] } } },
      { type: 'vector.deleted' as const, collection: 'c', body: { id: 'a' } },
    ];
    for (const input of inputs) {
      const { record } = sealEvent(input, 7, 1_000_000, new Uint8Array(32).fill(3));
      for (let at = 0; at < record.length; at++) {
        for (let bit = 0; bit < 8; bit++) {
          const bad = Buffer.from(record);
          bad[at]! ^= 1 << bit;
          let err: unknown;
          try {
            checkRecord(bad);
          } catch (e) {
            err = e;
          }
          expect(isLogError(err, 'LOG_CORRUPT_RECORD') || isLogError(err, 'LOG_CHAIN_BROKEN'), `${input.type} byte ${at} bit ${bit}: ${String(err)}`).toBe(true);
        }
      }
    }
  });
});
