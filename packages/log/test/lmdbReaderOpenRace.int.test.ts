// Another process opening log.mdb — read-only, as `kyrodb backup create`, `audit` and `query`
// do beside a running server — must never cost the writer a commit. The LMDB that lmdb-js 3.5.6
// bundles set the shared transaction counter (in log.mdb-lock) to the txnid the opener had read
// a moment before, on every open (upstream LMDB does so only for MDB_PREVSNAPSHOT): when the
// writer committed in between, its next transaction began on the older snapshot and its commit
// dropped the one before it, silently — a server lost acknowledged events from LMDB (a gap in
// /v1/log, `audit verify` seq_gap, every incremental BACKUP_CHAIN_GAP). patches/lmdb@3.5.6.patch
// restores the upstream condition, and lmdb is built from that source at install. Real
// processes, real LMDB: a writer commits small transactions as fast as it can while two others
// open and close the environment read-only in a loop; every seq the writer committed must be there.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { open as openLmdb } from 'lmdb';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const SECONDS = 6;

// The options of store.ts's openStores (the writer: noSync; readers: readOnly).
const WRITER = `
import fs from 'node:fs';
import { open } from 'lmdb';
const env = open({ path: process.argv[1] + '/log.mdb', noSubdir: true, maxDbs: 8, compression: false, noSync: true, overlappingSync: false, cache: false });
const events = env.openDB({ name: 'events', encoding: 'binary' });
const meta = env.openDB({ name: 'meta', encoding: 'msgpack' });
const value = Buffer.alloc(100, 7);
fs.writeFileSync(process.argv[1] + '/ready', '');
let seq = 0;
const end = Date.now() + Number(process.argv[2]) * 1000;
while (Date.now() < end) {
  const n = 1 + (seq % 8);
  env.transactionSync(() => {
    for (let i = 0; i < n; i++) {
      seq += 1;
      if (!events.putSync(seq, value, { append: true })) throw new Error('append refused at ' + seq);
    }
    meta.putSync('head', seq);
  });
  if (seq % 64 < 8) await new Promise((r) => setTimeout(r, 1));
}
await env.close();
process.stdout.write(String(seq));
`;
const READER = `
import { open } from 'lmdb';
const end = Date.now() + Number(process.argv[2]) * 1000;
let opens = 0;
while (Date.now() < end) {
  const env = open({ path: process.argv[1] + '/log.mdb', noSubdir: true, maxDbs: 8, readOnly: true, cache: false });
  env.openDB({ name: 'meta', encoding: 'msgpack' }).get('head');
  await env.close();
  opens += 1;
}
process.stdout.write(String(opens));
`;

function run(code: string, dir: string, seconds: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }> {
  // From this package's dir, so that `lmdb` resolves to the workspace's (patched) one.
  const p = spawn(process.execPath, ['--input-type=module', '-e', code, dir, String(seconds)], { cwd: path.join(here, '..'), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) => p.on('exit', (code, signal) => resolve({ code, signal, out, err })));
}

describe('LMDB opened by other processes while the writer commits', () => {
  it('loses no commit: every seq the writer committed is there, in order, and the head says its last', { timeout: 60_000 }, async () => {
    const dir = tempDir();
    // The writer first, as a server is: it makes the file, then the readers come (opened at the
    // same instant as the readers, lmdb-js's own setup of a fresh lock file failed now and then:
    // not what this is about; nor is this process holding the environment meanwhile).
    const writing = run(WRITER, dir, SECONDS);
    const start = Date.now();
    while (!fs.existsSync(path.join(dir, 'ready')) && Date.now() - start < 20_000) await new Promise((r) => setTimeout(r, 10));
    // They stop a second before it (this is about a writer's commits, not the lock file's handover once it has gone).
    const readers = await Promise.all([run(READER, dir, SECONDS - 1), run(READER, dir, SECONDS - 1)]);
    const writer = await writing;
    expect(writer.signal, writer.err).toBeNull();
    expect(writer.code, writer.err).toBe(0);
    for (const r of readers) expect([r.code, r.signal], r.err).toEqual([0, null]);
    const committed = Number(writer.out);
    expect(committed).toBeGreaterThan(1000);
    expect(readers.reduce((s, r) => s + Number(r.out), 0)).toBeGreaterThan(100); // the readers did open, many times
    const env = openLmdb({ path: path.join(dir, 'log.mdb'), noSubdir: true, maxDbs: 8, readOnly: true, cache: false });
    try {
      const events = env.openDB<Buffer, number>({ name: 'events', encoding: 'binary' });
      const missing: number[] = [];
      let expectSeq = 1;
      for (const key of events.getKeys()) {
        while (expectSeq < key && missing.length < 20) missing.push(expectSeq++);
        expectSeq = key + 1;
      }
      expect(missing, `seqs lost of ${committed}`).toEqual([]);
      expect(expectSeq - 1).toBe(committed);
      expect(env.openDB({ name: 'meta', encoding: 'msgpack' }).get('head')).toBe(committed);
    } finally {
      await env.close();
    }
  });

  it('read-only processes opening and closing it at once, with no writer: every open succeeds', { timeout: 60_000 }, async () => {
    // The last user to close destroyed the lock file's mutexes while another process was joining
    // it: that one's first transaction failed (EINVAL, "Invalid argument"), and since the failed
    // open left its env behind, every later open in it failed too ("Attempting to setup locks after
    // open") — two read-only commands at once with the server stopped, or a server starting as one
    // closed. Three such processes, each opening and closing in a loop.
    const dir = tempDir();
    const made = await run(WRITER, dir, 1);
    expect(made.code, made.err).toBe(0);
    const readers = await Promise.all([run(READER, dir, 4), run(READER, dir, 4), run(READER, dir, 4)]);
    for (const r of readers) expect([r.code, r.signal], r.err).toEqual([0, null]);
    expect(readers.reduce((n, r) => n + Number(r.out), 0)).toBeGreaterThan(100);
  });
});
