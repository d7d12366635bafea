import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EventLog } from '@kyrodb/log';
import { keyIdOf } from '@kyrodb/backup';
import { kyrodb, tmp, vectorFor } from './serverProcess.js';

/** Every file under `dir`, as one buffer (what a store holds). */
function allBytes(dir: string): Buffer {
  const files = fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
  return Buffer.concat(files.map((e) => fs.readFileSync(path.join(e.parentPath, e.name))));
}

function backupDirs(store: string): string[] {
  const root = path.join(store, 'backups');
  return fs.existsSync(root) ? fs.readdirSync(root) : [];
}

// Encrypted backups through the CLI, as a user configures them: the key in a file or in
// KYRODB_BACKUP_KEY (backup.encryption of the config, DESIGN.md §3).
describe('encrypted backups through the CLI', { timeout: 240_000 }, () => {
  it('a key from a file or from KYRODB_BACKUP_KEY encrypts; verify, verify --deep and restore read it back; a wrong key is exit 5 naming both key ids; encryption on without a key is exit 2 and writes nothing', async () => {
    const dir = tmp();
    const data = path.join(dir, 'data');
    const log = await EventLog.open({ dir: data, logger: () => undefined });
    await log.append([{ type: 'collection.created', collection: 'secrets', body: { dimension: 4, metric: 'l2', hnsw: { M: 8, efConstruction: 20, efSearch: 10 } } }]);
    await log.append(Array.from({ length: 20 }, (_, i) => ({ type: 'vector.upserted' as const, collection: 'secrets', body: { id: `plaintext-id-${i}`, vector: Float32Array.from(vectorFor(i, 4)) } })));
    await log.close();

    const k1 = randomBytes(32);
    const k2 = randomBytes(32);
    const keyFile = path.join(dir, 'k1.bin');
    fs.writeFileSync(keyFile, k1);
    const config = (name: string, store: string, encryption: string): string => {
      const file = path.join(dir, `${name}.yaml`);
      // Uncompressed, so that anything stored in the clear would show.
      fs.writeFileSync(file, `storage: { data_dir: ${data} }\nbackup:\n  local_dir: ${store}\n  compression: none\n  encryption: ${encryption}\n`);
      return file;
    };

    // Key from a file.
    const storeA = path.join(dir, 'store-a');
    const withFile = config('with-file', storeA, `{ enabled: true, key_file: ${keyFile} }`);
    const a = await kyrodb(['backup', 'create', '--full', '--config', withFile, '--json']);
    expect(a.code, a.stderr).toBe(0);
    expect(JSON.parse(a.stdout).encryption).toMatchObject({ key_id: keyIdOf(k1) });
    expect(allBytes(storeA).includes('plaintext-id-7')).toBe(false);
    for (const deep of [[], ['--deep']]) {
      const v = await kyrodb(['backup', 'verify', '--backup-id', 'latest', '--config', withFile, ...deep]);
      expect(v.code, `verify ${deep.join(' ')}: ${v.stdout}${v.stderr}`).toBe(0);
    }
    const restored = path.join(dir, 'restored-a');
    const r = await kyrodb(['restore', '--backup-id', 'latest', '--config', withFile, '--data-dir', restored]);
    expect(r.code, r.stderr).toBe(0);
    expect((await kyrodb(['query', '--collection', 'secrets', '--doc-id', 'plaintext-id-7', '--data-dir', restored])).code).toBe(0);

    // Key from the environment (no key file).
    const storeB = path.join(dir, 'store-b');
    const fromEnv = config('from-env', storeB, '{ enabled: true }');
    const envK2 = { KYRODB_BACKUP_KEY: k2.toString('hex') };
    const b = await kyrodb(['backup', 'create', '--full', '--config', fromEnv, '--json'], envK2);
    expect(b.code, b.stderr).toBe(0);
    expect(JSON.parse(b.stdout).encryption).toMatchObject({ key_id: keyIdOf(k2) });
    expect(allBytes(storeB).includes('plaintext-id-7')).toBe(false);
    expect((await kyrodb(['backup', 'verify', '--backup-id', 'latest', '--config', fromEnv], envK2)).code).toBe(0);

    // The wrong key: verify and restore refuse (exit 5), naming the key the backup needs and the one given; nothing is written.
    const readA = config('read-a', storeA, '{ enabled: false }');
    const wrongVerify = await kyrodb(['backup', 'verify', '--backup-id', 'latest', '--config', readA, '--json'], envK2);
    expect(wrongVerify.code).toBe(5);
    expect(JSON.parse(wrongVerify.stdout)).toMatchObject({ ok: false, code: 'BACKUP_DECRYPT_FAILED', error: { code: 'BACKUP_DECRYPT_FAILED', message: expect.stringContaining(keyIdOf(k1)) } });
    const target = path.join(dir, 'never');
    const wrongRestore = await kyrodb(['restore', '--backup-id', 'latest', '--config', readA, '--data-dir', target], envK2);
    expect(wrongRestore.code).toBe(5);
    expect(wrongRestore.stderr).toContain(keyIdOf(k1));
    expect(wrongRestore.stderr).toContain(keyIdOf(k2));
    expect(fs.existsSync(target)).toBe(false);
    // Encryption off for new backups, the key still configured: old encrypted backups still restore.
    const offWithKey = config('off-with-key', storeA, `{ enabled: false, key_file: ${keyFile} }`);
    expect((await kyrodb(['restore', '--backup-id', 'latest', '--config', offWithKey, '--data-dir', path.join(dir, 'restored-off')])).code).toBe(0);
    // The key rotated to k2, k1 kept as a previous key: new backups use k2, k1's still restore.
    const k2File = path.join(dir, 'k2.hex');
    fs.writeFileSync(k2File, k2.toString('hex'));
    const rotated = config('rotated', storeA, `{ enabled: true, key_file: ${k2File}, previous_key_files: [${keyFile}] }`);
    const oldId = JSON.parse((await kyrodb(['backup', 'list', '--config', rotated, '--json'])).stdout)[0].backup_id as string;
    const n = await kyrodb(['backup', 'create', '--full', '--config', rotated, '--json']);
    expect(n.code, n.stderr).toBe(0);
    expect(JSON.parse(n.stdout).encryption).toMatchObject({ key_id: keyIdOf(k2) });
    const old = await kyrodb(['restore', '--backup-id', oldId, '--config', rotated, '--data-dir', path.join(dir, 'restored-rotated')]);
    expect(old.code, old.stderr).toBe(0);
    // audit verify of a backup: --key-file is read beside the config's keys (the rotated-out one too);
    // a key that is not the backup's is bad input (exit 2), as a missing one is.
    const newId = JSON.parse(n.stdout).backup_id as string;
    for (const id of [newId, oldId]) {
      const av = await kyrodb(['audit', 'verify', '--backup-id', id, '--store', `file://${storeA}`, '--config', rotated, '--key-file', keyFile, '--json']);
      expect([av.code, av.stderr], id).toEqual([0, expect.any(String)]);
    }
    const wrongAudit = await kyrodb(['audit', 'verify', '--backup-id', oldId, '--store', `file://${storeA}`, '--config', readA, '--key-file', k2File, '--json']);
    expect([wrongAudit.code, JSON.parse(wrongAudit.stdout).error.code]).toEqual([2, 'BACKUP_DECRYPT_FAILED']);
    expect(wrongAudit.stderr).toMatch(new RegExp(`^kyrodb: BACKUP_DECRYPT_FAILED: .*key id ${keyIdOf(k1)}`, 'm'));
    const missing = config('missing-previous', storeA, `{ enabled: true, key_file: ${k2File}, previous_key_files: [${path.join(dir, 'nope.key')}] }`);
    const m = await kyrodb(['backup', 'verify', '--backup-id', oldId, '--config', missing]);
    expect([m.code, m.stderr]).toEqual([2, expect.stringContaining('BACKUP_KEY_INVALID')]);

    // Encryption on and no key anywhere: a config error (exit 2), never a backup in the clear.
    const storeC = path.join(dir, 'store-c');
    const noKey = config('no-key', storeC, '{ enabled: true }');
    const c = await kyrodb(['backup', 'create', '--full', '--config', noKey], { KYRODB_BACKUP_KEY: '' });
    expect(c.code).toBe(2);
    expect(c.stderr).toContain('BACKUP_KEY_REQUIRED');
    expect(backupDirs(storeC)).toEqual([]);
    const freshData = path.join(dir, 'fresh-data');
    const serve = await kyrodb(['serve', '--port', '0', '--config', noKey, '--data-dir', freshData], { KYRODB_BACKUP_KEY: '' });
    expect(serve.code).toBe(2);
    expect(serve.stderr).toContain('BACKUP_KEY_REQUIRED');
    expect(fs.existsSync(freshData), 'a refused start makes no data dir').toBe(false);
  });
});
