import { PassThrough } from 'node:stream';
import type { Subscription } from 'rxjs';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { DOC_ID_RE, COLLECTION_NAME_RE, systemClock } from '@kyrodb/log';
import type { Clock, EventLog } from '@kyrodb/log';
import { AuditError, auditErrorStatus, isAuditError } from './errors.js';
import { ApiError, sendApiError } from '../errors.js';
import { sendJsonWithArray } from '../jsonStream.js';
import { digestFromParts, parseDigest, verifyDigestAsync } from './digest.js';
import type { Digest } from './digest.js';
import { collectionAsOfAsync, docHistoryOrThrow, docToJson, docValueAsOf, eventToJson, headAtSeq, headToJson } from './state.js';
import { ExportStalledError, exportStateAsOf } from './exportState.js';
import { formatMicros, parseAsOf, parseInstant, presentMicros } from './time.js';

/** Options of `auditRoutes`. */
export interface AuditRoutesOptions {
  /** The event log (a read-only one works: nothing here writes). */
  log: EventLog;
  /** Time source for the "T in the future" rule. Default: the system clock. */
  clock?: Clock;
  /** Largest page of `GET /v1/log`, in events. Default 1000; the default page is 100. */
  maxPage?: number;
  /**
   * Bytes of event JSON after which a `GET /v1/log` page ends early (its `next` says where the
   * following one starts). Default 16 MiB; a page always holds at least one event.
   */
  maxPageBytes?: number;
  /**
   * State exports (`GET /v1/audit/state`) served at once; more get 429 AUDIT_BUSY with
   * Retry-After. Each holds the whole state as of its T in memory while it streams: ten slow
   * readers took a server from 437 to 1013 MB. Default 2.
   */
  maxStateExports?: number;
  /**
   * A state export whose reader takes nothing for this long (the connection open, the socket's
   * buffers full) is stopped and its slot freed: otherwise one such reader holds a slot, and a
   * whole state in memory, for as long as it keeps the connection. Default 60 000 ms.
   */
  stateExportStallMs?: number;
}

const errorSchema = {
  type: 'object',
  properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } }, required: ['code', 'message'] } },
} as const;

const headSchema = {
  type: 'object',
  properties: { seq: { type: 'integer' }, ts: { type: 'integer' }, ts_iso: { type: ['string', 'null'] }, hash: { type: 'string' } },
} as const;

const eventSchema = {
  type: 'object',
  additionalProperties: true,
  properties: {
    seq: { type: 'integer' },
    ts: { type: 'integer' },
    ts_iso: { type: 'string' },
    type: { type: 'string' },
    collection: { type: 'string' },
    actor: { type: ['string', 'null'] },
    body: { type: 'object', additionalProperties: true },
    prev_hash: { type: 'string' },
    hash: { type: 'string' },
  },
} as const;

const intString = { type: 'string', pattern: '^[0-9]{1,16}$' } as const;

/** Bytes of NDJSON a `/v1/log/stream` response buffers for a slow client before it stops reading the log. */
const STREAM_BUFFER_BYTES = 1 << 20;

/** A digit-string query parameter as a safe integer in [min, max], or undefined when absent. Throws AUDIT_BAD_REQUEST. */
function intParam(v: string | undefined, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^[0-9]{1,16}$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max) throw new AuditError('AUDIT_BAD_REQUEST', `${name} must be an integer in ${min}..${max}`);
  return n;
}

const asOfQuery = { type: 'object', additionalProperties: false, properties: { asOf: { type: 'string', maxLength: 64 } } } as const;

function sendError(reply: FastifyReply, err: unknown): FastifyReply {
  if (isAuditError(err)) return reply.code(auditErrorStatus[err.code]).send({ error: { code: err.code, message: err.message } });
  throw err;
}

/**
 * The audit HTTP routes, as a fastify plugin (register with `app.register(auditRoutes, { log })`):
 *
 * - `GET /v1/audit/head` → `{seq, ts, ts_iso, hash}`: a digest for the auditor to keep.
 * - `POST /v1/audit/verify` `{seq, hash}` or `{digest: "SEQ:HASH"}` (or `{}`: chain only) →
 *   200 `{ok: true, extends, head, checked}` when the whole chain verifies and extends the
 *   digest, 409 `{ok: false, seq, problem, message}` naming the first bad seq otherwise.
 * - `GET /v1/audit/state?asOf=T` → the `kyrodb-state` NDJSON export as of T (default: now).
 * - `GET /v1/audit/collections/:name?asOf=T` → `{collection, as_of, head, documents}` (404 if
 *   it did not exist at T).
 * - `GET /v1/audit/collections/:name/vectors/:id?asOf=T` → the document's value as of T, with
 *   `as_of` and `head` (404 if it was not live), O(log n).
 * - `GET /v1/log?fromSeq=&toSeq=&fromTime=&toTime=&limit=` → `{events, next}` (next: the
 *   `fromSeq` of the next page, or null).
 * - `GET /v1/log/stream?fromSeq=` → NDJSON live tail (catch-up, then live); ends when the
 *   client disconnects or the server shuts down.
 * - `GET /v1/collections/:name/vectors/:id/history` → `{collection, id, events}`; 404
 *   API_COLLECTION_NOT_FOUND / API_DOC_NOT_FOUND when the collection or document has no event
 *   at all (a deleted document, a dropped collection keep their history).
 *
 * A collection name or document id outside the documented rules is 400 API_INVALID_NAME.
 *
 * Times (asOf, fromTime, toTime) are ISO-8601 with timezone or integer µs; the as-of rule is
 * in `time.ts`. Errors: `{error: {code, message}}` with AUDIT_* codes (see `auditErrorStatus`).
 */
export function auditRoutes(app: FastifyInstance, opts: AuditRoutesOptions): Promise<void> {
  const { log } = opts;
  const clock = opts.clock ?? systemClock;
  const maxPage = opts.maxPage ?? 1000;
  const maxPageBytes = opts.maxPageBytes ?? 16 * 1024 * 1024;
  const maxExports = opts.maxStateExports ?? 2;
  const exportStallMs = opts.stateExportStallMs ?? 60_000;
  let exporting = 0;
  const now = (): number => presentMicros(log, clock);
  const asOfParam = (s: string | undefined): number => (s === undefined ? now() : parseAsOf(s, now()));

  // `additionalProperties: false` must reject, not strip: fastify's default Ajv removes unknown
  // keys silently (removeAdditional), so check them before validation, for every route here.
  app.addHook('preValidation', (req, _reply, done) => {
    const schema = req.routeOptions.schema as { querystring?: unknown; body?: unknown } | undefined;
    for (const [part, value] of [['querystring', req.query], ['body', req.body]] as const) {
      const sch = schema?.[part] as { additionalProperties?: boolean; properties?: Record<string, unknown> } | undefined;
      if (sch?.additionalProperties !== false || value === null || typeof value !== 'object') continue;
      const unknown = Object.keys(value).filter((k) => !(k in (sch.properties ?? {})));
      if (unknown.length > 0) {
        done(new AuditError('AUDIT_BAD_REQUEST', `unknown ${part === 'body' ? 'body field' : 'query parameter'}${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`));
        return;
      }
    }
    done();
  });

  // Encapsulated in this plugin: audit errors and schema failures (AUDIT_BAD_REQUEST) as
  // {error: {code, message}}; the rest (malformed JSON, a body too large, …) as the server's API_* codes.
  // A collection name or document id outside the documented rules is API_INVALID_NAME, as on every route.
  app.setErrorHandler((err: unknown, _req, reply) => {
    const e = err as { validation?: unknown; validationContext?: unknown; message?: unknown };
    if (e.validation !== undefined && e.validationContext === 'params') return sendApiError(reply, new ApiError('API_INVALID_NAME', `collection names are 1-64 of A-Z a-z 0-9 _ - starting with a letter or digit, document ids 1-256 printable ASCII characters without whitespace, /, ?, # or %: ${String(e.message)}`), 'AUDIT_BAD_REQUEST');
    return sendApiError(reply, err, 'AUDIT_BAD_REQUEST');
  });

  const emptyQuery = { type: 'object', additionalProperties: false, properties: {} } as const;

  // With asOf: the head digest at T (the last event with ts ≤ T; seq 0 and the genesis hash before the first).
  app.get<{ Querystring: { asOf?: string } }>('/v1/audit/head', { schema: { querystring: asOfQuery, response: { 200: headSchema } } }, (req, reply) => {
    try {
      return reply.send(headToJson(req.query.asOf === undefined ? log.head() : headAtSeq(log, log.seqAtTime(asOfParam(req.query.asOf)))));
    } catch (err) {
      return sendError(reply, err);
    }
  });

  app.post<{ Body: { seq?: number; hash?: string; digest?: string } | undefined }>(
    '/v1/audit/verify',
    {
      schema: {
        querystring: emptyQuery,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { seq: { type: 'integer', minimum: 0 }, hash: { type: 'string', maxLength: 128 }, digest: { type: 'string', maxLength: 200 } },
        },
        response: { 400: errorSchema },
      },
      // No body at all is `{}`: the chain only.
      preValidation: (req, _reply, done) => {
        req.body ??= {};
        done();
      },
    },
    async (req, reply) => {
      const b = req.body ?? {};
      let digest: Digest | undefined;
      try {
        if (b.digest !== undefined) {
          if (b.seq !== undefined || b.hash !== undefined) throw new AuditError('AUDIT_BAD_DIGEST', 'give either {digest} or {seq, hash}, not both');
          digest = parseDigest(b.digest);
        } else if (b.seq !== undefined || b.hash !== undefined) {
          digest = digestFromParts(b.seq, b.hash);
        }
      } catch (err) {
        return sendError(reply, err);
      }
      const r = await verifyDigestAsync(log, digest);
      if (r.ok) return reply.send({ ok: true, extends: r.extends, head: headToJson(r.head), checked: r.checked });
      return reply.code(409).send({ ok: false, seq: r.seq, problem: r.problem, message: r.message });
    },
  );

  app.get<{ Querystring: { asOf?: string } }>('/v1/audit/state', { schema: { querystring: asOfQuery } }, (req, reply) => {
    let t: number;
    try {
      t = asOfParam(req.query.asOf);
    } catch (err) {
      return sendError(reply, err);
    }
    if (exporting >= maxExports) {
      void reply.header('Retry-After', '1');
      return sendError(reply, new AuditError('AUDIT_BUSY', `${exporting} state export${exporting > 1 ? 's are' : ' is'} already running (at most ${maxExports} at once, each holding a whole state in memory); retry after Retry-After seconds`));
    }
    exporting += 1;
    const out = new PassThrough();
    exportStateAsOf(log, t, out, { stallMs: exportStallMs })
      .then(
        () => out.end(),
        (err: unknown) => {
          if (err instanceof ExportStalledError) req.log.warn({ asOf: formatMicros(t) }, err.message);
          out.destroy(err instanceof Error ? err : new Error(String(err)));
        },
      )
      .finally(() => (exporting -= 1)); // done, failed, or its reader went away
    return reply.type('application/x-ndjson').send(out);
  });

  const nameParams = { type: 'object', additionalProperties: false, properties: { name: { type: 'string', pattern: COLLECTION_NAME_RE.source } }, required: ['name'] } as const;
  const docParams = {
    type: 'object',
    additionalProperties: false,
    properties: { name: { type: 'string', pattern: COLLECTION_NAME_RE.source }, id: { type: 'string', pattern: DOC_ID_RE.source } },
    required: ['name', 'id'],
  } as const;

  app.get<{ Params: { name: string }; Querystring: { asOf?: string } }>('/v1/audit/collections/:name', { schema: { params: nameParams, querystring: asOfQuery } }, async (req, reply) => {
    try {
      const t = asOfParam(req.query.asOf);
      const c = await collectionAsOfAsync(log, req.params.name, t);
      if (c === undefined) throw new AuditError('AUDIT_UNKNOWN_COLLECTION', `collection ${req.params.name} did not exist at ${formatMicros(t)}`);
      const ids = [...c.docs.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      const i = c.info;
      // Streamed document by document: every vector of a large collection passes V8's largest string.
      const before = {
        collection: { name: i.name, dimension: i.dimension, metric: i.metric, hnsw: i.hnsw, created_seq: i.createdSeq, version: i.version, count: c.docs.size },
        as_of: formatMicros(t),
        as_of_micros: t,
        head: headToJson(c.head),
      };
      return sendJsonWithArray(reply, before, 'documents', ids, {}, (id) => JSON.stringify(docToJson(i.name, c.docs.get(id)!)));
    } catch (err) {
      return sendError(reply, err);
    }
  });

  app.get<{ Params: { name: string; id: string }; Querystring: { asOf?: string } }>(
    '/v1/audit/collections/:name/vectors/:id',
    { schema: { params: docParams, querystring: asOfQuery } },
    (req, reply) => {
      try {
        const t = asOfParam(req.query.asOf);
        const d = docValueAsOf(log, req.params.name, req.params.id, t);
        if (d === undefined) throw new AuditError('AUDIT_DOC_NOT_FOUND', `document ${req.params.id} of ${req.params.name} was not live at ${formatMicros(t)}`);
        // As every as-of answer: the head digest at T, which pins it.
        return reply.send({ ...docToJson(req.params.name, d), as_of: formatMicros(t), as_of_micros: t, head: headToJson(headAtSeq(log, log.seqAtTime(t))) });
      } catch (err) {
        return sendError(reply, err);
      }
    },
  );

  app.get<{ Querystring: { fromSeq?: string; toSeq?: string; fromTime?: string; toTime?: string; limit?: string } }>(
    '/v1/log',
    {
      schema: {
        // Numbers are taken as digit strings and parsed here, so the route behaves the same
        // whether or not the instance's Ajv coerces query strings.
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { fromSeq: intString, toSeq: intString, fromTime: { type: 'string', maxLength: 64 }, toTime: { type: 'string', maxLength: 64 }, limit: intString },
        },
        response: { 200: { type: 'object', properties: { events: { type: 'array', items: eventSchema }, next: { type: ['integer', 'null'] } } } },
      },
    },
    (req, reply) => {
      try {
        const q = req.query;
        let from = intParam(q.fromSeq, 'fromSeq', 1) ?? 1;
        let to = intParam(q.toSeq, 'toSeq', 0) ?? Number.MAX_SAFE_INTEGER;
        const limit = intParam(q.limit, 'limit', 1, maxPage) ?? Math.min(100, maxPage);
        if (q.fromSeq !== undefined && q.toSeq !== undefined && from > to) throw new AuditError('AUDIT_BAD_REQUEST', `fromSeq ${from} is after toSeq ${to}`);
        // Time bounds map to seq bounds through the by-time index: ts ≥ fromTime, ts ≤ toTime.
        const ft = q.fromTime !== undefined ? parseInstant(q.fromTime) : undefined;
        const tt = q.toTime !== undefined ? parseInstant(q.toTime) : undefined;
        if (ft !== undefined && tt !== undefined && ft > tt) throw new AuditError('AUDIT_BAD_REQUEST', `fromTime ${formatMicros(ft)} is after toTime ${formatMicros(tt)}`);
        if (ft !== undefined) from = Math.max(from, ft === 0 ? 1 : log.seqAtTime(ft - 1) + 1);
        if (tt !== undefined) to = Math.min(to, log.seqAtTime(tt));
        // Serialized event by event, and cut short once the page's JSON passes maxPageBytes, so
        // that a page of events with large metadata stays far below V8's largest string.
        const events: string[] = [];
        let bytes = 0;
        let last = from - 1;
        for (const e of log.read(from, to, limit)) {
          const json = JSON.stringify(eventToJson(e));
          events.push(json);
          bytes += json.length;
          last = e.seq;
          if (bytes >= maxPageBytes) break;
        }
        const end = Math.min(to, log.head().seq);
        const full = events.length === limit || bytes >= maxPageBytes;
        return reply.type('application/json; charset=utf-8').send(`{"events":[${events.join(',')}],"next":${full && last < end ? last + 1 : null}}`);
      } catch (err) {
        return sendError(reply, err);
      }
    },
  );

  const streams = new Set<() => void>();
  app.addHook('preClose', (done) => {
    for (const stop of [...streams]) stop();
    done();
  });
  app.get<{ Querystring: { fromSeq?: string } }>(
    '/v1/log/stream',
    { schema: { querystring: { type: 'object', additionalProperties: false, properties: { fromSeq: intString } } } },
    (req, reply) => {
      let fromSeq: number;
      try {
        fromSeq = intParam(req.query.fromSeq, 'fromSeq', 1) ?? 1;
      } catch (err) {
        return sendError(reply, err);
      }
      // Backpressure: a client that reads slower than the log grows is not buffered for without
      // bound. Once the response's buffer is full the tail is dropped, and taken up again from
      // the next seq when the buffer drains (no event lost or repeated).
      const out = new PassThrough({ highWaterMark: STREAM_BUFFER_BYTES });
      let next = fromSeq; // the first seq not yet written
      let sub: Subscription | undefined; // the tail being followed; undefined while paused
      let ended = false;
      const follow = (): void => {
        let full = false;
        const s = log.tail(next).subscribe({
          next: (e) => {
            if (full) return; // (a tail may emit a few more before its unsubscribe lands)
            next = e.seq + 1;
            if (!out.write(JSON.stringify(eventToJson(e)) + '\n')) {
              full = true;
              sub?.unsubscribe(); // when emitted while subscribing, `sub` is not set yet: below
              sub = undefined;
            }
          },
          error: (err: unknown) => out.destroy(err instanceof Error ? err : new Error(String(err))),
          complete: () => out.end(),
        });
        if (full) s.unsubscribe();
        else sub = s;
      };
      out.on('drain', () => {
        if (sub === undefined && !ended) follow();
      });
      follow();
      const stop = (): void => {
        ended = true;
        streams.delete(stop);
        sub?.unsubscribe();
        if (!out.destroyed) out.end();
      };
      // Ends when the client goes away, or when the server begins to shut down (`preClose`
      // below: an open stream would otherwise hold the shutdown for its whole timeout).
      streams.add(stop);
      reply.raw.on('close', stop);
      // The status and headers go out at once, not with the first event (a quiet log kept a
      // client waiting for its response until the next write).
      reply.raw.once('pipe', () => reply.raw.flushHeaders());
      return reply.type('application/x-ndjson').send(out);
    },
  );

  app.get<{ Params: { name: string; id: string } }>('/v1/collections/:name/vectors/:id/history', { schema: { params: docParams, querystring: emptyQuery } }, (req, reply) => {
    let events;
    try {
      events = docHistoryOrThrow(log, req.params.name, req.params.id);
    } catch (err) {
      // The collection routes' codes: this route sits beside GET /v1/collections/:name/vectors/:id.
      if (isAuditError(err, 'AUDIT_UNKNOWN_COLLECTION')) throw new ApiError('API_COLLECTION_NOT_FOUND', err.message);
      if (isAuditError(err, 'AUDIT_DOC_NOT_FOUND')) throw new ApiError('API_DOC_NOT_FOUND', err.message);
      throw err;
    }
    return sendJsonWithArray(reply, { collection: req.params.name, id: req.params.id }, 'events', events, {}, (e) => JSON.stringify(eventToJson(e)));
  });
  return Promise.resolve();
}
