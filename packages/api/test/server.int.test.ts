import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { microsToIso, toHex } from '@kyrodb/log';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Registry } from 'prom-client';
import { loadConfig } from '../src/config.js';
import { startNode } from '../src/node.js';
import { inProcessNode } from './helpers.js';

type Node = Awaited<ReturnType<typeof inProcessNode>>;

async function req(node: Node, method: string, url: string, body?: unknown, headers: Record<string, string> = {}) {
  const r = await node.app.inject({ method: method as 'GET', url, headers: body !== undefined && typeof body !== 'string' ? { 'content-type': 'application/json', ...headers } : headers, ...(body !== undefined ? { payload: typeof body === 'string' ? body : JSON.stringify(body) } : {}) });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are checked field by field
  let json: any;
  try {
    json = r.json();
  } catch {
    json = r.body;
  }
  return { status: r.statusCode, json, headers: r.headers };
}

const vec = (...xs: number[]) => xs;

describe('HTTP server (in-process, real log and projections)', () => {
  let node: Node;
  beforeAll(async () => {
    node = await inProcessNode({ 'server.max_batch': 10 }, { failpointsApi: false });
    const c = await req(node, 'PUT', '/v1/collections/docs', { dimension: 3, metric: 'cosine' });
    expect(c.status).toBe(201);
  });
  afterAll(async () => {
    await node.close();
  });

  it('collections: create is idempotent with the same settings (200), 409 with other settings, listed and described', async () => {
    expect((await req(node, 'PUT', '/v1/collections/docs', { dimension: 3, metric: 'cosine' })).status).toBe(200);
    expect((await req(node, 'PUT', '/v1/collections/docs', { dimension: 3, metric: 'cosine', hnsw: { M: 16, efConstruction: 200, efSearch: 64 } })).status).toBe(200);
    const conflict = await req(node, 'PUT', '/v1/collections/docs', { dimension: 4, metric: 'cosine' });
    expect(conflict.status).toBe(409);
    expect(conflict.json.error.code).toBe('API_COLLECTION_EXISTS');
    const list = await req(node, 'GET', '/v1/collections');
    expect(list.json.collections.map((c: { name: string }) => c.name)).toContain('docs');
    expect((await req(node, 'GET', '/v1/collections/docs')).json).toMatchObject({ name: 'docs', dimension: 3, metric: 'cosine' });
    expect((await req(node, 'GET', '/v1/collections/nope')).status).toBe(404);
  });

  it('a write answers {seq, ts, tsMicros} after the commit, and the next search sees it (read-your-writes)', async () => {
    const w = await req(node, 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'a', vector: vec(1, 0, 0), metadata: { color: 'red', n: 1 } }, { id: 'b', vector: vec(0, 1, 0), metadata: { color: 'blue', n: 2 } }] });
    expect(w.status).toBe(200);
    expect(w.json.seq).toBe(node.log.head().seq);
    expect(w.json.ts).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(Number.isInteger(w.json.tsMicros)).toBe(true);
    const s = await req(node, 'POST', '/v1/collections/docs/search', { vector: vec(1, 0.1, 0), k: 2 });
    expect(s.status).toBe(200);
    expect(s.json.results.map((h: { id: string }) => h.id)).toEqual(['a', 'b']);
    expect(s.json.results[0].metadata).toEqual({ color: 'red', n: 1 });
    const f = await req(node, 'POST', '/v1/collections/docs/search', { vector: vec(1, 0.1, 0), k: 2, filter: { color: { $in: ['blue'] }, n: { $gte: 2 } } });
    expect(f.json.results.map((h: { id: string }) => h.id)).toEqual(['b']);
    const g = await req(node, 'GET', '/v1/collections/docs/vectors/a');
    expect(g.json).toMatchObject({ id: 'a', vector: [1, 0, 0], metadata: { color: 'red', n: 1 } });
  });

  it('as-of reads and history: the old value stays readable after an overwrite', async () => {
    const w1 = await req(node, 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'h', vector: vec(1, 1, 0) }] });
    await new Promise((r) => setTimeout(r, 5));
    await req(node, 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'h', vector: vec(0, 0, 1) }] });
    const old = await req(node, 'GET', `/v1/collections/docs/vectors/h?asOf=${encodeURIComponent(w1.json.ts)}`);
    expect(old.status).toBe(200);
    expect(old.json.vector).toEqual([1, 1, 0]);
    expect((await req(node, 'GET', '/v1/collections/docs/vectors/h')).json.vector).toEqual([0, 0, 1]);
    const hist = await req(node, 'GET', '/v1/collections/docs/vectors/h/history');
    expect(hist.json.events.map((e: { type: string }) => e.type)).toEqual(['collection.created', 'vector.upserted', 'vector.upserted']);
    const asOfSearch = await req(node, 'POST', '/v1/collections/docs/search', { vector: vec(1, 1, 0), k: 1, asOf: w1.json.ts });
    expect(asOfSearch.status).toBe(200);
    expect(asOfSearch.json.results[0].id).toBe('h');
    // Both as-of answers carry the head digest at T, as the audit routes' do (the as-of rule); live ones do not.
    const headAtT = await req(node, 'GET', `/v1/audit/head?asOf=${encodeURIComponent(w1.json.ts)}`);
    expect(headAtT.json.seq).toBe(w1.json.seq);
    expect(asOfSearch.json.head).toEqual(headAtT.json);
    expect(old.json.head).toEqual(headAtT.json);
    expect((await req(node, 'POST', '/v1/collections/docs/search', { vector: vec(1, 1, 0), k: 1 })).json.head).toBeUndefined();
  });

  const bad: [string, string, string, unknown, number, string][] = [
    ['wrong dimension', 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'x', vector: [1, 2] }] }, 400, 'API_DIMENSION_MISMATCH'],
    ['"NaN" as a string', 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'x', vector: [1, 'NaN', 0] }] }, 400, 'API_NON_FINITE_VECTOR'],
    ['"Infinity" as a string', 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'x', vector: [1, 'Infinity', 0] }] }, 400, 'API_NON_FINITE_VECTOR'],
    ['1e400 (parses to Infinity)', 'POST', '/v1/collections/docs/vectors', '{"vectors":[{"id":"x","vector":[1,1e400,0]}]}', 400, 'API_NON_FINITE_VECTOR'],
    ['3.5e38 (overflows float32)', 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'x', vector: [1, 3.5e38, 0] }] }, 400, 'API_NON_FINITE_VECTOR'],
    ['null in a vector', 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'x', vector: [1, null, 0] }] }, 400, 'API_NON_FINITE_VECTOR'],
    ['empty batch', 'POST', '/v1/collections/docs/vectors', { vectors: [] }, 400, 'API_EMPTY_BATCH'],
    ['oversized batch', 'POST', '/v1/collections/docs/vectors', { vectors: Array.from({ length: 11 }, (_, i) => ({ id: `o${i}`, vector: [1, 0, 0] })) }, 413, 'API_BATCH_TOO_LARGE'],
    ['duplicate ids in one batch', 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'd', vector: [1, 0, 0] }, { id: 'd', vector: [0, 1, 0] }] }, 400, 'API_DUPLICATE_ID'],
    ['unknown collection', 'POST', '/v1/collections/nope/vectors', { vectors: [{ id: 'x', vector: [1, 0, 0] }] }, 404, 'API_COLLECTION_NOT_FOUND'],
    ['malformed JSON', 'POST', '/v1/collections/docs/vectors', '{"vectors": [', 400, 'API_MALFORMED_JSON'],
    ['unknown top-level field', 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'x', vector: [1, 0, 0] }], extra: 1 }, 400, 'API_INVALID_REQUEST'],
    ['unknown vector field', 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'x', vector: [1, 0, 0], score: 1 }] }, 400, 'API_INVALID_REQUEST'],
    ['id with a space', 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'a b', vector: [1, 0, 0] }] }, 400, 'API_INVALID_NAME'],
    ['id too long', 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'x'.repeat(257), vector: [1, 0, 0] }] }, 400, 'API_INVALID_NAME'],
    ['id "." (URL clients resolve it away)', 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: '.', vector: [1, 0, 0] }] }, 400, 'API_INVALID_NAME'],
    ['id ".." (URL clients resolve it away)', 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'ok', vector: [1, 0, 0] }, { id: '..', vector: [1, 0, 0] }] }, 400, 'API_INVALID_NAME'],
    ['metadata nested too deep', 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'x', vector: [1, 0, 0], metadata: JSON.parse('{"a":'.repeat(20) + '1' + '}'.repeat(20)) }] }, 400, 'API_INVALID_METADATA'],
    ['metadata 17 levels deep (16 are the most, the object itself included)', 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'x', vector: [1, 0, 0], metadata: JSON.parse('{"a":'.repeat(16) + '{}' + '}'.repeat(16)) }] }, 400, 'API_INVALID_METADATA'],
    ['metadata 17 levels deep through arrays', 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'x', vector: [1, 0, 0], metadata: { a: JSON.parse('['.repeat(16) + '1' + ']'.repeat(16)) } }] }, 400, 'API_INVALID_METADATA'],
    ['metadata null', 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'x', vector: [1, 0, 0], metadata: null }] }, 400, 'API_INVALID_METADATA'],
    ['metadata an array', 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'x', vector: [1, 0, 0], metadata: [] }] }, 400, 'API_INVALID_METADATA'],
    ['metadata a string', 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'ok', vector: [1, 0, 0] }, { id: 'x', vector: [1, 0, 0], metadata: 's' }] }, 400, 'API_INVALID_METADATA'],
    ['bad collection name', 'PUT', '/v1/collections/-bad', { dimension: 3, metric: 'cosine' }, 400, 'API_INVALID_NAME'],
    ['collection name too long', 'PUT', `/v1/collections/${'c'.repeat(65)}`, { dimension: 3, metric: 'cosine' }, 400, 'API_INVALID_NAME'],
    ['unknown metric', 'PUT', '/v1/collections/okname', { dimension: 3, metric: 'hamming' }, 400, 'API_INVALID_REQUEST'],
    ['unknown hnsw field', 'PUT', '/v1/collections/okname', { dimension: 3, metric: 'l2', hnsw: { m: 3 } }, 400, 'API_INVALID_REQUEST'],
    ['dimension as a string', 'PUT', '/v1/collections/okname', { dimension: '3', metric: 'l2' }, 400, 'API_INVALID_REQUEST'],
    ['bad asOf in search', 'POST', '/v1/collections/docs/search', { vector: [1, 0, 0], k: 1, asOf: 'yesterday' }, 400, 'API_INVALID_TIMESTAMP'],
    ['impossible asOf date', 'POST', '/v1/collections/docs/search', { vector: [1, 0, 0], k: 1, asOf: '2024-02-30T00:00:00Z' }, 400, 'API_INVALID_TIMESTAMP'],
    ['asOf without a zone', 'GET', '/v1/collections/docs/vectors/a?asOf=2024-01-01T00:00:00', undefined, 400, 'API_INVALID_TIMESTAMP'],
    ['bad filter', 'POST', '/v1/collections/docs/search', { vector: [1, 0, 0], k: 1, filter: { n: { $regex: 'x' } } }, 400, 'API_INVALID_FILTER'],
    ['a filter that is no object (README: of another shape)', 'POST', '/v1/collections/docs/search', { vector: [1, 0, 0], k: 1, filter: [] }, 400, 'API_INVALID_FILTER'],
    ['a filter null', 'POST', '/v1/collections/docs/search', { vector: [1, 0, 0], k: 1, filter: null }, 400, 'API_INVALID_FILTER'],
    ['a filter of 65 keys (README: at most 64)', 'POST', '/v1/collections/docs/search', { vector: [1, 0, 0], k: 1, filter: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, i])) }, 400, 'API_INVALID_FILTER'],
    ['$in lists of 10 001 values (README: at most 10 000)', 'POST', '/v1/collections/docs/search', { vector: [1, 0, 0], k: 1, filter: { a: { $in: Array.from({ length: 10_001 }, (_, i) => i) } } }, 400, 'API_INVALID_FILTER'],
    ['k = 0', 'POST', '/v1/collections/docs/search', { vector: [1, 0, 0], k: 0 }, 400, 'API_INVALID_REQUEST'],
    ['k over 10000 (README)', 'POST', '/v1/collections/docs/search', { vector: [1, 0, 0], k: 10001 }, 400, 'API_INVALID_REQUEST'],
    ['a query vector of 4097 values (README: at most 4096)', 'POST', '/v1/collections/docs/search', { vector: Array.from({ length: 4097 }, () => 1), k: 1 }, 400, 'API_DIMENSION_MISMATCH'],
    ['a collection of dimension 4097 (README: at most 4096)', 'PUT', '/v1/collections/okname', { dimension: 4097, metric: 'l2' }, 400, 'API_INVALID_REQUEST'],
    ['search wrong dimension', 'POST', '/v1/collections/docs/search', { vector: [1, 0], k: 1 }, 400, 'API_DIMENSION_MISMATCH'],
    ['unknown query parameter', 'GET', '/v1/collections?x=1', undefined, 400, 'API_INVALID_REQUEST'],
    ['unknown route', 'GET', '/v2/nothing', undefined, 404, 'API_ROUTE_NOT_FOUND'],
    ['a method the route does not take', 'PATCH', '/v1/collections/docs', { dimension: 3, metric: 'cosine' }, 405, 'API_METHOD_NOT_ALLOWED'],
    ['POST to a collection (PUT creates it)', 'POST', '/v1/collections/docs', { dimension: 3, metric: 'cosine' }, 405, 'API_METHOD_NOT_ALLOWED'],
    ['delete a missing vector', 'DELETE', '/v1/collections/docs/vectors/missing', undefined, 404, 'API_DOC_NOT_FOUND'],
    ['text/plain body', 'POST', '/v1/collections/docs/search', 'hello', 415, 'API_UNSUPPORTED_MEDIA_TYPE'],
    ['a lone surrogate in a metadata value (UTF-8 cannot hold it: stored, it read back as U+FFFD)', 'POST', '/v1/collections/docs/vectors', '{"vectors":[{"id":"x","vector":[1,0,0],"metadata":{"s":"a\\ud800"}}]}', 400, 'API_INVALID_METADATA'],
    ['a lone low surrogate in a nested metadata key', 'POST', '/v1/collections/docs/vectors', '{"vectors":[{"id":"x","vector":[1,0,0],"metadata":{"o":[{"\\udfff":1}]}}]}', 400, 'API_INVALID_METADATA'],
    ['1e400 in metadata', 'POST', '/v1/collections/docs/vectors', '{"vectors":[{"id":"x","vector":[1,0,0],"metadata":{"n":1e400}}]}', 400, 'API_INVALID_METADATA'],
    ['application/xml body', 'POST', '/v1/collections/docs/search', '<a/>', 415, 'API_UNSUPPORTED_MEDIA_TYPE'],
    ['failpoints API off', 'POST', '/v1/admin/failpoints', { name: 'wal.append', action: 'panic' }, 404, 'API_FAILPOINTS_DISABLED'],
    ['a body field on a vector delete', 'DELETE', '/v1/collections/docs/vectors/a', { x: 1 }, 400, 'API_INVALID_REQUEST'],
    ['a body field on a collection drop', 'DELETE', '/v1/collections/docs', { x: 1 }, 400, 'API_INVALID_REQUEST'],
    ['a body field on a breaker reset', 'POST', '/v1/admin/circuit-breakers/wal/reset', { x: 1 }, 400, 'API_INVALID_REQUEST'],
    ['a query parameter on the history', 'GET', '/v1/collections/docs/vectors/a/history?x=1', undefined, 400, 'AUDIT_BAD_REQUEST'],
    ['asOf on the history (not supported)', 'GET', '/v1/collections/docs/vectors/a/history?asOf=0', undefined, 400, 'AUDIT_BAD_REQUEST'],
    ['a query parameter on verify', 'POST', '/v1/audit/verify?x=1', {}, 400, 'AUDIT_BAD_REQUEST'],
    ['a query parameter on the head', 'GET', '/v1/audit/head?x=1', undefined, 400, 'AUDIT_BAD_REQUEST'],
  ];
  it.each(bad)('bad input changes nothing: %s → %i', async (_name, method, url, body, status, code) => {
    const before = toHex(node.log.head().hash);
    const r = await req(node, method, url, body, typeof body === 'string' && body.startsWith('<') ? { 'content-type': 'application/xml' } : typeof body === 'string' && !body.startsWith('{') ? { 'content-type': 'text/plain' } : typeof body === 'string' ? { 'content-type': 'application/json' } : {});
    expect(r.status).toBe(status);
    expect(r.json.error.code).toBe(code);
    expect(typeof r.json.error.message).toBe('string');
    expect(toHex(node.log.head().hash)).toBe(before);
  });

  // Past fastify's maxParamLength the router answered 400 API_INVALID_REQUEST echoing the whole URL.
  it.each([
    ['a collection name of 65 characters (create)', 'PUT', `/v1/collections/${'c'.repeat(65)}`, { dimension: 3, metric: 'cosine' }],
    ['a collection name of 601 characters (create)', 'PUT', `/v1/collections/${'c'.repeat(601)}`, { dimension: 3, metric: 'cosine' }],
    ['a collection name of 8000 characters (read)', 'GET', `/v1/collections/${'c'.repeat(8000)}`, undefined],
    ['a collection name of 601 characters (write)', 'POST', `/v1/collections/${'c'.repeat(601)}/vectors`, { vectors: [{ id: 'x', vector: [1, 0, 0] }] }],
    ['a document id of 257 characters (read)', 'GET', `/v1/collections/docs/vectors/${'i'.repeat(257)}`, undefined],
    ['a document id of 601 characters (read)', 'GET', `/v1/collections/docs/vectors/${'i'.repeat(601)}`, undefined],
    ['a document id of 601 characters (delete)', 'DELETE', `/v1/collections/docs/vectors/${'i'.repeat(601)}`, undefined],
    ['a document id of 601 characters (history)', 'GET', `/v1/collections/docs/vectors/${'i'.repeat(601)}/history`, undefined],
    ['a document id of 15000 characters (read)', 'GET', `/v1/collections/docs/vectors/${'i'.repeat(15_000)}`, undefined],
    ['a document id of 40000 characters (past any URL a socket takes)', 'GET', `/v1/collections/docs/vectors/${'i'.repeat(40_000)}`, undefined],
  ])('a name or id too long, however long (%s) → 400 API_INVALID_NAME, and the message does not echo it', async (_name, method, url, body) => {
    const before = toHex(node.log.head().hash);
    const r = await req(node, method, url, body);
    expect([r.status, r.json.error.code]).toEqual([400, 'API_INVALID_NAME']);
    expect(r.json.error.message.length).toBeLessThan(300);
    expect(toHex(node.log.head().hash)).toBe(before);
  });

  it('ids "." and ".." already in a log (written before they were refused) still replay, and a client that sends the path as is reads and deletes them', async () => {
    const dir = path.join(node.dir, 'dots');
    const cfg = loadConfig({ env: {}, overrides: { 'storage.data_dir': dir, 'backup.enabled': false } });
    const first = await startNode(cfg, { listen: false, registry: new Registry(), logger: () => undefined });
    await first.log.append([{ type: 'collection.created', collection: 'd', body: { dimension: 2, metric: 'l2', hnsw: { M: 8, efConstruction: 20, efSearch: 10 } } }]);
    await first.log.append(['.', '..'].map((id) => ({ type: 'vector.upserted' as const, collection: 'd', body: { id, vector: new Float32Array([1, 2]) } })));
    await first.close();
    const again = await startNode(cfg, { listen: false, registry: new Registry(), logger: () => undefined });
    try {
      expect(again.projections.getDoc('d', '..')?.id).toBe('..');
      // inject (like fetch) resolves "..": node's http client sends the path as it is.
      await again.app.listen({ host: '127.0.0.1', port: 0 });
      const port = (again.app.server.address() as AddressInfo).port;
      const asIs = (method: string, p: string): Promise<{ status: number; body: string }> =>
        new Promise((resolve, reject) => {
          const r = http.request({ host: '127.0.0.1', port, method, path: p }, (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString('utf8')));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          });
          r.on('error', reject);
          r.end();
        });
      const r = await asIs('GET', '/v1/collections/d/vectors/..');
      expect([r.status, (JSON.parse(r.body) as { id: string }).id]).toEqual([200, '..']);
      expect((await asIs('DELETE', '/v1/collections/d/vectors/.')).status).toBe(200);
      expect(again.projections.getDoc('d', '.')).toBeUndefined();
    } finally {
      await again.close();
    }
  });

  it('routes that take no body accept none, null or {}, and the OpenAPI document marks such bodies optional', async () => {
    await req(node, 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'nb1', vector: vec(1, 0, 0) }, { id: 'nb2', vector: vec(1, 0, 0) }, { id: 'nb3', vector: vec(1, 0, 0) }] });
    expect((await req(node, 'DELETE', '/v1/collections/docs/vectors/nb1')).status).toBe(200);
    expect((await req(node, 'DELETE', '/v1/collections/docs/vectors/nb2', {})).status).toBe(200);
    expect((await req(node, 'DELETE', '/v1/collections/docs/vectors/nb3', 'null', { 'content-type': 'application/json' })).status).toBe(200);
    expect((await req(node, 'POST', '/v1/admin/circuit-breakers/wal/reset')).status).toBe(200);
    const doc = (await req(node, 'GET', '/openapi.json')).json as { paths: Record<string, Record<string, { parameters: unknown[]; requestBody?: { required: boolean } }>> };
    expect(doc.paths['/v1/collections/{name}/vectors/{id}']!['delete']!.requestBody?.required).toBe(false);
    expect(doc.paths['/v1/collections/{name}/vectors']!['post']!.requestBody?.required).toBe(true);
    expect(doc.paths['/v1/audit/head']!['get']!.parameters).toEqual([expect.objectContaining({ name: 'asOf', in: 'query' })]);
  });

  it('a surrogate pair in metadata (an emoji written as escapes) is stored and read back the same, live and from the log', async () => {
    const w = await req(node, 'POST', '/v1/collections/docs/vectors', '{"vectors":[{"id":"emoji","vector":[1,0,0],"metadata":{"s":"\\ud83d\\ude00","\\ud83d\\udc4d":true}}]}', { 'content-type': 'application/json' });
    expect(w.status, JSON.stringify(w.json)).toBe(200);
    const want = { s: '\u{1F600}', '\u{1F44D}': true };
    expect((await req(node, 'GET', '/v1/collections/docs/vectors/emoji')).json.metadata).toEqual(want);
    expect((await req(node, 'GET', `/v1/collections/docs/vectors/emoji?asOf=${w.json.tsMicros}`)).json.metadata).toEqual(want);
    expect(node.log.get(w.json.seq)!.body).toMatchObject({ metadata: want });
  });

  it('metadata 16 levels deep, the object itself included, is accepted', async () => {
    const deep = JSON.parse('{"a":'.repeat(15) + '{"b":[1]}' + '}'.repeat(15)) as unknown; // 15 objects, then one holding an array: 17 containers
    expect((await req(node, 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'deep', vector: vec(1, 0, 0), metadata: deep }] })).json.error.code).toBe('API_INVALID_METADATA');
    const sixteen = JSON.parse('{"a":'.repeat(15) + '{"b":1}' + '}'.repeat(15)) as unknown; // 16 objects
    const w = await req(node, 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'deep', vector: vec(1, 0, 0), metadata: sixteen }] });
    expect(w.status).toBe(200);
    expect((await req(node, 'GET', '/v1/collections/docs/vectors/deep')).json.metadata).toEqual(sixteen);
  });

  it('a vector value that overflows (1e400) is named as Infinity, not as the null JSON.stringify writes for it', async () => {
    const r = await req(node, 'POST', '/v1/collections/docs/vectors', '{"vectors":[{"id":"x","vector":[1,1e400,0]}]}', { 'content-type': 'application/json' });
    expect([r.status, r.json.error.code]).toEqual([400, 'API_NON_FINITE_VECTOR']);
    expect(r.json.error.message).toContain('vectors[0].vector[1] is Infinity');
  });

  it('as-of searches past the 8 that may wait are 429 API_BACKPRESSURE with Retry-After; the others answer', async () => {
    await node.log.append([{ type: 'collection.created', collection: 'asof', body: { dimension: 2, metric: 'l2', hnsw: { M: 16, efConstruction: 200, efSearch: 50 } } }]);
    for (let b = 0; b < 6; b++) await node.log.append(Array.from({ length: 1000 }, (_, i) => ({ type: 'vector.upserted' as const, collection: 'asof', body: { id: `d${b}-${i}`, vector: Float32Array.of(b, i) } })));
    const at = node.log.head().ts;
    const answers = await Promise.all(Array.from({ length: 9 }, (_, i) => req(node, 'POST', '/v1/collections/asof/search', { vector: [0, i], k: 1, asOf: at - (i % 2) })));
    const busy = answers.filter((a) => a.status === 429);
    expect(busy.length).toBe(1);
    expect([busy[0]!.json.error.code, busy[0]!.headers['retry-after']]).toEqual(['API_BACKPRESSURE', '1']);
    expect(answers.filter((a) => a.status === 200).length).toBe(8);
  });

  it('a method a route does not take is 405 with Allow naming those it does', async () => {
    const r = await req(node, 'POST', '/v1/collections/docs', {});
    expect([r.status, r.headers['allow']]).toEqual([405, 'GET, HEAD, PUT, DELETE']);
    expect(r.json.error.message).toContain('this route takes GET, HEAD, PUT, DELETE');
    const search = await req(node, 'GET', '/v1/collections/docs/search');
    expect([search.status, search.headers['allow']]).toEqual([405, 'POST']);
  });

  it('delete a vector, drop a collection', async () => {
    await req(node, 'PUT', '/v1/collections/tmp', { dimension: 2, metric: 'l2' });
    await req(node, 'POST', '/v1/collections/tmp/vectors', { vectors: [{ id: 'z', vector: [1, 2] }] });
    expect((await req(node, 'DELETE', '/v1/collections/tmp/vectors/z')).status).toBe(200);
    expect((await req(node, 'GET', '/v1/collections/tmp/vectors/z')).status).toBe(404);
    // Concurrent deletes of one document: one deletes it, the rest find it gone; one event in the log.
    await req(node, 'POST', '/v1/collections/tmp/vectors', { vectors: [{ id: 'y', vector: [3, 4] }] });
    const before = node.log.head().seq;
    const all = await Promise.all(Array.from({ length: 8 }, () => req(node, 'DELETE', '/v1/collections/tmp/vectors/y')));
    expect(all.map((r) => r.status).sort()).toEqual([200, 404, 404, 404, 404, 404, 404, 404]);
    expect(node.log.head().seq).toBe(before + 1);
    expect((await req(node, 'DELETE', '/v1/collections/tmp')).status).toBe(200);
    expect((await req(node, 'GET', '/v1/collections/tmp')).status).toBe(404);
  });

  it('disk full (failpoint): writes 503 + Retry-After + code, reads work, metrics and readyz show it, an admin reset lets writes resume', async () => {
    node.fp.set('wal.append', '1*error(ENOSPC)');
    const w = await req(node, 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'full', vector: [1, 0, 0] }] });
    expect(w.status).toBe(503);
    expect(w.json.error.code).toBe('WAL_DISK_FULL');
    // The write that opened the breaker says how long writes stay blocked, as the refusals after it do.
    const again = await req(node, 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'full', vector: [1, 0, 0] }] });
    expect(again.status).toBe(503);
    const timeoutS = loadConfig({ env: {} }).error_recovery.wal.circuit_breaker_timeout_seconds;
    expect(Number(again.headers['retry-after'])).toBeGreaterThan(timeoutS - 5);
    expect(Number(w.headers['retry-after'])).toBeGreaterThanOrEqual(Number(again.headers['retry-after']));
    expect((await req(node, 'POST', '/v1/collections/docs/search', { vector: [1, 0, 0], k: 1 })).status).toBe(200);
    expect((await req(node, 'GET', '/readyz')).status).toBe(503);
    const m = await node.app.inject({ method: 'GET', url: '/metrics' });
    expect(m.body).toMatch(/wal_circuit_breaker_state\{state="open"\} 1/);
    const h = await req(node, 'GET', '/v1/admin/health');
    expect(h.json.breakers.wal).toBe('open');
    expect(h.json.training.state).toBe('running');
    expect(h.json.breakers).toMatchObject({ cache: 'closed', hot: 'closed', cold: 'closed' });
    expect(h.json.wal.reason).toMatch(/disk full/);
    expect((await req(node, 'POST', '/v1/admin/circuit-breakers/wal/reset')).json.state).toBe('closed');
    expect((await req(node, 'GET', '/v1/admin/health')).json.wal).toMatchObject({ state: 'closed', reason: '' });
    expect((await req(node, 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'full', vector: [1, 0, 0] }] })).status).toBe(200);
    expect((await req(node, 'GET', '/readyz')).status).toBe(200);
  });

  it('/metrics has the sketch metrics and process metrics; /healthz; the OpenAPI document lists the routes', async () => {
    const m = (await node.app.inject({ method: 'GET', url: '/metrics' })).body;
    for (const name of ['wal_writes_total', 'hnsw_corruption_detected_total', 'query_timeouts_total', 'backup_failure_total', 'training_restarts_total', 'http_requests_total', 'process_cpu_user_seconds_total']) expect(m).toContain(`# TYPE ${name}`);
    // Present at 0 before any backup: a series first seen at 1 shows no increase to rate(), and BackupFailing would miss it.
    for (const type of ['full', 'incremental']) expect(m).toContain(`backup_failure_total{type="${type}"} 0`);
    expect((await req(node, 'GET', '/healthz')).json).toEqual({ status: 'ok' });
    const doc = (await req(node, 'GET', '/openapi.json')).json;
    expect(doc.openapi).toBe('3.0.3');
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/collections/{name}', '/v1/collections/{name}/vectors', '/v1/collections/{name}/search', '/v1/log', '/v1/audit/head', '/v1/backups', '/v1/admin/health', '/metrics']));
    expect(doc.paths['/v1/collections/{name}/vectors'].post.requestBody.content['application/json'].schema.additionalProperties).toBe(false);
    // Success statuses as the routes answer them; the failpoints API only when it is on.
    expect(Object.keys(doc.paths['/v1/collections/{name}'].put.responses).sort()).toEqual(['200', '201', 'default']);
    expect(Object.keys(doc.paths['/v1/backups'].post.responses).sort()).toEqual(['201', 'default']);
    expect(doc.paths['/v1/admin/failpoints']).toBeUndefined();
    // Who may call each route: an admin-only route says so once ("admin (or admin)" before).
    expect(doc.paths['/v1/admin/health'].get.description).toBe('Role: admin when auth keys are configured.');
    expect(doc.paths['/v1/collections/{name}/search'].post.description).toMatch(/^Roles: [a-z, ]+ \(or admin\) when auth keys are configured\.$/);
    expect(JSON.stringify(doc)).not.toContain('admin (or admin)');
  });
});

describe('auth: API keys with roles; the key name is the actor', () => {
  let node: Node;
  beforeAll(async () => {
    node = await inProcessNode({ 'auth.keys': [{ name: 'writer', key: 'w-secret-1', roles: ['write'] }, { name: 'reader', key: 'r-secret-1', roles: ['read'] }, { name: 'ops', key: 'a-secret-1', roles: ['admin'] }, { name: 'auditor', key: 'u-secret-1', roles: ['audit'] }] });
  });
  afterAll(async () => {
    await node.close();
  });
  it('401 without a key, 403 with the wrong role, actor recorded', async () => {
    expect((await req(node, 'GET', '/v1/collections')).status).toBe(401);
    expect((await req(node, 'GET', '/v1/collections', undefined, { authorization: 'Bearer nope-nope' })).status).toBe(401);
    expect((await req(node, 'PUT', '/v1/collections/c1', { dimension: 2, metric: 'ip' }, { authorization: 'Bearer r-secret-1' })).status).toBe(403);
    expect((await req(node, 'PUT', '/v1/collections/c1', { dimension: 2, metric: 'ip' }, { authorization: 'Bearer w-secret-1' })).status).toBe(201);
    expect((await req(node, 'GET', '/v1/collections', undefined, { 'x-api-key': 'r-secret-1' })).status).toBe(200);
    expect((await req(node, 'GET', '/v1/admin/health', undefined, { 'x-api-key': 'w-secret-1' })).status).toBe(403);
    expect((await req(node, 'GET', '/v1/admin/health', undefined, { 'x-api-key': 'a-secret-1' })).status).toBe(200);
    expect((await req(node, 'GET', '/v1/log', undefined, { 'x-api-key': 'r-secret-1' })).status).toBe(403);
    expect((await req(node, 'GET', '/healthz')).status).toBe(200);
    expect(node.log.get(node.log.head().seq)?.actor).toBe('writer');
  });
  it('an audit key reads and searches, live and as of an instant, and writes nothing', async () => {
    const w = await req(node, 'POST', '/v1/collections/c1/vectors', { vectors: [{ id: 'a', vector: [1, 0] }] }, { 'x-api-key': 'w-secret-1' });
    expect(w.status).toBe(200);
    const u = { 'x-api-key': 'u-secret-1' };
    const asOf = await req(node, 'POST', '/v1/collections/c1/search', { vector: [1, 0], k: 1, asOf: w.json.ts }, u);
    expect([asOf.status, asOf.json.results?.map((h: { id: string }) => h.id)]).toEqual([200, ['a']]);
    expect((await req(node, 'POST', '/v1/collections/c1/search', { vector: [1, 0], k: 1 }, u)).status).toBe(200);
    expect((await req(node, 'GET', `/v1/collections/c1/vectors/a?asOf=${encodeURIComponent(w.json.ts)}`, undefined, u)).status).toBe(200);
    expect((await req(node, 'GET', '/v1/log', undefined, u)).status).toBe(200);
    const refused = await req(node, 'POST', '/v1/collections/c1/vectors', { vectors: [{ id: 'b', vector: [0, 1] }] }, u);
    expect([refused.status, refused.json.error.code]).toEqual([403, 'API_FORBIDDEN']);
    expect((await req(node, 'DELETE', '/v1/collections/c1', undefined, u)).status).toBe(403);
  });
});

describe('vector writes and collection lifecycle', () => {
  it('a write is never acknowledged against a collection that is dropped or re-created with another dimension before it commits', async () => {
    const node = await inProcessNode();
    try {
      expect((await req(node, 'PUT', '/v1/collections/race', { dimension: 3, metric: 'l2' })).status).toBe(201);
      const acked: number[] = [];
      const write = async (i: number): Promise<void> => {
        const r = await req(node, 'POST', '/v1/collections/race/vectors', { vectors: [{ id: `w${i}`, vector: [i, 1, 2] }] });
        if (r.status === 200) acked.push(r.json.seq as number);
        else expect([400, 404]).toContain(r.status); // API_DIMENSION_MISMATCH or API_COLLECTION_NOT_FOUND: refused, not lost
      };
      const lifecycle = async (): Promise<void> => {
        for (let k = 0; k < 6; k++) {
          expect((await req(node, 'DELETE', '/v1/collections/race')).status).toBe(200);
          expect((await req(node, 'PUT', '/v1/collections/race', { dimension: k % 2 === 0 ? 4 : 3, metric: 'l2' })).status).toBe(201);
        }
      };
      const writers = Array.from({ length: 4 }, async (_, w) => {
        for (let i = 0; i < 40; i++) await write(w * 1000 + i);
      });
      await Promise.all([...writers, lifecycle()]);
      expect(acked.length).toBeGreaterThan(0);
      // Replay the log with the projections' rule: an upsert applies only while the collection
      // exists with that dimension. Every acknowledged write must have applied.
      let dim: number | undefined;
      const applied = new Set<number>();
      for (const e of node.log.read()) {
        if (e.collection !== 'race') continue;
        if (e.type === 'collection.created') dim ??= e.body.dimension;
        else if (e.type === 'collection.dropped') dim = undefined;
        else if (e.type === 'vector.upserted' && dim === e.body.vector.length) applied.add(e.seq);
      }
      expect(acked.filter((s) => !applied.has(s))).toEqual([]);
    } finally {
      await node.close();
    }
  });
});

describe('backups over HTTP, as-of instants, error codes of the audit routes, shutdown', () => {
  let node: Node;
  beforeAll(async () => {
    node = await inProcessNode();
    expect((await req(node, 'PUT', '/v1/collections/docs', { dimension: 3, metric: 'l2' })).status).toBe(201);
    expect((await req(node, 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'a', vector: vec(1, 0, 0) }] })).status).toBe(200);
  });
  afterAll(async () => {
    await node.close();
  });

  it('POST /v1/backups: full and incremental keep their tag and description; a bad or taken tag, or since on a full, is refused and stores nothing', async () => {
    const full = await req(node, 'POST', '/v1/backups', { type: 'full', tag: 'v1', description: 'first' });
    expect(full.status).toBe(201);
    await req(node, 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'b', vector: vec(0, 1, 0) }] });
    const inc = await req(node, 'POST', '/v1/backups', { type: 'incremental', tag: 'keep-me', description: 'before migration' });
    expect(inc.status).toBe(201);
    expect([inc.json.type, inc.json.tag, inc.json.description]).toEqual(['incremental', 'keep-me', 'before migration']);
    for (const [body, status, code] of [
      [{ type: 'full', since: '2026-01-01T00:00:00Z' }, 400, 'API_INVALID_REQUEST'],
      [{ type: 'full', since: 'yesterday' }, 400, 'API_INVALID_REQUEST'],
      [{ type: 'incremental', tag: '' }, 400, 'BACKUP_INVALID_ARGUMENT'],
      [{ type: 'full', tag: 'latest' }, 400, 'BACKUP_INVALID_ARGUMENT'],
      [{ type: 'full', tag: 'keep-me' }, 409, 'BACKUP_TAG_EXISTS'],
    ] as const) {
      const r = await req(node, 'POST', '/v1/backups', body);
      expect([r.status, r.json.error?.code], JSON.stringify(body)).toEqual([status, code]);
    }
    const list = await req(node, 'GET', '/v1/backups');
    expect(list.json.backups.map((m: { tag?: string }) => m.tag)).toEqual(['keep-me', 'v1']);
    // ?before= reads integer µs since the epoch as it reads ISO-8601: one parser for every timestamp.
    for (const [t, n] of [[0, 0], [Date.now() * 1000 + 60_000_000, 2]] as const) {
      const [a, b] = [await req(node, 'GET', `/v1/backups?before=${t}`), await req(node, 'GET', `/v1/backups?before=${microsToIso(t)}`)];
      expect([a.status, a.json.backups?.length], String(t)).toEqual([200, n]);
      expect(a.json).toEqual(b.json);
    }
    const metrics = await req(node, 'GET', '/metrics');
    expect(metrics.json).not.toMatch(/backup_failure_total\{type="(full|incremental)"\} [1-9]/);
  });

  it('POST /v1/backups: one at a time; a request while one is under way is 409 API_BACKUP_IN_PROGRESS with Retry-After, and stores nothing', async () => {
    const before = (await req(node, 'GET', '/v1/backups')).json.backups.length as number;
    const [a, b] = await Promise.all([req(node, 'POST', '/v1/backups', { type: 'full' }), req(node, 'POST', '/v1/backups', { type: 'full' })]);
    expect([a.status, b.status].sort()).toEqual([201, 409]);
    const refused = a.status === 409 ? a : b;
    expect(refused.json.error.code).toBe('API_BACKUP_IN_PROGRESS');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect((await req(node, 'GET', '/v1/backups')).json.backups.length).toBe(before + 1);
    // Once it is done, the next is taken.
    expect((await req(node, 'POST', '/v1/backups', { type: 'incremental' })).status).toBe(201);
  });

  it('asOf on the collection routes follows the as-of rule: integer µs too, a future instant refused (422), a collection absent at T is API_COLLECTION_NOT_FOUND', async () => {
    const head = node.log.head();
    const got = await req(node, 'GET', `/v1/collections/docs/vectors/a?asOf=${head.ts}`);
    expect([got.status, got.json.id]).toEqual([200, 'a']);
    // However far: past the µs range of a safe integer (after 2255) too, never "out of range".
    for (const future of [new Date(Date.now() + 120_000).toISOString(), '2256-01-01T00:00:00Z', '9999-12-31T23:59:59Z']) {
      for (const r of [await req(node, 'GET', `/v1/collections/docs/vectors/a?asOf=${future}`), await req(node, 'POST', '/v1/collections/docs/search', { vector: vec(1, 0, 0), k: 1, asOf: future }), await req(node, 'GET', `/v1/audit/collections/docs?asOf=${future}`)]) {
        expect([r.status, r.json.error.code], future).toEqual([422, 'AUDIT_TIME_IN_FUTURE']);
      }
    }
    // Before 1970 (years 0-99 too) is before the first event: the empty state, not an error.
    for (const past of ['1969-12-31T23:59:59Z', '0001-01-01T00:00:00Z']) {
      const st = await req(node, 'GET', `/v1/audit/state?asOf=${past}`);
      expect([st.status, JSON.parse(String(st.json).split('\n')[0]!).head.seq], past).toEqual([200, 0]);
      expect((await req(node, 'GET', `/v1/audit/head?asOf=${past}`)).json.seq).toBe(0);
      const s2 = await req(node, 'POST', '/v1/collections/docs/search', { vector: vec(1, 0, 0), k: 1, asOf: past });
      expect([s2.status, s2.json.error.code], past).toEqual([404, 'API_COLLECTION_NOT_FOUND']);
    }
    expect((await req(node, 'GET', '/v1/collections/docs/vectors/a?asOf=soon')).json.error.code).toBe('API_INVALID_TIMESTAMP');
    const before = await req(node, 'POST', '/v1/collections/docs/search', { vector: vec(1, 0, 0), k: 1, asOf: '2020-01-01T00:00:00Z' });
    expect([before.status, before.json.error.code]).toEqual([404, 'API_COLLECTION_NOT_FOUND']);
    const docBefore = await req(node, 'GET', '/v1/collections/docs/vectors/a?asOf=2020-01-01T00:00:00Z');
    expect([docBefore.status, docBefore.json.error.code]).toEqual([404, 'API_COLLECTION_NOT_FOUND']);
    const noDoc = await req(node, 'GET', `/v1/collections/docs/vectors/never-written?asOf=${head.ts}`);
    expect([noDoc.status, noDoc.json.error.code]).toEqual([404, 'API_DOC_NOT_FOUND']);
    const asInt = await req(node, 'POST', '/v1/collections/docs/search', { vector: vec(1, 0, 0), k: 1, asOf: head.ts }); // a JSON integer too
    expect([asInt.status, asInt.json.results[0]?.id]).toEqual([200, 'a']);
    const dim = await req(node, 'POST', '/v1/collections/docs/search', { vector: vec(1, 0), k: 1, asOf: String(head.ts) });
    expect([dim.status, dim.json.error.code]).toEqual([400, 'API_DIMENSION_MISMATCH']);
  });

  it('the audit routes answer malformed JSON and a body too large with the API_* codes', async () => {
    const r = await req(node, 'POST', '/v1/audit/verify', 'notjson', { 'content-type': 'application/json' });
    expect([r.status, r.json.error.code]).toEqual([400, 'API_MALFORMED_JSON']);
  });
});

describe('shutdown', () => {
  it('a cold tier that cannot index in time does not hold the shutdown past its timeout: the checkpoint is given up, nothing is lost', async () => {
    const node = await inProcessNode({ 'server.shutdown_timeout_ms': 300 });
    await req(node, 'PUT', '/v1/collections/docs', { dimension: 3, metric: 'l2' });
    node.fp.set('projection.cold.insert', 'delay(60000)'); // the worker hangs on its next insert, as on a huge backlog
    const w = await req(node, 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'a', vector: vec(1, 0, 0) }] });
    expect(w.status).toBe(200);
    await node.close(); // without the bound: until the worker's 60 s insert ends, past this test's timeout
    const again = await startNode(loadConfig({ env: {}, overrides: { 'storage.data_dir': path.join(node.dir, 'data'), 'backup.local_dir': path.join(node.dir, 'backups'), 'backup.enabled': false } }), { listen: false, registry: new Registry(), logger: () => undefined });
    try {
      expect((await req(again as Node, 'GET', '/v1/collections/docs/vectors/a')).json.id).toBe('a');
    } finally {
      await again.close();
    }
  }, 20_000);

  it('an open /v1/log/stream answers at once on a quiet log and ends when the server shuts down, rather than holding the shutdown for its whole timeout', async () => {
    const node = await inProcessNode({ 'server.shutdown_timeout_ms': 600_000, 'server.port': 0 });
    await node.app.listen({ host: '127.0.0.1', port: 0 });
    const addr = node.app.server.address() as { port: number };
    // An empty log: the response (status, headers) still comes at once, not with a first event.
    const res = await fetch(`http://127.0.0.1:${addr.port}/v1/log/stream?fromSeq=1`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('application/x-ndjson');
    const reading = res.text(); // until the stream ends
    await node.close(); // without the fix: 600 s, far past this test's timeout
    await reading.catch(() => undefined);
  }, 20_000);
});

describe('scheduled backups', () => {
  it('the first scheduled backup of an empty store is a full one, whichever schedule fires first; an empty log, and a log with nothing new, are skipped', async () => {
    const node = await inProcessNode({ 'backup.enabled': true, 'backup.full_backup_schedule': '0 0 1 1 *', 'backup.incremental_backup_schedule': '* * * * * *' });
    try {
      const list = async (): Promise<{ type: string; description?: string; parent: string | null; event_count: number }[]> => (await req(node, 'GET', '/v1/backups')).json.backups;
      const until = async (n: number): Promise<void> => {
        const deadline = Date.now() + 15_000;
        while ((await list()).length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      };
      const ticks = (): Promise<void> => new Promise((r) => setTimeout(r, 2200)); // two ticks of the incremental schedule
      await ticks(); // on an empty log: nothing to back up
      expect(await list()).toEqual([]);
      await req(node, 'PUT', '/v1/collections/docs', { dimension: 3, metric: 'l2' });
      await until(1);
      await ticks(); // nothing written since that backup: no empty incremental
      expect(await list()).toHaveLength(1);
      await req(node, 'POST', '/v1/collections/docs/vectors', { vectors: [{ id: 'a', vector: [1, 2, 3] }] });
      await until(2);
      await ticks();
      const backups = (await list()).reverse(); // oldest first
      expect(backups).toHaveLength(2);
      expect(backups[0]).toMatchObject({ type: 'full', description: 'scheduled', parent: null });
      expect(backups[1]).toMatchObject({ type: 'incremental', description: 'scheduled', event_count: 1 });
      const metrics = (await req(node, 'GET', '/metrics')).json as string;
      expect(metrics).not.toMatch(/backup_failure_total\{type="(full|incremental)"\} [1-9]/);
    } finally {
      await node.close();
    }
  }, 40_000);
});

describe('a collection dropped while a search of it runs', () => {
  it('the search answers 404 API_COLLECTION_NOT_FOUND (the API code, never PROJ_*)', async () => {
    const node = await inProcessNode({ 'cache.enabled': false });
    try {
      expect((await req(node, 'PUT', '/v1/collections/gone', { dimension: 2, metric: 'l2' })).status).toBe(201);
      expect((await req(node, 'POST', '/v1/collections/gone/vectors', { vectors: [{ id: 'a', vector: [1, 2] }] })).status).toBe(200);
      await node.projections.waitForCold(node.log.head().seq);
      node.fp.set('projection.cold.search', '1*delay(400)');
      const searching = req(node, 'POST', '/v1/collections/gone/search', { vector: [1, 2], k: 1 });
      await new Promise((r) => setTimeout(r, 100));
      expect((await req(node, 'DELETE', '/v1/collections/gone')).status).toBe(200);
      const r = await searching;
      expect([r.status, r.json.error?.code]).toEqual([404, 'API_COLLECTION_NOT_FOUND']);
      expect(r.json.error.message).toMatch(/dropped during the search/);
    } finally {
      node.fp.clearAll();
      await node.close();
    }
  });
});
