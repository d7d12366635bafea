/**
 * An order-free fingerprint of by-doc index keys (collection, document id, seq): the count and
 * two sums of independent 32-bit hashes of each key. The keys a log's records call for, summed
 * in seq order, equal those the index holds, summed in key order, exactly when the two sets are
 * equal (but for a 2^-64 chance): so an audit checks the index in one pass over each, without
 * sorting or a lookup per record.
 */
export class DocKeyFingerprint {
  count = 0;
  private a = 0;
  private b = 0;

  add(collection: string, docId: string, seq: number): void {
    // FNV-1a and a multiply-xorshift, over the UTF-16 units, with separators no unit equals.
    let h1 = 0x811c9dc5;
    let h2 = 0x9747b28c;
    for (let i = 0; i < collection.length; i++) {
      const c = collection.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 ^ c, 0x5bd1e995);
      h2 ^= h2 >>> 15;
    }
    h1 = Math.imul(h1 ^ 0x10000, 0x01000193);
    h2 = Math.imul(h2 ^ 0x10000, 0x5bd1e995);
    for (let i = 0; i < docId.length; i++) {
      const c = docId.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 ^ c, 0x5bd1e995);
      h2 ^= h2 >>> 15;
    }
    const lo = seq >>> 0;
    const hi = Math.floor(seq / 0x100000000);
    h1 = Math.imul(Math.imul(h1 ^ 0x10001, 0x01000193) ^ lo, 0x01000193);
    h1 = Math.imul(h1 ^ hi, 0x01000193);
    h2 = Math.imul(h2 ^ lo ^ 0x10001, 0x5bd1e995);
    h2 = Math.imul(h2 ^ (h2 >>> 15) ^ hi, 0x5bd1e995);
    this.a = (this.a + (h1 >>> 0)) >>> 0;
    this.b = (this.b + ((h2 ^ (h2 >>> 13)) >>> 0)) >>> 0;
    this.count += 1;
  }

  equals(o: DocKeyFingerprint): boolean {
    return this.count === o.count && this.a === o.a && this.b === o.b;
  }
}
