import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import S3rver from 's3rver';
import { EventLog, seededRandom, type EventInput } from '@kyrodb/log';
import { S3Store, type BackupLogger, type S3StoreOptions } from '@kyrodb/backup';

/** A fresh temp dir. */
export function tempDir(prefix = 'kyro-backup-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A logger that keeps lines instead of printing them. */
export function quietLogger(lines: string[] = []): BackupLogger {
  return (level, msg) => {
    lines.push(`${level} ${msg}`);
  };
}

export const quietLogLogger = (): void => undefined;

/** Opens a writable log in a fresh data dir (`segmentBytes`: its write-ahead segments' size). */
export async function openLog(dir = tempDir(), segmentBytes?: number): Promise<{ log: EventLog; dir: string }> {
  return { log: await EventLog.open({ dir, logger: quietLogLogger, ...(segmentBytes !== undefined ? { segmentBytes } : {}) }), dir };
}

/** A deterministic vector. */
export function vec(seed: number, dim: number): Float32Array {
  const v = new Float32Array(dim);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < dim; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    v[i] = (x / 0xffffffff) * 2 - 1;
  }
  return v;
}

export function created(collection = 'c', dimension = 8, metric: 'l2' | 'cosine' | 'ip' = 'l2'): EventInput {
  return { type: 'collection.created', collection, body: { dimension, metric, hnsw: { M: 16, efConstruction: 100, efSearch: 50 } } };
}

export function upsert(id: string, seed: number, collection = 'c', dim = 8): EventInput {
  return { type: 'vector.upserted', collection, body: { id, vector: vec(seed, dim), metadata: { seed } } };
}

export function del(id: string, collection = 'c'): EventInput {
  return { type: 'vector.deleted', collection, body: { id } };
}

/** Appends `n` upserts (ids cycling over `ids` distinct docs) in batches. */
export async function fill(log: EventLog, n: number, o: { collection?: string; dim?: number; ids?: number; batch?: number; seed?: number } = {}): Promise<void> {
  const batch = o.batch ?? 100;
  const seed = o.seed ?? 0;
  for (let i = 0; i < n; i += batch) {
    const evs: EventInput[] = [];
    for (let j = i; j < Math.min(n, i + batch); j++) evs.push(upsert(`d${(j + seed) % (o.ids ?? 1_000_000)}`, j + seed, o.collection ?? 'c', o.dim ?? 8));
    await log.append(evs);
  }
}

/** A new log holding collection `c` (8-d) and `n` upserts of it (see `fill`). */
export async function filledLog(n: number, o: Parameters<typeof fill>[2] = {}): Promise<{ log: EventLog; dir: string }> {
  const opened = await openLog();
  await opened.log.append([created('c', 8)]);
  await fill(opened.log, n, o);
  return opened;
}

/** SHA-256 over every file path and content under `dir` (absent dir → 'absent'). */
export function hashDir(dir: string): string {
  if (!fs.existsSync(dir)) return 'absent';
  const h = createHash('sha256');
  const walk = (d: string, rel: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) walk(path.join(d, e.name), r);
      else {
        h.update(r + '\0');
        h.update(fs.readFileSync(path.join(d, e.name)));
      }
    }
  };
  walk(dir, '');
  return h.digest('hex');
}

/** Files next to `dir` whose names start with its basename (staging, pre-restore). */
export function siblings(dir: string): string[] {
  const base = path.basename(dir);
  return fs.readdirSync(path.dirname(dir)).filter((n) => n.startsWith(base) && n !== base);
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** A real s3rver on 127.0.0.1 with bucket `bkt`; `stop()` and `start()` again on the same port and data. */
export class S3Server {
  private server: S3rver | undefined;
  readonly directory = tempDir('kyro-s3rver-');
  port = 0;
  async start(port = 0): Promise<void> {
    this.server = new S3rver({ port: port || this.port || (await freePort()), address: '127.0.0.1', silent: true, directory: this.directory, configureBuckets: [{ name: 'bkt' }], resetOnClose: false });
    const a = await this.server.run();
    this.port = a.port;
  }
  async stop(): Promise<void> {
    await this.server?.close();
    this.server = undefined;
  }
  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }
}

/** An S3 store on an endpoint (s3rver or a proxy in front of it). */
export function s3Store(endpoint: string, prefix: string, o: Partial<S3StoreOptions> = {}): S3Store {
  return new S3Store(`s3://bkt/${prefix}`, { endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, retry: { attempts: 6, baseDelayMs: 20, maxDelayMs: 200 }, requestTimeoutMs: 5000, ...o });
}

/** Fault modes of the proxy. */
export interface ProxyFaults {
  /** Fraction of requests answered 500/503 without forwarding. */
  errorRate: number;
  /** Fraction of requests whose connection is destroyed without an answer. */
  dropRate: number;
  /** Latency added to each request, ms. */
  latencyMs: number;
}

/** A fault-injecting HTTP proxy (node http) in front of an S3 endpoint. */
export class FaultProxy {
  faults: ProxyFaults = { errorRate: 0, dropRate: 0, latencyMs: 0 };
  /** Faults for the next requests, consumed before the random rates apply (makes a test's faults certain). */
  script: ('error' | 'drop' | 'ok')[] = [];
  counts = { requests: 0, errors: 0, drops: 0, forwarded: 0 };
  private server: http.Server | undefined;
  port = 0;
  constructor(private readonly target: () => number, private readonly random: () => number = mulberry32(12345)) {}
  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      this.counts.requests += 1;
      const body: Buffer[] = [];
      req.on('data', (c: Buffer) => body.push(c));
      req.on('end', () => {
        setTimeout(() => {
          const scripted = this.script.shift();
          const r = scripted === 'drop' ? -1 : scripted === 'error' ? this.faults.dropRate : scripted === 'ok' ? 2 : this.random();
          if (r < this.faults.dropRate || scripted === 'drop') {
            this.counts.drops += 1;
            req.socket.destroy();
            return;
          }
          if (r < this.faults.dropRate + this.faults.errorRate || scripted === 'error') {
            this.counts.errors += 1;
            const status = this.counts.errors % 2 === 0 ? 500 : 503;
            res.writeHead(status, { 'content-type': 'application/xml' });
            res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${status === 503 ? 'ServiceUnavailable' : 'InternalError'}</Code><Message>injected</Message></Error>`);
            return;
          }
          this.counts.forwarded += 1;
          const up = http.request({ host: '127.0.0.1', port: this.target(), method: req.method, path: req.url, headers: req.headers }, (ur) => {
            res.writeHead(ur.statusCode ?? 502, ur.headers);
            ur.pipe(res);
          });
          up.on('error', () => req.socket.destroy());
          up.end(Buffer.concat(body));
        }, this.faults.latencyMs);
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as net.AddressInfo).port;
  }
  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server?.close(() => r()) ?? r());
  }
}

/** Polls `cond` every 20 ms until true (or throws after `timeoutMs`). */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 30_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A small seeded PRNG (fault schedules are reproducible). */
export const mulberry32 = seededRandom;
