// Memory that restore hands back to be used again: decompressed bodies (the codec's BodyPool) and
// read buffers (a local store's `get` with `into`). Both hold files of one backup, which differ
// in size by a few percent.

/** Buffers smaller than this are neither kept for reuse nor rounded up. */
export const REUSE_MIN_BYTES = 1 << 20;

/**
 * A buffer of `size` bytes in memory of its own (transferable to a worker). One of at least
 * REUSE_MIN_BYTES gets ~3% more, to a whole MiB, so that once handed back it fits the next file
 * of about the same size.
 */
export function allocReusable(size: number): Buffer {
  if (size < REUSE_MIN_BYTES) return Buffer.allocUnsafeSlow(size);
  return Buffer.allocUnsafeSlow(Math.ceil((size + size / 32) / REUSE_MIN_BYTES) * REUSE_MIN_BYTES).subarray(0, size);
}
