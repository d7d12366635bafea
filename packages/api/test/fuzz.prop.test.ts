import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '@kyrodb/log';
import { inProcessNode } from './helpers.js';

type Node = Awaited<ReturnType<typeof inProcessNode>>;

const seed = Number(process.env['FC_SEED'] ?? 20261126);

// Paths: the real route shapes with arbitrary (often hostile) segments, plus raw junk.
const segment = fc.oneof(
  fc.constantFrom('docs', 'nope', 'a', '..', '%2F', '%00', '-x', 'x'.repeat(70), '%E0%A4%A', 'vectors', 'search', '{name}', ' '),
  fc.string({ maxLength: 20 }).map(encodeURIComponent),
  fc.string({ unit: 'binary', maxLength: 12 }).map(encodeURIComponent),
);
const query = fc.oneof(fc.constant(''), fc.constantFrom('?asOf=yesterday', '?asOf=2024-13-01T00:00:00Z', '?fromSeq=-1', '?limit=999999', '?x=1', '?asOf=', '?fromSeq=abc&limit=0', '?asOf=2024-01-01T00:00:00Z'), fc.string({ maxLength: 20 }).map((s) => '?' + encodeURIComponent(s) + '=1'));
const path = fc.oneof(
  fc.tuple(segment, query).map(([n, q]) => `/v1/collections/${n}${q}`),
  fc.tuple(segment, query).map(([n, q]) => `/v1/collections/${n}/vectors${q}`),
  fc.tuple(segment, segment, query).map(([n, id, q]) => `/v1/collections/${n}/vectors/${id}${q}`),
  fc.tuple(segment, segment).map(([n, id]) => `/v1/collections/${n}/vectors/${id}/history`),
  fc.tuple(segment, query).map(([n, q]) => `/v1/collections/${n}/search${q}`),
  fc.tuple(fc.constantFrom('/v1/log', '/v1/audit/head', '/v1/audit/verify', '/v1/backups', '/v1/admin/health', '/v1/admin/failpoints', '/readyz', '/v1/collections'), query).map(([p, q]) => p + q),
  fc.tuple(segment).map(([n]) => `/v1/admin/circuit-breakers/${n}/reset`),
  fc.string({ maxLength: 40 }).map((s) => '/' + encodeURIComponent(s)),
);
const num = fc.oneof(fc.double(), fc.integer(), fc.constantFrom('NaN', 'Infinity', '-Infinity', '1', null, true, 1e39, -1e39));
const vector = fc.oneof(fc.array(num, { maxLength: 5 }), fc.array(fc.double({ noNaN: true, noDefaultInfinity: true }), { minLength: 3, maxLength: 3 }), fc.jsonValue());
const badWrite = fc.oneof(
  // wrong dimension / non-finite / junk vectors (dimension 3 is valid only with finite numbers)
  fc.array(fc.record({ id: fc.oneof(fc.constantFrom('a', 'a b', '', 'x/y', 'ok'), fc.string({ maxLength: 300 })), vector: vector.filter((v) => !(Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x) && Math.abs(x) < 3e38))) }), { maxLength: 4 }).map((vectors) => ({ vectors })),
  fc.record({ vectors: fc.jsonValue(), extra: fc.jsonValue() }),
  fc.constant({ vectors: [] }),
  fc.constant({ vectors: [{ id: 'd', vector: [1, 2, 3] }, { id: 'd', vector: [1, 2, 3] }] }),
);
const body = fc.oneof(
  badWrite.map((b) => JSON.stringify(b)),
  fc.record({ vector: vector, k: fc.oneof(fc.integer({ min: -5, max: 20000 }), fc.constant('5')), filter: fc.jsonValue(), asOf: fc.oneof(fc.string({ maxLength: 30 }), fc.constant('2024-02-30T00:00:00Z')) }, { requiredKeys: [] }).map((b) => JSON.stringify(b)),
  fc.record({ dimension: fc.oneof(fc.integer({ min: -10, max: 10_000 }), fc.constant('3')), metric: fc.constantFrom('cosine', 'l2', 'ip', 'hamming', 7), hnsw: fc.jsonValue() }, { requiredKeys: [] }).map((b) => JSON.stringify(b)),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }),
  fc.constantFrom('{', '{"vectors": [', '[]', 'null', '"x"', '{"__proto__": {"x": 1}}', '{"constructor": {"prototype": {}}}', '\u0000', '{"vectors":[{"id":"a","vector":[1,1e400,0]}]}'),
);
const contentType = fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/xml', 'application/x-www-form-urlencoded', 'multipart/form-data', '', 'application/json; charset=latin1');
const headers = fc.record(
  {
    'content-type': contentType,
    authorization: fc.oneof(fc.constant('Bearer nope'), fc.string({ maxLength: 30 }).map((s) => s.replace(/[^\x20-\x7e]/g, ''))),
    'x-api-key': fc.string({ maxLength: 10 }).map((s) => s.replace(/[^\x20-\x7e]/g, '')),
    accept: fc.constantFrom('*/*', 'text/html', 'application/json'),
  },
  { requiredKeys: [] },
);
const request = fc.record({ method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'), url: path, body: fc.option(body, { nil: undefined }), headers });

describe('fuzz: bad requests against the in-process app', () => {
  let node: Node;
  beforeAll(async () => {
    node = await inProcessNode({ 'server.max_batch': 3 });
    const c = await node.app.inject({ method: 'PUT', url: '/v1/collections/docs', payload: { dimension: 3, metric: 'cosine' } });
    expect(c.statusCode).toBe(201);
    await node.app.inject({ method: 'POST', url: '/v1/collections/docs/vectors', payload: { vectors: [{ id: 'a', vector: [1, 0, 0], metadata: { n: 1 } }] } });
  });
  afterAll(async () => {
    await node.close();
  });

  it('no 5xx, no crash, and every non-2xx answer leaves the log head unchanged (4000 requests)', async () => {
    let bad = 0;
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const before = node.log.head();
        const res = await node.app.inject({ method: r.method as 'GET', url: r.url, headers: r.headers, ...(r.body !== undefined && r.method !== 'GET' && r.method !== 'HEAD' ? { payload: r.body } : {}) });
        expect(res.statusCode, `${r.method} ${r.url} → ${res.body.slice(0, 300)}`).toBeLessThan(500);
        if (res.statusCode >= 300) {
          bad += 1;
          expect(toHex(node.log.head().hash)).toBe(toHex(before.hash));
          if (r.method !== 'HEAD' && res.statusCode !== 204) {
            const j = JSON.parse(res.body) as { error?: { code?: unknown; message?: unknown } };
            expect(typeof j.error?.code).toBe('string');
            expect(typeof j.error?.message).toBe('string');
          }
        }
      }),
      { numRuns: 4000, seed },
    );
    expect(bad).toBeGreaterThan(3000);
    // The server still works: it takes a write and finds it. (In a collection of its own: the
    // requests may have been valid ones too, a DELETE of docs among them, on some seeds.)
    expect((await node.app.inject({ method: 'PUT', url: '/v1/collections/after-fuzz', payload: { dimension: 3, metric: 'cosine' } })).statusCode).toBe(201);
    expect((await node.app.inject({ method: 'POST', url: '/v1/collections/after-fuzz/vectors', payload: { vectors: [{ id: 'z', vector: [0, 0, 1] }] } })).statusCode).toBe(200);
    const s = await node.app.inject({ method: 'POST', url: '/v1/collections/after-fuzz/search', payload: { vector: [0, 0, 1], k: 1 } });
    expect(s.statusCode).toBe(200);
    expect((JSON.parse(s.body) as { results: { id: string }[] }).results.map((h) => h.id)).toEqual(['z']);
    expect(node.log.verify().ok).toBe(true);
  });
});
