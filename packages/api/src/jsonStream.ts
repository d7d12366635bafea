import { Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';

/** Above this many characters an answer is streamed in chunks instead of sent as one string. */
export const STREAM_ABOVE_CHARS = 1 << 20;
/** Characters per chunk of a streamed answer. */
const CHUNK_CHARS = 64 * 1024;

/**
 * Sends the JSON object `{...before, [key]: [items…], ...after}` without ever holding the whole
 * answer in one string, so an answer of any size (a collection's every vector, search hits with
 * large metadata) cannot pass V8's largest string (~512 MB) and fail as a 500. Each item is
 * serialized on its own (`item` maps it to its JSON text first, default `JSON.stringify`); an
 * answer under `STREAM_ABOVE_CHARS` goes out as one string (with a Content-Length), a larger one
 * as a stream of ~64 KiB chunks produced as the client reads them (backpressure: items not yet
 * read are not serialized). The body is always one valid JSON document, the same whichever way
 * it is sent. `before` and `after` must be small (they are serialized whole).
 */
export function sendJsonWithArray<T>(
  reply: FastifyReply,
  before: Record<string, unknown>,
  key: string,
  items: Iterable<T>,
  after: Record<string, unknown> = {},
  item: (x: T) => string = (x) => JSON.stringify(x),
): FastifyReply {
  const open = JSON.stringify(before);
  const head = `${open.length > 2 ? open.slice(0, -1) + ',' : '{'}${JSON.stringify(key)}:[`;
  const rest = JSON.stringify(after);
  const tail = `]${rest.length > 2 ? ',' + rest.slice(1) : '}'}`;
  const it = items[Symbol.iterator]();
  let first = true;
  // The next chunk of the array's text: at least CHUNK_CHARS unless the array ends first (then
  // `done`). One item larger than a chunk makes a chunk of its own size.
  const nextChunk = (limit: number): { text: string; done: boolean } => {
    const parts: string[] = [];
    let size = 0;
    while (size < limit) {
      const r = it.next();
      if (r.done === true) return { text: parts.join(''), done: true };
      const s = (first ? '' : ',') + item(r.value);
      first = false;
      parts.push(s);
      size += s.length;
    }
    return { text: parts.join(''), done: false };
  };
  const start = nextChunk(STREAM_ABOVE_CHARS);
  void reply.type('application/json; charset=utf-8');
  if (start.done) return reply.send(head + start.text + tail);
  function* chunks(): Generator<string> {
    yield head + start.text;
    for (;;) {
      const c = nextChunk(CHUNK_CHARS);
      if (c.done) {
        yield c.text + tail;
        return;
      }
      yield c.text;
    }
  }
  return reply.send(Readable.from(chunks(), { objectMode: false }));
}
