import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import buffer from 'node:buffer';
import fs from 'node:fs';
import { compress, decompress } from 'zstd-napi';
// The binding's simple API decompresses into a buffer the caller gives (zstd-napi's `decompress` always allocates one).
import zstdBinding from 'zstd-napi/binding.js';
import { BackupError } from './errors.js';

/** Compression of backup files. */
export type Compression = 'zstd' | 'none';

/** An AES-256-GCM key and its id (the first 8 bytes of SHA-256 of the key, hex). */
export interface EncryptionKey {
  key: Buffer;
  keyId: string;
  /**
   * Keys this one replaced: files under them are still read (a restore whose chain spans a key
   * rotation needs both); nothing new is written with them.
   */
  previous?: readonly EncryptionKey[];
}

/** `key` with `previous` keys it replaced (duplicates of it or of each other dropped). */
export function withPreviousKeys(key: EncryptionKey, previous: readonly EncryptionKey[]): EncryptionKey {
  const seen = new Set([key.keyId]);
  const older = previous.filter((k) => !seen.has(k.keyId) && seen.add(k.keyId) !== undefined).map((k) => ({ key: k.key, keyId: k.keyId }));
  return older.length === 0 ? { key: key.key, keyId: key.keyId } : { key: key.key, keyId: key.keyId, previous: older };
}

/** The key of `key`'s ring (it or one it replaced) with id `keyId`, or undefined. */
function keyWithId(key: EncryptionKey, keyId: string | undefined): EncryptionKey | undefined {
  if (key.keyId === keyId) return key;
  return key.previous?.find((k) => k.keyId === keyId);
}

/** What a manifest records about encryption. */
export interface EncryptionInfo {
  algorithm: 'aes-256-gcm';
  key_id: string;
}

const ENC_MAGIC = Buffer.from('KYE1');
const IV_LEN = 12;
const TAG_LEN = 16;

/** The key id of a key: hex of the first 8 bytes of its SHA-256. */
export function keyIdOf(key: Buffer): string {
  return createHash('sha256').update(key).digest().subarray(0, 8).toString('hex');
}

const KEY_FORMS = '32 bytes: 64 hex characters, or base64 (44 characters)';

/**
 * Parses 32 bytes given as 64 hex characters or base64. BACKUP_KEY_INVALID otherwise, naming
 * `source` (a file or a variable) when given. Text made only of hex digits is hex: a hex key cut
 * short (43 characters) is refused, not read as base64 of other 32 bytes, which would encrypt new
 * backups under a key nobody meant.
 */
export function parseKey(text: string, source?: string): EncryptionKey {
  const t = text.trim();
  const where = source === undefined ? '' : `${source}: `;
  let key: Buffer | undefined;
  if (/^[0-9a-fA-F]+$/.test(t)) {
    if (t.length !== 64) throw new BackupError('BACKUP_KEY_INVALID', `${where}the backup key must be ${KEY_FORMS}; this is ${t.length} hex characters`);
    key = Buffer.from(t, 'hex');
  } else if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(t)) key = Buffer.from(t, 'base64');
  if (key?.length !== 32) throw new BackupError('BACKUP_KEY_INVALID', `${where}the backup key must be ${KEY_FORMS}${key === undefined ? '' : `; this base64 is ${key.length} bytes`}`);
  return { key, keyId: keyIdOf(key) };
}

/**
 * Loads the encryption key: from `file` if given (its text, or 32 raw bytes: 32 bytes that are
 * all printable text are text, so a 32-character passphrase or a short hex key is refused rather
 * than taken as the key's bytes), else from the env variable `KYRODB_BACKUP_KEY`, else undefined
 * (no encryption).
 */
export function loadKey(o: { file?: string; env?: NodeJS.ProcessEnv } = {}): EncryptionKey | undefined {
  if (o.file !== undefined) {
    let raw: Buffer;
    try {
      raw = fs.readFileSync(o.file);
    } catch (cause) {
      throw new BackupError('BACKUP_KEY_INVALID', `the key file ${o.file} cannot be read: ${(cause as Error).message}`, { file: o.file }, { cause });
    }
    const binary = !/^[\x20-\x7e\t\r\n]*$/.test(raw.toString('latin1'));
    if (raw.length === 32 && binary) return { key: raw, keyId: keyIdOf(raw) };
    try {
      return parseKey(raw.toString('utf8'));
    } catch (err) {
      // Releases before this one took any 32-byte file as the key's own bytes, printable or not.
      const was = raw.length === 32 ? `; if backups were written with this file as 32 raw bytes (earlier releases read any 32-byte file so), write those bytes as hex instead: xxd -p -c 32 ${o.file} (key id ${keyIdOf(raw)})` : '';
      throw new BackupError('BACKUP_KEY_INVALID', `the key file ${o.file}: ${(err as Error).message}${was}`, { file: o.file });
    }
  }
  const v = (o.env ?? process.env)['KYRODB_BACKUP_KEY'];
  return v === undefined || v === '' ? undefined : parseKey(v, 'KYRODB_BACKUP_KEY');
}

/**
 * zstd level of backup files. Level 1: on log segments (framed msgpack records with Float32
 * vectors) it compresses ~2.5× faster than level 3 for a ratio within 1–2% of it (bench/src/backup.ts).
 */
export const ZSTD_LEVEL = 1;

/** Compresses then encrypts a file body as stored. */
export function encodeObject(raw: Buffer, compression: Compression, key: EncryptionKey | undefined): Buffer {
  let b = compression === 'zstd' ? compress(raw, { compressionLevel: ZSTD_LEVEL }) : raw;
  if (key !== undefined) {
    const iv = randomBytes(IV_LEN);
    const c = createCipheriv('aes-256-gcm', key.key, iv);
    const ct = Buffer.concat([c.update(b), c.final()]);
    b = Buffer.concat([ENC_MAGIC, Buffer.from(key.keyId, 'hex'), iv, ct, c.getAuthTag()]);
  }
  return b;
}

const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const KEYID_LEN = 8;
/** Bytes at the start of a stored body that say how it is wrapped (see `objectWrapping`). */
export const WRAPPING_HEADER_BYTES = 4 + KEYID_LEN;

/** How a stored body is wrapped, read from its first bytes. */
export function objectWrapping(stored: Buffer): { encrypted: boolean; keyId?: string } {
  if (stored.length >= WRAPPING_HEADER_BYTES && stored.subarray(0, 4).equals(ENC_MAGIC)) return { encrypted: true, keyId: stored.subarray(4, WRAPPING_HEADER_BYTES).toString('hex') };
  return { encrypted: false };
}

/**
 * The key of `key`'s ring that `name`, encrypted under `keyId`, needs: BACKUP_KEY_REQUIRED when
 * no key is given, BACKUP_DECRYPT_FAILED when none of the given keys has that id.
 */
export function keyFor(name: string, keyId: string | undefined, key: EncryptionKey | undefined): EncryptionKey {
  if (key === undefined) throw new BackupError('BACKUP_KEY_REQUIRED', `${name} is encrypted (key id ${keyId}); set KYRODB_BACKUP_KEY or give a key file`, { file: name, keyId });
  const found = keyWithId(key, keyId);
  if (found === undefined) {
    const ids = [key.keyId, ...(key.previous ?? []).map((k) => k.keyId)];
    throw new BackupError('BACKUP_DECRYPT_FAILED', `${name} was encrypted with key id ${keyId}, the given ${ids.length === 1 ? 'key has id' : 'keys have ids'} ${ids.join(', ')} (an older key goes in backup.encryption.previous_key_files)`, { file: name, keyId });
  }
  return found;
}

/**
 * Decrypts (checking the GCM tag) then decompresses a stored body; the wrapping is read from
 * the body itself (`KYE1` envelope with the key id, zstd magic). BACKUP_KEY_REQUIRED /
 * BACKUP_DECRYPT_FAILED / BACKUP_CORRUPT name what failed. `expect` (from a manifest) pins
 * the wrapping: a body that should be encrypted but is not is BACKUP_CORRUPT.
 */
export function decodeObject(stored: Buffer, key: EncryptionKey | undefined, name: string, expect: { encrypted?: boolean; compression?: Compression } = {}, alloc?: BodyAlloc): Buffer {
  const expectEncrypted = expect.encrypted;
  let b = stored;
  const w = objectWrapping(b);
  if (expectEncrypted === true && !w.encrypted) throw new BackupError('BACKUP_CORRUPT', `${name} should be encrypted but is not`, { file: name });
  if (w.encrypted) {
    key = keyFor(name, w.keyId, key);
    const start = WRAPPING_HEADER_BYTES;
    if (b.length < start + IV_LEN + TAG_LEN) throw new BackupError('BACKUP_DECRYPT_FAILED', `${name} is too short to be encrypted`, { file: name });
    const iv = b.subarray(start, start + IV_LEN);
    const tag = b.subarray(b.length - TAG_LEN);
    const d = createDecipheriv('aes-256-gcm', key.key, iv);
    d.setAuthTag(tag);
    try {
      b = Buffer.concat([d.update(b.subarray(start + IV_LEN, b.length - TAG_LEN)), d.final()]);
    } catch (cause) {
      throw new BackupError('BACKUP_DECRYPT_FAILED', `${name} does not decrypt: wrong key or altered data`, { file: name }, { cause });
    }
  }
  if (expect.compression === 'zstd' || (expect.compression === undefined && b.length >= 4 && b.subarray(0, 4).equals(ZSTD_MAGIC))) {
    try {
      b = alloc === undefined ? decompress(b) : decompressInto(b, alloc);
    } catch (cause) {
      throw new BackupError('BACKUP_CORRUPT', `${name} does not decompress`, { file: name }, { cause });
    }
  }
  return b;
}

/**
 * Where `decodeObject` may put a decompressed body: a buffer of at least `size` bytes (say, one
 * used before: a restore's codec worker so reuses its sources' bodies, instead of faulting in
 * ~30 MB of fresh pages a file).
 */
export type BodyAlloc = (size: number) => Buffer;

/**
 * Decompresses one zstd frame that records its size (what `encodeObject` writes) into a buffer
 * from `alloc`; anything else as `decompress` does. Throws zstd's error on a corrupt frame.
 */
function decompressInto(b: Buffer, alloc: BodyAlloc): Buffer {
  const size = zstdBinding.getFrameContentSize(b);
  if (size === null || size > buffer.constants.MAX_LENGTH || zstdBinding.findFrameCompressedSize(b) !== b.length) return decompress(b);
  const out = alloc(size);
  const n = zstdBinding.decompress(out, b);
  if (n !== size) throw new Error(`the frame holds ${n} bytes, its header says ${size}`);
  return out.subarray(0, n);
}

/** Hex SHA-256 of bytes. */
export function sha256Hex(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}
