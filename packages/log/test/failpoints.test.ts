import { describe, expect, it } from 'vitest';
import { Failpoints, parseFailpointAction } from '@kyrodb/log';

describe('failpoints', () => {
  it('parses actions with an optional N* count', () => {
    expect(parseFailpointAction('off')).toEqual({ action: { kind: 'off' }, count: Infinity });
    expect(parseFailpointAction('panic')).toEqual({ action: { kind: 'panic' }, count: Infinity });
    expect(parseFailpointAction('error(ENOSPC)')).toEqual({ action: { kind: 'error', code: 'ENOSPC' }, count: Infinity });
    expect(parseFailpointAction(' 3*error(EIO) ')).toEqual({ action: { kind: 'error', code: 'EIO' }, count: 3 });
    expect(parseFailpointAction('delay(50)')).toEqual({ action: { kind: 'delay', ms: 50 }, count: Infinity });
    expect(parseFailpointAction('2*delay(5)')).toEqual({ action: { kind: 'delay', ms: 5 }, count: 2 });
  });

  it.each(['', 'error', 'error()', 'error(eio)', 'delay(x)', 'delay(-1)', 'explode', '*panic', 'x*panic', '3*', 'panic()'])('rejects %j with FAILPOINT_INVALID', (spec) => {
    expect(() => parseFailpointAction(spec)).toThrow(expect.objectContaining({ code: 'FAILPOINT_INVALID' }));
    expect(() => new Failpoints().set('wal.append', spec)).toThrow(expect.objectContaining({ code: 'FAILPOINT_INVALID' }));
  });

  it('N* fires N times, then turns itself off', () => {
    const fp = new Failpoints();
    fp.set('a', '2*error(EIO)');
    expect(() => fp.check('a')).toThrow(expect.objectContaining({ code: 'EIO', syscall: 'failpoint:a' }));
    expect(() => fp.check('a')).toThrow(expect.objectContaining({ code: 'EIO' }));
    expect(fp.check('a')).toBe(0);
    expect(fp.active).toBe(false);
  });

  it('panic throws FAILPOINT_PANIC; delay returns its ms from check and waits in hit; off disarms', async () => {
    const fp = new Failpoints();
    fp.set('p', 'panic');
    expect(() => fp.check('p')).toThrow(expect.objectContaining({ name: 'LogError', code: 'FAILPOINT_PANIC', details: { failpoint: 'p' } }));
    fp.set('d', 'delay(3)');
    expect(fp.check('d')).toBe(3);
    await fp.hit('d');
    fp.set('p', 'off');
    expect(fp.list()).toEqual({ d: { kind: 'delay', ms: 3 } });
    fp.clear('d');
    expect(fp.active).toBe(false);
    expect(fp.check('anything')).toBe(0);
    await expect(fp.hit('anything')).resolves.toBeUndefined();
  });

  it('reads the KYRODB_FAILPOINTS format: name=action;name=action', () => {
    const fp = Failpoints.fromEnv({ KYRODB_FAILPOINTS: 'wal.append=error(ENOSPC); training.rmi=panic;;wal.flush = 1*error(EIO) ' });
    expect(fp.list()).toEqual({ 'wal.append': { kind: 'error', code: 'ENOSPC' }, 'training.rmi': { kind: 'panic' }, 'wal.flush': { kind: 'error', code: 'EIO' } });
    expect(Failpoints.fromEnv({}).active).toBe(false);
    expect(Failpoints.fromEnv({ KYRODB_FAILPOINTS: '  ' }).active).toBe(false);
    expect(() => Failpoints.fromEnv({ KYRODB_FAILPOINTS: 'wal.append' })).toThrow(expect.objectContaining({ code: 'FAILPOINT_INVALID' }));
    expect(() => Failpoints.fromEnv({ KYRODB_FAILPOINTS: '=panic' })).toThrow(expect.objectContaining({ code: 'FAILPOINT_INVALID' }));
    expect(() => Failpoints.fromEnv({ KYRODB_FAILPOINTS: 'wal.append=boom' })).toThrow(expect.objectContaining({ code: 'FAILPOINT_INVALID' }));
    const fp2 = new Failpoints();
    fp2.configure(undefined);
    fp2.configure('a=off');
    expect(fp2.active).toBe(false);
    fp2.set('b', 'panic');
    fp2.clearAll();
    expect(fp2.active).toBe(false);
  });
});
