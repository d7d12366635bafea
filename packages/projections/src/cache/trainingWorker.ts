/*
 * The training worker thread. It heartbeats every `heartbeatIntervalMs` (and after every training
 * epoch), trains on each `train` message and posts the weights back. The failpoint `training.rmi`
 * (armed from the spec in workerData) is checked before each run: `panic` throws an uncaught error,
 * which crashes the worker for real; `delay(MS)` spins the thread for MS ms, a real hang in which no
 * heartbeat is sent. Any other error is also left uncaught: the supervisor treats it as a crash.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Failpoints } from '@kyrodb/log';
import { trainPredictor } from './predictor.js';
import type { FromTrainingWorker, ToTrainingWorker, TrainingWorkerData } from './supervisor.js';

const data = workerData as TrainingWorkerData;
const port = parentPort!;
const failpoints = new Failpoints();
failpoints.configure(data.failpoints);

const send = (m: FromTrainingWorker): void => port.postMessage(m);
const heartbeat = (): void => send({ type: 'heartbeat' });
setInterval(heartbeat, data.heartbeatIntervalMs);
heartbeat();

port.on('message', (msg: ToTrainingWorker) => {
  if (msg.type !== 'train') return;
  const hangMs = failpoints.check('training.rmi');
  if (hangMs > 0) {
    const until = Date.now() + hangMs;
    while (Date.now() < until) {
      // Deliberately busy: a hung training step that cannot heartbeat.
    }
  }
  const weights = trainPredictor({ fingerprints: msg.fingerprints }, msg.options, heartbeat);
  send({ type: 'result', runId: msg.runId, weights: weights ?? null });
});
