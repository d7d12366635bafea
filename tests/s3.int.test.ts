import { createHash } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import S3rver from 's3rver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, kyrodb, startServer, tmp, vectorFor } from './serverProcess.js';
import type { ServerProc } from './serverProcess.js';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, tries = 900): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

// `serve` with S3 (a real s3rver on 127.0.0.1): continuous backup ships the log, the cron
// schedule takes full backups inside the server, POST /v1/backups works, and the CLI restores
// from S3 (by id and to a point in time) into new data dirs.
describe('serve with S3: scheduled + continuous backups, restore from S3', { timeout: 240_000 }, () => {
  let s3: S3rver;
  let env: Record<string, string>;
  let server: ServerProc | undefined;
  const dir = tmp();
  beforeAll(async () => {
    const port = await freePort();
    s3 = new S3rver({ port, address: '127.0.0.1', silent: true, directory: tmp('kyro-s3rver-'), configureBuckets: [{ name: 'kyro' }], resetOnClose: false });
    await s3.run();
    env = {
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      KYRODB_BACKUP_S3_ENABLED: 'true',
      KYRODB_BACKUP_S3_BUCKET: 'kyro',
      KYRODB_BACKUP_S3_PREFIX: 'e2e',
      KYRODB_BACKUP_S3_REGION: 'us-east-1',
      KYRODB_BACKUP_S3_ENDPOINT: `http://127.0.0.1:${port}`,
      KYRODB_BACKUP_S3_FORCE_PATH_STYLE: 'true',
      KYRODB_BACKUP_CONTINUOUS_ENABLED: 'true',
      KYRODB_BACKUP_CONTINUOUS_INTERVAL_MS: '200',
      KYRODB_BACKUP_FULL_BACKUP_SCHEDULE: '*/2 * * * * *',
      KYRODB_BACKUP_INCREMENTAL_BACKUP_SCHEDULE: '0 0 1 1 *',
    };
  });
  afterAll(async () => {
    await server?.stop('SIGKILL');
    await s3.close();
  });

  it('backs up while serving and restores from S3', async () => {
    server = await startServer(['--data-dir', path.join(dir, 'data')], env);
    const { url } = server;
    expect((await call(url, 'PUT', '/v1/collections/c', { dimension: 4, metric: 'l2' })).status).toBe(201);
    const w1 = await call(url, 'POST', '/v1/collections/c/vectors', { vectors: [{ id: 'first', vector: vectorFor(1, 4) }] });
    expect(w1.status).toBe(200);
    await new Promise((r) => setTimeout(r, 20));
    const w2 = await call(url, 'POST', '/v1/collections/c/vectors', { vectors: [{ id: 'second', vector: vectorFor(2, 4) }] });
    expect(w2.status).toBe(200);

    // continuous backup catches up; its lag is on /metrics and in the health report
    const cont = await until('continuous backup to ship seq ' + w2.json.seq, async () => {
      const h = (await call(url, 'GET', '/v1/admin/health')).json;
      return h.continuousBackup?.shippedSeq >= w2.json.seq ? h.continuousBackup : undefined;
    });
    expect(cont.lagEvents).toBe(0);
    expect(await fetch(url + '/metrics').then((r) => r.text())).toMatch(/^backup_continuous_lag_events 0$/m);

    // the cron schedule runs a full backup inside serve
    const scheduled = await until('a scheduled full backup', async () => {
      const l = await kyrodb(['backup', 'list', '--json'], env);
      if (l.code !== 0) throw new Error(l.stderr);
      const list = JSON.parse(l.stdout) as { backup_id: string; type: string; to_seq: number; tag?: string; description?: string }[];
      return list.find((m) => m.type === 'full' && m.to_seq >= w2.json.seq);
    });
    // Marked as scheduled, not tagged: a tag would keep it from retention for good.
    expect(scheduled).toMatchObject({ description: 'scheduled' });
    expect(scheduled.tag).toBeUndefined();

    // a backup over HTTP
    const b = await call(url, 'POST', '/v1/backups', { type: 'full', tag: 'manual' });
    expect(b.status, JSON.stringify(b.json)).toBe(201);
    expect(b.json.backup_id).toBeTruthy();
    expect((await call(url, 'GET', '/v1/backups')).json.backups.length).toBeGreaterThanOrEqual(2);

    // Retention (backup.retention) runs after each scheduled backup: within one hour a later
    // scheduled full replaces the earlier one; the tagged backup stays.
    const listed = async (): Promise<{ backup_id: string; type: string; tag?: string; description?: string }[]> => {
      const l = await kyrodb(['backup', 'list', '--json'], env);
      if (l.code !== 0) throw new Error(l.stderr);
      return JSON.parse(l.stdout) as { backup_id: string; type: string; tag?: string; description?: string }[];
    };
    await until('a later scheduled full backup to prune the first', async () => {
      const list = await listed();
      const later = list.some((m) => m.description === 'scheduled' && m.backup_id > scheduled.backup_id);
      return later && !list.some((m) => m.backup_id === scheduled.backup_id) ? true : undefined;
    });
    const kept = await listed();
    expect(kept.filter((m) => m.type === 'full' && m.description === 'scheduled').length).toBeLessThanOrEqual(2);
    expect(kept.some((m) => m.backup_id === b.json.backup_id && m.tag === 'manual')).toBe(true);

    // Presigned URLs: downloaded without credentials, each file is what the manifest says it is.
    const u = await kyrodb(['backup', 'urls', '--backup-id', b.json.backup_id, '--expires-in', '600', '--json'], env);
    expect(u.code, u.stderr).toBe(0);
    const urls = JSON.parse(u.stdout) as { backup_id: string; files: { key: string; kind: string; sha256?: string; url: string }[] };
    expect(urls.backup_id).toBe(b.json.backup_id);
    expect(urls.files[0]!.kind).toBe('manifest');
    expect(urls.files.length).toBeGreaterThan(1);
    for (const f of urls.files) {
      const res = await fetch(f.url);
      expect(res.status, f.key).toBe(200);
      const bytes = Buffer.from(await res.arrayBuffer());
      if (f.kind === 'manifest') expect((JSON.parse(bytes.toString('utf8')) as { backup_id: string }).backup_id).toBe(b.json.backup_id);
      else expect(createHash('sha256').update(bytes).digest('hex'), f.key).toBe(f.sha256);
    }
    expect((await kyrodb(['backup', 'urls', '--backup-id', b.json.backup_id, '--expires-in', '604801'], env)).code).toBe(2);

    expect(await server.stop()).toBe(0);
    server = undefined;

    // restore by id from S3 into a new dir
    const byId = path.join(dir, 'by-id');
    const r1 = await kyrodb(['restore', '--backup-id', b.json.backup_id, '--data-dir', byId, '--json'], env);
    expect(r1.code, r1.stderr).toBe(0);
    const q1 = await kyrodb(['query', '--doc-id', 'second', '--collection', 'c', '--data-dir', byId, '--json']);
    expect(q1.code, q1.stderr).toBe(0);

    // point in time: just after the first write, before the second
    const pitr = path.join(dir, 'pitr');
    const r2 = await kyrodb(['restore', '--point-in-time', w1.json.ts, '--data-dir', pitr, '--json'], env);
    expect(r2.code, r2.stderr).toBe(0);
    expect((await kyrodb(['query', '--doc-id', 'first', '--collection', 'c', '--data-dir', pitr])).code).toBe(0);
    expect((await kyrodb(['query', '--doc-id', 'second', '--collection', 'c', '--data-dir', pitr])).code).toBe(4);

    // An auditor verifies that backup where it is: the S3 endpoint from the same settings
    // (env here; --config works alike). Without them the command could only reach AWS itself.
    const av = await kyrodb(['audit', 'verify', '--backup-id', b.json.backup_id, '--store', 's3://kyro/e2e', '--json'], env);
    expect(av.code, av.stderr).toBe(0);
    expect(JSON.parse(av.stdout)).toMatchObject({ ok: true, backup_id: b.json.backup_id });
  });
});

// A database must start while its backup target is down: `serve` with continuous backup to an S3
// that does not answer yet comes up, takes writes, reports the backup as resuming (health, lag),
// and ships everything once S3 is there.
describe('serve while S3 is down', { timeout: 240_000 }, () => {
  let s3: S3rver | undefined;
  let server: ServerProc | undefined;
  afterAll(async () => {
    await server?.stop('SIGKILL');
    await s3?.close();
  });

  it('starts, takes writes, reports the backup resuming, and ships everything once S3 answers', async () => {
    const port = await freePort();
    const env = {
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      KYRODB_BACKUP_ENABLED: 'false',
      KYRODB_BACKUP_S3_ENABLED: 'true',
      KYRODB_BACKUP_S3_BUCKET: 'kyro',
      KYRODB_BACKUP_S3_PREFIX: 'down',
      KYRODB_BACKUP_S3_REGION: 'us-east-1',
      KYRODB_BACKUP_S3_ENDPOINT: `http://127.0.0.1:${port}`,
      KYRODB_BACKUP_S3_FORCE_PATH_STYLE: 'true',
      KYRODB_BACKUP_CONTINUOUS_ENABLED: 'true',
      KYRODB_BACKUP_CONTINUOUS_INTERVAL_MS: '100',
    };
    server = await startServer(['--data-dir', path.join(tmp(), 'data')], env);
    const { url } = server;
    expect((await call(url, 'GET', '/readyz')).status).toBe(200);
    expect((await call(url, 'PUT', '/v1/collections/c', { dimension: 4, metric: 'l2' })).status).toBe(201);
    const w = await call(url, 'POST', '/v1/collections/c/vectors', { vectors: [{ id: 'a', vector: vectorFor(1, 4) }] });
    expect(w.status).toBe(200);
    const h = (await call(url, 'GET', '/v1/admin/health')).json;
    expect(h.continuousBackup).toMatchObject({ state: 'resuming', shippedSeq: 0 });
    expect(h.continuousBackup.lastError).toBeTruthy();
    const hc = await kyrodb(['admin', 'health-check', '--url', url], env);
    expect(hc.stdout).toContain('continuous backup: resuming');

    s3 = new S3rver({ port, address: '127.0.0.1', silent: true, directory: tmp('kyro-s3rver-'), configureBuckets: [{ name: 'kyro' }], resetOnClose: false });
    await s3.run();
    const shipped = await until('continuous backup to ship seq ' + w.json.seq, async () => {
      const c = (await call(url, 'GET', '/v1/admin/health')).json.continuousBackup;
      return c?.state === 'running' && c.shippedSeq >= w.json.seq ? c : undefined;
    });
    expect(shipped.lagEvents).toBe(0);
    expect(await server.stop()).toBe(0);
    server = undefined;
    // What it shipped restores: the write made while S3 was down is there.
    const back = path.join(tmp(), 'back');
    const r = await kyrodb(['restore', '--point-in-time', new Date(Date.now() + 60_000).toISOString(), '--data-dir', back, '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect((await kyrodb(['query', '--doc-id', 'a', '--collection', 'c', '--data-dir', back])).code).toBe(0);
  });
});
