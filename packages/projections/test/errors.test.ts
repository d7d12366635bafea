import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ProjectionError, ProjectionErrorCodes, isProjectionError } from '@kyrodb/projections';

describe('ProjectionError codes', () => {
  it('every code has a doc comment in errors.ts and a description', () => {
    const src = fs.readFileSync(new URL('../src/errors.ts', import.meta.url), 'utf8');
    for (const [code, text] of Object.entries(ProjectionErrorCodes)) {
      expect(text.length).toBeGreaterThan(10);
      expect(src).toMatch(new RegExp(`/\\*\\*[^*]*\\*/\\s*${code}:`));
    }
  });
  it('isProjectionError branches on code', () => {
    const e = new ProjectionError('PROJ_UNKNOWN_COLLECTION', 'x', { collection: 'c' });
    expect(isProjectionError(e)).toBe(true);
    expect(isProjectionError(e, 'PROJ_UNKNOWN_COLLECTION')).toBe(true);
    expect(isProjectionError(e, 'PROJ_CLOSED')).toBe(false);
    expect(isProjectionError(new Error('x'))).toBe(false);
    expect(e.details).toEqual({ collection: 'c' });
  });
});
