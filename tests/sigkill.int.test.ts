import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { call, startServer, tmp, vectorFor } from './serverProcess.js';
import type { ServerProc } from './serverProcess.js';

const DIM = 16;
const ROUNDS = Number(process.env['KYRODB_SIGKILL_ROUNDS'] ?? 4);
const WRITERS = 8;

// SIGKILL during a sustained concurrent write load, several rounds: after each restart every
// write that got a 2xx is there, the chain verifies, and search finds the acknowledged vectors.
describe('SIGKILL under concurrent write load', { timeout: 240_000 }, () => {
  const data = path.join(tmp(), 'data');
  let server: ServerProc | undefined;
  afterAll(async () => {
    await server?.stop('SIGKILL');
  });

  it(`${ROUNDS} rounds: every acknowledged write survives, the chain verifies, search finds them`, async () => {
    const acked = new Map<string, number>(); // id -> vector seed
    let next = 1;
    for (let round = 0; round < ROUNDS; round++) {
      server = await startServer(['--data-dir', data], { KYRODB_BACKUP_ENABLED: 'false', KYRODB_BACKUP_LOCAL_DIR: path.join(data, '..', 'backups') });
      const { url } = server;
      // after a restart: everything acknowledged before is there
      const verify = await call(url, 'POST', '/v1/audit/verify', {});
      expect(verify.status, JSON.stringify(verify.json)).toBe(200);
      expect(verify.json.ok).toBe(true);
      for (const [id, seed] of acked) {
        const g = await call(url, 'GET', `/v1/collections/load/vectors/${id}`);
        expect(g.status, `${id} after round ${round}`).toBe(200);
        expect(g.json.vector[0]).toBeCloseTo(vectorFor(seed, DIM)[0]!, 5);
      }
      const sample = [...acked].filter((_, i) => i % 17 === 0).slice(0, 30);
      for (const [id, seed] of sample) {
        const s = await call(url, 'POST', '/v1/collections/load/search', { vector: vectorFor(seed, DIM), k: 1 });
        expect(s.status).toBe(200);
        expect(s.json.results[0]?.id, `search for ${id}`).toBe(id);
      }
      if (round === 0) expect((await call(url, 'PUT', '/v1/collections/load', { dimension: DIM, metric: 'cosine' })).status).toBe(201);

      // sustained load, then SIGKILL mid-flight (after a number of acknowledged batches, not a time)
      let stop = false;
      let okThisRound = 0;
      const killAfter = 20 + round * 7;
      const writer = async (): Promise<void> => {
        while (!stop) {
          const batch = Array.from({ length: 5 }, () => {
            const seed = next++;
            return { id: `v${seed}`, seed };
          });
          try {
            const r = await call(url, 'POST', '/v1/collections/load/vectors', { vectors: batch.map((b) => ({ id: b.id, vector: vectorFor(b.seed, DIM) })) });
            if (r.status === 200) {
              for (const b of batch) acked.set(b.id, b.seed);
              okThisRound += 1;
            } else throw new Error(`unexpected ${r.status}: ${JSON.stringify(r.json)}`);
          } catch (err) {
            if (!stop) {
              // the connection died because of the kill: the batch is unacknowledged
              if (!(err instanceof TypeError)) throw err;
              return;
            }
          }
        }
      };
      const writers = Array.from({ length: WRITERS }, () => writer());
      while (okThisRound < killAfter) await new Promise((r) => setTimeout(r, 5));
      const exit = server.stop('SIGKILL');
      stop = true;
      expect(await exit).toBeNull();
      await Promise.all(writers);
      server = undefined;
    }
    // final check after the last kill
    server = await startServer(['--data-dir', data], { KYRODB_BACKUP_ENABLED: 'false', KYRODB_BACKUP_LOCAL_DIR: path.join(data, '..', 'backups') });
    expect((await call(server.url, 'POST', '/v1/audit/verify', {})).json.ok).toBe(true);
    const all = await Promise.all([...acked.keys()].map(async (id) => (await call(server!.url, 'GET', `/v1/collections/load/vectors/${id}`)).status));
    expect(all.filter((s) => s !== 200)).toEqual([]);
    expect(acked.size).toBeGreaterThan(ROUNDS * 20 * 5 - 1);
    expect(await server.stop('SIGTERM')).toBe(0);
    server = undefined;
  });
});
