import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventLog, FakeClock, rxjs, toHex } from '@kyrodb/log';
import type { AppendResult } from '@kyrodb/log';
import { auditRoutes, formatMicros } from '../packages/api/src/audit/index.js';
import { Fastify, alterEvent, copyDir, createColl, tmpDir, upsert } from './auditHelpers.js';
import type { App } from './auditHelpers.js';

type Ev = { seq: number; type: string; actor: string | null; body: { id?: string } };

// Once with fastify's default Ajv (coerces, strips unknown keys) and once with the server's
// strict Ajv (no coercion, no stripping): the routes must behave the same under both.
const AJV_CONFIGS: [string, Record<string, unknown>][] = [
  ['default Ajv', {}],
  ['strict Ajv as in server.ts', { ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } } }],
];

describe.each(AJV_CONFIGS)('audit HTTP routes (fastify inject, %s)', (_name, fastifyOptions) => {
  let dir: string;
  let log: EventLog;
  let clock: FakeClock;
  let app: App;
  const commits: AppendResult[] = [];

  beforeAll(async () => {
    dir = tmpDir();
    clock = new FakeClock();
    log = await EventLog.open({ dir, clock, logger: () => {} });
    commits.push(await log.append([createColl('c', 2, 'admin')]));
    clock.advance(5);
    commits.push(await log.append([upsert('c', 'a', [1, 2], { v: 1 }, 'alice'), upsert('c', 'b', [0.1, -0.5])]));
    clock.advance(5);
    commits.push(await log.append([upsert('c', 'a', [3, 4], { v: 2 }, 'bob')]));
    clock.advance(5);
    commits.push(await log.append([{ type: 'vector.deleted', collection: 'c', actor: 'bob', body: { id: 'b' } }]));
    clock.advance(5);
    app = Fastify(fastifyOptions);
    await app.register(auditRoutes, { log, clock });
    await app.ready();
  });

  afterAll(async () => {
    await app.close();
    await log.close();
  });

  it('GET /v1/audit/head returns the head digest', async () => {
    const r = await app.inject({ method: 'GET', url: '/v1/audit/head' });
    expect(r.statusCode).toBe(200);
    const h = log.head();
    expect(r.json()).toEqual({ seq: 5, ts: h.ts, ts_iso: formatMicros(h.ts), hash: toHex(h.hash) });
  });

  it('GET /v1/audit/head?asOf=T answers the head digest at T; unknown query parameters are 400', async () => {
    const at = async (q: string) => app.inject({ method: 'GET', url: `/v1/audit/head${q}` });
    const e2 = log.get(3)!; // the last event of the second commit
    expect((await at(`?asOf=${commits[1]!.ts}`)).json()).toEqual({ seq: 3, ts: e2.ts, ts_iso: formatMicros(e2.ts), hash: toHex(e2.hash) });
    expect((await at(`?asOf=${commits[0]!.ts - 1}`)).json()).toEqual({ seq: 0, ts: 0, ts_iso: null, hash: '0'.repeat(64) });
    const future = await at('?asOf=2200-01-01T00:00:00Z');
    expect([future.statusCode, future.json().error.code]).toEqual([422, 'AUDIT_TIME_IN_FUTURE']);
    for (const url of ['/v1/audit/head?x=1', '/v1/collections/c/vectors/a/history?asOf=0', '/v1/collections/c/vectors/a/history?x=1']) {
      const r = await app.inject({ method: 'GET', url });
      expect([r.statusCode, r.json().error.code], url).toEqual([400, 'AUDIT_BAD_REQUEST']);
    }
    const v = await app.inject({ method: 'POST', url: '/v1/audit/verify?x=1', payload: {} });
    expect([v.statusCode, v.json().error.code]).toEqual([400, 'AUDIT_BAD_REQUEST']);
  });

  it('POST /v1/audit/verify: {seq, hash} and {digest} that the log extends -> 200', async () => {
    const e2 = log.get(2)!;
    const a = await app.inject({ method: 'POST', url: '/v1/audit/verify', payload: { seq: 2, hash: toHex(e2.hash) } });
    expect(a.statusCode).toBe(200);
    expect(a.json()).toMatchObject({ ok: true, extends: true, checked: 5, head: { seq: 5 } });
    const b = await app.inject({ method: 'POST', url: '/v1/audit/verify', payload: { digest: `2:${toHex(e2.hash)}` } });
    expect(b.statusCode).toBe(200);
    // The empty log's digest (what GET /v1/audit/head answered before the first write): every log extends it.
    for (const payload of [{ digest: `0:${'0'.repeat(64)}` }, { seq: 0, hash: '0'.repeat(64) }]) {
      const g = await app.inject({ method: 'POST', url: '/v1/audit/verify', payload });
      expect([g.statusCode, g.json()]).toMatchObject([200, { ok: true, extends: true, checked: 5 }]);
    }
    const c = await app.inject({ method: 'POST', url: '/v1/audit/verify', payload: {} });
    expect(c.json()).toMatchObject({ ok: true, extends: false });
    const none = await app.inject({ method: 'POST', url: '/v1/audit/verify' }); // no body: the chain only
    expect([none.statusCode, none.json().ok]).toEqual([200, true]);
  });

  it('POST /v1/audit/verify: a digest the log does not extend -> 409 naming the seq', async () => {
    const r = await app.inject({ method: 'POST', url: '/v1/audit/verify', payload: { seq: 3, hash: 'ab'.repeat(32) } });
    expect(r.statusCode).toBe(409);
    expect(r.json()).toMatchObject({ ok: false, seq: 3, problem: 'digest_mismatch' });
    const beyond = await app.inject({ method: 'POST', url: '/v1/audit/verify', payload: { seq: 99, hash: 'ab'.repeat(32) } });
    expect(beyond.statusCode).toBe(409);
    expect(beyond.json()).toMatchObject({ ok: false, seq: 99, problem: 'digest_beyond_head' });
  });

  it('POST /v1/audit/verify on a tampered copy -> 409 naming the altered seq', async () => {
    const copy = copyDir(dir);
    alterEvent(copy, 3, (e) => ({ ...e, actor: 'mallory' }));
    const ro = await EventLog.open({ dir: copy, readOnly: true, logger: () => {} });
    const app2 = Fastify();
    await app2.register(auditRoutes, { log: ro });
    const r = await app2.inject({ method: 'POST', url: '/v1/audit/verify', payload: { digest: `5:${toHex(log.head().hash)}` } });
    expect(r.statusCode).toBe(409);
    expect(r.json()).toMatchObject({ ok: false, seq: 3, problem: 'hash_mismatch' });
    await app2.close();
    await ro.close();
  });

  it('POST /v1/audit/verify: malformed digests -> 400 AUDIT_BAD_DIGEST / schema errors -> 400', async () => {
    for (const payload of [{ digest: 'nope' }, { digest: '0:' + 'ab'.repeat(32) }, { seq: 1 }, { hash: 'ab'.repeat(32) }, { seq: 1, hash: 'xyz' }, { digest: `1:${'ab'.repeat(32)}`, seq: 1 }, { seq: 0, hash: 'ab'.repeat(32) }]) {
      const r = await app.inject({ method: 'POST', url: '/v1/audit/verify', payload });
      expect(r.statusCode, JSON.stringify(payload)).toBe(400);
      expect(r.json().error.code).toBe('AUDIT_BAD_DIGEST');
    }
    for (const payload of [{ extra: 1 }, { seq: 'x', hash: 'ab'.repeat(32) }, { seq: -1, hash: 'ab'.repeat(32) }]) {
      const r = await app.inject({ method: 'POST', url: '/v1/audit/verify', payload });
      expect(r.statusCode, JSON.stringify(payload)).toBe(400);
      expect(r.json().error).toMatchObject({ code: 'AUDIT_BAD_REQUEST' });
    }
  });

  it('GET /v1/audit/state?asOf= streams the kyrodb-state export as of T', async () => {
    const t = commits[2]!.ts; // after a->[3,4], before the delete of b
    const r = await app.inject({ method: 'GET', url: `/v1/audit/state?asOf=${encodeURIComponent(formatMicros(t))}` });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toContain('application/x-ndjson');
    const lines = r.body.trim().split('\n').map((l: string) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ kind: 'header', as_of_micros: t, head: { seq: 4 }, collections: 1, documents: 2 });
    expect(lines[1]).toMatchObject({ kind: 'collection', name: 'c', count: 2, version: 4 });
    expect(lines[2]).toEqual({ kind: 'doc', collection: 'c', id: 'a', vector: [3, 4], metadata: { v: 2 }, seq: 4, ts: t });
    expect(lines[3]).toMatchObject({ kind: 'doc', id: 'b', vector: [Math.fround(0.1), -0.5], metadata: null });
    expect(lines[4]).toEqual({ kind: 'footer', collections: 1, documents: 2 });
  });

  it('as-of T: before the first event is empty; in the future is 422; malformed is 400', async () => {
    const before = await app.inject({ method: 'GET', url: `/v1/audit/state?asOf=${commits[0]!.ts - 1}` });
    expect(before.statusCode).toBe(200);
    expect(before.body.trim().split('\n').map((l: string) => JSON.parse(l))[0]).toMatchObject({ head: { seq: 0 }, documents: 0 });
    const future = await app.inject({ method: 'GET', url: `/v1/audit/state?asOf=${clock.nowMicros() + 1_000_000}` });
    expect(future.statusCode).toBe(422);
    expect(future.json().error.code).toBe('AUDIT_TIME_IN_FUTURE');
    const bad = await app.inject({ method: 'GET', url: '/v1/audit/state?asOf=yesterday' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe('AUDIT_BAD_TIME');
    const unknown = await app.inject({ method: 'GET', url: '/v1/audit/state?as_of=1' });
    expect(unknown.statusCode).toBe(400);
  });

  it('GET /v1/audit/collections/:name[/vectors/:id]?asOf= answer as of T', async () => {
    const t1 = commits[1]!.ts;
    const c = await app.inject({ method: 'GET', url: `/v1/audit/collections/c?asOf=${t1}` });
    expect(c.statusCode).toBe(200);
    expect(c.json()).toMatchObject({ collection: { name: 'c', count: 2 }, head: { seq: 3 }, documents: [{ id: 'a', vector: [1, 2], metadata: { v: 1 } }, { id: 'b' }] });
    const d = await app.inject({ method: 'GET', url: `/v1/audit/collections/c/vectors/a?asOf=${t1}` });
    expect(d.json()).toMatchObject({ id: 'a', vector: [1, 2], metadata: { v: 1 }, seq: 2 });
    // Every as-of answer carries the head digest at T, the document's too (it had none), in the
    // shape the collection's and /v1/audit/head?asOf=T give.
    const e3 = log.get(3)!;
    const headAtT1 = { seq: 3, ts: e3.ts, ts_iso: formatMicros(e3.ts), hash: toHex(e3.hash) };
    expect(c.json().head).toEqual(headAtT1);
    expect(d.json().head).toEqual(headAtT1);
    expect((await app.inject({ method: 'GET', url: `/v1/audit/head?asOf=${t1}` })).json()).toEqual(headAtT1);
    const now = await app.inject({ method: 'GET', url: '/v1/audit/collections/c/vectors/a' });
    expect(now.json()).toMatchObject({ vector: [3, 4], seq: 4, head: { seq: 5, hash: toHex(log.head().hash) } });
    const gone = await app.inject({ method: 'GET', url: '/v1/audit/collections/c/vectors/b' });
    expect(gone.statusCode).toBe(404);
    expect(gone.json().error.code).toBe('AUDIT_DOC_NOT_FOUND');
    const noColl = await app.inject({ method: 'GET', url: `/v1/audit/collections/c?asOf=${commits[0]!.ts - 1}` });
    expect(noColl.statusCode).toBe(404);
    expect(noColl.json().error.code).toBe('AUDIT_UNKNOWN_COLLECTION');
  });

  it('GET /v1/log pages by seq and by time', async () => {
    const p1 = await app.inject({ method: 'GET', url: '/v1/log?limit=2' });
    expect(p1.statusCode).toBe(200);
    const j1 = p1.json();
    expect(j1.events.map((e: Ev) => e.seq)).toEqual([1, 2]);
    expect(j1.next).toBe(3);
    expect(j1.events[1]).toMatchObject({ type: 'vector.upserted', collection: 'c', actor: 'alice', body: { id: 'a', vector: [1, 2], metadata: { v: 1 } }, prev_hash: toHex(log.get(1)!.hash), hash: toHex(log.get(2)!.hash) });
    expect(j1.events[0]).toMatchObject({ actor: 'admin', body: { dimension: 2, metric: 'l2' }, prev_hash: '0'.repeat(64) });
    const p2 = await app.inject({ method: 'GET', url: `/v1/log?fromSeq=${j1.next}&limit=2` });
    expect(p2.json().events.map((e: Ev) => e.seq)).toEqual([3, 4]);
    const p3 = await app.inject({ method: 'GET', url: `/v1/log?fromSeq=5&limit=2` });
    expect(p3.json()).toMatchObject({ next: null });
    expect(p3.json().events.map((e: Ev) => e.seq)).toEqual([5]);
    const byTime = await app.inject({ method: 'GET', url: `/v1/log?fromTime=${commits[1]!.ts}&toTime=${encodeURIComponent(formatMicros(commits[2]!.ts))}` });
    expect(byTime.json().events.map((e: Ev) => e.seq)).toEqual([2, 3, 4]);
    expect((await app.inject({ method: 'GET', url: '/v1/log?limit=0' })).statusCode).toBe(400);
    expect((await app.inject({ method: 'GET', url: '/v1/log?limit=100000' })).statusCode).toBe(400);
    expect((await app.inject({ method: 'GET', url: '/v1/log?bogus=1' })).statusCode).toBe(400);
    const crossed = await app.inject({ method: 'GET', url: '/v1/log?fromSeq=5&toSeq=3' });
    expect([crossed.statusCode, crossed.json().error.code]).toEqual([400, 'AUDIT_BAD_REQUEST']);
    // A crossed time range is refused the same way (it was an empty 200 page).
    const crossedTime = await app.inject({ method: 'GET', url: `/v1/log?fromTime=${commits[2]!.ts}&toTime=${commits[1]!.ts}` });
    expect([crossedTime.statusCode, crossedTime.json().error.code]).toEqual([400, 'AUDIT_BAD_REQUEST']);
    expect(crossedTime.json().error.message).toMatch(/fromTime .* is after toTime/);
    // Equal bounds are a range of one instant, not crossed.
    const oneInstant = await app.inject({ method: 'GET', url: `/v1/log?fromTime=${commits[1]!.ts}&toTime=${commits[1]!.ts}` });
    expect(oneInstant.statusCode).toBe(200);
  });

  it('GET /v1/collections/:name/vectors/:id/history lists every event of the document, with the create of its collection', async () => {
    const r = await app.inject({ method: 'GET', url: '/v1/collections/c/vectors/b/history' });
    expect(r.statusCode).toBe(200);
    expect(r.json().events.map((e: Ev) => [e.seq, e.type, e.actor])).toEqual([
      [1, 'collection.created', 'admin'],
      [3, 'vector.upserted', null],
      [5, 'vector.deleted', 'bob'],
    ]);
    const bad = await app.inject({ method: 'GET', url: '/v1/collections/c%20x/vectors/b/history' });
    expect(bad.statusCode).toBe(400);
  });

  it('GET /v1/log/stream tails the log live (catch-up, then new commits) until the client disconnects', async () => {
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as { port: number }).port;
    const seen: Ev[] = [];
    let req!: http.ClientRequest;
    const gotSeven = new Promise<void>((resolve, reject) => {
      req = http.get({ host: '127.0.0.1', port, path: '/v1/log/stream?fromSeq=4' }, (res) => {
        expect(res.statusCode).toBe(200);
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            seen.push(JSON.parse(buf.slice(0, i)) as Ev);
            buf = buf.slice(i + 1);
            if (seen.length === 2) {
              // Caught up (4, 5): now commit live events.
              void log.append([upsert('c', 'z', [9, 9], undefined, 'live')]).then(() => log.append([upsert('c', 'y', [8, 8])]));
            }
            if (seen.length === 4) resolve();
          }
        });
        res.on('error', () => {});
      });
      req.on('error', reject);
    });
    await gotSeven;
    expect(seen.map((e) => e.seq)).toEqual([4, 5, 6, 7]);
    expect(seen[2]).toMatchObject({ actor: 'live', body: { id: 'z' } });
    req.destroy();
    // The server side ends the stream: a later commit must not throw or leak.
    await log.append([upsert('c', 'w', [1, 1])]);
  });
});


describe('GET /v1/log/stream and a client that reads slowly', () => {
  it('stops reading the log while the client does not read, and resumes with no event lost or repeated', async () => {
    const dir = tmpDir();
    const log = await EventLog.open({ dir, logger: () => {} });
    const app = Fastify({});
    await app.register(auditRoutes, { log });
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      await log.append([createColl('c', 512)]);
      // ~40 MB of NDJSON: far more than the stream (1 MiB) and the sockets buffer for one client.
      for (let b = 0; b < 16; b++) await log.append(Array.from({ length: 250 }, (_, i) => upsert('c', `d${b}-${i}`, Array.from({ length: 512 }, (_, j) => Math.sin(b * 1000 + i + j)))));
      const total = log.head().seq;
      // Counts what the route takes from the log.
      let taken = 0;
      let takenWhilePaused = -1;
      const tail = log.tail.bind(log);
      log.tail = (...a: Parameters<EventLog['tail']>) => tail(...a).pipe(rxjs().tap(() => taken++));
      const port = (app.server.address() as { port: number }).port;
      const seqs: number[] = [];
      let req!: http.ClientRequest;
      await new Promise<void>((resolve, reject) => {
        req = http.get({ host: '127.0.0.1', port, path: '/v1/log/stream?fromSeq=1' }, (res) => {
          let buf = '';
          res.setEncoding('utf8');
          res.pause(); // not read at first: the server must stop, not buffer it all
          setTimeout(() => {
            takenWhilePaused = taken;
            void log.append([upsert('c', 'live', Array.from({ length: 512 }, () => 1))]); // committed while paused
            res.resume();
          }, 1000);
          res.on('data', (chunk: string) => {
            buf += chunk;
            let i;
            while ((i = buf.indexOf('\n')) >= 0) {
              seqs.push((JSON.parse(buf.slice(0, i)) as Ev).seq);
              buf = buf.slice(i + 1);
            }
            if (seqs.length >= total + 1) resolve();
          });
          res.on('error', () => {});
        });
        req.on('error', reject);
      });
      expect(seqs).toEqual(Array.from({ length: total + 1 }, (_, i) => i + 1));
      // While the client read nothing, the route stopped taking events (without backpressure it took them all at once).
      expect(takenWhilePaused).toBeGreaterThan(0);
      expect(takenWhilePaused).toBeLessThan(total / 2);
      req.destroy();
    } finally {
      await app.close();
      await log.close();
    }
  }, 60_000);
});

describe('GET /v1/audit/state: state exports served at once are bounded', () => {
  it('beyond maxStateExports (default 2) running, 429 AUDIT_BUSY with Retry-After; a slot is free again once a reader goes away', async () => {
    const dir = tmpDir();
    const log = await EventLog.open({ dir, logger: () => {} });
    const app = Fastify({});
    await app.register(auditRoutes, { log });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as { port: number }).port;
    const open: http.ClientRequest[] = [];
    /** A request whose answer is not read (held, as a slow reader does), or read whole. */
    const get = (read: boolean): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string; req: http.ClientRequest }> =>
      new Promise((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path: '/v1/audit/state' }, (res) => {
          open.push(req);
          if (!read && res.statusCode === 200) {
            res.pause();
            resolve({ status: 200, headers: res.headers, body: '', req });
            return;
          }
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, req }));
          res.on('error', reject);
        });
        req.on('error', () => {});
      });
    try {
      await log.append([createColl('c', 512)]);
      // ~40 MB of NDJSON: an export not read stays running (far more than the sockets buffer).
      for (let b = 0; b < 16; b++) await log.append(Array.from({ length: 250 }, (_, i) => upsert('c', `d${b}-${i}`, Array.from({ length: 512 }, (_, j) => Math.sin(b * 1000 + i + j)))));
      const first = await get(false);
      await get(false);
      const busy = await get(true);
      expect(busy.status).toBe(429);
      expect(busy.headers['retry-after']).toBe('1');
      expect(JSON.parse(busy.body).error.code).toBe('AUDIT_BUSY');
      first.req.destroy(); // its reader goes away: the export stops and gives its slot back
      let again = await get(true);
      for (let i = 0; i < 50 && again.status === 429; i++) {
        await new Promise((r) => setTimeout(r, 100));
        again = await get(true);
      }
      expect(again.status).toBe(200);
      const lines = again.body.trim().split('\n').map((l) => JSON.parse(l) as { kind: string; documents?: number });
      expect(lines.at(-1)).toEqual({ kind: 'footer', collections: 1, documents: 4000 });
    } finally {
      for (const r of open) r.destroy();
      await app.close();
      await log.close();
    }
  }, 60_000);
});

describe('GET /v1/audit/state: a reader that holds its connection but reads nothing', () => {
  it('is cut off after stateExportStallMs, and its slot is free again; a reader that keeps reading gets the whole export', async () => {
    const dir = tmpDir();
    const log = await EventLog.open({ dir, logger: () => {} });
    const app = Fastify({});
    await app.register(auditRoutes, { log, maxStateExports: 1, stateExportStallMs: 400 });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as { port: number }).port;
    const open: http.ClientRequest[] = [];
    try {
      await log.append([createColl('c', 512)]);
      // ~40 MB of NDJSON: far more than the sockets buffer.
      for (let b = 0; b < 16; b++) await log.append(Array.from({ length: 250 }, (_, i) => upsert('c', `d${b}-${i}`, Array.from({ length: 512 }, (_, j) => Math.sin(b * 1000 + i + j)))));
      // The stalled reader: takes the answer's head, then reads nothing, its connection kept
      // open. (A paused client does not itself see the server close the connection: it reads
      // nothing, the close included. The server's side is what is checked.)
      await new Promise<void>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path: '/v1/audit/state' }, (res) => {
          expect(res.statusCode).toBe(200);
          res.pause();
          res.on('error', () => {});
          resolve();
        });
        req.on('error', reject);
        open.push(req);
      });
      const connections = (): Promise<number> => new Promise((resolve, reject) => app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
      expect(await connections()).toBe(1);
      /** An export read whole at a slow but steady pace (pauses shorter than the stall limit are not a stall). */
      const readSlowly = (): Promise<{ status: number; body: string }> =>
        new Promise((resolve, reject) => {
          const req = http.get({ host: '127.0.0.1', port, path: '/v1/audit/state' }, (res) => {
            const parts: string[] = [];
            let n = 0;
            res.setEncoding('utf8');
            res.on('data', (c: string) => {
              parts.push(c);
              if (++n % 200 === 0) {
                res.pause();
                setTimeout(() => res.resume(), 150);
              }
            });
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: parts.join('') }));
            res.on('error', reject);
          });
          req.on('error', reject);
          open.push(req);
        });
      // The slot is held while the reader stalls (429), then freed: the server closed the stalled
      // connection and serves the next export whole.
      let r = await readSlowly();
      expect(r.status).toBe(429);
      for (let i = 0; i < 200 && r.status === 429; i++) {
        await new Promise((res) => setTimeout(res, 100));
        r = await readSlowly();
      }
      expect(r.status).toBe(200);
      expect(await connections()).toBeLessThanOrEqual(1); // the stalled one is closed (keep-alive may hold the last)
      const body = r.body;
      const lines = body.trim().split('\n');
      expect(JSON.parse(lines.at(-1)!)).toEqual({ kind: 'footer', collections: 1, documents: 4000 });
      expect(lines.length).toBe(4003);
    } finally {
      for (const r of open) r.destroy();
      await app.close();
      await log.close();
    }
  }, 60_000);
});

describe('GET /v1/collections/:name/vectors/:id/history: a document that never was is 404, one that is gone keeps its history', () => {
  let dir: string;
  let log: EventLog;
  let app: App;
  beforeAll(async () => {
    dir = tmpDir();
    log = await EventLog.open({ dir, logger: () => {} });
    await log.append([createColl('c', 2), upsert('c', 'kept', [1, 2]), upsert('c', 'gone', [3, 4])]);
    await log.append([{ type: 'vector.deleted', collection: 'c', body: { id: 'gone' } }]);
    await log.append([createColl('dropped', 1), upsert('dropped', 'x', [1])]);
    await log.append([{ type: 'collection.dropped', collection: 'dropped', body: {} }]);
    app = Fastify();
    await app.register(auditRoutes, { log });
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
    await log.close();
  });

  it.each([
    ['an unknown collection', '/v1/collections/nope/vectors/kept/history', 404, 'API_COLLECTION_NOT_FOUND'],
    ['an unknown document', '/v1/collections/c/vectors/never/history', 404, 'API_DOC_NOT_FOUND'],
    ['an invalid collection name', '/v1/collections/..%2Fx/vectors/kept/history', 400, 'API_INVALID_NAME'],
    ['an invalid document id', '/v1/collections/c/vectors/a%20b/history', 400, 'API_INVALID_NAME'],
    ['an invalid name on an audit route', '/v1/audit/collections/-x', 400, 'API_INVALID_NAME'],
  ])('%s (%s) → %i %s', async (_name, url, status, code) => {
    const r = await app.inject({ method: 'GET', url });
    expect([r.statusCode, r.json().error.code]).toEqual([status, code]);
  });

  it('a deleted document, and one whose collection was dropped, still show their history', async () => {
    const gone = await app.inject({ method: 'GET', url: '/v1/collections/c/vectors/gone/history' });
    expect(gone.statusCode).toBe(200);
    expect(gone.json().events.map((e: Ev) => e.type)).toEqual(['collection.created', 'vector.upserted', 'vector.deleted']);
    const dropped = await app.inject({ method: 'GET', url: '/v1/collections/dropped/vectors/x/history' });
    expect(dropped.statusCode).toBe(200);
    expect(dropped.json().events.map((e: Ev) => e.type)).toEqual(['collection.created', 'vector.upserted', 'collection.dropped']);
  });
});
