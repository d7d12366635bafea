import fs from 'node:fs';
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { indexDocId, recordIndexFields } from './codec.js';
import { applyRows, openStores } from './store.js';
import type { IndexRow } from './store.js';
import type { ApplyBatch, ApplyResult, ApplyWorkerData } from './applier.js';
import { STATE_DONE, STATE_EXITED, STATE_READY } from './applier.js';

// The thread that applies acknowledged groups to LMDB for the log's writer (see applier.ts). It
// shares the writer's LMDB environment; batches come in order, and after a failure it applies
// nothing more until told to resume (the writer then applies the failed batch and the ones behind
// it itself, in order).

const { dir, state: stateBuffer, results } = workerData as ApplyWorkerData & { results: MessagePort };

// This thread runs behind the writer: it yields the cores to the writer's own thread and to the
// threads completing its writes (whose latency is every append's), and uses what they leave.
// Linux lets a thread's nice value be set by its id, which /proc/thread-self names.
const niceness = 10;
try {
  const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
  if (Number.isInteger(tid) && tid > 0) os.setPriority(tid, niceness);
} catch {
  // not Linux, or not allowed: the thread runs at the process's priority
}
const state = new Int32Array(stateBuffer);
const stores = openStores(dir, false);
let failed = false;

function report(r: ApplyResult): void {
  results.postMessage(r);
  Atomics.store(state, STATE_DONE, r.id);
  Atomics.notify(state, STATE_DONE);
}

/** The rows of a batch, their index fields read from the records (sealed by the writer moments ago). */
function rowsOf(b: ApplyBatch): IndexRow[] {
  const rows = new Array<IndexRow>(b.lens.length);
  const body = Buffer.from(b.body.buffer, b.body.byteOffset, b.body.byteLength);
  let off = 0;
  for (let i = 0; i < rows.length; i++) {
    const len = b.lens[i]!;
    const record = body.subarray(off, off + len);
    const f = recordIndexFields(record);
    rows[i] = { seq: f.seq, ts: f.ts, collection: f.collection, docId: indexDocId(f), record, at: 0, end: len };
    off += len;
  }
  return rows;
}

parentPort!.on('message', (m: ApplyBatch | { kind: 'resume' } | { kind: 'close' }) => {
  if (m.kind === 'resume') {
    failed = false;
    return;
  }
  if (m.kind === 'close') {
    void stores.env.close().finally(() => process.exit(0));
    return;
  }
  if (failed) {
    report({ id: m.id, ok: false, skipped: true });
    return;
  }
  try {
    const fail = m.fail;
    if (fail !== undefined) {
      if ('panic' in fail) process.exit(70); // a crash of the thread, as the failpoint asks
      if ('code' in fail) throw Object.assign(new Error(`failpoint log.apply: ${fail.code}`), { code: fail.code });
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, fail.delayMs);
    }
    applyRows(stores, rowsOf(m), m.head);
    report({ id: m.id, ok: true });
  } catch (err) {
    failed = true;
    const e = err as NodeJS.ErrnoException;
    report({ id: m.id, ok: false, skipped: false, error: { message: e?.message ?? String(err), code: e?.code, errno: e?.errno, syscall: e?.syscall } });
  }
});
// However the thread ends, the writer (which may be blocked waiting for it) learns at once.
process.on('exit', () => {
  Atomics.store(state, STATE_EXITED, 1);
  Atomics.notify(state, STATE_DONE);
});
Atomics.store(state, STATE_READY, 1);
Atomics.notify(state, STATE_READY);
