import { Counter, Gauge, Registry } from 'prom-client';
import { Failpoints, startWorker, systemClock } from '@kyrodb/log';
import type { Clock, FailpointAction, LogSink } from '@kyrodb/log';
import type { AccessLog } from './accessLog.js';
import { CacheError } from './errors.js';
import { resolveCacheOptions, resolveSupervisorOptions } from './options.js';
import type { LearnedPredictor, PredictorTrainingOptions, PredictorWeights } from './predictor.js';
import type { CacheTrainingOptions, SupervisorOptions } from './types.js';

/** Data a training worker starts with. */
export interface TrainingWorkerData {
  /** Failpoint spec (`name=action;…`, the KYRODB_FAILPOINTS format) armed inside the worker. */
  failpoints: string;
  /** Heartbeat period in ms. */
  heartbeatIntervalMs: number;
}
/** Messages to the training worker. */
export type ToTrainingWorker = { type: 'train'; runId: number; fingerprints: Float64Array; options: Partial<PredictorTrainingOptions> };
/** Messages from the training worker. */
export type FromTrainingWorker = { type: 'heartbeat' } | { type: 'result'; runId: number; weights: PredictorWeights | null };

/** Callbacks a spawned worker reports to (each at most meaningful once per worker for error/exit). */
export interface TrainingWorkerEvents {
  message(m: FromTrainingWorker): void;
  error(e: Error): void;
  exit(code: number): void;
}
/** What the supervisor needs of a worker. */
export interface TrainingWorkerHandle {
  post(msg: ToTrainingWorker): void;
  terminate(): Promise<void>;
}
/** Starts a training worker (injectable so tests can drive crashes with a fake clock). */
export type SpawnTrainingWorker = (data: TrainingWorkerData, on: TrainingWorkerEvents) => TrainingWorkerHandle;

/** The default spawner: a real worker thread running `trainingWorker.ts`/`.js` via `startWorker`. */
export const spawnTrainingWorkerThread: SpawnTrainingWorker = (data, on) => {
  const self = new URL(import.meta.url);
  const url = new URL(self.pathname.endsWith('.ts') ? './trainingWorker.ts' : './trainingWorker.js', self);
  const w = startWorker(url, { workerData: data });
  w.on('message', (m: FromTrainingWorker) => on.message(m));
  w.on('error', (e: Error) => on.error(e));
  w.on('exit', (code: number) => on.exit(code));
  return {
    post: (msg) => w.postMessage(msg, [msg.fingerprints.buffer as ArrayBuffer]),
    terminate: async () => {
      await w.terminate();
    },
  };
};

/** Lifecycle of the training task. `failed` = gave up after `maxRestarts`; the cache runs LRU. */
export type TrainingState = 'idle' | 'running' | 'backoff' | 'failed' | 'stopped';

/** The task's state for the health endpoint. */
export interface TrainingStatus {
  state: TrainingState;
  /** Restarts since the last successful run (reset by a success). */
  restarts: number;
  /** Restarts since the supervisor started. */
  restartsTotal: number;
  /** True once the supervisor gave up (the predictor was cleared; queries use LRU). */
  gaveUp: boolean;
  /** Completed training runs (with or without a new model). */
  runs: number;
  /** Runs skipped because the access log held fewer than `minSamples` records. */
  skippedRuns: number;
  /** Wall-clock ms of the last successful run, if any. */
  lastSuccessMs: number | undefined;
  /** Why the worker last failed, if it did. */
  lastError: string | undefined;
  /** Seconds the current worker has been up (0 when none is running). */
  uptimeSeconds: number;
  /** True when the predictor holds a model. */
  modelLoaded: boolean;
}

/** What `new TrainingSupervisor` takes. */
export interface TrainingSupervisorInit {
  accessLog: AccessLog;
  predictor: LearnedPredictor;
  /** Restart policy and heartbeats; absent fields take `defaultSupervisorOptions`. */
  options?: Partial<SupervisorOptions>;
  /** Interval and minimum samples; absent fields take `defaultCacheOptions.training`. */
  training?: Partial<CacheTrainingOptions>;
  /** Options passed to `trainPredictor` in the worker (e.g. `horizon`, usually the cache capacity). */
  predictorTraining?: Partial<PredictorTrainingOptions>;
  /** Default: systemClock. Backoff waits, heartbeat checks and the run interval all use it. */
  clock?: Clock;
  /** Registry for the `training_*` metrics. Default: a private one. */
  registry?: Registry;
  /** Failpoints whose armed specs are passed to every worker started (`training.rmi`). */
  failpoints?: Failpoints;
  logger?: LogSink;
  /** Default: spawnTrainingWorkerThread. */
  spawn?: SpawnTrainingWorker;
}

function actionSpec(a: FailpointAction): string {
  switch (a.kind) {
    case 'error':
      return `error(${a.code})`;
    case 'delay':
      return `delay(${a.ms})`;
    default:
      return a.kind;
  }
}

/**
 * Runs predictor training every `intervalSecs` in a worker thread and keeps it alive (sketch §3).
 * A crash — an uncaught error, the worker exiting, or a hang (no heartbeat for `heartbeatTimeoutMs`,
 * after which the worker is terminated) — is followed by a restart after
 * `restartBackoffSeconds[min(n, len) - 1]` seconds for the n-th consecutive restart (1, 2, 4, 8, 16,
 * 16, … by default). The crash after `maxRestarts` restarts makes it give up: state `failed`,
 * `training_restarts_exceeded_total` + 1, an error log, and the predictor is cleared so the cache
 * falls back to LRU; queries never fail because of training. A completed run resets the restart
 * count. Runs are skipped while the access log holds fewer than `minSamples` records.
 */
export class TrainingSupervisor {
  private readonly opts: Readonly<SupervisorOptions>;
  private readonly training: Readonly<CacheTrainingOptions>;
  private readonly clock: Clock;
  private readonly spawnFn: SpawnTrainingWorker;
  private readonly log: LogSink;
  private state: TrainingState = 'idle';
  private gen = 0;
  private loopGen = 0;
  private worker: TrainingWorkerHandle | undefined;
  private startedAt = 0;
  private lastHeartbeat = 0;
  private nextRunAt = 0;
  private runId = 0;
  private inflight: number | undefined;
  private waiters: { resolve: (installed: boolean) => void; reject: (e: Error) => void }[] = [];
  private restarts = 0;
  private restartsTotal = 0;
  private runs = 0;
  private skippedRuns = 0;
  private lastSuccessMs: number | undefined;
  private lastError: string | undefined;
  private readonly m: { restarts: Counter; exceeded: Counter; lastSuccess: Gauge };

  constructor(private readonly init: TrainingSupervisorInit) {
    this.opts = resolveSupervisorOptions(init.options);
    this.training = resolveCacheOptions({ training: init.training ?? {} }).training;
    this.clock = init.clock ?? systemClock;
    this.spawnFn = init.spawn ?? spawnTrainingWorkerThread;
    this.log = init.logger ?? (() => {});
    const registry = init.registry ?? new Registry();
    this.m = {
      restarts: new Counter({ name: 'training_restarts_total', help: 'Restarts of the training task after a crash or hang', registers: [registry] }),
      exceeded: new Counter({ name: 'training_restarts_exceeded_total', help: 'Times the training supervisor gave up after max restarts', registers: [registry] }),
      lastSuccess: new Gauge({ name: 'training_last_success_timestamp', help: 'Unix time (s) of the last successful training run', registers: [registry] }),
    };
    const uptime: Gauge = new Gauge({
      name: 'training_uptime_seconds',
      help: 'Seconds the current training worker has been up',
      registers: [registry],
      collect: () => uptime.set(this.uptimeSeconds()),
    });
  }

  /** Starts the worker and the run/heartbeat loop. Idempotent while running. */
  start(): void {
    if (this.state !== 'idle' && this.state !== 'stopped') return;
    this.nextRunAt = this.clock.monotonicMs() + this.training.intervalSecs * 1000;
    this.spawn();
    void this.loop();
  }

  /** Stops the loop and terminates the worker; pending `runNow` calls reject with CACHE_TRAINING_FAILED. */
  async stop(): Promise<void> {
    const w = this.worker;
    this.state = 'stopped';
    this.gen++;
    this.worker = undefined;
    this.inflight = undefined;
    this.failWaiters('the training supervisor was stopped');
    if (w !== undefined) await w.terminate().catch(() => {});
  }

  /**
   * Runs training as soon as a worker is up (now, if idle) and resolves when a run completes: true if
   * a model was installed, false if the run was skipped or found too few examples. Survives restarts;
   * rejects (CACHE_TRAINING_FAILED) if the supervisor gives up or is stopped first.
   */
  runNow(): Promise<boolean> {
    if (this.state === 'failed' || this.state === 'stopped' || this.state === 'idle') return Promise.reject(new CacheError('CACHE_TRAINING_FAILED', `training supervisor is ${this.state}`));
    const p = new Promise<boolean>((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.nextRunAt = this.clock.monotonicMs();
    if (this.state === 'running' && this.inflight === undefined) this.runJob();
    return p;
  }

  /** The task's state for the health endpoint. */
  status(): TrainingStatus {
    return {
      state: this.state,
      restarts: this.restarts,
      restartsTotal: this.restartsTotal,
      gaveUp: this.state === 'failed',
      runs: this.runs,
      skippedRuns: this.skippedRuns,
      lastSuccessMs: this.lastSuccessMs,
      lastError: this.lastError,
      uptimeSeconds: this.uptimeSeconds(),
      modelLoaded: this.init.predictor.trained,
    };
  }

  private uptimeSeconds(): number {
    return this.state === 'running' ? Math.max(0, this.clock.monotonicMs() - this.startedAt) / 1000 : 0;
  }

  private spawn(): void {
    const g = ++this.gen;
    const fp = this.init.failpoints;
    const failpoints = fp === undefined ? '' : Object.entries(fp.list()).map(([k, a]) => `${k}=${actionSpec(a)}`).join(';');
    this.state = 'running';
    this.startedAt = this.lastHeartbeat = this.clock.monotonicMs();
    this.inflight = undefined;
    try {
      this.worker = this.spawnFn(
        { failpoints, heartbeatIntervalMs: this.opts.heartbeatIntervalMs },
        {
          message: (m) => {
            if (g === this.gen) this.onMessage(m);
          },
          error: (e) => {
            if (g === this.gen) this.onCrash(`uncaught error: ${e.message}`);
          },
          exit: (code) => {
            if (g === this.gen) this.onCrash(`worker exited with code ${code}`);
          },
        },
      );
    } catch (e) {
      this.worker = undefined;
      this.onCrash(`worker failed to start: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    if (this.nextRunAt <= this.clock.monotonicMs() && this.state === 'running') this.runJob();
  }

  private async loop(): Promise<void> {
    const mine = ++this.loopGen; // a stop() + start() leaves exactly one loop running
    while (this.state !== 'stopped' && this.state !== 'failed' && mine === this.loopGen) {
      await this.clock.sleep(this.opts.heartbeatIntervalMs);
      if (this.state !== 'running' || mine !== this.loopGen) continue;
      const now = this.clock.monotonicMs();
      if (now - this.lastHeartbeat > this.opts.heartbeatTimeoutMs) this.onCrash(`no heartbeat for ${now - this.lastHeartbeat} ms (hung)`);
      else if (this.inflight === undefined && now >= this.nextRunAt) this.runJob();
    }
  }

  private runJob(): void {
    const w = this.worker;
    if (w === undefined) return;
    this.nextRunAt = this.clock.monotonicMs() + this.training.intervalSecs * 1000;
    const snap = this.init.accessLog.snapshot();
    if (snap.fingerprints.length < this.training.minSamples || snap.fingerprints.length === 0) {
      this.skippedRuns++;
      this.settle(false);
      return;
    }
    const runId = ++this.runId;
    this.inflight = runId;
    w.post({ type: 'train', runId, fingerprints: snap.fingerprints, options: this.init.predictorTraining ?? {} });
  }

  private onMessage(m: FromTrainingWorker): void {
    this.lastHeartbeat = this.clock.monotonicMs();
    if (m.type !== 'result' || m.runId !== this.inflight) return;
    this.inflight = undefined;
    let installed = false;
    if (m.weights !== null) {
      try {
        this.init.predictor.load(m.weights);
        installed = true;
      } catch (e) {
        this.log('warn', 'training produced unusable weights; keeping the previous model', { message: e instanceof Error ? e.message : String(e) });
      }
    }
    this.runs++;
    this.restarts = 0;
    this.lastSuccessMs = this.clock.now();
    this.m.lastSuccess.set(this.lastSuccessMs / 1000);
    this.log('info', 'training run completed', { installed, samples: m.weights?.samples ?? 0, loss: m.weights?.loss });
    this.settle(installed);
  }

  private settle(installed: boolean): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w.resolve(installed);
  }

  private failWaiters(reason: string): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w.reject(new CacheError('CACHE_TRAINING_FAILED', reason));
  }

  private onCrash(reason: string): void {
    if (this.state !== 'running') return;
    this.gen++; // later events from the dead worker are ignored
    const w = this.worker;
    this.worker = undefined;
    // An interrupted run is retried as soon as the next worker is up.
    if (this.inflight !== undefined) this.nextRunAt = 0;
    this.inflight = undefined;
    if (w !== undefined) w.terminate().catch(() => {});
    this.lastError = reason;
    this.restarts++;
    if (this.restarts > this.opts.maxRestarts) {
      this.state = 'failed';
      this.m.exceeded.inc();
      this.init.predictor.clear();
      this.log('error', `training task failed after ${this.opts.maxRestarts} restarts; giving up, the cache falls back to LRU`, { reason });
      this.failWaiters(`training gave up after ${this.opts.maxRestarts} restarts: ${reason}`);
      return;
    }
    const b = this.opts.restartBackoffSeconds;
    const delayMs = b[Math.min(this.restarts, b.length) - 1]! * 1000;
    this.state = 'backoff';
    this.log('warn', `training task crashed (restart ${this.restarts} of ${this.opts.maxRestarts} in ${delayMs} ms)`, { reason });
    const g = this.gen;
    void this.clock.sleep(delayMs).then(() => {
      if (g !== this.gen || this.state !== 'backoff') return;
      this.restartsTotal++;
      this.m.restarts.inc();
      this.spawn();
    });
  }
}
