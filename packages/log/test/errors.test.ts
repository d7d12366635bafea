import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LogError, LogErrorCodes, isLogError } from '@kyrodb/log';

const srcDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src');
const sources = fs.readdirSync(srcDir).filter((f) => f.endsWith('.ts')).map((f) => [f, fs.readFileSync(path.join(srcDir, f), 'utf8')] as const);

describe('log error codes', () => {
  it('every LogErrorCodes entry has a doc string and a doc comment', () => {
    const errorsTs = fs.readFileSync(path.join(srcDir, 'errors.ts'), 'utf8');
    for (const [code, doc] of Object.entries(LogErrorCodes)) {
      expect(typeof doc, code).toBe('string');
      expect(doc.trim().length, code).toBeGreaterThan(10);
      expect(errorsTs, code).toMatch(new RegExp(`/\\*\\*[^*]*(?:\\*(?!/)[^*]*)*\\*/\\s*${code}:`));
    }
  });

  it('every code thrown or returned in src is in LogErrorCodes', () => {
    const known = new Set(Object.keys(LogErrorCodes));
    const used = new Set<string>();
    for (const [, text] of sources) for (const m of text.matchAll(/'((?:LOG|WAL|FAILPOINT)_[A-Z_]+)'/g)) used.add(m[1]!);
    expect(used.size).toBeGreaterThan(10);
    for (const code of used) expect(known.has(code), `${code} is thrown but not in LogErrorCodes`).toBe(true);
    // and every `new LogError(` names its code with a literal or a checked expression
    for (const [file, text] of sources) {
      for (const m of text.matchAll(/new LogError\(\s*([^,]+),/g)) {
        const arg = m[1]!.trim();
        const ok = /^'[A-Z_]+'$/.test(arg) || /^\w+ \? '[A-Z_]+' : '[A-Z_]+'$/.test(arg) || ['code', 'walErrorCode(type)'].includes(arg);
        expect(ok, `${file}: new LogError(${arg}, …)`).toBe(true);
      }
    }
  });

  it('LogError carries a stable code and frozen details; isLogError checks name and code', () => {
    const e = new LogError('WAL_DISK_FULL', 'full', { type: 'disk_full' });
    expect(isLogError(e)).toBe(true);
    expect(isLogError(e, 'WAL_DISK_FULL')).toBe(true);
    expect(isLogError(e, 'WAL_IO_ERROR')).toBe(false);
    expect(isLogError(new Error('x'))).toBe(false);
    expect(Object.isFrozen(e.details)).toBe(true);
  });
});
