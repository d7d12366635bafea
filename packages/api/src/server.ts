import { createHash } from 'node:crypto';
import { STATUS_CODES, maxHeaderSize } from 'node:http';
import type { Duplex } from 'node:stream';
import Fastify from 'fastify';
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import type { Registry } from 'prom-client';
import { MAX_DIMENSION, MAX_METADATA_DEPTH, defaultHnswParams, isValidMetadata } from '@kyrodb/log';
import type { EventInput, EventLog, Failpoints, HnswParams, Metadata, Metric } from '@kyrodb/log';
import type { KyroConfig, Role } from './config.js';
import { MAX_FILTER_IN_VALUES, MAX_FILTER_KEYS, validateFilter } from '@kyrodb/projections';
import type { CollectionInfo, Projections, SearchRequest } from '@kyrodb/projections';
import type { BackupManager, ContinuousBackup } from '@kyrodb/backup';
import { ApiError, clip, errorBody, httpStatusFor, sendApiError } from './errors.js';
import { registerHttpMetrics } from './metrics.js';
import { buildOpenApi } from './openapi.js';
import { sendJsonWithArray } from './jsonStream.js';
import { microsToIso, parseIsoMicros } from './time.js';
import { checkId, checkName, checkUrlId } from './names.js';
import { parseJsonBody } from './jsonBody.js';
import { auditRoutes, collectionLiveAt, headAtSeq, headToJson, isAuditError, parseAsOf, presentMicros } from './audit/index.js';

/** What the HTTP app runs on. Everything is passed in; the app owns none of it (the caller closes it). */
export interface AppDeps {
  config: KyroConfig;
  log: EventLog;
  projections: Projections;
  /** Registry for /metrics (components register theirs on the same one). */
  registry: Registry;
  failpoints: Failpoints;
  /** Backups; absent = the backup routes answer 501 API_NOT_AVAILABLE. */
  backup?: { manager: BackupManager; continuous?: ContinuousBackup | undefined } | undefined;
  /** Serve `POST /v1/admin/failpoints` (tests only). Default false. */
  failpointsApi?: boolean;
  /** Training task status for /v1/admin/health, when the projections expose one. */
  training?: () => unknown;
  /** Register the HTTP metrics and prom-client's default process metrics on the registry. Default true (false when several apps share one registry). */
  defaultMetrics?: boolean;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Roles that may call the route (admin may call all); absent = open. */
    roles?: Role[];
    /** Its success statuses, for the OpenAPI document (default [200]). */
    statuses?: number[];
    /** Left out of the OpenAPI document. */
    hidden?: boolean;
  }
  interface FastifyRequest {
    actor?: string;
  }
  interface FastifySchema {
    /** One line for the OpenAPI document. */
    summary?: string;
  }
}

const nameParam = { type: 'object', additionalProperties: false, required: ['name'], properties: { name: { type: 'string' } } } as const;
const nameIdParams = { type: 'object', additionalProperties: false, required: ['name', 'id'], properties: { name: { type: 'string' }, id: { type: 'string' } } } as const;
const hnswSchema = {
  type: 'object',
  additionalProperties: false,
  properties: { M: { type: 'integer', minimum: 2, maximum: 256 }, efConstruction: { type: 'integer', minimum: 2, maximum: 10000 }, efSearch: { type: 'integer', minimum: 2, maximum: 10000 } },
} as const;
const isoString = { type: 'string', maxLength: 64, description: 'ISO-8601 with a time zone (e.g. 2024-01-15T10:00:00Z) or integer microseconds since the epoch' } as const;
const asOfString = { type: 'string', maxLength: 64, description: 'an instant: ISO-8601 with a time zone, or integer microseconds since the epoch; not in the future' } as const;

const emptyQuery = { type: 'object', additionalProperties: false, properties: {} } as const;
/** The body of a route that takes none: absent, `null` or `{}`; any field is 400 (nothing is changed). */
const noBody = { type: 'object', nullable: true, additionalProperties: false, properties: {}, description: 'no body (or {})' } as const;

/**
 * A schema failure of an upsert's metadata (`null`, an array, a string: not an object) as the
 * documented API_INVALID_METADATA, like every other metadata rule; undefined for other errors.
 */
function metadataTypeError(err: unknown): ApiError | undefined {
  const v = (err as { validation?: { instancePath?: unknown }[] }).validation;
  const at = v?.[0]?.instancePath;
  const m = typeof at === 'string' ? /^\/vectors\/(\d+)\/metadata$/.exec(at) : null;
  return m === null ? undefined : invalidMetadata(m[1]!);
}

/** API_INVALID_METADATA for the metadata of the upsert at `i` that breaks the shape rules (isValidMetadata). */
function invalidMetadata(i: number | string): ApiError {
  return new ApiError('API_INVALID_METADATA', `vectors[${i}].metadata must be a JSON object with finite numbers, strings UTF-8 can hold (no lone surrogate escape such as \\ud800), at most ${MAX_METADATA_DEPTH} levels deep (itself included)`);
}

/**
 * Answers a request node's HTTP parser refused before fastify saw it (a garbage request line, an
 * unknown method, a malformed header, Content-Length with Transfer-Encoding, headers too large,
 * a request that timed out) in the API's shape, `{error: {code, message}}`, then closes the
 * connection: 431 API_HEADERS_TOO_LARGE, 408 API_REQUEST_TIMEOUT (naming the server's timeouts,
 * read from `timeouts` when it happens), else 400 API_INVALID_REQUEST.
 */
function clientErrorHandler(timeouts: () => { headersTimeout: number; requestTimeout: number }, answered: (status: number) => void): (err: Error & { code?: string }, socket: Duplex) => void {
  return (err, socket) => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return; // nothing left to answer
    const code = err.code === 'HPE_HEADER_OVERFLOW' ? 'API_HEADERS_TOO_LARGE' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'API_REQUEST_TIMEOUT' : 'API_INVALID_REQUEST';
    const message = code === 'API_REQUEST_TIMEOUT' ? timeoutMessage(timeouts()) : `the request is not valid HTTP/1.1: ${err.message}${err.code !== undefined ? ` (${err.code})` : ''}`;
    answerRaw(socket, code, message);
    answered(httpStatusFor(code));
  };
}

/** What a 408 says: the request was not received in time, and which of node's timeouts that is (either can fire; 0 = off). */
function timeoutMessage(t: { headersTimeout: number; requestTimeout: number }): string {
  const limits = [t.headersTimeout > 0 ? `its headers within headersTimeout (${t.headersTimeout / 1000} s)` : '', t.requestTimeout > 0 ? `the whole request within requestTimeout (${t.requestTimeout / 1000} s)` : ''].filter((x) => x !== '');
  return `the request was not received in time${limits.length > 0 ? `: the server expects ${limits.join(' and ')}` : ''}`;
}

/** Writes `{error: {code, message}}` with the code's status straight to the socket, then closes it. */
function answerRaw(socket: Duplex, code: string, message: string): void {
  const status = httpStatusFor(code);
  const body = JSON.stringify({ error: { code, message } });
  if (socket.writable) socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  socket.destroy();
}

/** A JSON number list → Float32Array; rejects non-numbers ("NaN", null, …) and non-finite values (1e400). */
function toVector(v: unknown, where: string): Float32Array {
  if (!Array.isArray(v)) throw new ApiError('API_INVALID_REQUEST', `${where} must be an array of numbers`);
  if (v.length === 0 || v.length > MAX_DIMENSION) throw new ApiError('API_DIMENSION_MISMATCH', `${where} must have 1..${MAX_DIMENSION} values (got ${v.length})`);
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const x: unknown = v[i];
    // A number as itself: 1e400 parses to Infinity, which JSON.stringify writes as null.
    if (typeof x !== 'number' || !Number.isFinite(x)) throw new ApiError('API_NON_FINITE_VECTOR', `${where}[${i}] is ${typeof x === 'number' ? String(x) : (JSON.stringify(x) ?? String(x))}; expected a finite number`);
    const f = Math.fround(x);
    if (!Number.isFinite(f)) throw new ApiError('API_NON_FINITE_VECTOR', `${where}[${i}] = ${x} overflows float32`);
    out[i] = f;
  }
  return out;
}

function collectionJson(c: CollectionInfo): Record<string, unknown> {
  return { name: c.name, dimension: c.dimension, metric: c.metric, hnsw: c.hnsw, count: c.count, createdSeq: c.createdSeq, version: c.version };
}

/** A promise-chain mutex: collection-level changes (create/drop) are decided one at a time. */
function mutex(): <T>(fn: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };
}

/**
 * A readers-writer lock over async sections: `shared` sections run together; an `exclusive`
 * section waits for the running shared ones and holds new ones back until it is done. Vector
 * writes are shared (they check the collection and its dimension and append as one step);
 * collection creates and drops are exclusive. So a write is never validated against a collection
 * that is dropped or re-created with another dimension before the write commits, which would
 * acknowledge an event the projections then ignore.
 */
function rwLock(): { shared<T>(fn: () => Promise<T>): Promise<T>; exclusive<T>(fn: () => Promise<T>): Promise<T> } {
  const queue = mutex();
  let active = 0;
  let held: Promise<void> | undefined;
  let onIdle: (() => void) | undefined;
  return {
    async shared<T>(fn: () => Promise<T>): Promise<T> {
      while (held !== undefined) await held;
      active += 1;
      try {
        return await fn();
      } finally {
        active -= 1;
        if (active === 0) onIdle?.();
      }
    },
    exclusive<T>(fn: () => Promise<T>): Promise<T> {
      return queue(async () => {
        let release!: () => void;
        held = new Promise<void>((r) => (release = r));
        try {
          while (active > 0) await new Promise<void>((r) => (onIdle = r));
          return await fn();
        } finally {
          held = undefined;
          onIdle = undefined;
          release();
        }
      });
    },
  };
}

/** The methods the API's routes take (the `Allow` of a 405). */
const ROUTE_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'] as const;

/** Runs the tasks given one key one after another (each once the one before it settled); other keys run freely. */
function keyedSerial(): { run<T>(key: string, task: () => Promise<T>): Promise<T> } {
  const tails = new Map<string, Promise<unknown>>();
  return {
    run<T>(key: string, task: () => Promise<T>): Promise<T> {
      const before = tails.get(key);
      const mine = before === undefined ? task() : before.then(task, task);
      const tail = mine.catch(() => undefined);
      tails.set(key, tail);
      void tail.then(() => {
        if (tails.get(key) === tail) tails.delete(key);
      });
      return mine;
    },
  };
}

/**
 * Builds the fastify app (DESIGN.md §4): every route has a JSON Schema with
 * `additionalProperties: false`; errors are `{error: {code, message}}` with the status from
 * `httpStatusFor`; writes answer `{seq, ts, tsMicros}` only after the durable commit and after
 * the projections applied them (read-your-writes). Does not listen; call `app.listen`.
 */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { config, log, projections, registry } = deps;
  // Answers that never reach fastify's onResponse hook (the router's and node's parser's refusals)
  // are counted here, under route "unmatched" (set once the metrics are registered).
  let countUnrouted = (_method: string, _status: number): void => undefined;
  const app = Fastify({
    logger: false,
    bodyLimit: config.server.body_limit_bytes,
    // As long as any URL node's header limit lets in: a name or id of any length reaches the route,
    // whose check answers API_INVALID_NAME (past 600 the router answered API_INVALID_REQUEST).
    routerOptions: { maxParamLength: maxHeaderSize },
    return503OnClosing: false, // the onRequest hook answers API_SHUTTING_DOWN (with Retry-After) while draining
    // Router-level failures (undecodable URL, a parameter longer than maxParamLength — only
    // without node's header limit, as with inject — bad content-type header) bypass setErrorHandler.
    // Their messages echo the URL: cut short.
    frameworkErrors: (err, req, reply) => {
      const long = err.code === 'FST_ERR_MAX_PARAM_LENGTH';
      const code = err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 'API_UNSUPPORTED_MEDIA_TYPE' : long ? 'API_INVALID_NAME' : 'API_INVALID_REQUEST';
      const message = long ? `a collection name or document id in the path is longer than ${maxHeaderSize} characters (names are 1-64 characters, ids 1-256)` : clip(err.message, 200);
      void (reply as FastifyReply).status(httpStatusFor(code)).send({ error: { code, message } });
      countUnrouted(req.method, httpStatusFor(code));
    },
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
    // Node's timeouts as they are when a request times out (called only once the server is built).
    // The method is unknown: node's parser refused the request before reading it whole.
    clientErrorHandler: clientErrorHandler(() => httpServer, (status) => countUnrouted('UNKNOWN', status)),
  });
  const httpServer: { headersTimeout: number; requestTimeout: number } = app.server;
  // JSON only: a text/plain body (fastify parses it as a string) is 415 as any other type is,
  // not a 400 saying "body must be object".
  app.removeContentTypeParser('text/plain');
  // Strict UTF-8, no other charset, no content encoding, no prototype keys (jsonBody.ts). The
  // bytes are read by fastify up to bodyLimit, so a larger body is still 413 API_PAYLOAD_TOO_LARGE.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: config.server.body_limit_bytes }, (req, body, done) => {
    try {
      done(null, parseJsonBody(body as Buffer, req.headers));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  const metrics = deps.defaultMetrics === false ? undefined : registerHttpMetrics(registry);
  if (metrics !== undefined) countUnrouted = (method, status) => metrics.requests.inc({ method, route: 'unmatched', status: String(status) });
  const lifecycle = rwLock();
  const deletesOfDoc = keyedSerial();
  const keysByHash = new Map(config.auth.keys.map((k) => [createHash('sha256').update(k.key).digest('hex'), k]));
  const authOn = config.auth.keys.length > 0;
  let draining = false;

  app.decorateRequest('actor', undefined);

  // Answers straight from the hook (no throw) so encapsulated plugins' error handlers cannot re-map these.
  const refuse = (reply: FastifyReply, code: 'API_SHUTTING_DOWN' | 'API_UNAUTHORIZED' | 'API_FORBIDDEN', message: string): FastifyReply => {
    if (code === 'API_SHUTTING_DOWN') void reply.header('Connection', 'close').header('Retry-After', '1');
    return reply.status(httpStatusFor(code)).send({ error: { code, message } });
  };
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    if (draining) return refuse(reply, 'API_SHUTTING_DOWN', 'the server is shutting down');
    const roles = req.routeOptions.config.roles;
    if (!authOn || roles === undefined) return;
    const auth = req.headers.authorization;
    const raw = typeof auth === 'string' && /^Bearer\s+/i.test(auth) ? auth.replace(/^Bearer\s+/i, '').trim() : req.headers['x-api-key'];
    if (typeof raw !== 'string' || raw === '') return refuse(reply, 'API_UNAUTHORIZED', 'an API key is required: Authorization: Bearer KEY or x-api-key: KEY');
    const key = keysByHash.get(createHash('sha256').update(raw).digest('hex'));
    if (key === undefined) return refuse(reply, 'API_UNAUTHORIZED', 'unknown API key');
    if (!key.roles.includes('admin') && !roles.some((r) => key.roles.includes(r))) return refuse(reply, 'API_FORBIDDEN', `key ${key.name} needs one of the roles ${roles.join(', ')}`);
    req.actor = key.name;
  });

  if (metrics !== undefined) {
    app.addHook('onResponse', async (req, reply) => {
      const route = req.routeOptions.url ?? 'unmatched';
      metrics.requests.inc({ method: req.method, route, status: String(reply.statusCode) });
      metrics.duration.observe({ method: req.method, route }, reply.elapsedTime / 1000);
    });
  }

  app.setErrorHandler(async (err: unknown, _req, reply) => sendApiError(reply, metadataTypeError(err) ?? err, 'API_INVALID_REQUEST'));

  app.setNotFoundHandler(async (req, reply) => {
    const p = req.url.split('?')[0] ?? '';
    // A path that routes for other methods: 405 naming them (Allow), not "no such route".
    const allowed = ROUTE_METHODS.filter((m) => m !== req.method && app.findRoute({ method: m, url: p }) !== null);
    if (allowed.length > 0) return reply.status(405).header('Allow', allowed.join(', ')).send({ error: { code: 'API_METHOD_NOT_ALLOWED', message: `${req.method} ${clip(p, 200)}: this route takes ${allowed.join(', ')}` } });
    return reply.status(404).send({ error: { code: 'API_ROUTE_NOT_FOUND', message: `no route ${req.method} ${clip(p, 200)}` } });
  });

  const routes: RouteOptions[] = [];
  app.addHook('onRoute', (r) => {
    routes.push(r);
  });

  const committed = async (res: { firstSeq: number; lastSeq: number; ts: number; events: unknown[] }): Promise<Record<string, unknown>> => {
    await projections.waitForApplied(res.lastSeq);
    return { seq: res.lastSeq, firstSeq: res.firstSeq, count: res.events.length, ts: microsToIso(res.ts), tsMicros: res.ts };
  };
  const requireCollection = (name: string): CollectionInfo => {
    checkName(name);
    const c = projections.getCollection(name);
    if (c === undefined) throw new ApiError('API_COLLECTION_NOT_FOUND', `collection ${name} does not exist`);
    return c;
  };
  // An as-of instant on these routes follows the audit routes' rule (README "As-of time T"):
  // ISO-8601 with a zone or integer µs; a T after both now and the head's ts is refused
  // (AUDIT_TIME_IN_FUTURE, 422), since an answer as of T must not change later.
  const asOfMicros = (s: string): number => {
    try {
      return parseAsOf(s, presentMicros(log));
    } catch (err) {
      if (isAuditError(err) && err.code === 'AUDIT_BAD_TIME') throw new ApiError('API_INVALID_TIMESTAMP', `asOf: ${err.message}`);
      throw err;
    }
  };
  const actorOf = (req: FastifyRequest): { actor?: string } => (req.actor !== undefined ? { actor: req.actor } : {});
  const admit = (): void => {
    const a = projections.admission();
    if (!a.ok) throw new ApiError('API_BACKPRESSURE', `the hot tier is full; retry in ${Math.ceil(a.retryAfterMs / 1000)} s`, { retryAfterMs: a.retryAfterMs });
  };

  // ------------------------------------------------------------ collections
  await app.register(async (r) => {
    r.put<{ Params: { name: string }; Body: { dimension: number; metric: Metric; hnsw?: Partial<HnswParams> } }>(
      '/v1/collections/:name',
      {
        config: { roles: ['write'], statuses: [200, 201] },
        schema: {
          summary: 'Create a collection (idempotent: the same settings again → 200, other settings → 409)',
          params: nameParam,
          querystring: emptyQuery,
          body: { type: 'object', additionalProperties: false, required: ['dimension', 'metric'], properties: { dimension: { type: 'integer', minimum: 1, maximum: MAX_DIMENSION }, metric: { type: 'string', enum: ['cosine', 'l2', 'ip'] }, hnsw: hnswSchema } },
        },
      },
      async (req, reply) => {
        const { name } = req.params;
        checkName(name);
        const hnsw: HnswParams = { ...defaultHnswParams, ...req.body.hnsw };
        return lifecycle.exclusive(async () => {
          const existing = projections.getCollection(name);
          if (existing !== undefined) {
            const same = existing.dimension === req.body.dimension && existing.metric === req.body.metric && existing.hnsw.M === hnsw.M && existing.hnsw.efConstruction === hnsw.efConstruction && existing.hnsw.efSearch === hnsw.efSearch;
            if (!same) throw new ApiError('API_COLLECTION_EXISTS', `collection ${name} exists with other settings (dimension ${existing.dimension}, metric ${existing.metric}, hnsw ${JSON.stringify(existing.hnsw)})`);
            return reply.status(200).send({ created: false, collection: collectionJson(existing) });
          }
          const res = await log.append([{ type: 'collection.created', collection: name, ...actorOf(req), body: { dimension: req.body.dimension, metric: req.body.metric, hnsw } }]);
          const out = await committed(res);
          const info = projections.getCollection(name);
          return reply.status(201).send({ created: true, ...out, collection: info ? collectionJson(info) : { name } });
        });
      },
    );
    r.get('/v1/collections', { config: { roles: ['read'] }, schema: { summary: 'List collections', querystring: emptyQuery } }, () => ({ collections: projections.listCollections().map(collectionJson) }));
    r.get<{ Params: { name: string } }>('/v1/collections/:name', { config: { roles: ['read'] }, schema: { summary: 'One collection', params: nameParam, querystring: emptyQuery } }, (req) => collectionJson(requireCollection(req.params.name)));
    r.delete<{ Params: { name: string } }>('/v1/collections/:name', { config: { roles: ['write'] }, schema: { summary: 'Drop a collection (its history stays in the log)', params: nameParam, querystring: emptyQuery, body: noBody } }, async (req) =>
      lifecycle.exclusive(async () => {
        requireCollection(req.params.name);
        const res = await log.append([{ type: 'collection.dropped', collection: req.params.name, ...actorOf(req), body: {} }]);
        return committed(res);
      }),
    );

    // ---------------------------------------------------------- vectors
    r.post<{ Params: { name: string }; Body: { vectors: { id: string; vector: unknown[]; metadata?: Metadata }[] } }>(
      '/v1/collections/:name/vectors',
      {
        config: { roles: ['write'] },
        schema: {
          summary: 'Upsert a batch of vectors atomically; answers {seq, ts} after the durable commit. Rules: 1..server.max_batch vectors (413 above), ids unique within the batch (400 API_DUPLICATE_ID), finite numbers only, metadata at most server.max_metadata_bytes of JSON (400 API_INVALID_METADATA).',
          params: nameParam,
          querystring: emptyQuery,
          body: {
            type: 'object',
            additionalProperties: false,
            required: ['vectors'],
            properties: {
              vectors: {
                type: 'array',
                items: { type: 'object', additionalProperties: false, required: ['id', 'vector'], properties: { id: { type: 'string' }, vector: { type: 'array' }, metadata: { type: 'object', description: 'a JSON object: finite numbers, at most 16 levels deep, at most server.max_metadata_bytes (64 KiB) of JSON' } } },
              },
            },
          },
        },
      },
      (req) =>
        lifecycle.shared(async () => {
          const c = requireCollection(req.params.name);
          const vs = req.body.vectors;
          if (vs.length === 0) throw new ApiError('API_EMPTY_BATCH', 'vectors must hold at least one vector');
          if (vs.length > config.server.max_batch) throw new ApiError('API_BATCH_TOO_LARGE', `a batch holds at most ${config.server.max_batch} vectors (got ${vs.length})`, { max: config.server.max_batch });
          const seen = new Set<string>();
          const events: EventInput[] = vs.map((v, i) => {
            checkUrlId(v.id, `vectors[${i}].id`);
            if (seen.has(v.id)) throw new ApiError('API_DUPLICATE_ID', `vectors[${i}].id ${JSON.stringify(v.id)} appears more than once in the batch; send one upsert per id`);
            seen.add(v.id);
            const vector = toVector(v.vector, `vectors[${i}].vector`);
            if (vector.length !== c.dimension) throw new ApiError('API_DIMENSION_MISMATCH', `vectors[${i}].vector has ${vector.length} dimensions, collection ${c.name} has ${c.dimension}`);
            // Named as the request names it (the log would refuse it too, as "event i", LOG_INVALID_EVENT).
            if (v.metadata !== undefined && !isValidMetadata(v.metadata)) throw invalidMetadata(i);
            if (v.metadata !== undefined) {
              const bytes = Buffer.byteLength(JSON.stringify(v.metadata));
              const max = config.server.max_metadata_bytes;
              if (bytes > max) throw new ApiError('API_INVALID_METADATA', `vectors[${i}] (id ${JSON.stringify(v.id)}): metadata is ${bytes} bytes of JSON, more than server.max_metadata_bytes (${max})`, { id: v.id, bytes, max });
            }
            return { type: 'vector.upserted', collection: c.name, ...actorOf(req), body: v.metadata !== undefined ? { id: v.id, vector, metadata: v.metadata } : { id: v.id, vector } };
          });
          admit();
          return committed(await log.append(events));
        }),
    );
    r.delete<{ Params: { name: string; id: string } }>('/v1/collections/:name/vectors/:id', { config: { roles: ['write'] }, schema: { summary: 'Delete a vector (404 if it is not live)', params: nameIdParams, querystring: emptyQuery, body: noBody } }, (req) =>
      lifecycle.shared(async () => {
        const c = requireCollection(req.params.name);
        checkId(req.params.id);
        // One at a time per document: each checks it is live once the one before it committed (or
        // failed), so of concurrent deletes of one document one is 200 and the rest 404, and the
        // log gets one event, not one per request.
        return deletesOfDoc.run(`${c.name}\u0000${req.params.id}`, async () => {
          if (projections.getDoc(c.name, req.params.id) === undefined) throw new ApiError('API_DOC_NOT_FOUND', `document ${req.params.id} does not exist in ${c.name}`);
          admit();
          return committed(await log.append([{ type: 'vector.deleted', collection: c.name, ...actorOf(req), body: { id: req.params.id } }]));
        });
      }),
    );
    r.get<{ Params: { name: string; id: string }; Querystring: { asOf?: string } }>(
      '/v1/collections/:name/vectors/:id',
      { config: { roles: ['read', 'audit'] }, schema: { summary: 'A vector, live or as of an instant (then with head, the digest at T)', params: nameIdParams, querystring: { type: 'object', additionalProperties: false, properties: { asOf: asOfString } } } },
      (req) => {
        checkName(req.params.name);
        checkId(req.params.id);
        if (req.query.asOf !== undefined) {
          const at = asOfMicros(req.query.asOf);
          const head = headToJson(headAtSeq(log, log.seqAtTime(at))); // the as-of rule: an answer as of T carries the digest at T
          const e = log.docAsOf(req.params.name, req.params.id, at);
          if (e === undefined) {
            if (!collectionLiveAt(log, req.params.name, at)) throw new ApiError('API_COLLECTION_NOT_FOUND', `collection ${req.params.name} did not exist at ${req.query.asOf}`);
            throw new ApiError('API_DOC_NOT_FOUND', `document ${req.params.id} did not exist in ${req.params.name} at ${req.query.asOf}`);
          }
          return { id: e.body.id, vector: Array.from(e.body.vector), ...(e.body.metadata !== undefined ? { metadata: e.body.metadata } : {}), seq: e.seq, ts: microsToIso(e.ts), tsMicros: e.ts, head };
        }
        const c = requireCollection(req.params.name);
        const d = projections.getDoc(c.name, req.params.id);
        if (d === undefined) throw new ApiError('API_DOC_NOT_FOUND', `document ${req.params.id} does not exist in ${c.name}`);
        return { id: d.id, vector: Array.from(d.vector), ...(d.metadata !== undefined ? { metadata: d.metadata } : {}), seq: d.seq, ts: microsToIso(d.ts), tsMicros: d.ts };
      },
    );
    // ---------------------------------------------------------- search
    r.post<{ Params: { name: string }; Body: { vector: unknown[]; k: number; filter?: unknown; asOf?: string | number } }>(
      '/v1/collections/:name/search',
      {
        // audit too: as-of search is the auditors' tool (DESIGN.md §2), as a document as of an
        // instant is (the GET above).
        config: { roles: ['read', 'audit'] },
        schema: {
          summary: 'Top-k by score (higher is better); filter on metadata ({k: v}, {k: {$in: [..]}}, {k: {$gte: n, $lt: m}}, AND); asOf searches the state at an instant (the answer then carries head, the digest at T)',
          params: nameParam,
          querystring: emptyQuery,
          body: { type: 'object', additionalProperties: false, required: ['vector', 'k'], properties: { vector: { type: 'array' }, k: { type: 'integer', minimum: 1, maximum: 10000 }, filter: { description: `an object: {k: v}, {k: {$in: [..]}}, {k: {$gte: n, $lt: m}}; at most ${MAX_FILTER_KEYS} keys, ${MAX_FILTER_IN_VALUES} $in values (API_INVALID_FILTER otherwise, whatever its type)` }, asOf: { anyOf: [asOfString, { type: 'integer', minimum: 0 }] } } },
        },
      },
      async (req, reply) => {
        checkName(req.params.name);
        const vector = toVector(req.body.vector, 'vector');
        const sr: SearchRequest = { vector, k: req.body.k };
        if (req.body.filter !== undefined) {
          try {
            sr.filter = validateFilter(req.body.filter);
          } catch (err) {
            throw new ApiError('API_INVALID_FILTER', errorBody(err).message);
          }
        }
        if (req.body.asOf === undefined) {
          const c = requireCollection(req.params.name);
          if (vector.length !== c.dimension) throw new ApiError('API_DIMENSION_MISMATCH', `the query vector has ${vector.length} dimensions, collection ${c.name} has ${c.dimension}`);
        } else sr.asOf = asOfMicros(String(req.body.asOf));
        // The as-of rule: an answer as of T carries the head digest at T.
        const head = sr.asOf === undefined ? undefined : headToJson(headAtSeq(log, log.seqAtTime(sr.asOf)));
        try {
          const { results, ...rest } = await projections.search(req.params.name, sr);
          // Hit by hit: k hits with large metadata pass V8's largest string.
          return sendJsonWithArray(reply, {}, 'results', results, head === undefined ? rest : { ...rest, head });
        } catch (err) {
          // The API's codes: the collection can also be dropped while a live search runs.
          const code = errorBody(err).code;
          const at = req.body.asOf === undefined ? '' : ` (at ${req.body.asOf})`;
          if (code === 'PROJ_UNKNOWN_COLLECTION') throw new ApiError('API_COLLECTION_NOT_FOUND', req.body.asOf === undefined ? errorBody(err).message : `collection ${req.params.name} did not exist at ${req.body.asOf}`);
          if (code === 'PROJ_DIMENSION_MISMATCH') throw new ApiError('API_DIMENSION_MISMATCH', `${errorBody(err).message}${at}`);
          if (code === 'PROJ_BUSY') {
            void reply.header('Retry-After', '1');
            throw new ApiError('API_BACKPRESSURE', errorBody(err).message);
          }
          throw err;
        }
      },
    );

    // ---------------------------------------------------------- log and audit (packages/api/src/audit)
    await r.register(async (sub) => {
      sub.addHook('onRoute', (route) => {
        route.config = { ...(route.config ?? {}), roles: route.url.endsWith('/history') ? ['read', 'audit'] : ['audit'] };
      });
      await sub.register(auditRoutes, { log });
    });

    // ---------------------------------------------------------- backups
    const needBackup = (): BackupManager => {
      if (deps.backup === undefined) throw new ApiError('API_NOT_AVAILABLE', 'backups are not available in this server (@kyrodb/backup missing or backup disabled)');
      return deps.backup.manager;
    };
    r.get<{ Querystring: { before?: string } }>('/v1/backups', { config: { roles: ['admin'] }, schema: { summary: 'Backup manifests, newest first', querystring: { type: 'object', additionalProperties: false, properties: { before: isoString } } } }, async (req) => {
      const m = needBackup();
      return { backups: await m.list(req.query.before !== undefined ? { before: parseIsoMicros(req.query.before, 'before') } : {}) };
    });
    r.post<{ Body: { type: 'full' | 'incremental'; tag?: string; description?: string; since?: string } }>(
      '/v1/backups',
      {
        config: { roles: ['admin'], statuses: [201] },
        schema: {
          summary: 'Create a backup now (online); answers the manifest',
          querystring: emptyQuery,
          body: { type: 'object', additionalProperties: false, required: ['type'], properties: { type: { type: 'string', enum: ['full', 'incremental'] }, tag: { type: 'string', maxLength: 128 }, description: { type: 'string', maxLength: 1024 }, since: isoString } },
        },
      },
      async (req, reply) => {
        const m = needBackup();
        const b = req.body;
        if (b.type === 'full' && b.since !== undefined) throw new ApiError('API_INVALID_REQUEST', 'since picks the parent of an incremental backup; a full backup has none');
        const named = { ...(b.tag !== undefined ? { tag: b.tag } : {}), ...(b.description !== undefined ? { description: b.description } : {}) };
        // One at a time: ten at once on a slow store ran side by side (RSS 467 MB → 1.3 GB) and
        // held every other request up to 16.8 s; a client retrying after its own timeout adds more.
        if (m.backupsUnderWay > 0) throw new ApiError('API_BACKUP_IN_PROGRESS', 'a backup is under way in this server (requested, or scheduled); retry once it is done', { retryAfterMs: 5000 });
        const manifest = b.type === 'full' ? await m.createFull(named) : await m.createIncremental({ ...named, ...(b.since !== undefined ? { since: parseIsoMicros(b.since, 'since') } : {}) });
        return reply.status(201).send(manifest);
      },
    );

    // ---------------------------------------------------------- admin
    r.post<{ Params: { name: 'wal' | 'cold' | 'hot' | 'cache' } }>(
      '/v1/admin/circuit-breakers/:name/reset',
      { config: { roles: ['admin'] }, schema: { summary: 'Close a circuit breaker by hand', params: { type: 'object', additionalProperties: false, required: ['name'], properties: { name: { type: 'string', enum: ['wal', 'cold', 'hot', 'cache'] } } }, querystring: emptyQuery, body: noBody } },
      (req) => {
        if (req.params.name === 'wal') log.resetBreaker();
        else projections.resetBreaker(req.params.name);
        return { name: req.params.name, state: req.params.name === 'wal' ? log.breakerStatus().state : (projections.health().breakers[req.params.name] ?? 'closed') };
      },
    );
    r.get('/v1/admin/health', { config: { roles: ['admin'] }, schema: { summary: 'Breakers, training task, projections lag, continuous-backup lag', querystring: emptyQuery } }, () => health());
    r.post<{ Body: { name: string; action: string } }>(
      '/v1/admin/failpoints',
      { config: { roles: ['admin'], hidden: deps.failpointsApi !== true }, schema: { summary: 'Arm a failpoint (only when started with KYRODB_TEST_FAILPOINTS_API=1)', querystring: emptyQuery, body: { type: 'object', additionalProperties: false, required: ['name', 'action'], properties: { name: { type: 'string', pattern: '^[a-z0-9_.-]{1,64}$' }, action: { type: 'string', maxLength: 64 } } } } },
      (req) => {
        if (deps.failpointsApi !== true) throw new ApiError('API_FAILPOINTS_DISABLED', 'the failpoints API is off; start the server with KYRODB_TEST_FAILPOINTS_API=1');
        deps.failpoints.set(req.body.name, req.body.action);
        return { failpoints: deps.failpoints.list() };
      },
    );

    // ---------------------------------------------------------- operations
    r.get('/healthz', { schema: { summary: 'Alive', querystring: emptyQuery } }, () => ({ status: 'ok' }));
    r.get('/readyz', { schema: { summary: 'Ready: projections caught up with the log and the WAL breaker not open (else 503)', querystring: emptyQuery } }, async (_req, reply) => {
      const head = log.head().seq;
      const applied = projections.applied();
      const wal = log.breakerStatus().state;
      // Half-open takes the next write as its probe: not ready then, a node behind a load balancer
      // that routes by readiness was sent no write, and stayed unready until someone reset it.
      const ready = applied >= head && wal !== 'open';
      return reply.status(ready ? 200 : 503).send({ ready, head, applied, wal });
    });
    r.get('/metrics', { schema: { summary: 'Prometheus metrics', querystring: emptyQuery } }, async (_req, reply) => {
      const text = await registry.metrics();
      return reply.header('content-type', registry.contentType).send(text);
    });
    r.get('/openapi.json', { schema: { summary: 'This OpenAPI document', querystring: emptyQuery } }, () => buildOpenApi(routes));
  });

  function health(): Record<string, unknown> {
    const p = projections.health();
    const wal = log.breakerStatus();
    const head = log.head();
    const cont = deps.backup?.continuous?.status();
    return {
      head: { seq: head.seq, ts: microsToIso(head.ts), tsMicros: head.ts },
      breakers: { wal: wal.state, ...p.breakers },
      wal,
      projections: { ...p, logLagEvents: Math.max(0, head.seq - p.applied) },
      training: deps.training?.() ?? null,
      continuousBackup: cont ?? null,
    };
  }

  /** Stops accepting new requests (503 API_SHUTTING_DOWN) ahead of `app.close()`. */
  app.decorate('drain', () => {
    draining = true;
  });
  return app;
}
