import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { Failpoints } from '@kyrodb/log';
import { AccessLog, HybridCache, LearnedPredictor, SemanticCache, TrainingSupervisor, trainPredictor } from '../src/cache/index.js';
import type { CacheQuery } from '../src/cache/index.js';
import { zipfWorkload } from './cacheWorkload.js';

// Real worker threads (the training worker started through startWorker/tsx) on the real clock;
// backoffs are shortened so the suite stays quick. Assertions wait for states, never for durations.

async function waitFor(cond: () => boolean, what: string, timeoutMs = 45_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function filledLog(): AccessLog {
  const log = new AccessLog(20_000);
  const wl = zipfWorkload({ seed: 5, dim: 2, topics: 1000, s: 1, queries: 10_000, noise: 0 });
  wl.forEach((x, i) => log.record(i, 'c', x.topic));
  return log;
}

const running: TrainingSupervisor[] = [];
afterEach(async () => {
  for (const s of running.splice(0)) await s.stop();
});

function supervise(failpoints: Failpoints, maxRestarts: number, predictor = new LearnedPredictor(), registry = new Registry()): TrainingSupervisor {
  const sup = new TrainingSupervisor({
    accessLog: filledLog(),
    predictor,
    failpoints,
    registry,
    training: { intervalSecs: 0.05, minSamples: 100 },
    predictorTraining: { horizon: 100, epochs: 20 },
    options: { maxRestarts, restartBackoffSeconds: [0.05, 0.1, 0.2], heartbeatIntervalMs: 50, heartbeatTimeoutMs: 4000 },
  });
  running.push(sup);
  return sup;
}

describe('TrainingSupervisor with real worker threads', () => {
  it('trains in a worker and installs the model', async () => {
    const predictor = new LearnedPredictor();
    const sup = supervise(new Failpoints(), 10, predictor);
    sup.start();
    await waitFor(() => predictor.trained, 'a model');
    expect(sup.status()).toMatchObject({ state: 'running', restarts: 0, modelLoaded: true });
    expect(sup.status().runs).toBeGreaterThanOrEqual(1);
  });

  it('a worker that panics (failpoint training.rmi=panic) is restarted; once it stops panicking, a run succeeds and resets the count', async () => {
    const fp = new Failpoints();
    fp.set('training.rmi', 'panic');
    const predictor = new LearnedPredictor();
    const reg = new Registry();
    const sup = supervise(fp, 10, predictor, reg);
    sup.start();
    await waitFor(() => sup.status().restartsTotal >= 2, 'two restarts');
    expect(sup.status().lastError).toMatch(/panicked|exited/);
    expect(predictor.trained).toBe(false);
    fp.clear('training.rmi');
    await waitFor(() => predictor.trained, 'a model after the panics stop');
    expect(sup.status().restarts).toBe(0);
    expect(sup.status().state).toBe('running');
    expect((await reg.getSingleMetric('training_restarts_total')!.get()).values[0]?.value).toBeGreaterThanOrEqual(2);
  });

  it('a worker that hangs (training.rmi=delay: no heartbeats) is terminated and restarted', async () => {
    const fp = new Failpoints();
    fp.set('training.rmi', 'delay(600000)');
    const predictor = new LearnedPredictor();
    const sup = supervise(fp, 10, predictor);
    sup.start();
    await waitFor(() => sup.status().restartsTotal >= 1, 'a restart after the hang');
    expect(sup.status().lastError).toMatch(/hung/);
    fp.clear('training.rmi');
    await waitFor(() => predictor.trained, 'a model after the hang');
    expect(sup.status().restarts).toBe(0);
  });

  it('after giving up, the cache keeps answering with LRU', async () => {
    const fp = new Failpoints();
    fp.set('training.rmi', 'panic');
    const predictor = new LearnedPredictor();
    const wl = zipfWorkload({ seed: 2, dim: 2, topics: 100, s: 1, queries: 2000, noise: 0 });
    predictor.load(trainPredictor({ fingerprints: Float64Array.from(wl.map((x) => x.topic)) }, { horizon: 50 }));
    const reg = new Registry();
    const cache = new SemanticCache({ predictor, registry: reg, options: { capacity: 2 } });
    expect(cache.stats().policy).toBe('learned');
    const sup = supervise(fp, 2, predictor, reg);
    sup.start();
    await waitFor(() => sup.status().state === 'failed', 'giving up');
    expect(sup.status()).toMatchObject({ gaveUp: true, restartsTotal: 2, modelLoaded: false });
    expect((await reg.getSingleMetric('training_restarts_exceeded_total')!.get()).values[0]?.value).toBe(1);
    expect(cache.stats().policy).toBe('lru');
    const q = (x: number, y: number): CacheQuery => ({ collection: 'c', vector: new Float32Array([x, y]), k: 1, filterKey: '', version: 1, nowMs: Date.now() });
    cache.offer(q(1, 0), [{ id: 'a', score: 1 }]);
    cache.offer(q(0, 1), [{ id: 'b', score: 1 }]);
    cache.offer(q(-1, 0), [{ id: 'c', score: 1 }]); // LRU evicts 'a'
    expect(cache.lookup(q(1, 0))).toBeUndefined();
    expect(cache.lookup(q(0, 1))?.[0]?.id).toBe('b');
    expect(cache.lookup(q(-1, 0))?.[0]?.id).toBe('c');
  });
});

describe('HybridCache', () => {
  it('wires cache, access log, predictor and a real training worker; status() reports for the health endpoint', async () => {
    const hc = new HybridCache({ options: { capacity: 50, training: { intervalSecs: 3600, minSamples: 100 } }, supervisor: { heartbeatIntervalMs: 50, heartbeatTimeoutMs: 4000 } });
    hc.start();
    expect(hc.status()).toMatchObject({ enabled: true, policy: 'lru', training: { state: 'running', modelLoaded: false } });
    const wl = zipfWorkload({ seed: 4, dim: 8, topics: 300, s: 1, queries: 5000, noise: 0.001 });
    wl.forEach((x, i) => {
      const q: CacheQuery = { collection: 'c', vector: x.vector, k: 5, filterKey: '', version: 1, nowMs: i };
      if (hc.lookup(q) === undefined) hc.offer(q, [{ id: `t${x.topic}`, score: 1 }]);
    });
    await expect(hc.supervisor.runNow()).resolves.toBe(true);
    const st = hc.status();
    expect(st.policy).toBe('learned');
    expect(st.stats.hits).toBeGreaterThan(0);
    expect(st.training).toMatchObject({ state: 'running', runs: 1, restarts: 0, modelLoaded: true });
    await hc.stop();
    expect(hc.status().training.state).toBe('stopped');
  });
});
