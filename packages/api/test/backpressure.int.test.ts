import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { toHex } from '@kyrodb/log';
import type { KyroNode } from '../src/node.js';
import type { Failpoints } from '@kyrodb/log';
import { inProcessNode } from './helpers.js';

// Real backpressure: the real Projections with a hot tier bounded to 4 vectors (by count, or by
// bytes: 4 vectors of 2 float32s), and the cold tier's inserts stalled (failpoint
// `projection.cold.insert=delay(3000)`) so the hot tier fills.
describe.each([
  ['storage.hot_tier_max_vectors', { 'storage.hot_tier_max_vectors': 4 }],
  ['storage.hot_tier_max_bytes', { 'storage.hot_tier_max_bytes': 4 * 2 * 4 }],
])('backpressure from a full hot tier (%s)', (bound, cfg) => {
  let node: KyroNode & { dir: string; fp: Failpoints };
  beforeAll(async () => {
    node = await inProcessNode({ ...cfg, 'cache.enabled': false });
  });
  afterAll(async () => {
    node.fp.clearAll();
    await node.close();
  });

  const write = (ids: string[]): Promise<{ statusCode: number; headers: Record<string, unknown>; json: () => { error: { code: string } } }> =>
    node.app.inject({ method: 'POST', url: '/v1/collections/bp/vectors', payload: { vectors: ids.map((id, i) => ({ id, vector: [i, 1] })) } });

  it(`a write while the hot tier holds more than ${bound} gets 429 API_BACKPRESSURE + Retry-After and writes nothing; it succeeds once the cold tier caught up`, async () => {
    expect((await node.app.inject({ method: 'PUT', url: '/v1/collections/bp', payload: { dimension: 2, metric: 'l2' } })).statusCode).toBe(201);
    node.fp.set('projection.cold.insert', 'delay(3000)');
    const filled = await write(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']);
    expect(filled.statusCode).toBe(200);
    expect(node.projections.health().hotVectors).toBeGreaterThan(4);
    expect(node.projections.health().hotBytes).toBe(node.projections.health().hotVectors * 2 * 4);

    const before = toHex(node.log.head().hash);
    const r = await write(['x']);
    expect(r.statusCode).toBe(429);
    expect(r.json().error.code).toBe('API_BACKPRESSURE');
    expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(toHex(node.log.head().hash)).toBe(before);
    expect((await node.app.inject({ method: 'GET', url: '/v1/collections/bp/vectors/x' })).statusCode).toBe(404);

    node.fp.clear('projection.cold.insert');
    await vi.waitFor(() => expect(node.projections.admission().ok).toBe(true), { timeout: 30_000, interval: 100 });
    expect((await write(['x'])).statusCode).toBe(200);
    expect((await node.app.inject({ method: 'GET', url: '/v1/collections/bp/vectors/x' })).statusCode).toBe(200);
  }, 60_000);
});
