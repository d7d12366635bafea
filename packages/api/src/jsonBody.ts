import type { IncomingHttpHeaders } from 'node:http';
import sjson from 'secure-json-parse';
import { ApiError, clip } from './errors.js';

// How the HTTP API reads an `application/json` body. Fastify's own parser decodes the bytes as
// UTF-8 with replacement (invalid bytes were stored as U+FFFD), ignores the charset parameter
// (a latin1 or UTF-16 body was read as UTF-8) and Content-Encoding (a gzip body was "malformed
// JSON", a plain one labelled gzip was accepted). This one refuses all of those.

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The offset of the first byte of the first ill-formed UTF-8 sequence in `b` (Unicode Table 3-7:
 * no overlong forms, no surrogates, nothing past U+10FFFF, no sequence cut short), or -1 if `b`
 * is well-formed. Only used to say where a body the strict decoder refused goes wrong.
 */
export function invalidUtf8At(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    if (c < 0x80) {
      i += 1;
      continue;
    }
    let n: number; // continuation bytes
    let lo = 0x80;
    let hi = 0xbf; // the range of the first continuation byte
    if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      if (c === 0xe0) lo = 0xa0;
      if (c === 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      if (c === 0xf0) lo = 0x90;
      if (c === 0xf4) hi = 0x8f;
    } else return i;
    for (let k = 1; k <= n; k++) {
      const x = b[i + k];
      // undefined: the sequence is cut short by the end of the body
      if (x === undefined || x < (k === 1 ? lo : 0x80) || x > (k === 1 ? hi : 0xbf)) return i;
    }
    i += n + 1;
  }
  return -1;
}

/** The charset parameter of a Content-Type header (unquoted, as sent), or undefined when it has none. */
function charsetOf(contentType: string | undefined): string | undefined {
  const m = /;\s*charset\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))/i.exec(contentType ?? '');
  if (m === null) return undefined;
  return m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] ?? '');
}

/** Where a prototype-poisoning key is in an object secure-json-parse refused: `__proto__` or `constructor.prototype`. */
function poisonKey(obj: unknown): string {
  try {
    sjson.scan(obj as Record<string, unknown>, { protoAction: 'error', constructorAction: 'ignore' });
    return 'constructor.prototype';
  } catch {
    return '__proto__';
  }
}

/**
 * Parses the body of an `application/json` request, or throws an ApiError (nothing is then
 * written):
 * - a Content-Encoding other than `identity` → API_UNSUPPORTED_MEDIA_TYPE (415): bodies are
 *   never decompressed;
 * - a charset parameter other than `utf-8` (any case, quoted or not) → API_UNSUPPORTED_MEDIA_TYPE;
 * - bytes that are not well-formed UTF-8 → API_MALFORMED_JSON (400), naming the byte offset;
 * - an empty body or text that is not JSON → API_MALFORMED_JSON;
 * - valid JSON with a `__proto__` key, or a `constructor` key holding a `prototype` key, anywhere
 *   (prototype poisoning; fastify's default protection, kept) → API_INVALID_REQUEST (400).
 */
export function parseJsonBody(body: Buffer, headers: IncomingHttpHeaders): unknown {
  const enc = headers['content-encoding'];
  const encodings = (Array.isArray(enc) ? enc.join(',') : (enc ?? '')).split(',').map((e) => e.trim().toLowerCase()).filter((e) => e !== '' && e !== 'identity');
  if (encodings.length > 0) throw new ApiError('API_UNSUPPORTED_MEDIA_TYPE', `content encodings are not supported (Content-Encoding: ${clip(String(enc))}); send the body uncompressed`);
  const charset = charsetOf(headers['content-type']);
  // utf8 too: a common spelling of the same (RFC 8259 gives JSON no charset parameter at all).
  if (charset !== undefined && !['utf-8', 'utf8'].includes(charset.toLowerCase())) throw new ApiError('API_UNSUPPORTED_MEDIA_TYPE', `the body's charset is ${JSON.stringify(clip(charset))}; a JSON body must be UTF-8 (charset=utf-8, or no charset)`);
  if (body.length === 0) throw new ApiError('API_MALFORMED_JSON', "Body cannot be empty when content-type is set to 'application/json'");
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new ApiError('API_MALFORMED_JSON', `the body is not valid UTF-8: an ill-formed byte sequence at byte ${invalidUtf8At(body)} (of ${body.length})`);
  }
  try {
    return sjson.parse(text, { protoAction: 'error', constructorAction: 'error' }) as unknown;
  } catch {
    // Either not JSON, or JSON that secure-json-parse refused: tell them apart without its message text.
    let obj: unknown;
    try {
      obj = JSON.parse(text) as unknown;
    } catch (err) {
      throw new ApiError('API_MALFORMED_JSON', `Body is not valid JSON: ${clip(err instanceof Error ? err.message : String(err), 200)}`);
    }
    throw new ApiError('API_INVALID_REQUEST', `the key ${poisonKey(obj)} is not allowed anywhere in a body (prototype poisoning); nothing was written`);
  }
}
