import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inProcessNode } from './helpers.js';

type Node = Awaited<ReturnType<typeof inProcessNode>>;
const PORT = 17461;

/** Sends raw bytes to the server and reads until it closes the connection. */
function raw(bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(PORT, '127.0.0.1', () => s.write(bytes));
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString('latin1')));
    s.on('error', reject);
    s.on('close', () => resolve(out));
  });
}

describe('requests node\'s HTTP parser refuses are answered {error: {code, message}} (real socket)', () => {
  let node: Node;
  beforeAll(async () => {
    node = await inProcessNode();
    await node.app.listen({ host: '127.0.0.1', port: PORT });
  });
  afterAll(async () => {
    await node.close();
  });

  it.each([
    ['a garbage request line', 400, 'API_INVALID_REQUEST', 'hello there\r\n\r\n'],
    ['an unknown method', 400, 'API_INVALID_REQUEST', 'FOO /healthz HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a malformed header', 400, 'API_INVALID_REQUEST', 'GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n'],
    ['Content-Length with Transfer-Encoding', 400, 'API_INVALID_REQUEST', 'POST /v1/audit/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n'],
    ['headers too large', 431, 'API_HEADERS_TOO_LARGE', `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`],
  ])('%s → %i %s', async (_name, status, code, bytes) => {
    const res = await raw(bytes);
    const [head, body] = res.split('\r\n\r\n', 2) as [string, string];
    expect(head.split('\r\n')[0]).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    expect(head.toLowerCase()).toContain('content-type: application/json');
    const json = JSON.parse(body) as { error: { code: string; message: string } };
    expect(json.error.code).toBe(code);
    expect(typeof json.error.message).toBe('string');
  });

  // Up to node's header limit every path parameter reaches its route (fastify's maxParamLength
  // was 600: longer ones got the router's 400 API_INVALID_REQUEST, echoing the whole URL).
  it('a document id of 15 000 characters (the URL within node\'s 16 KiB) → 400 API_INVALID_NAME, a short message', async () => {
    const res = await raw(`GET /v1/collections/docs/vectors/${'i'.repeat(15_000)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    const [head, body] = res.split('\r\n\r\n', 2) as [string, string];
    expect(head.split('\r\n')[0]).toMatch(/^HTTP\/1\.1 400 /);
    const json = JSON.parse(body) as { error: { code: string; message: string } };
    expect(json.error.code).toBe('API_INVALID_NAME');
    expect(json.error.message.length).toBeLessThan(300);
  });

  it('an undecodable URL (the router\'s refusal) → 400; it and the parser\'s refusals are counted in http_requests_total under route "unmatched"', async () => {
    const count = async (method: string, status: number): Promise<number> => {
      const text = (await node.app.inject({ method: 'GET', url: '/metrics' })).body;
      return Number(new RegExp(`^http_requests_total\\{method="${method}",route="unmatched",status="${status}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
    };
    const before = await count('GET', 400);
    const res = await raw('GET /v1/collections/%ZZ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(res.split('\r\n')[0]).toMatch(/^HTTP\/1\.1 400 /);
    expect(await count('GET', 400)).toBe(before + 1);
    // The garbage lines and headers above (4 × 400, 1 × 431), method unknown.
    expect([await count('UNKNOWN', 400), await count('UNKNOWN', 431)]).toEqual([4, 1]);
  });

  it('the server still answers afterwards', async () => {
    expect(await raw('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toContain('{"status":"ok"}');
  });
});

describe('a request not received in time (real socket, node\'s headersTimeout)', () => {
  let node: Node;
  let port: number;
  beforeAll(async () => {
    node = await inProcessNode();
    // Short, so the test does not wait node's 60 s; node checks connections every connectionsCheckingInterval.
    node.app.server.headersTimeout = 300;
    (node.app.server as unknown as { connectionsCheckingInterval: number }).connectionsCheckingInterval = 50;
    await node.app.listen({ host: '127.0.0.1', port: 0 });
    port = (node.app.server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await node.close();
  });

  it('→ 408 API_REQUEST_TIMEOUT saying it was not received in time and naming the timeout (not "not valid HTTP/1.1")', async () => {
    const res = await new Promise<string>((resolve, reject) => {
      // Headers that never end.
      const s = net.connect(port, '127.0.0.1', () => s.write('POST /v1/audit/verify HTTP/1.1\r\nHost: x\r\n'));
      let out = '';
      s.on('data', (d: Buffer) => (out += d.toString('latin1')));
      s.on('error', reject);
      s.on('close', () => resolve(out));
    });
    const [head, body] = res.split('\r\n\r\n', 2) as [string, string];
    expect(head.split('\r\n')[0]).toMatch(/^HTTP\/1\.1 408 /);
    const json = JSON.parse(body) as { error: { code: string; message: string } };
    expect(json.error.code).toBe('API_REQUEST_TIMEOUT');
    expect(json.error.message).toContain('not received in time');
    expect(json.error.message).toContain('headersTimeout (0.3 s)');
    expect(json.error.message).not.toContain('not valid HTTP');
  });
});
