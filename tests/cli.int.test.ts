import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { EventLog, microsToIso, toHex } from '@kyrodb/log';
import { BackupManager, ContinuousBackup, LocalDirStore, encodeObject, encodeSegment } from '@kyrodb/backup';
import { CLI, call, kyrodb, startServer, tmp } from './serverProcess.js';
import type { ServerProc } from './serverProcess.js';

describe('kyrodb CLI', { timeout: 240_000 }, () => {
  let server: ServerProc | undefined;
  afterAll(async () => {
    await server?.stop('SIGKILL');
  });

  it('--help on every command exits 0 and documents the exit codes', async () => {
    for (const cmd of [[], ['serve'], ['backup'], ['backup', 'create'], ['backup', 'list'], ['backup', 'verify'], ['backup', 'urls'], ['backup', 'prune'], ['restore'], ['admin'], ['admin', 'reset-circuit-breaker'], ['admin', 'health-check'], ['query'], ['audit']]) {
      const r = await kyrodb([...cmd, '--help']);
      expect(r.code, cmd.join(' ')).toBe(0);
      if (cmd[0] !== 'audit') expect(r.stdout, cmd.join(' ')).toContain('Exit codes:');
    }
  });

  it('commands other than serve start without loading the HTTP server (fastify)', async () => {
    // Loaded for a name check, fastify cost every command (restore among them) ~70 ms of start-up.
    const dir = tmp();
    const probe = path.join(dir, 'probe.cjs');
    fs.writeFileSync(probe, `process.on('exit', () => process.stderr.write('\\nfastify loaded: ' + Object.keys(require.cache).some((k) => k.includes('/fastify/')) + '\\n'));`);
    const env = { NODE_OPTIONS: `--require ${probe}` };
    for (const args of [['--version'], ['query', '--data-dir', path.join(dir, 'none'), '--collection', 'bad name!', '--doc-id', 'x'], ['restore', '--help']]) {
      const r = await kyrodb(args, env);
      expect(r.stderr, args.join(' ')).toContain('fastify loaded: false');
    }
    // The probe does see it where it is loaded: the server's own module.
    const loaded = await kyrodb(['--version'], { NODE_OPTIONS: `--require ${probe} --import ${pathToFileURL(path.join(path.dirname(CLI), 'server.js')).href}` });
    expect(loaded.stderr).toContain('fastify loaded: true');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('usage and config errors exit 2 naming the flag or key', async () => {
    expect((await kyrodb(['serve', '--port', 'abc'])).code).toBe(2);
    expect((await kyrodb(['nonsense'])).code).toBe(2);
    const dir = tmp();
    const bad = path.join(dir, 'bad.yaml');
    fs.writeFileSync(bad, 'server:\n  port: "x"\n');
    const r = await kyrodb(['serve', '--config', bad, '--data-dir', path.join(dir, 'd')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('server.port');
    const e = await kyrodb(['serve', '--data-dir', path.join(dir, 'd')], { KYRODB_BACKUP_FULL_BACKUP_SCHEDULE: 'sometimes' });
    expect(e.code).toBe(2);
    expect(e.stderr).toContain('KYRODB_BACKUP_FULL_BACKUP_SCHEDULE (backup.full_backup_schedule)');
    expect((await kyrodb(['query', '--doc-id', 'a', '--collection', 'c', '--as-of', 'noon', '--data-dir', dir])).code).toBe(2);
    expect((await kyrodb(['admin', 'reset-circuit-breaker', '--name', 'disk'])).code).toBe(2);
    // A backup store that cannot be reached: exit 6, as for a server that cannot be.
    const down = await kyrodb(['backup', 'list', '--data-dir', path.join(dir, 'd'), '--s3', 's3://nobucket/x'], { KYRODB_BACKUP_S3_ENDPOINT: 'http://127.0.0.1:1', KYRODB_BACKUP_S3_FORCE_PATH_STYLE: 'true', AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y' });
    expect([down.code, down.stderr]).toEqual([6, expect.stringContaining('BACKUP_STORE_ERROR')]);
    // A misspelt config variable is not silently ignored.
    const typo = await kyrodb(['backup', 'list', '--data-dir', path.join(dir, 'd'), '--output', path.join(dir, 'b')], { KYRODB_SERVER_PROT: '8080' });
    expect(typo.code).toBe(0);
    expect(typo.stderr).toMatch(/warning: KYRODB_SERVER_PROT is not a config variable.*KYRODB_SERVER_PORT/);
  });

  it('a data dir or store that is a file, a missing data dir, a port in use, a bad --url or name: exit 2 naming the setting, nothing made', async () => {
    const dir = tmp();
    const file = path.join(dir, 'afile');
    fs.writeFileSync(file, 'not a dir');
    const env = { KYRODB_BACKUP_ENABLED: 'false' };
    for (const d of [file, path.join(file, 'sub')]) {
      const r = await kyrodb(['serve', '--port', '0', '--data-dir', d], env);
      expect([r.code, r.stderr], d).toEqual([2, expect.stringMatching(/API_CONFIG_INVALID: --data-dir: .* is not a directory/)]);
      const viaEnv = await kyrodb(['serve', '--port', '0'], { ...env, KYRODB_STORAGE_DATA_DIR: d });
      expect([viaEnv.code, viaEnv.stderr], d).toEqual([2, expect.stringContaining('KYRODB_STORAGE_DATA_DIR')]);
    }
    // Reading commands never create a data dir; a missing one, or a dir without a log, is bad input (as in `audit`).
    const missing = path.join(dir, 'nope');
    for (const args of [['backup', 'create', '--full', '--output', path.join(dir, 'b')], ['query', '--collection', 'c', '--doc-id', 'a']]) {
      const r = await kyrodb([...args, '--data-dir', missing]);
      expect([r.code, r.stderr], args[0]).toEqual([2, expect.stringContaining(`--data-dir: there is no data dir at ${missing}`)]);
      const empty = await kyrodb([...args, '--data-dir', dir]);
      expect([empty.code, empty.stderr], args[0]).toEqual([2, expect.stringContaining('holds no KyroDB log')]);
    }
    expect(fs.existsSync(missing)).toBe(false);
    expect(fs.existsSync(path.join(dir, 'b'))).toBe(false);
    // A backup directory that is a file: exit 2, not ENOTDIR (exit 1) from the store.
    const data = path.join(dir, 'data');
    const log = await EventLog.open({ dir: data, logger: () => undefined });
    await log.append([{ type: 'collection.created', collection: 'c', body: { dimension: 2, metric: 'l2', hnsw: { M: 8, efConstruction: 20, efSearch: 10 } } }]);
    await log.close();
    for (const cmd of [['backup', 'create', '--full'], ['backup', 'list']]) {
      const r = await kyrodb([...cmd, '--data-dir', data, '--output', file]);
      expect([r.code, r.stderr], cmd[1]).toEqual([2, expect.stringContaining('--output: the backup directory')]);
    }
    // …and for serve, whichever backups use the store: scheduled, or continuous alone.
    for (const on of [{ KYRODB_BACKUP_ENABLED: 'true' }, { KYRODB_BACKUP_ENABLED: 'false', KYRODB_BACKUP_CONTINUOUS_ENABLED: 'true' }]) {
      const r = await kyrodb(['serve', '--port', '0', '--data-dir', path.join(dir, 'd0')], { ...on, KYRODB_BACKUP_LOCAL_DIR: file });
      expect([r.code, r.stderr], JSON.stringify(on)).toEqual([2, expect.stringContaining('KYRODB_BACKUP_LOCAL_DIR: the backup directory')]);
    }
    expect(fs.readFileSync(file, 'utf8')).toBe('not a dir');
    // A mistyped store path lists nothing, and says why.
    const typo = await kyrodb(['backup', 'list', '--output', path.join(dir, 'bakcups')]);
    expect([typo.code, typo.stderr]).toEqual([0, expect.stringContaining('there is no backup directory at')]);
    // …and one that exists is no typo, whatever characters its path holds (the store's URL escapes them).
    fs.mkdirSync(path.join(dir, 'my backups%'));
    expect(await kyrodb(['backup', 'list', '--output', path.join(dir, 'my backups%')])).toEqual({ code: 0, stdout: 'no backups\n', stderr: '' });
    // Names the server refuses are bad input for `query` too; an unknown collection is named as such.
    const badName = await kyrodb(['query', '--collection', 'c', '--doc-id', 'a/b', '--data-dir', data]);
    expect([badName.code, badName.stderr]).toEqual([2, expect.stringContaining('API_INVALID_NAME')]);
    const noColl = await kyrodb(['query', '--collection', 'zz', '--doc-id', 'a', '--data-dir', data]);
    expect([noColl.code, noColl.stderr]).toEqual([4, expect.stringContaining('API_COLLECTION_NOT_FOUND')]);
    // An id "." or ".." (writable before the server refused them) reads from the data dir; a server
    // cannot be asked for one (fetch resolves the path segment away): bad input, before any request.
    const dots = await EventLog.open({ dir: data, logger: () => undefined });
    await dots.append([{ type: 'vector.upserted', collection: 'c', body: { id: '..', vector: new Float32Array([1, 2]) } }]);
    await dots.close();
    const fromDir = await kyrodb(['query', '--collection', 'c', '--doc-id', '..', '--data-dir', data, '--json']);
    expect([fromDir.code, (JSON.parse(fromDir.stdout) as { id: string }).id]).toEqual([0, '..']);
    // As of an instant, the answer carries the head digest at T (the as-of rule), as the server's does; a live one not.
    const asOf = await kyrodb(['query', '--collection', 'c', '--doc-id', '..', '--data-dir', data, '--json', '--as-of', String(Date.now() * 1000 - 1)]);
    const head = await kyrodb(['audit', 'head', '--data-dir', data, '--json']);
    expect(asOf.code, asOf.stderr).toBe(0);
    const headAtT = (JSON.parse(asOf.stdout) as { head: { seq: number } }).head;
    expect(headAtT.seq).toBe(2);
    expect(JSON.parse(head.stdout.trim())).toMatchObject(headAtT); // audit head adds the digest string
    expect((JSON.parse(fromDir.stdout) as { head?: unknown }).head).toBeUndefined();
    for (const id of ['.', '..']) {
      const viaUrl = await kyrodb(['query', '--collection', 'c', '--doc-id', id, '--url', 'http://127.0.0.1:1']);
      expect([viaUrl.code, viaUrl.stderr], id).toEqual([2, expect.stringContaining('API_INVALID_NAME')]);
    }
    // A --url that is no http(s) URL is bad usage, not "unreachable" (exit 6).
    for (const url of ['notaurl', 'ftp://127.0.0.1:1']) expect((await kyrodb(['admin', 'health-check', '--url', url])).code, url).toBe(2);
    // A port another server holds.
    server = await startServer(['--data-dir', path.join(dir, 'd1')], env);
    const port = new URL(server.url).port;
    const busy = await kyrodb(['serve', '--port', port, '--data-dir', path.join(dir, 'd2')], env);
    expect([busy.code, busy.stderr]).toEqual([2, expect.stringContaining(`--port: 127.0.0.1:${port} is already in use`)]);
    // The refused start leaves no data dir: not one it made (with its parents), nor files in an empty one.
    expect(fs.existsSync(path.join(dir, 'd2'))).toBe(false);
    const nested = await kyrodb(['serve', '--port', port, '--data-dir', path.join(dir, 'p', 'q', 'd3')], env);
    expect(nested.code, nested.stderr).toBe(2);
    expect(fs.existsSync(path.join(dir, 'p'))).toBe(false);
    fs.mkdirSync(path.join(dir, 'empty'), { mode: 0o710 });
    fs.chmodSync(path.join(dir, 'empty'), 0o710);
    expect((await kyrodb(['serve', '--port', port, '--data-dir', path.join(dir, 'empty')], env)).code).toBe(2);
    expect(fs.readdirSync(path.join(dir, 'empty'))).toEqual([]);
    expect(fs.statSync(path.join(dir, 'empty')).mode & 0o777).toBe(0o710);
    // A data dir with a log in it is never removed by a refused start.
    expect((await kyrodb(['serve', '--port', port, '--data-dir', data], env)).code).toBe(2);
    expect(fs.readdirSync(data)).toContain('log.mdb');
    const kept = await kyrodb(['query', '--collection', 'c', '--doc-id', '..', '--data-dir', data, '--json']);
    expect([kept.code, (JSON.parse(kept.stdout) as { id: string }).id]).toEqual([0, '..']);
    expect(fs.readdirSync(dir).filter((n) => n.includes('unstarted'))).toEqual([]);
    expect(await server.stop()).toBe(0);
    server = undefined;
  });

  it('usage errors print JSON on stdout with --json; a reader that closes the pipe early ends the command quietly', async () => {
    const r = await kyrodb(['backup', 'create', '--full', '--json', '--bogus']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout)).toEqual({ error: { code: 'CLI_USAGE', message: "unknown option '--bogus'" } });
    // `kyrodb backup list --json | head -c 1`: the pipe closes before the output is written.
    const dir = tmp();
    const data = path.join(dir, 'data');
    const log = await EventLog.open({ dir: data, logger: () => undefined });
    await log.append([{ type: 'collection.created', collection: 'c', body: { dimension: 2, metric: 'l2', hnsw: { M: 8, efConstruction: 20, efSearch: 10 } } }]);
    await log.close();
    for (let i = 0; i < 3; i++) expect((await kyrodb(['backup', 'create', '--full', '--data-dir', data, '--output', path.join(dir, 'b'), '--description', 'x'.repeat(60_000)])).code).toBe(0);
    const closed = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, 'backup', 'list', '--json', '--output', path.join(dir, 'b')], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      child.stdout.destroy(); // the reader goes away at once
      child.on('close', (code) => resolve({ code, stderr }));
    });
    expect(closed).toEqual({ code: 0, stderr: '' });
  });

  it('usage errors a command finds itself (flags that go together, a flag\'s value) are CLI_USAGE too, exit 2, as the README says', async () => {
    const dir = tmp();
    const b = path.join(dir, 'b');
    const data = path.join(dir, 'data');
    for (const [args, says] of [
      [['backup', 'create', '--data-dir', data, '--output', b], 'backup create: give --full or --incremental'],
      [['backup', 'create', '--full', '--since', '2026-11-27T00:00:00Z', '--data-dir', data, '--output', b], 'backup create: --since picks the parent of an incremental; a full backup has none'],
      [['restore', '--from', b, '--data-dir', data], 'restore: give --backup-id, --point-in-time or --tag'],
      [['restore', '--backup-id', 'latest', '--tag', 't1', '--from', b, '--data-dir', data], 'restore: give only one of --backup-id, --point-in-time and --tag'],
      [['backup', 'prune', '--retention-days', '-1', '--output', b], '--retention-days: expected a non-negative integer, got "-1"'],
      [['backup', 'urls', '--backup-id', 'latest', '--expires-in', '0', '--output', b], '--expires-in: expected a whole number of seconds in 1..604800 (7 days), got "0"'],
      [['serve', '--port', 'abc', '--data-dir', data], '--port: expected an integer in 0..65535, got "abc"'],
      [['admin', 'health-check', '--url', 'ftp://127.0.0.1:1'], '--url: expected an http:// or https:// URL, got "ftp://127.0.0.1:1"'],
    ] as const) {
      const r = await kyrodb([...args, '--json']);
      expect([r.code, r.stderr], args.join(' ')).toEqual([2, `kyrodb: CLI_USAGE: ${says}\n`]);
      expect(JSON.parse(r.stdout), args.join(' ')).toEqual({ error: { code: 'CLI_USAGE', message: says } });
    }
    // Nothing was made: no data dir, no store.
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('restore with two targets exits 2 and writes nothing; verify of a backup the store does not have exits 4', async () => {
    const dir = tmp();
    const target = path.join(dir, 'restored');
    for (const extra of [['--point-in-time', '2026-11-27T10:00:00Z'], ['--tag', 't1']]) {
      const r = await kyrodb(['restore', '--backup-id', 'latest', ...extra, '--from', path.join(dir, 'b'), '--data-dir', target]);
      expect(r.code, extra[0]).toBe(2);
      expect(r.stderr).toContain('only one of --backup-id');
    }
    expect((await kyrodb(['restore', '--tag', 't1', '--point-in-time', '2026-11-27T10:00:00Z', '--from', path.join(dir, 'b'), '--data-dir', target])).code).toBe(2);
    expect(fs.existsSync(target)).toBe(false);
    fs.mkdirSync(path.join(dir, 'b'));
    // presigned URLs are an S3 store's: a directory store says so (exit 7)
    const urls = await kyrodb(['backup', 'urls', '--backup-id', 'latest', '--output', path.join(dir, 'b')]);
    expect(urls.code).toBe(7);
    expect(urls.stderr).toContain('presigned URLs need an S3 store');
    for (const id of ['nope', 'latest']) {
      const v = await kyrodb(['backup', 'verify', '--backup-id', id, '--output', path.join(dir, 'b'), '--json']);
      expect(v.code, id).toBe(4);
      expect((JSON.parse(v.stdout) as { code: string }).code).toBe('BACKUP_NOT_FOUND');
    }
    // A backup whose manifest is damaged does not verify (exit 5); the store still lists.
    const data = path.join(dir, 'data');
    const log = await EventLog.open({ dir: data, logger: () => undefined });
    await log.append([{ type: 'collection.created', collection: 'c', body: { dimension: 2, metric: 'l2', hnsw: { M: 8, efConstruction: 20, efSearch: 10 } } }]);
    await log.close();
    const made = await kyrodb(['backup', 'create', '--full', '--data-dir', data, '--output', path.join(dir, 'b'), '--json']);
    expect(made.code, made.stderr).toBe(0);
    const id = (JSON.parse(made.stdout) as { backup_id: string }).backup_id;
    fs.writeFileSync(path.join(dir, 'b', 'backups', id, 'manifest.json'), '{"backup_id": "half-written');
    const bad = await kyrodb(['restore', '--backup-id', id, '--from', path.join(dir, 'b'), '--data-dir', target]);
    expect(bad.code).toBe(5);
    expect(bad.stderr).toContain('BACKUP_MANIFEST_INVALID');
    expect(fs.existsSync(target)).toBe(false);
    expect((await kyrodb(['backup', 'verify', '--backup-id', id, '--output', path.join(dir, 'b')])).code).toBe(5);
    expect((await kyrodb(['backup', 'list', '--output', path.join(dir, 'b')])).code).toBe(0);
    // A store that does not answer is unavailable (exit 6), as for list, create and restore: not a
    // backup that failed to verify (it was exit 5).
    const closed = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const port = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(port));
      });
    });
    const s3 = { KYRODB_BACKUP_S3_ENABLED: 'true', KYRODB_BACKUP_S3_BUCKET: 'kyro', KYRODB_BACKUP_S3_REGION: 'us-east-1', KYRODB_BACKUP_S3_ENDPOINT: `http://127.0.0.1:${closed}`, KYRODB_BACKUP_S3_FORCE_PATH_STYLE: 'true', AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y' };
    for (const args of [['backup', 'verify', '--backup-id', 'latest', '--json'], ['backup', 'list', '--json']]) {
      const down = await kyrodb([...args, '--data-dir', data], s3);
      expect(down.code, `${args[1]!}: ${down.stdout}${down.stderr}`).toBe(6);
      expect(down.stdout).toContain('BACKUP_STORE_ERROR');
    }
  });

  it('backup create: an incremental keeps --tag and --description; --full --since and a taken tag are refused; restore never replaces a dir that is not a data dir', async () => {
    const dir = tmp();
    const data = path.join(dir, 'data');
    const out = path.join(dir, 'b');
    const log = await EventLog.open({ dir: data, logger: () => undefined });
    await log.append([{ type: 'collection.created', collection: 'c', body: { dimension: 2, metric: 'l2', hnsw: { M: 8, efConstruction: 20, efSearch: 10 } } }]);
    const head = toHex(log.head().hash);
    await log.close();
    const create = (...args: string[]) => kyrodb(['backup', 'create', ...args, '--data-dir', data, '--output', out, '--json']);
    expect((await create('--full')).code).toBe(0);
    const inc = await create('--incremental', '--tag', 'pre-migration', '--description', 'before the schema change');
    expect(inc.code, inc.stderr).toBe(0);
    expect(JSON.parse(inc.stdout)).toMatchObject({ type: 'incremental', tag: 'pre-migration', description: 'before the schema change' });
    const since = await create('--full', '--since', '2026-11-27T00:00:00Z');
    expect([since.code, since.stderr]).toEqual([2, expect.stringContaining('--since picks the parent of an incremental')]);
    const taken = await create('--full', '--tag', 'pre-migration');
    expect([taken.code, taken.stderr]).toEqual([3, expect.stringContaining('BACKUP_TAG_EXISTS')]);
    // A dir of someone's files: refused (exit 3) with or without --force, its files untouched; so is the store itself.
    const mine = path.join(dir, 'mine');
    fs.mkdirSync(mine);
    fs.writeFileSync(path.join(mine, 'notes.txt'), 'important');
    for (const [target, extra] of [[mine, []], [mine, ['--force']], [mine, ['--force', '--dry-run']], [out, ['--force']]] as const) {
      const r = await kyrodb(['restore', '--tag', 'pre-migration', '--from', out, '--data-dir', target, ...extra]);
      expect([r.code, r.stderr], `${target} ${extra.join(' ')}`).toEqual([3, expect.stringContaining('BACKUP_TARGET_NOT_DATA_DIR')]);
    }
    expect(fs.readdirSync(mine)).toEqual(['notes.txt']);
    // A restore says it restored, after its plan (it printed the plan alone); a dry run only plans.
    const restored = path.join(dir, 'restored');
    const dry = await kyrodb(['restore', '--tag', 'pre-migration', '--from', out, '--data-dir', restored, '--dry-run']);
    expect([dry.code, dry.stdout], dry.stderr).toEqual([0, expect.stringContaining('pre-migration')]);
    expect(dry.stdout).not.toMatch(/^restored /m);
    const done = await kyrodb(['restore', '--tag', 'pre-migration', '--from', out, '--data-dir', restored]);
    expect(done.code, done.stderr).toBe(0);
    const lines = done.stdout.trimEnd().split('\n');
    expect(lines.length).toBeGreaterThan(1);
    expect(lines.at(-1)).toMatch(new RegExp(`^restored 1 event \\(head 1, ${head.slice(0, 16)}…\\) into ${restored.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} in \\d+\\.\\d s$`));
    // The offline query follows the as-of rule too: a future instant is refused (exit 2).
    const future = await kyrodb(['query', '--collection', 'c', '--doc-id', 'x', '--data-dir', data, '--as-of', '2099-01-01T00:00:00Z']);
    expect([future.code, future.stderr]).toEqual([2, expect.stringContaining('AUDIT_TIME_IN_FUTURE')]);
    expect((await kyrodb(['backup', 'list', '--output', out, '--json'])).code).toBe(0);
  });

  it('every timestamp flag takes integer µs since the epoch as it takes ISO-8601: --point-in-time, --before, --since', async () => {
    // README "As-of time T": one parser for every timestamp of the API and CLI. --point-in-time,
    // --before and --since refused integers (exit 2, API_INVALID_TIMESTAMP) while --as-of took them.
    const dir = tmp();
    const data = path.join(dir, 'data');
    const out = path.join(dir, 'b');
    const log = await EventLog.open({ dir: data, logger: () => undefined });
    await log.append([{ type: 'collection.created', collection: 'c', body: { dimension: 2, metric: 'l2', hnsw: { M: 8, efConstruction: 20, efSearch: 10 } } }]);
    const ts: number[] = [];
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 5)); // a distinct ts per batch
      const res = await log.append([{ type: 'vector.upserted', collection: 'c', body: { id: `v${i}`, vector: Float32Array.from([i, 1]) } }]);
      ts.push(res.ts);
    }
    const mid = log.head().seq - 1;
    const midHash = toHex(log.get(mid)!.hash);
    await log.close();
    expect(ts[1]).toBeGreaterThan(ts[0]!);
    expect(ts[2]).toBeGreaterThan(ts[1]!);
    const full = await kyrodb(['backup', 'create', '--full', '--data-dir', data, '--output', out, '--json']);
    expect(full.code, full.stderr).toBe(0);

    // Restore to the second write's ts, as integer µs and as the same instant in ISO: the same state.
    const restored = async (t: string, name: string) => {
      const r = await kyrodb(['restore', '--from', out, '--data-dir', path.join(dir, name), '--point-in-time', t, '--json']);
      expect(r.code, `${t}: ${r.stderr}`).toBe(0);
      const rep = JSON.parse(r.stdout) as { seq: number; headHash: string; headTs: number; events: number; vectorCount: number; pointInTime: number };
      const l = await EventLog.open({ dir: path.join(dir, name), logger: () => undefined });
      const head = { seq: l.head().seq, hash: toHex(l.head().hash) };
      await l.close();
      return { rep: { seq: rep.seq, headHash: rep.headHash, headTs: rep.headTs, events: rep.events, vectorCount: rep.vectorCount, pointInTime: rep.pointInTime }, head };
    };
    const byMicros = await restored(String(ts[1]), 'r-micros');
    const byIso = await restored(microsToIso(ts[1]!), 'r-iso');
    expect(byMicros).toEqual(byIso);
    expect(byMicros.head).toEqual({ seq: mid, hash: midHash }); // cut at T: not the whole log
    expect(byMicros.rep).toMatchObject({ seq: mid, headTs: ts[1], pointInTime: ts[1], vectorCount: 2 });
    // A point past everything the store holds restores up to its newest event (README "Point in time").
    const future = await restored(String(Date.now() * 1000 + 3_600_000_000), 'r-future');
    expect(future.rep).toMatchObject({ seq: mid + 1, headTs: ts[2] });

    // --before: integer µs and ISO list the same backups.
    const created = Date.parse((JSON.parse(full.stdout) as { created: string }).created) * 1000;
    for (const t of [created - 1_000_000, created + 1_000_000]) {
      const [a, b] = await Promise.all([String(t), microsToIso(t)].map((x) => kyrodb(['backup', 'list', '--output', out, '--before', x, '--json'])));
      expect([a!.code, a!.stderr]).toEqual([0, '']);
      expect(a!.stdout).toBe(b!.stdout);
      expect((JSON.parse(a!.stdout) as unknown[]).length).toBe(t > created ? 1 : 0);
    }

    // --since: integer µs picks the parent as ISO does (the newest backup ending at or before T;
    // the full one ends at the last write's ts).
    const fullId = (JSON.parse(full.stdout) as { backup_id: string }).backup_id;
    // Each form builds on its own copy of the store: an incremental ends where the full one does.
    const out2 = path.join(dir, 'b2');
    fs.cpSync(out, out2, { recursive: true });
    const since = (t: string, store: string) => kyrodb(['backup', 'create', '--incremental', '--since', t, '--data-dir', data, '--output', store, '--json']);
    for (const t of [String(ts[2]! - 1), microsToIso(ts[2]! - 1)]) {
      const none = await since(t, out);
      expect([none.code, none.stdout], t).toEqual([4, expect.stringContaining('BACKUP_NOT_FOUND')]);
    }
    for (const [t, store] of [[String(ts[2]), out], [microsToIso(ts[2]!), out2]] as const) {
      const inc = await since(t, store);
      expect(inc.code, `${t}: ${inc.stderr}`).toBe(0);
      expect(JSON.parse(inc.stdout), t).toMatchObject({ type: 'incremental', parent: fullId });
    }

    // Neither form: still exit 2, and the message names both forms.
    for (const [flag, args] of [['--point-in-time', ['restore', '--from', out, '--data-dir', path.join(dir, 'r-bad')]], ['--before', ['backup', 'list', '--output', out]]] as const) {
      const bad = await kyrodb([...args, flag, '12:00']);
      expect([bad.code, bad.stderr], flag).toEqual([2, expect.stringMatching(/API_INVALID_TIMESTAMP.*integer microseconds/)]);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a data dir whose writer was killed (kill -9) with the machine: every reader exits 3 LOG_RECOVERY_NEEDED, the audit commands too', async () => {
    const data = path.join(tmp(), 'data');
    server = await startServer(['--data-dir', data], { KYRODB_BACKUP_ENABLED: 'false' });
    expect((await call(server.url, 'PUT', '/v1/collections/c', { dimension: 2, metric: 'l2' })).status).toBe(201);
    expect((await call(server.url, 'POST', '/v1/collections/c/vectors', { vectors: [{ id: 'a', vector: [1, 2] }] })).status).toBe(200);
    expect(await server.stop('SIGKILL')).toBeNull();
    server = undefined;
    // The killed writer's open-marker is left; naming another boot, it says the machine stopped
    // too (LMDB's unsynced pages cannot be trusted): a read-only open must refuse.
    const marker = path.join(data, 'log.open');
    fs.writeFileSync(marker, JSON.stringify({ ...(JSON.parse(fs.readFileSync(marker, 'utf8')) as object), bootId: 'a-boot-before-the-crash' }));
    for (const args of [['audit', 'head'], ['audit', 'verify'], ['audit', 'history', '--collection', 'c', '--doc-id', 'a'], ['query', '--collection', 'c', '--doc-id', 'a']]) {
      const r = await kyrodb([...args, '--data-dir', data, '--json']);
      expect([r.code, r.stderr], args.join(' ')).toEqual([3, expect.stringContaining('LOG_RECOVERY_NEEDED: the machine stopped')]);
      expect((JSON.parse(r.stdout) as { error: { code: string } }).error.code).toBe('LOG_RECOVERY_NEEDED');
    }
    // The help of the audit commands says so.
    expect((await kyrodb(['audit', 'head', '--help'])).stdout).toMatch(/3 {2}the chain does not verify[^]*LOG_RECOVERY_NEEDED/);
    // A writer's open applies the segments; then they read.
    server = await startServer(['--data-dir', data], { KYRODB_BACKUP_ENABLED: 'false' });
    expect(await server.stop()).toBe(0);
    server = undefined;
    const head = await kyrodb(['audit', 'head', '--data-dir', data]);
    expect([head.code, head.stdout], head.stderr).toEqual([0, expect.stringMatching(/^2:[0-9a-f]{64}\n$/)]);
  });

  it('a second serve on the same data dir exits 3; admin commands without a server exit 6', async () => {
    const dir = tmp();
    const env = { KYRODB_BACKUP_ENABLED: 'false', KYRODB_BACKUP_LOCAL_DIR: path.join(dir, 'b') };
    server = await startServer(['--data-dir', path.join(dir, 'data')], env);
    const second = await kyrodb(['serve', '--port', '0', '--data-dir', path.join(dir, 'data')], env);
    expect(second.code).toBe(3);
    expect(second.stderr).toMatch(/LOG_LOCKED/);
    expect((await call(server.url, 'GET', '/healthz')).status).toBe(200);
    expect(await server.stop()).toBe(0);
    server = undefined;
    expect((await kyrodb(['admin', 'health-check', '--url', 'http://127.0.0.1:1'])).code).toBe(6);
    expect((await kyrodb(['query', '--doc-id', 'nope', '--collection', 'c', '--data-dir', path.join(dir, 'data')])).code).toBe(4);
  });

  it('SIGTERM during a write load: in-flight writes finish, exit 0, every 2xx write is there after restart', async () => {
    const dir = tmp();
    const env = { KYRODB_BACKUP_ENABLED: 'false', KYRODB_BACKUP_LOCAL_DIR: path.join(dir, 'b') };
    server = await startServer(['--data-dir', path.join(dir, 'data')], env);
    const { url } = server;
    expect((await call(url, 'PUT', '/v1/collections/c', { dimension: 2, metric: 'l2' })).status).toBe(201);
    const acked: string[] = [];
    let n = 0;
    let stop = false;
    const writer = async (): Promise<void> => {
      while (!stop) {
        const id = `v${n++}`;
        try {
          const r = await call(url, 'POST', '/v1/collections/c/vectors', { vectors: [{ id, vector: [n, 1] }] });
          if (r.status === 200) acked.push(id);
          else expect([503]).toContain(r.status);
        } catch {
          return; // the server closed the connection
        }
      }
    };
    const ws = Array.from({ length: 6 }, () => writer());
    while (acked.length < 50) await new Promise((r) => setTimeout(r, 5));
    const exit = server.stop('SIGTERM');
    expect(await exit).toBe(0);
    stop = true;
    await Promise.all(ws);
    server = await startServer(['--data-dir', path.join(dir, 'data')], env);
    for (const id of acked) expect((await call(server.url, 'GET', `/v1/collections/c/vectors/${id}`)).status, id).toBe(200);
    expect(await server.stop()).toBe(0);
    server = undefined;
  });
});

describe('kyrodb backup verify --segments', { timeout: 120_000 }, () => {
  it('reads every continuous segment: OK with the range and the backup they continue; a damaged, missing or foreign segment exits 5 naming it; none exits 4', async () => {
    const dir = tmp();
    const dataDir = path.join(dir, 'data');
    const storeDir = path.join(dir, 'backups');
    const log = await EventLog.open({ dir: dataDir, logger: () => undefined });
    const store = new LocalDirStore(storeDir);
    const args = ['backup', 'verify', '--segments', '--data-dir', dataDir, '--output', storeDir];
    const none = await kyrodb(args);
    expect([none.code, none.stderr]).toEqual([4, expect.stringContaining('holds no continuous segments')]);

    await log.append([{ type: 'collection.created', collection: 'c', body: { dimension: 4, metric: 'l2', hnsw: { M: 8, efConstruction: 50, efSearch: 20 } } }]);
    const upserts = async (from: number, n: number): Promise<void> => {
      for (let i = from; i < from + n; i += 10) await log.append(Array.from({ length: 10 }, (_, j) => ({ type: 'vector.upserted' as const, collection: 'c', body: { id: `d${i + j}`, vector: new Float32Array([i + j, 1, 2, 3]) } })));
    };
    await upserts(0, 50);
    // A full backup first, continuous backup turned on after it: the segments continue it.
    const full = await new BackupManager({ log, dataDir, store, logger: () => undefined }).createFull();
    const cb = new ContinuousBackup({ log, store, intervalMs: 10, maxBatchEvents: 30, logger: () => undefined });
    await cb.start();
    await upserts(50, 150);
    await cb.waitForShipped(log.head().seq);
    await cb.stop();
    const segs = (await store.list('segments/')).sort();
    expect(segs.length).toBeGreaterThanOrEqual(5);

    const ok = await kyrodb([...args, '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    const rep = JSON.parse(ok.stdout) as Record<string, unknown>;
    expect(rep).toMatchObject({ ok: true, segments: segs.length, read: segs.length, events: 150, firstSeq: full.to_seq + 1, lastSeq: log.head().seq, gaps: [], overlaps: [], continues: full.backup_id });
    const text = await kyrodb(args);
    expect(text.stdout).toContain(`segments: OK (${segs.length} of ${segs.length} segments read, 150 events (seqs ${full.to_seq + 1}..${log.head().seq}`);

    const file = (key: string): string => path.join(storeDir, ...key.split('/'));
    const mid = segs[2]!;
    const saved = fs.readFileSync(file(mid));
    // A flipped byte in the middle of one segment.
    const flipped = Buffer.from(saved);
    const at = flipped.length >> 1;
    flipped[at] = flipped[at]! ^ 0x40;
    fs.writeFileSync(file(mid), flipped);
    const bad = await kyrodb([...args, '--json']);
    expect(bad.code).toBe(5);
    const badRep = JSON.parse(bad.stdout) as { ok: boolean; key: string; read: number; error: { code: string } };
    expect(badRep).toMatchObject({ ok: false, key: mid, read: 2 });
    expect(badRep.error.code).toMatch(/^BACKUP_(CHECKSUM_MISMATCH|CORRUPT|CHAIN_BROKEN)$/);

    // Gone: the seqs it held are a gap (and the chain still checks around it).
    fs.rmSync(file(mid));
    const gap = await kyrodb(args);
    expect(gap.code).toBe(5);
    const [, a, b] = /(\d+)-(\d+)$/.exec(mid)!.map(Number);
    expect(gap.stdout).toContain(`seqs ${a}..${b} held by no segment or backup`);

    // Another history's segment in its place: its chain does not link.
    fs.writeFileSync(file(mid), saved);
    const other = await EventLog.open({ dir: path.join(dir, 'other'), logger: () => undefined });
    await other.append([{ type: 'collection.created', collection: 'x', body: { dimension: 4, metric: 'l2', hnsw: { M: 8, efConstruction: 50, efSearch: 20 } } }]);
    for (let i = 1; i < b!; i++) await other.append([{ type: 'vector.upserted', collection: 'x', body: { id: `o${i}`, vector: new Float32Array([i, 0, 0, 0]) } }]);
    const records = [...other.readRecords(a, b)].map((r) => ({ seq: r.seq, ts: other.get(r.seq)!.ts, record: r.record }));
    await other.close();
    fs.writeFileSync(file(mid), encodeObject(encodeSegment(records).body, 'zstd', undefined));
    const foreign = await kyrodb(args);
    expect(foreign.code).toBe(5);
    expect(foreign.stdout).toContain('BACKUP_CHAIN_BROKEN');
    expect(foreign.stdout).toContain(mid);
    fs.writeFileSync(file(mid), saved);
    expect((await kyrodb(args)).code).toBe(0);

    // Usage: one of the two, and --deep is a backup's.
    expect((await kyrodb(['backup', 'verify', '--data-dir', dataDir, '--output', storeDir])).code).toBe(2);
    expect((await kyrodb([...args, '--backup-id', 'latest'])).code).toBe(2);
    expect((await kyrodb([...args, '--deep'])).code).toBe(2);
    await log.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
