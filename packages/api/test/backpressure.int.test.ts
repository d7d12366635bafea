import path from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventLog, Failpoints, toHex } from '@kyrodb/log';
import { materialize, exactSearch } from '@kyrodb/projections';
import { loadConfig } from '../src/config.js';
import type { ProjectionsPort } from '../src/contracts.js';
import { ExactProjections } from '../src/exactProjections.js';
import { openProjections } from '../src/components.js';
import { buildApp } from '../src/server.js';
import { tmpDir } from './helpers.js';

describe('backpressure and the exact fallback', () => {
  let log: EventLog;
  let real: ProjectionsPort;
  const dir = tmpDir();
  beforeAll(async () => {
    log = await EventLog.open({ dir: path.join(dir, 'data'), logger: () => undefined });
    real = (await openProjections({ log, dataDir: path.join(dir, 'data') })).projections;
  });
  afterAll(async () => {
    await real.close();
    await log.close();
  });

  it('a full hot tier answers writes with 429 API_BACKPRESSURE + Retry-After and writes nothing', async () => {
    let full = false;
    const projections: ProjectionsPort = Object.assign(Object.create(real) as ProjectionsPort, { admission: () => (full ? { ok: false as const, retryAfterMs: 2500 } : { ok: true as const }) });
    const cfg = loadConfig({ env: {}, overrides: { 'storage.data_dir': path.join(dir, 'data') } });
    const app = await buildApp({ config: cfg, log, projections, registry: new Registry(), failpoints: new Failpoints(), defaultMetrics: false });
    expect((await app.inject({ method: 'PUT', url: '/v1/collections/bp', payload: { dimension: 2, metric: 'l2' } })).statusCode).toBe(201);
    full = true;
    const before = toHex(log.head().hash);
    const r = await app.inject({ method: 'POST', url: '/v1/collections/bp/vectors', payload: { vectors: [{ id: 'a', vector: [1, 2] }] } });
    expect(r.statusCode).toBe(429);
    expect(r.json().error.code).toBe('API_BACKPRESSURE');
    expect(r.headers['retry-after']).toBe('3');
    expect(toHex(log.head().hash)).toBe(before);
    full = false;
    expect((await app.inject({ method: 'POST', url: '/v1/collections/bp/vectors', payload: { vectors: [{ id: 'a', vector: [1, 2] }] } })).statusCode).toBe(200);
    await app.close();
  });

  it('ExactProjections answers like the projections package (exactSearch over materialize) on the same log', async () => {
    await log.append([{ type: 'collection.created', collection: 'eq', body: { dimension: 4, metric: 'cosine', hnsw: { M: 16, efConstruction: 200, efSearch: 64 } } }]);
    let x = 7;
    const r = (): number => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
    for (let b = 0; b < 5; b++) await log.append(Array.from({ length: 40 }, (_, i) => ({ type: 'vector.upserted' as const, collection: 'eq', body: { id: `d${(b * 40 + i) % 150}`, vector: new Float32Array([r(), r(), r(), r()]), metadata: { g: i % 3 } } })));
    await log.append([{ type: 'vector.deleted', collection: 'eq', body: { id: 'd3' } }]);
    const exact = await ExactProjections.open(log);
    const state = materialize(log);
    for (let q = 0; q < 20; q++) {
      const vector = new Float32Array([r(), r(), r(), r()]);
      const filter = q % 2 === 0 ? { g: { $in: [0, 2] } } : undefined;
      const req = { vector, k: 10, ...(filter ? { filter } : {}) };
      const mine = (await exact.search('eq', req)).results;
      const theirs = exactSearch(state, 'eq', req);
      expect(mine.map((h) => h.id)).toEqual(theirs.map((h) => h.id));
      mine.forEach((h, i) => expect(h.score).toBeCloseTo(theirs[i]!.score, 5));
    }
    expect(exact.getCollection('eq')?.count).toBe(state.collections.get('eq')?.info.count);
    await exact.close();
  });
});
