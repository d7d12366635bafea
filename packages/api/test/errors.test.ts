import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LogErrorCodes } from '@kyrodb/log';
import { ApiErrorCodes, HTTP_STATUS, errorBody, httpStatusFor, retryAfterSeconds } from '../src/errors.js';
import { ApiError } from '../src/errors.js';

describe('error codes', () => {
  it('every api code is documented in errors.ts and has a status in the one table', () => {
    const src = fs.readFileSync(path.join(import.meta.dirname, '../src/errors.ts'), 'utf8');
    for (const code of Object.keys(ApiErrorCodes)) {
      expect(src, code).toMatch(new RegExp(`/\\*\\*[^*]*(\\*(?!/)[^*]*)*\\*/\\s*${code}:`));
      expect(HTTP_STATUS[code], code).toBeTypeOf('number');
    }
  });

  it('every log code has a status; WAL codes are 503 with Retry-After', () => {
    for (const code of Object.keys(LogErrorCodes)) expect(HTTP_STATUS[code], code).toBeTypeOf('number');
    for (const code of ['WAL_DISK_FULL', 'WAL_CIRCUIT_OPEN']) {
      expect(httpStatusFor(code)).toBe(503);
      expect(retryAfterSeconds({ details: { retryAfterMs: 59_001 } }, code)).toBe(60);
    }
  });

  it('every projections and backup code has a status', async () => {
    const proj = (await import('@kyrodb/projections')) as { ProjectionErrorCodes?: Record<string, string> };
    const backup = (await import('@kyrodb/backup')) as { BackupErrorCodes?: Record<string, string> };
    for (const code of Object.keys(proj.ProjectionErrorCodes ?? {})) expect(HTTP_STATUS[code], code).toBeTypeOf('number');
    for (const code of Object.keys(backup.BackupErrorCodes ?? {})) expect(HTTP_STATUS[code], code).toBeTypeOf('number');
  });

  it('unknown codes fall back by shape; foreign errors become API_INTERNAL', () => {
    expect(httpStatusFor('BACKUP_SOMETHING_NOT_FOUND')).toBe(404);
    expect(httpStatusFor('X_INVALID_Y')).toBe(400);
    expect(httpStatusFor('WHAT')).toBe(500);
    expect(errorBody(new Error('boom'))).toEqual({ code: 'API_INTERNAL', message: 'boom' });
    expect(errorBody(Object.assign(new Error('x'), { code: 'ENOENT' })).code).toBe('API_INTERNAL');
    expect(errorBody(new ApiError('API_DUPLICATE_ID', 'dup'))).toEqual({ code: 'API_DUPLICATE_ID', message: 'dup' });
  });
});
