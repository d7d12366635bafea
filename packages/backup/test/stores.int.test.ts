import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isBackupError, LocalDirStore, openObjectStore, S3Store, type ObjectStore } from '@kyrodb/backup';
import { S3Server, s3Store, tempDir } from './helpers.js';

const s3 = new S3Server();
beforeAll(async () => {
  await s3.start();
});
afterAll(async () => {
  await s3.stop();
});

let n = 0;
const stores: [string, () => ObjectStore][] = [
  ['LocalDirStore', () => new LocalDirStore(`file://${tempDir()}/store`)],
  ['S3Store (s3rver)', () => s3Store(s3.endpoint, `contract-${n++}`, { multipartThresholdBytes: 6 << 20, partSizeBytes: 5 << 20 })],
];

describe.each(stores)('ObjectStore contract: %s', (_name, make) => {
  it('put/get/head round trip; missing keys', async () => {
    const st = make();
    await st.put('a/b/c', Buffer.from('hello'));
    expect((await st.get('a/b/c')).toString()).toBe('hello');
    expect(await st.head('a/b/c')).toEqual({ size: 5 });
    expect(await st.head('a/b/zz')).toBeUndefined();
    await expect(st.get('nope')).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_FILE_MISSING'));
  });

  it('empty bodies and binary bytes survive', async () => {
    const st = make();
    const bin = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    await st.put('bin', bin);
    await st.put('empty', Buffer.alloc(0));
    expect((await st.get('bin')).equals(bin)).toBe(true);
    expect((await st.get('empty')).length).toBe(0);
  });

  it('readPrefix: the first bytes, all of a shorter object, none of an empty one; missing keys', async () => {
    const st = make();
    const bin = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    await st.put('bin', bin);
    await st.put('empty', Buffer.alloc(0));
    expect(typeof st.readPrefix).toBe('function');
    expect((await st.readPrefix!('bin', 12)).equals(bin.subarray(0, 12))).toBe(true);
    expect((await st.readPrefix!('bin', 1000)).equals(bin)).toBe(true);
    expect((await st.readPrefix!('empty', 12)).length).toBe(0);
    await expect(st.readPrefix!('nope', 12)).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_FILE_MISSING'));
  });

  it('objects are immutable: same bytes again is fine, different bytes is BACKUP_OBJECT_CONFLICT', async () => {
    const st = make();
    await st.put('k', Buffer.from('one'));
    await st.put('k', Buffer.from('one'));
    await expect(st.put('k', Buffer.from('two'))).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_OBJECT_CONFLICT'));
    expect((await st.get('k')).toString()).toBe('one');
  });

  it('list by prefix is sorted and exact; delete removes (absent is fine)', async () => {
    const st = make();
    for (const k of ['x/2', 'x/1', 'x/10/a', 'y/1', 'xx']) await st.put(k, Buffer.from(k));
    expect(await st.list('x/')).toEqual(['x/1', 'x/10/a', 'x/2']);
    expect(await st.list('x')).toEqual(['x/1', 'x/10/a', 'x/2', 'xx']);
    expect(await st.list('none/')).toEqual([]);
    await st.delete('x/1');
    await st.delete('x/1');
    expect(await st.list('x/')).toEqual(['x/10/a', 'x/2']);
  });

  it('rejects unsafe keys', async () => {
    const st = make();
    for (const k of ['../evil', '/abs', 'a//b', 'a/./b', '']) await expect(st.put(k, Buffer.from('x'))).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_INVALID_URL'));
  });

  it('large bodies (multipart on S3) round trip', async () => {
    const st = make();
    const big = Buffer.alloc(12 << 20);
    for (let i = 0; i < big.length; i += 4096) big[i] = i % 251;
    await st.put('big', big);
    expect((await st.head('big'))?.size).toBe(big.length);
    expect((await st.get('big')).equals(big)).toBe(true);
  });

  it('get with memory to read into: the same bytes whether it fits, is too small or the key is missing', async () => {
    const st = make();
    const body = Buffer.alloc(3 << 20);
    for (let i = 0; i < body.length; i += 997) body[i] = (i >> 10) % 251;
    await st.put('into', body);
    const roomy = new ArrayBuffer(4 << 20);
    new Uint8Array(roomy).fill(0xee); // what was there before must not show through
    const got = await st.get('into', { into: roomy });
    expect(got.length).toBe(body.length);
    expect(got.equals(body)).toBe(true);
    expect((await st.get('into', { into: new ArrayBuffer(1 << 20) })).equals(body)).toBe(true);
    await expect(st.get('nope', { into: new ArrayBuffer(1 << 20) })).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_FILE_MISSING'));
  });
});

describe('store specifics', () => {
  it('a local get reads into the memory it is given when the object fits, and into fresh memory rounded up to be reusable when it does not', async () => {
    const st = new LocalDirStore(`file://${tempDir()}/store`);
    const body = Buffer.alloc(2 << 20, 7);
    await st.put('o', body);
    const into = new ArrayBuffer(3 << 20);
    const a = await st.get('o', { into });
    expect(a.buffer).toBe(into);
    expect(a.equals(body)).toBe(true);
    const b = await st.get('o', { into: new ArrayBuffer(1 << 20) });
    expect(b.equals(body)).toBe(true);
    // Room for the next file of about the same size (a backup's files differ by a few percent).
    expect(b.buffer.byteLength).toBeGreaterThan(body.length);
    expect((await st.get('o')).equals(body)).toBe(true);
  });

  it('openObjectStore parses URLs', () => {
    expect(openObjectStore('file:///tmp/x').url).toBe('file:///tmp/x');
    expect(openObjectStore('s3://bucket/pre/fix/', { region: 'us-east-1' }).url).toBe('s3://bucket/pre/fix');
    // Empty prefix segments (a config's `prefix: /prod`, a doubled slash) are dropped: s3rver refused such keys.
    for (const u of ['s3://bucket//pre//fix', 's3://bucket/pre//fix/']) expect((openObjectStore(u, { region: 'us-east-1' }) as S3Store).prefix).toBe('pre/fix/');
    expect(() => openObjectStore('ftp://x')).toThrow(expect.objectContaining({ code: 'BACKUP_INVALID_URL' }) as Error);
    expect(() => openObjectStore('s3://ab/x')).toThrow(expect.objectContaining({ code: 'BACKUP_INVALID_URL', message: expect.stringMatching(/bucket name "ab" .* has 2 characters; S3 bucket names have 3 to 63/) as unknown }) as Error);
    expect(() => openObjectStore(`s3://${'b'.repeat(64)}/x`)).toThrow(expect.objectContaining({ code: 'BACKUP_INVALID_URL', message: expect.stringMatching(/has 64 characters/) as unknown }) as Error);
  });

  it('S3 presigned GET URLs download without credentials', async () => {
    const st = s3Store(s3.endpoint, 'presign');
    await st.put('obj', Buffer.from('signed'));
    const url = await st.presignGet('obj', 60);
    const r = await fetch(url);
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('signed');
  });

  it('a local put never leaves a partial object visible (temp files are not listed)', async () => {
    const root = tempDir();
    const st = new LocalDirStore(root);
    const { writeFileSync, mkdirSync } = await import('node:fs');
    mkdirSync(`${root}/seg`, { recursive: true });
    writeFileSync(`${root}/seg/x.tmp-123-abcd`, 'partial'); // what a crash mid-put leaves
    await st.put('seg/y', Buffer.from('whole'));
    expect(await st.list('seg/')).toEqual(['seg/y']);
  });

  it('a local delete removes the dirs it leaves empty, never the root; puts make them again, even mid-delete', async () => {
    const root = tempDir();
    const st = new LocalDirStore(root);
    const { existsSync } = await import('node:fs');
    const b = Buffer.from('x');
    for (const k of ['backups/a/x', 'backups/a/y', 'backups/b/z']) await st.put(k, b);
    await st.delete('backups/a/x');
    expect(existsSync(`${root}/backups/a`)).toBe(true);
    await st.delete('backups/a/y');
    expect(existsSync(`${root}/backups/a`)).toBe(false);
    expect(existsSync(`${root}/backups/b/z`)).toBe(true);
    await st.delete('backups/b/z');
    expect(existsSync(`${root}/backups`)).toBe(false);
    expect(existsSync(root)).toBe(true);
    await st.delete('backups/gone/never-there');
    expect(existsSync(root)).toBe(true);
    // Each put lands while the delete of the dir's only other object may be removing the dir.
    for (let i = 1; i <= 200; i++) await Promise.all([st.put(`r/s/${i}`, b), i > 1 ? st.delete(`r/s/${i - 1}`) : undefined]);
    expect(await st.list('r/')).toEqual(['r/s/200']);
    expect(await st.get('r/s/200')).toEqual(b);
  });
});
