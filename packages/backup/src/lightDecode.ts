import { decodeRecord } from '@kyrodb/log';

/** What counting and PITR need from a record, without materialising the vector or metadata. */
export interface LightEvent {
  seq: number;
  ts: number;
  type: string;
  collection: string;
  /** vector.upserted / vector.deleted: the document id. */
  id?: string;
  /** vector.upserted: the vector's length (floats); collection.created: the dimension. */
  dim?: number;
}

class Reader {
  off = 0;
  private readonly v: DataView;
  private readonly buf: Buffer;
  constructor(readonly b: Uint8Array) {
    this.v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    this.buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  }
  private u8(): number {
    const x = this.b[this.off++];
    if (x === undefined) throw new RangeError('truncated');
    return x;
  }
  num(): number {
    const t = this.u8();
    if (t <= 0x7f) return t;
    if (t >= 0xe0) return t - 0x100;
    const o = this.off;
    switch (t) {
      case 0xcc: this.off += 1; return this.v.getUint8(o);
      case 0xcd: this.off += 2; return this.v.getUint16(o);
      case 0xce: this.off += 4; return this.v.getUint32(o);
      case 0xcf: this.off += 8; return Number(this.v.getBigUint64(o));
      case 0xd0: this.off += 1; return this.v.getInt8(o);
      case 0xd1: this.off += 2; return this.v.getInt16(o);
      case 0xd2: this.off += 4; return this.v.getInt32(o);
      case 0xd3: this.off += 8; return Number(this.v.getBigInt64(o));
      case 0xca: this.off += 4; return this.v.getFloat32(o);
      case 0xcb: this.off += 8; return this.v.getFloat64(o);
      default: throw new TypeError(`not a number: 0x${t.toString(16)}`);
    }
  }
  private strLen(t: number): number | undefined {
    if (t >= 0xa0 && t <= 0xbf) return t - 0xa0;
    const o = this.off;
    if (t === 0xd9) { this.off += 1; return this.v.getUint8(o); }
    if (t === 0xda) { this.off += 2; return this.v.getUint16(o); }
    if (t === 0xdb) { this.off += 4; return this.v.getUint32(o); }
    return undefined;
  }
  str(): string | null {
    const t = this.u8();
    if (t === 0xc0) return null;
    const n = this.strLen(t);
    if (n === undefined) throw new TypeError(`not a string: 0x${t.toString(16)}`);
    const s = this.buf.toString('utf8', this.off, this.off + n);
    this.off += n;
    return s;
  }
  /** Length of a bin value, skipping it. */
  binLen(): number {
    const t = this.u8();
    const o = this.off;
    let n: number;
    if (t === 0xc4) {
      n = this.v.getUint8(o);
      this.off += 1;
    } else if (t === 0xc5) {
      n = this.v.getUint16(o);
      this.off += 2;
    } else if (t === 0xc6) {
      n = this.v.getUint32(o);
      this.off += 4;
    } else throw new TypeError(`not bin: 0x${t.toString(16)}`);
    this.off += n;
    return n;
  }
  mapLen(): number {
    const t = this.u8();
    if (t >= 0x80 && t <= 0x8f) return t - 0x80;
    const o = this.off;
    if (t === 0xde) { this.off += 2; return this.v.getUint16(o); }
    if (t === 0xdf) { this.off += 4; return this.v.getUint32(o); }
    throw new TypeError(`not a map: 0x${t.toString(16)}`);
  }
  /** Skips any value. */
  skip(): void {
    const t = this.b[this.off];
    if (t === undefined) throw new RangeError('truncated');
    if (t <= 0x7f || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) { this.off += 1; return; }
    if ((t >= 0xa0 && t <= 0xbf) || t === 0xd9 || t === 0xda || t === 0xdb) { this.off += 1; const n = this.strLen(t)!; this.off += n; return; }
    if (t >= 0xca && t <= 0xd3) { this.num(); return; }
    if (t === 0xc4 || t === 0xc5 || t === 0xc6) { this.binLen(); return; }
    let n: number;
    let pairs = false;
    if (t >= 0x90 && t <= 0x9f) { n = t - 0x90; this.off += 1; }
    else if (t === 0xdc) { n = this.v.getUint16(this.off + 1); this.off += 3; }
    else if (t === 0xdd) { n = this.v.getUint32(this.off + 1); this.off += 5; }
    else if ((t >= 0x80 && t <= 0x8f) || t === 0xde || t === 0xdf) { n = this.mapLen(); pairs = true; }
    else throw new TypeError(`unsupported msgpack type 0x${t.toString(16)}`);
    for (let i = 0; i < (pairs ? 2 * n : n); i++) this.skip();
  }
}

/**
 * Reads seq, ts, type, collection, document id and vector length from a stored record's
 * canonical msgpack payload without decoding vectors or metadata (≈10× cheaper than
 * `decodeRecord`). Falls back to `decodeRecord` for any layout it does not recognise.
 */
export function lightDecode(record: Uint8Array): LightEvent {
  try {
    const r = new Reader(record.subarray(64));
    if (r.b[0] !== 0x97 || r.b[1] !== 0x01) throw new TypeError('layout');
    r.off = 2;
    const seq = r.num();
    const ts = r.num();
    const type = r.str()!;
    const collection = r.str()!;
    r.skip(); // actor
    const out: LightEvent = { seq, ts, type, collection };
    const n = r.mapLen();
    for (let i = 0; i < n; i++) {
      const k = r.str();
      if (k === 'id') out.id = r.str()!;
      else if (k === 'vector') out.dim = r.binLen() / 4;
      else if (k === 'dimension') out.dim = r.num();
      else r.skip();
    }
    return out;
  } catch {
    const e = decodeRecord(record);
    const out: LightEvent = { seq: e.seq, ts: e.ts, type: e.type, collection: e.collection };
    if (e.type === 'vector.upserted') {
      out.id = e.body.id;
      out.dim = e.body.vector.length;
    } else if (e.type === 'vector.deleted') out.id = e.body.id;
    else if (e.type === 'collection.created') out.dim = e.body.dimension;
    return out;
  }
}
