// `pnpm bench NAME [ARGS…]`: builds the workspace and runs one bench (the compiled bench/dist/NAME.js)
// with ARGS. Each bench's first lines say what it measures and which ARGS it takes.
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const BENCHES: Record<string, string> = {
  log: 'the event log: append throughput and latency, group commit (issue 2)',
  projections: 'search latency and recall beside raw hnswlib-node, open times, ingest (issue 3)',
  overwrites: 'overwrites of the same ids beside as many writes of distinct ids: index absorb time and search (issue 3)',
  checkpointStall: 'searches and the event loop while a checkpoint is written, beside the same without one (issue 3)',
  manyCollections: 'a checkpoint of many small collections and an open from it, beside a plain copy of its files (issue 3)',
  backup: 'full, incremental and PITR backup/restore, continuous-backup lag (issue 4)',
  incrementalHistory: 'an incremental backup over documents with long histories, beside one over documents written once (issue 4)',
  restoreCli: 'a full restore as `kyrodb restore` in a fresh process, beside a plain copy (issue 4)',
  restoreCodec: "the restore codec thread's work alone (checks, decompression, framing), beside its floor (issue 4)",
  api: 'HTTP writes and searches through a `kyrodb serve` child, beside the same calls in-process (issue 5)',
  audit: 'value-as-of, replay-to-T, export and verify rates (issue 7)',
  cache: 'the semantic cache: hit rate and latency on a Zipf workload (issue 6)',
};

const name = process.argv[2];
if (name === undefined || !Object.hasOwn(BENCHES, name)) {
  const list = Object.entries(BENCHES).map(([n, what]) => `  ${n.padEnd(12)} ${what}`).join('\n');
  console.error(`${name === undefined ? '' : `no bench named ${name}\n`}usage: pnpm bench NAME [ARGS…]\n${list}`);
  process.exit(2);
}
// The bench reads its own flags from process.argv.slice(2), as when it is run on its own.
process.argv.splice(2, 1);
await import(pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), `${name}.js`)).href);
