import type { RouteOptions } from 'fastify';

/**
 * Builds an OpenAPI 3.0 document from the registered routes' JSON Schemas (params, querystring,
 * body), so the document can never drift from what the server validates. A route's `config`
 * may give its success `statuses` (default [200]) and `hidden` (left out of the document).
 */
export function buildOpenApi(routes: readonly RouteOptions[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const methods = (Array.isArray(r.method) ? r.method : [r.method]).map((m) => String(m).toLowerCase()).filter((m) => m !== 'head');
    const url = r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const s = (r.schema ?? {}) as { summary?: string; params?: SchemaObj; querystring?: SchemaObj; body?: unknown };
    const parameters: unknown[] = [];
    for (const [where, sch] of [['path', s.params], ['query', s.querystring]] as const) {
      for (const [name, p] of Object.entries(sch?.properties ?? {})) parameters.push({ name, in: where, required: where === 'path' || (sch?.required ?? []).includes(name), schema: p });
    }
    const { roles, statuses, hidden } = (r.config ?? {}) as { roles?: string[]; statuses?: number[]; hidden?: boolean };
    if (hidden === true) continue; // a route that only answers that it is off (the failpoints API)
    for (const m of methods) {
      paths[url] ??= {};
      paths[url][m] = {
        summary: s.summary ?? '',
        ...(roles ? { description: `${rolesText(roles)} when auth keys are configured.`, security: [{ bearer: [] }] } : {}),
        parameters,
        // A nullable body (a route that takes none, or `{}`) is optional.
        ...(s.body !== undefined ? { requestBody: { required: (s.body as { nullable?: boolean }).nullable !== true, content: { 'application/json': { schema: s.body } } } } : {}),
        responses: {
          ...Object.fromEntries((statuses ?? [200]).map((st) => [String(st), { description: st === 201 ? 'Created' : 'OK' }])),
          default: { description: 'Error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
        },
      };
    }
  }
  return {
    openapi: '3.0.3',
    info: { title: 'KyroDB', version: '0.1.0', description: 'An event-sourced vector database. Errors are {error: {code, message}}; 503 answers carry Retry-After. Request bodies are uncompressed application/json in UTF-8: invalid UTF-8 or JSON is 400 API_MALFORMED_JSON, a __proto__ key 400 API_INVALID_REQUEST, another charset or any Content-Encoding but identity 415 API_UNSUPPORTED_MEDIA_TYPE, a body over server.body_limit_bytes 413 API_PAYLOAD_TOO_LARGE.' },
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: { Error: { type: 'object', required: ['error'], properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } } } } },
    },
  };
}

interface SchemaObj {
  properties?: Record<string, unknown>;
  required?: string[];
}

/** Who may call a route: its roles, and admin (which may call every route). */
function rolesText(roles: string[]): string {
  const others = roles.filter((r) => r !== 'admin');
  return others.length === 0 ? 'Role: admin' : `Roles: ${others.join(', ')} (or admin)`;
}
