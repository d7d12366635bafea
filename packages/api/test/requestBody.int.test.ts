import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '@kyrodb/log';
import { inProcessNode } from './helpers.js';

type Node = Awaited<ReturnType<typeof inProcessNode>>;

interface Answer {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are checked field by field
  json: any;
}

/** One request over a real socket with exactly these body bytes (chunked when `chunked`, else with Content-Length). */
function send(port: number, method: string, path: string, headers: Record<string, string>, body?: Buffer, chunked = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const r = http.request({ host: '127.0.0.1', port, method, path, headers: { ...headers, ...(body !== undefined && !chunked ? { 'content-length': String(body.length) } : {}) } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        let json: unknown = text;
        try {
          json = JSON.parse(text);
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode ?? 0, json });
      });
      res.on('error', reject);
    });
    r.on('error', reject);
    if (body !== undefined && chunked) {
      // Two chunks, so no Content-Length says how large the body is.
      const half = Math.floor(body.length / 2);
      r.write(body.subarray(0, half));
      r.end(body.subarray(half));
    } else r.end(body);
  });
}

const JSON_CT = { 'content-type': 'application/json' };

describe('request bodies: strict UTF-8 JSON, no charset but utf-8, no content encoding, no prototype keys (real socket, raw bytes)', () => {
  let node: Node;
  let port: number;
  const post = (path: string, headers: Record<string, string>, body: Buffer, chunked = false): Promise<Answer> => send(port, 'POST', path, headers, body, chunked);
  const head = (): string => toHex(node.log.head().hash);

  beforeAll(async () => {
    node = await inProcessNode({ 'server.body_limit_bytes': 4096 });
    await node.app.listen({ host: '127.0.0.1', port: 0 });
    port = (node.app.server.address() as AddressInfo).port;
    const c = await send(port, 'PUT', '/v1/collections/h', JSON_CT, Buffer.from('{"dimension":4,"metric":"cosine"}'));
    expect(c.status).toBe(201);
  });
  afterAll(async () => {
    await node.close();
  });

  it('valid UTF-8 (multi-byte, split across chunks) is stored and reads back byte for byte', async () => {
    const s = 'é€𝄞ü';
    const w = await post('/v1/collections/h/vectors', JSON_CT, Buffer.from(JSON.stringify({ vectors: [{ id: 'good8', vector: [1, 0, 0, 0], metadata: { s } }] })), true);
    expect(w.status).toBe(200);
    const r = await send(port, 'GET', '/v1/collections/h/vectors/good8', {});
    expect(r.json.metadata.s).toBe(s);
    // charset=utf-8 (or utf8) in any case, quoted or not, is accepted.
    for (const ct of ['application/json; charset=utf-8', 'application/json;charset=UTF-8', 'application/json; charset="Utf-8"', 'application/json; charset=utf8']) {
      expect((await post('/v1/collections/h/vectors', { 'content-type': ct }, Buffer.from('{"vectors":[{"id":"cs","vector":[1,0,0,0]}]}'))).status, ct).toBe(200);
    }
    // Content-Encoding: identity is no encoding.
    expect((await post('/v1/collections/h/vectors', { ...JSON_CT, 'content-encoding': 'identity' }, Buffer.from('{"vectors":[{"id":"id","vector":[1,0,0,0]}]}'))).status).toBe(200);
  });

  it.each([
    ['\\xff\\xfe in a metadata string', Buffer.concat([Buffer.from('{"vectors":[{"id":"bad8","vector":[1,0,0,0],"metadata":{"s":"ab'), Buffer.from([0xff, 0xfe]), Buffer.from('cd"}}]}')]), 63],
    ['a lone continuation byte', Buffer.concat([Buffer.from('{"vectors":[{"id":"bad8","vector":[1,0,0,0],"metadata":{"s":"'), Buffer.from([0x80]), Buffer.from('"}}]}')]), 61],
    ['an overlong encoding of "/" (C0 AF)', Buffer.concat([Buffer.from('{"vectors":[{"id":"bad8","vector":[1,0,0,0],"metadata":{"s":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}}]}')]), 61],
    ['a UTF-16 surrogate encoded in UTF-8 (ED A0 80)', Buffer.concat([Buffer.from('{"vectors":[{"id":"bad8","vector":[1,0,0,0],"metadata":{"s":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}}]}')]), 61],
    ['a sequence cut short at the end', Buffer.concat([Buffer.from('{"vectors":[]}'), Buffer.from([0xe2, 0x82])]), 14],
  ])('invalid UTF-8 (%s) → 400 API_MALFORMED_JSON naming the byte offset; nothing written', async (_name, body, offset) => {
    const before = head();
    for (const chunked of [false, true]) {
      const r = await post('/v1/collections/h/vectors', JSON_CT, body, chunked);
      expect([r.status, r.json.error.code]).toEqual([400, 'API_MALFORMED_JSON']);
      expect(r.json.error.message).toContain('not valid UTF-8');
      expect(r.json.error.message).toContain(`byte ${offset}`);
    }
    expect(head()).toBe(before);
    expect((await send(port, 'GET', '/v1/collections/h/vectors/bad8', {})).status).toBe(404);
  });

  it.each([
    ['latin1', 'application/json; charset=latin1', Buffer.from('{"vectors":[{"id":"lat","vector":[1,0,0,0],"metadata":{"s":"caf\xe9"}}]}', 'latin1')],
    ['iso-8859-1, quoted', 'application/json; charset="ISO-8859-1"', Buffer.from('{"vectors":[{"id":"lat","vector":[1,0,0,0]}]}')],
    ['utf-16', 'application/json; charset=utf-16', Buffer.from('\ufeff{"vectors":[{"id":"u16","vector":[1,0,0,0]}]}', 'utf16le')],
    ['utf-16 with a body that happens to be ASCII', 'application/json; charset=utf-16', Buffer.from('{"vectors":[{"id":"u16","vector":[1,0,0,0]}]}')],
  ])('a charset other than utf-8 (%s) → 415 API_UNSUPPORTED_MEDIA_TYPE naming it; nothing written', async (_name, ct, body) => {
    const before = head();
    const r = await post('/v1/collections/h/vectors', { 'content-type': ct }, body);
    expect([r.status, r.json.error.code]).toEqual([415, 'API_UNSUPPORTED_MEDIA_TYPE']);
    expect(r.json.error.message.toLowerCase()).toContain(ct.split('charset=')[1]!.replace(/"/g, '').toLowerCase());
    expect(head()).toBe(before);
  });

  it.each([
    ['a real gzip body', 'gzip', gzipSync(Buffer.from('{"vectors":[{"id":"gz","vector":[1,0,0,0]}]}'))],
    ['a plain body labelled gzip', 'gzip', Buffer.from('{"vectors":[{"id":"gz","vector":[1,0,0,0]}]}')],
    ['a plain body labelled deflate', 'deflate', Buffer.from('{"vectors":[{"id":"gz","vector":[1,0,0,0]}]}')],
    ['identity then gzip', 'identity, gzip', Buffer.from('{"vectors":[{"id":"gz","vector":[1,0,0,0]}]}')],
  ])('Content-Encoding other than identity (%s) → 415 API_UNSUPPORTED_MEDIA_TYPE; nothing written', async (_name, enc, body) => {
    const before = head();
    const r = await post('/v1/collections/h/vectors', { ...JSON_CT, 'content-encoding': enc }, body);
    expect([r.status, r.json.error.code]).toEqual([415, 'API_UNSUPPORTED_MEDIA_TYPE']);
    expect(r.json.error.message).toMatch(/content encoding/i);
    expect(head()).toBe(before);
    expect((await send(port, 'GET', '/v1/collections/h/vectors/gz', {})).status).toBe(404);
  });

  it.each([
    ['__proto__ in metadata', '/v1/collections/h/vectors', '{"vectors":[{"id":"x","vector":[1,0,0,0],"metadata":{"__proto__":{"x":1}}}]}', '__proto__'],
    ['__proto__ written with escapes', '/v1/collections/h/vectors', '{"vectors":[{"id":"x","vector":[1,0,0,0],"metadata":{"\\u005f_proto__":{"x":1}}}]}', '__proto__'],
    ['constructor.prototype in metadata', '/v1/collections/h/vectors', '{"vectors":[{"id":"x","vector":[1,0,0,0],"metadata":{"constructor":{"prototype":{"x":1}}}}]}', 'constructor.prototype'],
    ['__proto__ in a search filter', '/v1/collections/h/search', '{"vector":[1,0,0,0],"k":1,"filter":{"__proto__":{"x":1}}}', '__proto__'],
  ])('a prototype-poisoning key (%s) is valid JSON, refused as 400 API_INVALID_REQUEST naming the key; nothing written', async (_name, path, body, key) => {
    const before = head();
    const r = await post(path, JSON_CT, Buffer.from(body));
    expect([r.status, r.json.error.code]).toEqual([400, 'API_INVALID_REQUEST']);
    expect(r.json.error.message).toContain(`the key ${key} is not allowed`);
    expect(r.json.error.message).not.toContain('not valid JSON');
    expect(head()).toBe(before);
  });

  it('a key named constructor alone is ordinary metadata', async () => {
    const w = await post('/v1/collections/h/vectors', JSON_CT, Buffer.from('{"vectors":[{"id":"ctor","vector":[1,0,0,0],"metadata":{"constructor":"c"}}]}'));
    expect(w.status).toBe(200);
  });

  it('malformed JSON and an empty JSON body stay 400 API_MALFORMED_JSON', async () => {
    const before = head();
    for (const body of ['{"vectors": [', '']) {
      const r = await post('/v1/collections/h/vectors', JSON_CT, Buffer.from(body));
      expect([r.status, r.json.error.code], JSON.stringify(body)).toEqual([400, 'API_MALFORMED_JSON']);
    }
    expect(head()).toBe(before);
  });

  it('a body over server.body_limit_bytes is 413 API_PAYLOAD_TOO_LARGE, with Content-Length or chunked', async () => {
    const before = head();
    const body = Buffer.from(JSON.stringify({ vectors: [{ id: 'big', vector: [1, 0, 0, 0], metadata: { s: 'x'.repeat(5000) } }] }));
    for (const chunked of [false, true]) {
      const r = await post('/v1/collections/h/vectors', JSON_CT, body, chunked);
      expect([r.status, r.json.error.code], `chunked ${chunked}`).toEqual([413, 'API_PAYLOAD_TOO_LARGE']);
    }
    expect(head()).toBe(before);
  });
});
