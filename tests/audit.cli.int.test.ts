import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventLog, FakeClock, toHex } from '@kyrodb/log';
import type { AppendResult } from '@kyrodb/log';
import { BackupManager, LocalDirStore } from '@kyrodb/backup';
import { exactSearch, materialize } from '@kyrodb/projections';
import { docHistory, formatMicros, importState, stateAsOf } from '../packages/api/src/audit/index.js';
import { ROOT, alterEvent, copyDir, createColl, tmpDir, upsert } from './auditHelpers.js';

const ENTRY = path.join(ROOT, 'packages/api/src/audit/cliMain.ts');

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCommand(process.execPath, ['--conditions=@kyrodb/source', '--import', 'tsx', ENTRY, ...args]);
}

/** Runs a command from the repo root to its end: its exit code and output. */
function runCommand(command: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

let dir: string;
let log: EventLog; // stays open for writing: the CLI runs beside a live writer
const commits: AppendResult[] = [];

beforeAll(async () => {
  dir = tmpDir();
  const clock = new FakeClock();
  log = await EventLog.open({ dir, clock, logger: () => {} });
  commits.push(await log.append([createColl('c', 2, 'admin'), createColl('d', 1)]));
  for (let i = 0; i < 6; i++) {
    clock.advance(10);
    commits.push(await log.append([upsert('c', `k${i % 3}`, [i, 0.1 * i], { i }, 'writer'), upsert('d', 'one', [i])]));
  }
});

afterAll(async () => {
  await log.close();
});

// Each spawn starts node + tsx (seconds on a busy 2-core machine): generous per-test timeouts.
describe('kyrodb audit CLI (spawned; read-only beside a running writer)', { timeout: 240_000 }, () => {
  it('audit head prints SEQ:HASH (and JSON)', async () => {
    const h = log.head();
    const r = await run(['audit', 'head', '--data-dir', dir]);
    expect(r.code).toBe(0);
    // stdout is the digest line alone (a script takes it whole); its seq and ts are on stderr.
    expect(r.stdout).toBe(`${h.seq}:${toHex(h.hash)}\n`);
    expect(r.stderr).toBe(`seq  ${h.seq}\nts   ${formatMicros(h.ts)} (${h.ts})\n`);
    const j = await run(['audit', 'head', '--data-dir', dir, '--json']);
    expect(JSON.parse(j.stdout)).toEqual({ seq: h.seq, ts: h.ts, ts_iso: formatMicros(h.ts), hash: toHex(h.hash), digest: `${h.seq}:${toHex(h.hash)}` });
  });

  it('audit verify --digest "$(kyrodb audit head --data-dir D)" verifies (a shell\'s command substitution of the plain output)', async () => {
    const script = 'kyro() { "$NODE" --conditions=@kyrodb/source --import tsx "$ENTRY" "$@"; }; kyro audit verify --data-dir "$D" --digest "$(kyro audit head --data-dir "$D")" --json';
    const r = await runCommand('bash', ['-c', script], { NODE: process.execPath, ENTRY, D: dir });
    expect([r.code, r.stdout], r.stderr).toEqual([0, expect.any(String)]);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, extends: true, digest: `${log.head().seq}:${toHex(log.head().hash)}` });
  });

  it('audit verify exits 0 when the chain verifies and extends the digest', async () => {
    const e = log.get(5)!;
    const r = await run(['audit', 'verify', '--data-dir', dir, '--digest', `5:${toHex(e.hash)}`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('ok: 14 events verified');
    const j = await run(['audit', 'verify', '--data-dir', dir, '--json']);
    expect(j.code).toBe(0);
    expect(JSON.parse(j.stdout)).toMatchObject({ ok: true, extends: false, checked: 14, head: { seq: 14 } });
  });

  it('the digest of a fresh, empty data dir (audit head) verifies later: exit 0', async () => {
    const fresh = tmpDir();
    await (await EventLog.open({ dir: fresh, logger: () => {} })).close();
    const h = await run(['audit', 'head', '--data-dir', fresh, '--json']);
    expect(h.code).toBe(0);
    const { digest } = JSON.parse(h.stdout) as { digest: string };
    expect(digest).toBe(`0:${'0'.repeat(64)}`);
    const v = await run(['audit', 'verify', '--data-dir', fresh, '--digest', digest, '--json']);
    expect([v.code, v.stderr]).toEqual([0, '']);
    expect(JSON.parse(v.stdout)).toMatchObject({ ok: true, extends: true, checked: 0 });
  });

  it('audit verify exits 3 naming the first bad seq on a tampered copy, and on a digest not extended', async () => {
    const digest = `${log.head().seq}:${toHex(log.head().hash)}`;
    const copy = copyDir(dir);
    alterEvent(copy, 8, (e) => (e.type === 'vector.upserted' ? { ...e, body: { ...e.body, vector: new Float32Array(e.body.vector.length).fill(42) } } : e));
    const r = await run(['audit', 'verify', '--data-dir', copy, '--digest', digest]);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain('FAILED at seq 8: hash_mismatch');
    const j = await run(['audit', 'verify', '--data-dir', copy, '--digest', digest, '--json']);
    expect(j.code).toBe(3);
    expect(JSON.parse(j.stdout)).toMatchObject({ ok: false, seq: 8, problem: 'hash_mismatch' });
    const other = await run(['audit', 'verify', '--data-dir', dir, '--digest', `3:${'00'.repeat(32)}`]);
    expect(other.code).toBe(3);
    expect(other.stdout).toContain('FAILED at seq 3: digest_mismatch');
  });

  it('bad input exits 2: malformed digest, missing data dir, missing option, unknown option, future or malformed time', async () => {
    const outDir = tmpDir(); // not in the data dir, which replay refuses to write in
    const cases: string[][] = [
      ['audit', 'verify', '--data-dir', dir, '--digest', '12:abc'],
      ['audit', 'verify', '--data-dir', path.join(dir, 'does-not-exist')],
      ['audit', 'verify'],
      ['audit', 'verify', '--data-dir', dir, '--bogus'],
      ['audit', 'replay', '--data-dir', dir, '--to', '2200-01-01T00:00:00Z', '--out', path.join(outDir, 'x.ndjson')],
      ['audit', 'replay', '--data-dir', dir, '--to', '9999-12-31T23:59:59Z', '--out', path.join(outDir, 'x.ndjson')],
      ['audit', 'replay', '--data-dir', dir, '--to', 'last tuesday', '--out', path.join(outDir, 'x.ndjson')],
      ['audit', 'replay', '--data-dir', dir, '--to', String(commits[1]!.ts), '--out', path.join(outDir, 'no-such-dir', 'x.ndjson')],
    ];
    for (const args of cases) {
      const r = await run(args);
      expect(r.code, args.join(' ')).toBe(2);
    }
    const d = await run(['audit', 'verify', '--data-dir', dir, '--digest', 'nope']);
    expect(d.stderr).toContain('AUDIT_BAD_DIGEST');
    for (const far of ['2200-01-01T00:00:00Z', '9999-12-31T23:59:59Z']) {
      const f = await run(['audit', 'replay', '--data-dir', dir, '--to', far, '--out', path.join(outDir, 'x.ndjson')]);
      expect(f.stderr).toContain('AUDIT_TIME_IN_FUTURE');
    }
    expect(fs.existsSync(path.join(outDir, 'x.ndjson'))).toBe(false);
  });

  it('a --data-dir that is a file, missing, or holds no log: exit 2 naming --data-dir, as the other commands say it', async () => {
    const where = tmpDir();
    const file = path.join(where, 'afile');
    fs.writeFileSync(file, 'not a dir');
    const out = path.join(tmpDir(), 'x.ndjson');
    const commands = [['head'], ['verify'], ['history', '--collection', 'c', '--doc-id', 'k1'], ['replay', '--to', '0', '--out', out], ['search', '--collection', 'c', '--vector', '[1,2]']];
    for (const [i, [d, said]] of [
      [file, `--data-dir: ${file} is not a directory (a file is in the way)`],
      [path.join(file, 'sub'), `--data-dir: ${path.join(file, 'sub')} is not a directory (a file is in the way)`],
      [path.join(where, 'nope'), `--data-dir: there is no data dir at ${path.join(where, 'nope')}`],
      [where, `--data-dir: ${where} holds no KyroDB log (no log.mdb)`],
    ].entries()) {
      // Every command for the first; the others by two of them (each spawn takes seconds).
      for (const [cmd, ...rest] of i === 0 ? commands : [commands[0]!, commands[3]!]) {
        const r = await run(['audit', cmd!, ...rest, '--data-dir', d, '--json']);
        expect([r.code, r.stderr], `${cmd} ${d}`).toEqual([2, `kyrodb: API_CONFIG_INVALID: ${said}\n`]);
        expect(JSON.parse(r.stdout)).toEqual({ error: { code: 'API_CONFIG_INVALID', message: said } });
      }
    }
    // Relative, it is named in full, as the other commands name it.
    const rel = await run(['audit', 'head', '--data-dir', path.relative(ROOT, file)]);
    expect(rel.stderr).toContain(`--data-dir: ${file} is not a directory`);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('a usage error with --json is CLI_USAGE on stdout, exit 2, as in the other commands', async () => {
    const r = await run(['audit', 'verify', '--data-dir', dir, '--bogus', '--json']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout)).toEqual({ error: { code: 'CLI_USAGE', message: "unknown option '--bogus'" } });
  });

  it('audit replay --to T --out FILE writes the state as of T, which re-imports equal to the state at T', async () => {
    const t = commits[3]!.ts;
    const out = path.join(tmpDir(), 'state.ndjson');
    const r = await run(['audit', 'replay', '--data-dir', dir, '--to', formatMicros(t), '--out', out, '--json']);
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ as_of_micros: t, collections: 2, documents: 4, head: { seq: 8 } });
    const back = await importState(out);
    const want = stateAsOf(log, t);
    expect(back.head.seq).toBe(want.head.seq);
    expect([...back.collections.keys()]).toEqual(['c', 'd']);
    for (const [name, c] of want.collections) {
      const got = back.collections.get(name)!;
      expect(got.info).toEqual(c.info);
      expect([...got.docs.keys()].sort()).toEqual([...c.docs.keys()].sort());
      for (const [id, doc] of c.docs) expect(got.docs.get(id)).toEqual(doc);
    }
    // T before the first event: an empty state, exit 0.
    const empty = path.join(tmpDir(), 'empty.ndjson');
    const e = await run(['audit', 'replay', '--data-dir', dir, '--to', String(commits[0]!.ts - 1), '--out', empty]);
    expect(e.code).toBe(0);
    expect((await importState(empty)).collections.size).toBe(0);
    // Before 1970, and in year 1, is before the first event too: the empty state, exported and read back.
    for (const early of ['1969-12-31T23:59:59Z', '0001-01-01T00:00:00Z']) {
      const x = await run(['audit', 'replay', '--data-dir', dir, '--to', early, '--out', empty]);
      expect([x.code, x.stderr], early).toEqual([0, '']);
      expect((await importState(empty)).head.seq).toBe(0);
    }
  });

  it('audit history lists the events of one document (with its collection\'s create)', async () => {
    const r = await run(['audit', 'history', '--data-dir', dir, '--collection', 'c', '--doc-id', 'k1']);
    expect(r.code).toBe(0);
    const rows = r.stdout.trim().split('\n').map((l) => l.split('\t'));
    expect(rows.map((x) => [x[0], x[2], x[3]])).toEqual(docHistory(log, 'c', 'k1').map((e) => [String(e.seq), e.type, e.actor ?? '-']));
    expect(rows[0]?.[2]).toBe('collection.created');
    const j = await run(['audit', 'history', '--data-dir', dir, '--collection', 'c', '--doc-id', 'k1', '--json']);
    expect(j.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { seq: number }).seq)).toEqual(docHistory(log, 'c', 'k1').map((e) => e.seq));
  });

  it('audit history of a collection or document with no event exits 4, of an invalid name 2; a deleted document keeps its history', async () => {
    for (const [args, code] of [
      [['--collection', 'nope', '--doc-id', 'k1'], 4],
      [['--collection', 'c', '--doc-id', 'never'], 4],
      [['--collection', '../x', '--doc-id', 'k1'], 2],
      [['--collection', 'c', '--doc-id', 'a b'], 2],
    ] as const) {
      const r = await run(['audit', 'history', '--data-dir', dir, ...args]);
      expect(r.code, args.join(' ')).toBe(code);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(code === 4 ? /AUDIT_(UNKNOWN_COLLECTION|DOC_NOT_FOUND)/ : /AUDIT_BAD_REQUEST/);
    }
    const s = await run(['audit', 'search', '--data-dir', dir, '--collection', '../x', '--vector', '[1,2]']);
    expect(s.code).toBe(2);
  });

  it('with --json a failure is {"error": {"code", "message"}} on stdout (and text on stderr), as in the other commands; audit search takes --json', async () => {
    for (const [args, exit, code] of [
      [['audit', 'verify', '--data-dir', dir, '--digest', 'nope', '--json'], 2, 'AUDIT_BAD_DIGEST'],
      [['audit', 'history', '--data-dir', dir, '--collection', 'nope', '--doc-id', 'x', '--json'], 4, 'AUDIT_UNKNOWN_COLLECTION'],
      [['audit', 'head', '--data-dir', path.join(dir, 'does-not-exist'), '--json'], 2, undefined],
      [['audit', 'search', '--data-dir', dir, '--collection', 'nope', '--vector', '[1,2]', '--json'], 4, 'AUDIT_UNKNOWN_COLLECTION'],
      [['audit', 'search', '--data-dir', dir, '--collection', 'nope', '--vector', '[1,2]'], 4, 'AUDIT_UNKNOWN_COLLECTION'],
    ] as const) {
      const r = await run([...args]);
      expect(r.code, args.join(' ')).toBe(exit);
      const e = (JSON.parse(r.stdout) as { error: { code: string; message: string } }).error;
      if (code !== undefined) expect(e.code).toBe(code);
      expect(typeof e.message).toBe('string');
      expect(r.stderr).toContain(e.code);
    }
    const ok = await run(['audit', 'search', '--data-dir', dir, '--collection', 'c', '--vector', '[1,2]', '--k', '1', '--json']);
    expect(ok.code).toBe(0);
    expect((JSON.parse(ok.stdout) as { results: unknown[] }).results).toHaveLength(1);
  });

  it('audit verify --backup-id --store: a restored backup verifies against a digest taken before it; a damaged backup exits 3', async () => {
    const before = `${log.get(6)!.seq}:${toHex(log.get(6)!.hash)}`;
    const storeDir = path.join(tmpDir(), 'store');
    const store = new LocalDirStore(storeDir);
    const mgr = new BackupManager({ log, dataDir: dir, store, compression: 'none', logger: () => {} });
    const m = await mgr.createFull({ tag: 'audit' });
    const r = await run(['audit', 'verify', '--backup-id', m.backup_id, '--store', store.url, '--digest', before, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, extends: true, checked: log.head().seq, backup_id: m.backup_id, digest: `${log.head().seq}:${toHex(log.head().hash)}` });
    expect(JSON.parse(r.stdout)).not.toHaveProperty('tag');
    // By its tag: backup_id is the backup verified (it echoed the tag), the tag beside it.
    const tagged = await run(['audit', 'verify', '--backup-id', 'audit', '--store', store.url, '--json']);
    expect(tagged.code, tagged.stderr).toBe(0);
    expect(JSON.parse(tagged.stdout)).toMatchObject({ ok: true, backup_id: m.backup_id, tag: 'audit' });
    const taggedText = await run(['audit', 'verify', '--backup-id', 'audit', '--store', store.url]);
    expect(taggedText.stdout).toContain(`in backup ${m.backup_id} (audit)`);
    // `latest`, as restore and backup verify take it.
    const latest = await run(['audit', 'verify', '--backup-id', 'latest', '--store', store.url, '--json']);
    expect(latest.code, latest.stderr).toBe(0);
    expect(JSON.parse(latest.stdout)).toMatchObject({ ok: true, checked: log.head().seq, backup_id: m.backup_id });
    expect(JSON.parse(latest.stdout)).not.toHaveProperty('tag');
    // A digest the backup does not extend.
    const wrong = await run(['audit', 'verify', '--backup-id', m.backup_id, '--store', store.url, '--digest', `6:${'11'.repeat(32)}`]);
    expect(wrong.code).toBe(3);
    expect(wrong.stdout).toContain('FAILED at seq 6: digest_mismatch');
    // Flip a byte in a stored backup file: restore refuses it, exit 3.
    const files: string[] = [];
    const walk = (d: string): void => {
      for (const f of fs.readdirSync(d, { withFileTypes: true })) {
        if (f.isDirectory()) walk(path.join(d, f.name));
        else if (!f.name.includes('manifest')) files.push(path.join(d, f.name));
      }
    };
    walk(storeDir);
    expect(files.length).toBeGreaterThan(0);
    const victim = files.sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0]!;
    const buf = fs.readFileSync(victim);
    buf[Math.floor(buf.length / 2)]! ^= 0xff;
    fs.writeFileSync(victim, buf);
    const bad = await run(['audit', 'verify', '--backup-id', m.backup_id, '--store', store.url]);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/BACKUP_/);
    // Bad input: unknown backup, missing --store, both sources.
    expect((await run(['audit', 'verify', '--backup-id', 'nope', '--store', store.url])).code).toBe(4); // not found
    expect((await run(['audit', 'verify', '--backup-id', m.backup_id])).code).toBe(2);
    expect((await run(['audit', 'verify', '--backup-id', m.backup_id, '--store', store.url, '--data-dir', dir])).code).toBe(2);
    // A --config that cannot be read is bad input naming it (exit 2), not an unknown error.
    const noConfig = await run(['audit', 'verify', '--backup-id', m.backup_id, '--store', store.url, '--config', path.join(dir, 'none.yaml')]);
    expect([noConfig.code, noConfig.stderr]).toEqual([2, expect.stringContaining('API_CONFIG_INVALID')]);
  });

  it('audit replay --out: a symlink stays a link to the new export, a FIFO is written in place, a directory is refused (exit 2)', async () => {
    const d = tmpDir();
    const real = path.join(d, 'real.ndjson');
    fs.writeFileSync(real, 'old');
    const link = path.join(d, 'link.ndjson');
    fs.symlinkSync(real, link);
    const r = await run(['audit', 'replay', '--data-dir', dir, '--to', String(commits[2]!.ts), '--out', link]);
    expect(r.code, r.stderr).toBe(0);
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    expect((await importState(real)).head.seq).toBe(log.seqAtTime(commits[2]!.ts));
    expect(fs.readdirSync(d).sort()).toEqual(['link.ndjson', 'real.ndjson']); // no temp file left
    // A FIFO: written as it is (a reader gets the whole export); the summary goes to stderr.
    const fifo = path.join(d, 'pipe');
    const mk = spawn('mkfifo', [fifo]);
    await new Promise((res) => mk.on('close', res));
    const reading = new Promise<string>((res, rej) => {
      let text = '';
      fs.createReadStream(fifo)
        .on('data', (c: string | Buffer) => (text += c.toString()))
        .on('end', () => res(text))
        .on('error', rej);
    });
    const f = await run(['audit', 'replay', '--data-dir', dir, '--to', String(commits[2]!.ts), '--out', fifo]);
    expect(f.code, f.stderr).toBe(0);
    expect(f.stdout).toBe('');
    expect(f.stderr).toContain('wrote');
    const lines = (await reading).trim().split('\n').map((l) => JSON.parse(l) as { kind: string });
    expect([lines[0]!.kind, lines[lines.length - 1]!.kind]).toEqual(['header', 'footer']);
    expect(fs.statSync(fifo).isFIFO()).toBe(true);
    const dirOut = await run(['audit', 'replay', '--data-dir', dir, '--to', String(commits[2]!.ts), '--out', d]);
    expect([dirOut.code, dirOut.stderr]).toEqual([2, expect.stringContaining('is a directory')]);
  });

  it('audit replay --out: /dev/stdout appends to a file stdout was redirected to; a replaced file keeps its mode; a dangling link gets its target; a loop or a path in the data dir is refused', async () => {
    const d = tmpDir();
    const to = String(commits[2]!.ts);
    const seqAtT = log.seqAtTime(commits[2]!.ts);
    // `kyrodb audit replay --out /dev/stdout … >> exports.log`: the file is written to where it is, not replaced.
    const redirected = path.join(d, 'exports.log');
    fs.writeFileSync(redirected, 'precious\n');
    const inode = fs.statSync(redirected).ino;
    const fd = fs.openSync(redirected, 'a');
    const code = await new Promise<number | null>((resolve, reject) => {
      const p = spawn(process.execPath, ['--conditions=@kyrodb/source', '--import', 'tsx', ENTRY, 'audit', 'replay', '--data-dir', dir, '--to', to, '--out', '/dev/stdout'], { cwd: ROOT, stdio: ['ignore', fd, 'ignore'] });
      p.on('error', reject);
      p.on('close', resolve);
    });
    fs.closeSync(fd);
    expect(code).toBe(0);
    expect(fs.statSync(redirected).ino).toBe(inode);
    const text = fs.readFileSync(redirected, 'utf8');
    expect(text.startsWith('precious\n')).toBe(true);
    const exported = path.join(d, 'exported.ndjson');
    fs.writeFileSync(exported, text.slice('precious\n'.length));
    expect((await importState(exported)).head.seq).toBe(seqAtT);
    // A replaced file keeps its permissions (an export holds every vector: 0600 stays 0600).
    const secret = path.join(d, 'secret.ndjson');
    fs.writeFileSync(secret, 'old');
    fs.chmodSync(secret, 0o600);
    expect((await run(['audit', 'replay', '--data-dir', dir, '--to', to, '--out', secret])).code).toBe(0);
    expect(fs.statSync(secret).mode & 0o777).toBe(0o600);
    // A dangling symlink: its target is made, the link stays.
    const link = path.join(d, 'dangling');
    fs.symlinkSync(path.join(d, 'target.ndjson'), link);
    const dl = await run(['audit', 'replay', '--data-dir', dir, '--to', to, '--out', link]);
    expect(dl.code, dl.stderr).toBe(0);
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    expect((await importState(path.join(d, 'target.ndjson'))).head.seq).toBe(seqAtT);
    // A loop of links: bad input with a stable code.
    fs.symlinkSync(path.join(d, 'loop-b'), path.join(d, 'loop-a'));
    fs.symlinkSync(path.join(d, 'loop-a'), path.join(d, 'loop-b'));
    const loop = await run(['audit', 'replay', '--data-dir', dir, '--to', to, '--out', path.join(d, 'loop-a'), '--json']);
    expect([loop.code, JSON.parse(loop.stdout).error.code]).toEqual([2, 'AUDIT_BAD_REQUEST']);
    // The data dir's own files (beside a running writer): refused, nothing in it touched.
    const before = fs.statSync(path.join(dir, 'log.mdb'));
    const wal = fs.readdirSync(path.join(dir, 'wal'));
    for (const out of [path.join(dir, 'log.mdb'), path.join(dir, 'wal', wal[0]!), path.join(dir, 'export.ndjson')]) {
      const r = await run(['audit', 'replay', '--data-dir', dir, '--to', to, '--out', out]);
      expect([r.code, r.stderr], out).toEqual([2, expect.stringContaining('is inside the data dir')]);
    }
    expect(fs.statSync(path.join(dir, 'log.mdb')).ino).toBe(before.ino);
    expect(fs.readdirSync(path.join(dir, 'wal'))).toEqual(wal);
    expect(fs.existsSync(path.join(dir, 'export.ndjson'))).toBe(false);
  });

  it('audit search --as-of T answers the exact top-k of the state at T (projections scoring); bad queries exit 2, an unknown collection 4', async () => {
    const t = commits[2]!.ts;
    const r = await run(['audit', 'search', '--data-dir', dir, '--collection', 'c', '--vector', '[0.5, 0]', '--k', '2', '--as-of', String(t)]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { head: { seq: number }; results: unknown[] };
    const want = exactSearch(materialize(log, log.seqAtTime(t)), 'c', { vector: new Float32Array([0.5, 0]), k: 2 });
    expect(out.head.seq).toBe(log.seqAtTime(t));
    expect(out.results).toEqual(JSON.parse(JSON.stringify(want)));
    const filtered = await run(['audit', 'search', '--data-dir', dir, '--collection', 'c', '--vector', '[0.5, 0]', '--k', '5', '--filter', '{"i": {"$gte": 1}}']);
    expect(filtered.code).toBe(0);
    const wantF = exactSearch(materialize(log), 'c', { vector: new Float32Array([0.5, 0]), k: 5, filter: { i: { $gte: 1 } } });
    expect((JSON.parse(filtered.stdout) as { results: unknown[] }).results).toEqual(JSON.parse(JSON.stringify(wantF)));
    // In audit's codes (the search's own checks said PROJ_INVALID_FILTER and the like).
    for (const [code, error, args] of [
      [4, 'AUDIT_UNKNOWN_COLLECTION', ['--collection', 'nope', '--vector', '[1, 2]']],
      [2, 'AUDIT_BAD_REQUEST', ['--collection', 'c', '--vector', '[1, 2, 3]']],
      [2, undefined, ['--collection', 'c', '--vector', 'x']],
      [2, undefined, ['--collection', 'c', '--vector', '[1, 2]', '--k', '0']],
      [2, 'AUDIT_BAD_REQUEST', ['--collection', 'c', '--vector', '[1, 2]', '--filter', '{"a": {"$bogus": 1}}']],
      [2, 'AUDIT_BAD_REQUEST', ['--collection', 'c', '--vector', '[3.5e38, 2]']],
      [4, 'AUDIT_UNKNOWN_COLLECTION', ['--collection', 'c', '--vector', '[1, 2]', '--as-of', String(commits[0]!.ts - 1)]],
    ] as const) {
      const b = await run(['audit', 'search', '--data-dir', dir, ...args]);
      expect(b.code, args.join(' ')).toBe(code);
      if (error !== undefined) expect(b.stderr, args.join(' ')).toMatch(new RegExp(`^kyrodb: ${error}: `, 'm'));
    }
  });
});
