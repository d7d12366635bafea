import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { FakeClock } from '@kyrodb/log';
import { AccessLog, LearnedPredictor, TrainingSupervisor, trainPredictor } from '../src/cache/index.js';
import type { PredictorWeights, SpawnTrainingWorker, ToTrainingWorker, TrainingWorkerEvents } from '../src/cache/index.js';
import { flush, zipfWorkload } from './cacheWorkload.js';

interface FakeWorker {
  at: number;
  on: TrainingWorkerEvents;
  posted: ToTrainingWorker[];
  terminated: boolean;
  failpoints: string;
}

function fakeWorkers(clock: FakeClock): { workers: FakeWorker[]; spawn: SpawnTrainingWorker } {
  const workers: FakeWorker[] = [];
  const spawn: SpawnTrainingWorker = (data, on) => {
    const w: FakeWorker = { at: clock.now(), on, posted: [], terminated: false, failpoints: data.failpoints };
    workers.push(w);
    return {
      post: (m) => w.posted.push(m),
      terminate: () => {
        w.terminated = true;
        return Promise.resolve();
      },
    };
  };
  return { workers, spawn };
}

/** Advances the fake clock in 100 ms steps until `cond` holds (or `maxMs` passed). */
async function advanceUntil(clock: FakeClock, cond: () => boolean, maxMs = 60_000): Promise<void> {
  for (let t = 0; t < maxMs && !cond(); t += 100) {
    clock.advance(100);
    await flush();
  }
}

async function metric(reg: Registry, name: string): Promise<number> {
  return (await reg.getSingleMetric(name)!.get()).values[0]?.value ?? 0;
}

function someWeights(): PredictorWeights {
  const wl = zipfWorkload({ seed: 1, dim: 2, topics: 500, s: 1, queries: 5000, noise: 0 });
  return trainPredictor({ fingerprints: Float64Array.from(wl.map((x) => x.topic)) }, { horizon: 100 })!;
}

function setup(over: { maxRestarts?: number; intervalSecs?: number } = {}) {
  const clock = new FakeClock();
  const reg = new Registry();
  const { workers, spawn } = fakeWorkers(clock);
  const accessLog = new AccessLog(1000);
  for (let i = 0; i < 500; i++) accessLog.record(i, 'c', i % 37);
  const predictor = new LearnedPredictor();
  predictor.load(someWeights());
  const logs: string[] = [];
  const sup = new TrainingSupervisor({
    accessLog,
    predictor,
    clock,
    registry: reg,
    spawn,
    training: { intervalSecs: over.intervalSecs ?? 3600, minSamples: 100 },
    options: over.maxRestarts === undefined ? {} : { maxRestarts: over.maxRestarts },
    logger: (level, msg) => logs.push(`${level}: ${msg}`),
  });
  return { clock, reg, workers, sup, predictor, logs };
}

describe('TrainingSupervisor (fake clock)', () => {
  it('restarts after 1, 2, 4, 8, 16, 16, … s, gives up on the crash after the 10th restart, and falls back to LRU', async () => {
    const { clock, reg, workers, sup, predictor, logs } = setup();
    sup.start();
    expect(workers.length).toBe(1);
    const delays: number[] = [];
    for (let i = 1; i <= 10; i++) {
      const crashAt = clock.now();
      workers.at(-1)!.on.error(new Error(`boom ${i}`));
      expect(sup.status().state).toBe('backoff');
      expect(workers.at(-2)?.terminated ?? workers.at(-1)!.terminated).toBe(true);
      await advanceUntil(clock, () => workers.length === i + 1);
      delays.push(workers.at(-1)!.at - crashAt);
      expect(sup.status().restartsTotal).toBe(i);
    }
    expect(delays).toEqual([1, 2, 4, 8, 16, 16, 16, 16, 16, 16].map((s) => s * 1000));
    expect(await metric(reg, 'training_restarts_total')).toBe(10);
    expect(await metric(reg, 'training_restarts_exceeded_total')).toBe(0);
    expect(predictor.trained).toBe(true);

    workers.at(-1)!.on.exit(1); // the 11th crash
    const st = sup.status();
    expect(st).toMatchObject({ state: 'failed', gaveUp: true, restarts: 11, restartsTotal: 10, modelLoaded: false, lastError: 'worker exited with code 1' });
    expect(predictor.trained).toBe(false);
    expect(await metric(reg, 'training_restarts_exceeded_total')).toBe(1);
    expect(logs.some((l) => l.startsWith('error:') && l.includes('giving up'))).toBe(true);
    await advanceUntil(clock, () => false, 120_000);
    expect(workers.length).toBe(11);
    await expect(sup.runNow()).rejects.toThrow(/failed/);
  });

  it('a successful run resets the restart count (next backoff is 1 s again) and records the success', async () => {
    const { clock, reg, workers, sup, predictor } = setup();
    predictor.clear();
    sup.start();
    for (let i = 1; i <= 3; i++) {
      workers.at(-1)!.on.error(new Error('boom'));
      await advanceUntil(clock, () => workers.length === i + 1);
    }
    expect(sup.status().restarts).toBe(3);
    const done = sup.runNow();
    const job = workers.at(-1)!.posted.at(-1)!;
    expect(job.fingerprints.length).toBe(500);
    workers.at(-1)!.on.message({ type: 'result', runId: job.runId, weights: someWeights() });
    await expect(done).resolves.toBe(true);
    expect(sup.status()).toMatchObject({ state: 'running', restarts: 0, runs: 1, modelLoaded: true, lastSuccessMs: clock.now() });
    expect(await metric(reg, 'training_last_success_timestamp')).toBe(clock.now() / 1000);
    const crashAt = clock.now();
    workers.at(-1)!.on.error(new Error('boom again'));
    await advanceUntil(clock, () => workers.length === 5);
    expect(workers.at(-1)!.at - crashAt).toBe(1000);
  });

  it('a hung worker (no heartbeat for heartbeatTimeoutMs) is terminated and restarted; heartbeats keep it alive', async () => {
    const { clock, workers, sup, reg } = setup();
    sup.start();
    for (let s = 0; s < 30; s++) {
      clock.advance(1000);
      workers[0]!.on.message({ type: 'heartbeat' });
      await flush();
    }
    expect(workers.length).toBe(1);
    expect(await metric(reg, 'training_uptime_seconds')).toBe(30);
    await advanceUntil(clock, () => sup.status().state === 'backoff');
    expect(workers[0]!.terminated).toBe(true);
    expect(sup.status().lastError).toMatch(/hung/);
    const hungAt = clock.now();
    expect(hungAt - workers[0]!.at).toBeGreaterThan(30_000 + 10_000);
    await advanceUntil(clock, () => workers.length === 2);
    expect(workers[1]!.at - hungAt).toBe(1000);
    expect(sup.status().state).toBe('running');
  });

  it('runs every interval once enough samples are logged; a crash mid-run retries the run after the restart', async () => {
    const { clock, workers, sup } = setup({ intervalSecs: 5 });
    sup.start();
    await advanceUntil(clock, () => workers[0]!.posted.length === 1);
    expect(clock.now() - workers[0]!.at).toBe(5000);
    workers[0]!.on.error(new Error('mid-run'));
    await advanceUntil(clock, () => workers.length === 2);
    expect(workers[1]!.posted.length).toBe(1); // the overdue run is sent to the new worker at once
    await sup.stop();
    expect(workers[1]!.terminated).toBe(true);
    expect(sup.status().state).toBe('stopped');
  });

  it('passes the armed failpoints to each worker', async () => {
    const { Failpoints } = await import('@kyrodb/log');
    const clock = new FakeClock();
    const { workers, spawn } = fakeWorkers(clock);
    const fp = new Failpoints();
    fp.set('training.rmi', 'panic');
    const sup = new TrainingSupervisor({ accessLog: new AccessLog(10), predictor: new LearnedPredictor(), clock, spawn, failpoints: fp });
    sup.start();
    expect(workers[0]!.failpoints).toBe('training.rmi=panic');
    fp.clear('training.rmi');
    workers[0]!.on.error(new Error('x'));
    await advanceUntil(clock, () => workers.length === 2);
    expect(workers[1]!.failpoints).toBe('');
    await sup.stop();
  });
});
