import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventLog, Failpoints, seededRandom } from '@kyrodb/log';
import type { Clock, EventInput, Metric } from '@kyrodb/log';
import { Registry } from 'prom-client';
import { Projections } from '@kyrodb/projections';
import type { ProjectionsOptions } from '@kyrodb/projections';

export const quiet = (): void => undefined;

export function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'kyro-proj-'));
}

/** HNSW parameters that make the index exact for the small sets the laws use. */
export const exactHnsw = { M: 16, efConstruction: 200, efSearch: 200 };

export function create(collection: string, dimension: number, metric: Metric = 'cosine'): EventInput {
  return { type: 'collection.created', collection, body: { dimension, metric, hnsw: exactHnsw } };
}

export function upsert(collection: string, id: string, vector: number[], metadata?: Record<string, string | number>): EventInput {
  return metadata === undefined
    ? { type: 'vector.upserted', collection, body: { id, vector: new Float32Array(vector) } }
    : { type: 'vector.upserted', collection, body: { id, vector: new Float32Array(vector), metadata } };
}

/** A deterministic pseudo-random generator (mulberry32). */
export const rng = seededRandom;

export function randomVector(r: () => number, dim: number): number[] {
  return Array.from({ length: dim }, () => r() * 2 - 1);
}

export interface Env {
  dir: string;
  log: EventLog;
  failpoints: Failpoints;
  registry: Registry;
  open(extra?: Partial<ProjectionsOptions>): Promise<Projections>;
  close(): Promise<void>;
}

/** A real log in a temp dir and a way to open projections on it (each open gets a fresh registry). */
export async function makeEnv(o: { clock?: Clock } = {}): Promise<Env> {
  const dir = tmpDir();
  const failpoints = new Failpoints();
  const log = await EventLog.open({ dir, failpoints, logger: quiet, ...(o.clock ? { clock: o.clock } : {}) });
  const opened: Projections[] = [];
  const env: Env = {
    dir,
    log,
    failpoints,
    registry: new Registry(),
    async open(extra = {}) {
      env.registry = new Registry();
      const p = await Projections.open({ log, dataDir: dir, failpoints, registry: env.registry, logger: quiet, checkpoint: { everyEvents: 0, everySecs: 0 }, ...extra });
      opened.push(p);
      return p;
    },
    async close() {
      for (const p of opened) await p.close();
      await log.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return env;
}

/** The value of a metric sample on a registry (0 when absent). */
export async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (m === undefined) return 0;
  const data = await m.get();
  const v = data.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}
