import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { call, kyrodb, startServer, tmp, vectorFor } from './serverProcess.js';
import type { ServerProc } from './serverProcess.js';

// The README quick start, scripted: start, create, write, search, back up (online), stop,
// restore into a new dir, start again, same answers.
describe('README quick start (child processes, real HTTP)', { timeout: 240_000 }, () => {
  const dir = tmp();
  const data = path.join(dir, 'data');
  const backups = path.join(dir, 'backups');
  const restored = path.join(dir, 'restored');
  let server: ServerProc | undefined;
  afterAll(async () => {
    await server?.stop('SIGKILL');
  });

  it('start → create → write → search → backup → stop → restore → start → same answers', async () => {
    server = await startServer(['--data-dir', data], { KYRODB_BACKUP_LOCAL_DIR: backups, KYRODB_BACKUP_ENABLED: 'false' });
    const { url } = server;
    expect((await call(url, 'PUT', '/v1/collections/docs', { dimension: 8, metric: 'cosine' })).status).toBe(201);
    const vectors = Array.from({ length: 50 }, (_, i) => ({ id: `doc-${i}`, vector: vectorFor(i + 1, 8), metadata: { i, even: i % 2 === 0 } }));
    const w = await call(url, 'POST', '/v1/collections/docs/vectors', { vectors });
    expect(w.status).toBe(200);
    expect(w.json.seq).toBe(51);
    const queries = [vectorFor(3, 8), vectorFor(1000, 8), vectorFor(7, 8)];
    const ask = async (u: string) => Promise.all(queries.map(async (v) => (await call(u, 'POST', '/v1/collections/docs/search', { vector: v, k: 5, filter: { even: true } })).json.results));
    const before = await ask(url);
    expect(before[0][0].id).toBe('doc-2');

    // online backup: the server keeps the writer lock, the CLI reads a snapshot
    const b = await kyrodb(['backup', 'create', '--full', '--data-dir', data, '--output', backups, '--json']);
    expect(b.code, b.stderr).toBe(0);
    const manifest = JSON.parse(b.stdout) as { backup_id: string; to_seq: number };
    expect(manifest.to_seq).toBe(51);
    const list = await kyrodb(['backup', 'list', '--output', backups, '--json']);
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as { backup_id: string }[]).map((m) => m.backup_id)).toEqual([manifest.backup_id]);
    const verify = await kyrodb(['backup', 'verify', '--backup-id', 'latest', '--output', backups, '--json']);
    expect(verify.code, verify.stderr + verify.stdout).toBe(0);
    // Nothing written since: an empty incremental, said so (not "seq 52..51").
    const inc = await kyrodb(['backup', 'create', '--incremental', '--data-dir', data, '--output', backups]);
    expect(inc.code, inc.stderr).toBe(0);
    expect(inc.stdout).toMatch(/\(incremental\) no new events after seq 51, 50 vectors/);
    const listed = await kyrodb(['backup', 'list', '--output', backups]);
    expect(listed.stdout).toMatch(/incremental .* no new events after seq 51 .*\n.*full .* seq 1\.\.51 /); // newest first

    // restore refuses while the server holds the data dir
    const refused = await kyrodb(['restore', '--backup-id', manifest.backup_id, '--from', backups, '--data-dir', data, '--force']);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/held by a running server|in use|lock/i);

    expect(await server.stop('SIGTERM')).toBe(0);
    server = undefined;

    const dry = await kyrodb(['restore', '--backup-id', manifest.backup_id, '--from', backups, '--data-dir', restored, '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    const r = await kyrodb(['restore', '--backup-id', manifest.backup_id, '--from', backups, '--data-dir', restored, '--json']);
    expect(r.code, r.stderr).toBe(0);

    const q = await kyrodb(['query', '--doc-id', 'doc-4', '--collection', 'docs', '--data-dir', restored, '--json']);
    expect(q.code, q.stderr).toBe(0);
    expect(JSON.parse(q.stdout)).toMatchObject({ id: 'doc-4', metadata: { i: 4, even: true } });

    server = await startServer(['--data-dir', restored], { KYRODB_BACKUP_ENABLED: 'false', KYRODB_BACKUP_LOCAL_DIR: backups });
    expect(await ask(server.url)).toEqual(before);
    expect((await call(server.url, 'GET', '/v1/audit/head')).json.seq).toBe(51);
    expect(await server.stop('SIGTERM')).toBe(0);
    server = undefined;
  });
});
