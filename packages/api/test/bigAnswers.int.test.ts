import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Readable } from 'node:stream';
import { inProcessNode } from './helpers.js';

type Node = Awaited<ReturnType<typeof inProcessNode>>;

// V8's largest string is ~512 MB (2^29 - 24 UTF-16 units): nine documents of 62 MB metadata
// make answers past it. The events go into the log directly, as a log written before
// `server.max_metadata_bytes` existed holds them (a write through the API is refused, below).
const BLOB = 62_000_000;
const DOCS = 9;

/**
 * Reads a streamed answer, collapsing every run of the blob's character to one, so the text
 * (megabytes of vectors and small fields around nine 62 MB strings) parses as JSON and is
 * checked field by field. Returns the collapsed JSON and the real byte count.
 */
async function readCollapsed(stream: Readable): Promise<{ json: unknown; bytes: number }> {
  const parts: string[] = [];
  let bytes = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    parts.push(chunk.toString('latin1').replace(/Z+/g, 'Z'));
  }
  return { json: JSON.parse(parts.join('').replace(/Z+/g, 'Z')) as unknown, bytes };
}

describe('answers past V8\'s largest string are streamed, never a 500 (real log and projections)', () => {
  let node: Node;
  beforeAll(async () => {
    node = await inProcessNode();
    const c = await node.app.inject({ method: 'PUT', url: '/v1/collections/big', payload: { dimension: 2, metric: 'l2' } });
    expect(c.statusCode).toBe(201);
    const blob = 'Z'.repeat(BLOB);
    let last = 0;
    for (let i = 0; i < DOCS; i++) {
      const r = await node.log.append([{ type: 'vector.upserted', collection: 'big', body: { id: `d${i}`, vector: new Float32Array([i, 1]), metadata: { blob } } }]);
      last = r.lastSeq;
    }
    await node.projections.waitForApplied(last);
  }, 300_000);
  afterAll(async () => {
    await node.close();
  });

  it('GET /v1/audit/collections/:name: every document, as one valid JSON document of the documented shape', async () => {
    const r = await node.app.inject({ method: 'GET', url: '/v1/audit/collections/big', payloadAsStream: true });
    expect(r.statusCode).toBe(200);
    const { json, bytes } = await readCollapsed(r.stream());
    expect(bytes).toBeGreaterThan(DOCS * BLOB);
    expect(json).toMatchObject({ collection: { name: 'big', dimension: 2, count: DOCS }, head: { seq: DOCS + 1 } });
    const docs = (json as { documents: { id: string; vector: number[]; metadata: unknown }[] }).documents;
    expect(docs.map((d) => d.id)).toEqual([...Array(DOCS).keys()].map((i) => `d${i}`));
    expect(docs[3]).toMatchObject({ collection: 'big', id: 'd3', vector: [3, 1], metadata: { blob: 'Z' } });
  }, 120_000);

  it('POST /v1/collections/:name/search: k hits with large metadata', async () => {
    const r = await node.app.inject({ method: 'POST', url: '/v1/collections/big/search', payload: { vector: [0, 1], k: DOCS }, payloadAsStream: true });
    expect(r.statusCode).toBe(200);
    const { json } = await readCollapsed(r.stream());
    const res = json as { results: { id: string; metadata: unknown }[]; degraded: boolean; layers: string[] };
    expect(res.results.map((h) => h.id)).toEqual([...Array(DOCS).keys()].map((i) => `d${i}`));
    expect(res.results[0]!.metadata).toEqual({ blob: 'Z' });
    expect(typeof res.degraded).toBe('boolean');
    expect(Array.isArray(res.layers)).toBe(true);
  }, 120_000);

  it('GET /v1/log: a page ends early once its bytes pass the bound, and next says where the following one starts', async () => {
    let from = 1;
    const seen: number[] = [];
    while (from !== 0) {
      const r = await node.app.inject({ method: 'GET', url: `/v1/log?fromSeq=${from}&limit=1000`, payloadAsStream: true });
      expect(r.statusCode).toBe(200);
      const { json, bytes } = await readCollapsed(r.stream());
      const page = json as { events: { seq: number }[]; next: number | null };
      expect(bytes).toBeLessThan(2 * (BLOB + 1_000_000)); // the 16 MiB bound plus one event
      seen.push(...page.events.map((e) => e.seq));
      from = page.next ?? 0;
    }
    expect(seen).toEqual([...Array(DOCS + 1).keys()].map((i) => i + 1));
  }, 120_000);

  it('a write whose metadata is over server.max_metadata_bytes (64 KiB) is 400 API_INVALID_METADATA naming the id and the limit, and writes nothing', async () => {
    const head = node.log.head().seq;
    const ok = { id: 'fits', vector: [1, 1], metadata: { s: 'a'.repeat(64 * 1024 - 8) } }; // {"s":"…"} is 8 bytes besides
    const over = { id: 'over', vector: [1, 1], metadata: { s: 'a'.repeat(64 * 1024 - 7) } };
    const r = await node.app.inject({ method: 'POST', url: '/v1/collections/big/vectors', payload: { vectors: [ok, over] } });
    expect(r.statusCode).toBe(400);
    expect(r.json().error.code).toBe('API_INVALID_METADATA');
    expect(r.json().error.message).toContain('"over"');
    expect(r.json().error.message).toContain('65536');
    expect(node.log.head().seq).toBe(head);
    const w = await node.app.inject({ method: 'POST', url: '/v1/collections/big/vectors', payload: { vectors: [ok] } });
    expect(w.statusCode).toBe(200);
  });
});
