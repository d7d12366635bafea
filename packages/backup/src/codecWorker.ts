// The codec worker: runs a FileSealer or SourceOpener (fileCodec.ts) for codecRunner.ts, in
// message order. Started by `openCodecRunner(job, true)`; see CodecJob / ToCodec / FromCodec.
import { parentPort, workerData } from 'node:worker_threads';
import { withPreviousKeys, type EncryptionKey } from './objectCodec.js';
import { FileSealer, SourceOpener } from './fileCodec.js';
import { REUSE_MIN_BYTES } from './reuse.js';
import { deserializeError, forTransfer, serializeError, type CodecFinish, type CodecJob, type FromCodec, type ToCodec } from './codecRunner.js';

const port = parentPort!;
const job = workerData as CodecJob;
// A Buffer arrives as a Uint8Array.
// Structured clone gives plain Uint8Arrays: each key of the ring back as a Buffer.
const key = (k: EncryptionKey | undefined): EncryptionKey | undefined => (k === undefined ? undefined : withPreviousKeys({ key: Buffer.from(k.key), keyId: k.keyId }, (k.previous ?? []).map((p) => ({ key: Buffer.from(p.key), keyId: p.keyId }))));
const sealer = job.kind === 'seal' ? new FileSealer({ ...job.options, ...(job.options.encryption !== undefined ? { encryption: key(job.options.encryption)! } : {}) }) : undefined;
const opener = job.kind === 'open' ? new SourceOpener({ ...job.options, ...(job.options.encryption !== undefined ? { encryption: key(job.options.encryption)! } : {}) }) : undefined;

function reply(m: FromCodec, transfer: ArrayBuffer[]): void {
  try {
    port.postMessage(m, transfer);
  } catch {
    // An ArrayBuffer that cannot be transferred (e.g. owned by a native addon): send a copy.
    port.postMessage(m);
  }
}

port.on('message', (m: ToCodec) => {
  if (m.op === 'recycle') {
    opener?.recycle(m.buffers); // no answer
    return;
  }
  try {
    if (m.op === 'seal') {
      const s = sealer!.seal(Buffer.from(m.raw, m.offset, m.length));
      const body = forTransfer(s.body);
      reply({ id: m.id, ok: true, result: { body, sha256: s.sha256 } }, [body.ab]);
    } else if (m.op === 'open') {
      const stored = m.stored === undefined ? undefined : Buffer.from(m.stored.ab, m.stored.offset, m.stored.length);
      const r = opener!.open(m.spec, stored, m.error === undefined ? undefined : deserializeError(m.error));
      const frames = r.frames.map(forTransfer);
      // A source's frames share its body's ArrayBuffer: each buffer is listed once.
      const buffers = new Set(frames.map((f) => f.ab));
      // The stored bytes' memory, unless the frames were built in it: back for the next read.
      const ab = stored?.buffer;
      const spent = ab instanceof ArrayBuffer && ab.byteLength >= REUSE_MIN_BYTES && !buffers.has(ab) ? ab : undefined;
      if (spent !== undefined) buffers.add(spent);
      reply({ id: m.id, ok: true, result: { ...r, frames, ...(spent !== undefined ? { spent } : {}) } }, [...buffers]);
    } else {
      const c = sealer ?? opener!;
      reply({ id: m.id, ok: true, result: { counts: opener?.counts() ?? {}, busyMs: c.busyMs, bodiesReused: opener?.bodiesReused ?? 0 } satisfies CodecFinish }, []);
    }
  } catch (err) {
    reply({ id: m.id, ok: false, error: serializeError(err) }, []);
  }
});
