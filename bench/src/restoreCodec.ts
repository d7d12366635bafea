// The restore's codec thread on its own (issue 4): what `SourceOpener.open` costs over the
// restoreCli fixture's backup, inline in this thread, beside the floor of that work in the same
// run. Run:
//   npx tsc -b && node bench/dist/index.js restoreCodec [--n 1000000] [--reps 5] [--ids seq|uuid|uuid7] [--vectors clustered|sin] [--dir DIR] [CHECKOUT…]
// A full restore runs this work in its codec worker while the import writes LMDB on the other
// core; timed alone, it moves far less with the machine than a whole restore does (a change of
// ~0.3 s shows in every rep here, and only in most pairs of `restoreCli`). Each CHECKOUT is a
// built clone or worktree of this repo (default: this one); their openers are interleaved rep by
// rep, each rep starting with the next. Every open gets its own copy of the stored file (the opener builds its frames in the
// bytes), made untimed, and hands its bodies back (`recycle`) as a restore's import does.
// The floor, timed per rep beside them: the work no opener can skip — the stored file's SHA-256,
// decompressing it (into reused memory), one SHA-256 pass over the records' bytes (each record's
// own hash covers about them) and the CRC-32 of the write-ahead frames built from them.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { hash } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { decodeObject, parseManifest, type BackupFile, type BackupManifest } from '@kyrodb/backup';
import { buildRestoreFixture, idsSuffix, restoreBenchArgs } from './restoreFixture.js';

const { n: N, reps: REPS, ids: IDS, vectors: VECTORS, base, checkouts, root: ROOT } = restoreBenchArgs(process.argv.slice(2), 5);

/** The part of a checkout's codec this bench drives (its internal modules: a bench compares builds). */
interface Opener {
  open(spec: unknown, stored: Buffer): { count: number; frames: Buffer[] };
  recycle(buffers: readonly ArrayBuffer[]): void;
}
interface Codec {
  SourceOpener: new (o: { pointInTime: null; toSeq: number; keepState: boolean }) => Opener;
  eventsFileExpect: (m: BackupManifest, f: BackupFile) => unknown;
}
async function loadCodec(checkout: string): Promise<Codec> {
  const dist = path.join(checkout, 'packages/backup/dist');
  const fileCodec = (await import(pathToFileURL(path.join(dist, 'fileCodec.js')).href)) as Pick<Codec, 'SourceOpener'>;
  const pieces = (await import(pathToFileURL(path.join(dist, 'pieces.js')).href)) as Pick<Codec, 'eventsFileExpect'>;
  return { SourceOpener: fileCodec.SourceOpener, eventsFileExpect: pieces.eventsFileExpect };
}

await buildRestoreFixture(base, N, VECTORS, IDS);
const backupsRoot = path.join(base, 'backups');
const id = fs.readdirSync(path.join(backupsRoot, 'backups'))[0]!;
const manifestKey = path.join('backups', id, 'manifest.json');
const manifest = parseManifest(fs.readFileSync(path.join(backupsRoot, manifestKey)), manifestKey);
const files = manifest.files.filter((f) => f.kind === 'events');
const stored = files.map((f) => fs.readFileSync(path.join(backupsRoot, f.key)));
const events = files.reduce((s, f) => s + (f.last_seq ?? 0) - (f.first_seq ?? 0) + 1, 0);
const codecs = await Promise.all(checkouts.map(loadCodec));

/** A copy of stored file `i` in memory of its own (untimed). */
function copyOf(i: number): Buffer {
  const b = Buffer.allocUnsafeSlow(stored[i]!.length);
  stored[i]!.copy(b);
  return b;
}

/** The floor (see the top), ms. */
function floor(): number {
  let body: ArrayBuffer | undefined;
  let ms = 0;
  for (let i = 0; i < files.length; i++) {
    const s = copyOf(i);
    const t0 = performance.now();
    if (hash('sha256', s, 'hex') !== files[i]!.sha256) throw new Error(`${files[i]!.key}: SHA-256 does not match`);
    const b = decodeObject(s, undefined, files[i]!.key, { compression: manifest.compression }, (size) => {
      if (body === undefined || body.byteLength < size) body = new ArrayBuffer(size);
      return Buffer.from(body, 0, size);
    });
    hash('sha256', b, 'buffer');
    zlib.crc32(b);
    ms += performance.now() - t0;
  }
  return ms;
}

/** One pass of `codec`'s opener over every file, ms (open calls only). */
function openAll(codec: Codec): number {
  const opener = new codec.SourceOpener({ pointInTime: null, toSeq: Number.MAX_SAFE_INTEGER, keepState: false });
  let ms = 0;
  let count = 0;
  for (let i = 0; i < files.length; i++) {
    const f = files[i]!;
    const s = copyOf(i);
    const t0 = performance.now();
    const r = opener.open({ name: f.key, stepFirst: manifest.from_seq, last: f.last_seq, file: codec.eventsFileExpect(manifest, f) }, s);
    ms += performance.now() - t0;
    count += r.count;
    opener.recycle([...new Set(r.frames.map((x) => x.buffer as ArrayBuffer))]);
  }
  if (count !== events) throw new Error(`the opener took ${count} of ${events} events`);
  return ms;
}

console.log(`restore codec: ${events} events in ${files.length} files (${(stored.reduce((s, b) => s + b.length, 0) / 1e6).toFixed(0)} MB stored, ${manifest.compression}), ${REPS} reps, inline`);
// Once, untimed: JIT warm-up of every path, so that the reps compare steady states.
floor();
for (const c of codecs) openAll(c);
const floorMs: number[] = [];
const openMs: number[][] = checkouts.map(() => []);
for (let rep = 0; rep < REPS; rep++) {
  floorMs.push(floor());
  // Each rep starts with the next checkout: none always runs right after the floor.
  for (let j = 0; j < codecs.length; j++) {
    const k = (j + rep) % codecs.length;
    openMs[k]!.push(openAll(codecs[k]!));
  }
  console.log(`rep ${rep + 1}: floor ${floorMs[rep]!.toFixed(0)} ms; ${checkouts.map((c, k) => `${path.basename(c)} ${openMs[k]![rep]!.toFixed(0)} ms`).join('; ')}`);
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`floor (SHA-256 of the file, decompress, SHA-256 and CRC-32 of the records' bytes): median ${median(floorMs).toFixed(0)} ms`);
for (const [k, c] of checkouts.entries()) {
  const m = median(openMs[k]!);
  console.log(`${c}: median ${m.toFixed(0)} ms = ${((m * 1000) / events).toFixed(2)} µs an event; ${(m / median(floorMs)).toFixed(2)}× the floor`);
}
const outDir = path.join(ROOT, 'bench/results');
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, `restore-codec-${N}${idsSuffix(IDS)}.json`), JSON.stringify({ n: N, ids: IDS, vectors: VECTORS, reps: REPS, events, floorMs, checkouts: checkouts.map((c, k) => ({ checkout: c, openMs: openMs[k] })) }, null, 2));
