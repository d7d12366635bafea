import { COLLECTION_NAME_RE, DOC_ID_RE } from '@kyrodb/log';
import { ApiError } from './errors.js';

// The name rules as the HTTP API and the CLI check them. Kept apart from server.ts so that the
// CLI (restore, backup, audit: every command but `serve`) does not load fastify to check a name:
// its import cost every command ~70 ms of start-up.

const NAME_PATTERN = COLLECTION_NAME_RE.source;

/** API_INVALID_NAME unless `name` is a valid collection name (COLLECTION_NAME_RE). */
export function checkName(name: string): void {
  if (!COLLECTION_NAME_RE.test(name)) throw new ApiError('API_INVALID_NAME', `collection name must match ${NAME_PATTERN} (1-64 of A-Z a-z 0-9 _ -, starting with a letter or digit)`);
}
/** API_INVALID_NAME unless `id` is a valid document id (DOC_ID_RE); `where` names it in the message. */
export function checkId(id: unknown, where = 'id'): asserts id is string {
  if (typeof id !== 'string' || !DOC_ID_RE.test(id)) throw new ApiError('API_INVALID_NAME', `${where} must be 1-256 printable ASCII characters without whitespace, /, ?, # or %`);
}
/**
 * API_INVALID_NAME unless `id` passes checkId and can also stand in a URL path: not "." or "..",
 * which URL clients (browsers, fetch, curl) resolve away, even written %2E%2E. For ids written
 * over HTTP and ids a CLI asks a server for; ids already in a log (replay, reads from the data dir)
 * keep checkId's rule, so old logs still open.
 */
export function checkUrlId(id: unknown, where = 'id'): asserts id is string {
  checkId(id, where);
  if (id === '.' || id === '..') throw new ApiError('API_INVALID_NAME', `${where} ${JSON.stringify(id)} is not allowed: URL clients resolve a "." or ".." path segment away, so the document could not be read or deleted over HTTP`);
}
