import buffer from 'node:buffer';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { makeDir, processAlive, readWholeFile, registerScratch } from '@kyrodb/log';
import { BackupError } from '../errors.js';
import { allocReusable } from '../reuse.js';
import { formatBytes, noSpaceError } from '../space.js';
import { checkKey, type GetOptions, type ObjectStore } from './objectStore.js';

const TMP_MARK = '.tmp-';

/**
 * An object store in a local directory (`file:///abs/path`), the embedded default. A put
 * writes a temp file, fsyncs it, renames it into place and fsyncs the directory, so a crash
 * leaves either the whole object or none (temp files are never listed).
 */
export class LocalDirStore implements ObjectStore {
  readonly url: string;
  readonly root: string;

  /** `rootOrUrl`: an absolute path or a `file://` URL. The directory is created on first put. */
  constructor(rootOrUrl: string) {
    const root = rootOrUrl.startsWith('file:') ? fileURLToPath(rootOrUrl) : rootOrUrl;
    if (!path.isAbsolute(root)) throw new BackupError('BACKUP_INVALID_URL', `local store path must be absolute: ${rootOrUrl}`, { url: rootOrUrl });
    this.root = path.resolve(root);
    this.url = pathToFileURL(this.root).href;
  }

  private file(key: string): string {
    checkKey(key);
    if (path.basename(key).includes(TMP_MARK)) throw new BackupError('BACKUP_INVALID_URL', `object key may not contain ${TMP_MARK}`, { key });
    return path.join(this.root, ...key.split('/'));
  }

  async put(key: string, body: Buffer): Promise<void> {
    const file = this.file(key);
    const existing = await readIfExists(file);
    if (existing !== undefined) {
      if (existing.equals(body)) return;
      throw new BackupError('BACKUP_OBJECT_CONFLICT', `object ${key} already exists with different bytes`, { key });
    }
    const dir = path.dirname(file);
    const tmp = `${file}${TMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`;
    const unregister = registerScratch(tmp); // a command interrupted mid-put removes it as it exits
    try {
      const fh = await openInDir(dir, tmp);
      try {
        await fh.writeFile(body);
        await fh.sync();
      } finally {
        await fh.close();
      }
      try {
        // link() fails if the key appeared meanwhile, keeping objects immutable under races.
        await fsp.link(tmp, file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
          await fsp.rm(tmp, { force: true });
          return this.put(key, body);
        }
        throw err;
      }
      await fsp.rm(tmp, { force: true });
      await fsyncDir(dir);
    } catch (err) {
      // A failed write leaves no temp file behind: on a full disk it would keep the disk full.
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      throw noSpaceError(err, this.root, `writing ${key} (${formatBytes(body.length)}) to the backup store ${this.url}`, 'the object was not stored') ?? err;
    } finally {
      unregister();
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<Buffer> {
    const b = await readIfExists(this.file(key), options.into);
    if (b === undefined) throw new BackupError('BACKUP_FILE_MISSING', `object ${key} is missing from ${this.url}`, { key });
    return b;
  }

  async readPrefix(key: string, bytes: number): Promise<Buffer> {
    const b = Buffer.alloc(bytes);
    let n: number;
    try {
      const fh = await fsp.open(this.file(key), 'r');
      try {
        n = (await fh.read(b, 0, bytes, 0)).bytesRead;
      } finally {
        await fh.close();
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'EISDIR') throw new BackupError('BACKUP_FILE_MISSING', `object ${key} is missing from ${this.url}`, { key });
      throw err;
    }
    return b.subarray(0, n);
  }

  async head(key: string): Promise<{ size: number } | undefined> {
    try {
      const st = await fsp.stat(this.file(key));
      return st.isFile() ? { size: st.size } : undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async list(prefix: string): Promise<string[]> {
    const out: string[] = [];
    const walk = async (dir: string, rel: string): Promise<void> => {
      let entries: fs.Dirent[];
      try {
        entries = await fsp.readdir(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      for (const e of entries) {
        const key = rel === '' ? e.name : `${rel}/${e.name}`;
        if (e.isDirectory()) {
          // Only descend where the prefix can still match.
          if (prefix.startsWith(key + '/') || key.startsWith(prefix) || (key + '/').startsWith(prefix)) await walk(path.join(dir, e.name), key);
        } else if (e.isFile() && !e.name.includes(TMP_MARK) && key.startsWith(prefix)) {
          out.push(key);
        }
      }
    };
    await walk(this.root, '');
    return out.sort();
  }

  /**
   * Removes the object, then its directories left empty (a pruned backup's `backups/<id>/`),
   * up to the root: without that, a year of hourly backups leaves 8,760 empty dirs to walk.
   */
  async delete(key: string): Promise<void> {
    const file = this.file(key);
    await fsp.rm(file, { force: true });
    for (let dir = path.dirname(file); dir !== this.root && dir.startsWith(this.root + path.sep); dir = path.dirname(dir)) {
      try {
        await fsp.rmdir(dir);
      } catch {
        break; // not empty (or gone, or not ours to remove): the dirs above it are not empty either
      }
    }
  }

  /**
   * Removes temp files (`<key>.tmp-<pid>-<hex>`) of puts whose process is gone (a put killed
   * mid-write leaves one), then the directories left empty (a prune or a discard killed between
   * a file and its directory leaves one; a put that meets its directory gone makes it again).
   * `dryRun`: only lists the temp files.
   */
  async sweep(opts: { dryRun?: boolean } = {}): Promise<string[]> {
    const removed: string[] = [];
    let entries: fs.Dirent[];
    try {
      entries = await fsp.readdir(this.root, { recursive: true, withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return removed;
      throw err;
    }
    for (const e of entries) {
      const m = /\.tmp-(\d+)-[0-9a-f]+$/.exec(e.name);
      if (!e.isFile() || m === null) continue;
      const pid = Number(m[1]);
      if (pid === process.pid || processAlive(pid)) continue;
      const file = path.join(e.parentPath, e.name);
      if (opts.dryRun !== true) await fsp.rm(file, { force: true });
      removed.push(path.relative(this.root, file));
    }
    if (opts.dryRun === true) return removed;
    // Deepest first, so that a dir holding only empty dirs goes too.
    const dirs = entries.filter((e) => e.isDirectory()).map((e) => path.join(e.parentPath, e.name));
    dirs.sort((a, b) => b.length - a.length);
    for (const d of dirs) {
      try {
        await fsp.rmdir(d);
      } catch {
        // not empty, or gone: nothing to do
      }
    }
    return removed;
  }
}

/** The whole file, read into `into` when it fits, else into fresh memory (`allocReusable`); undefined if absent. */
async function readIfExists(file: string, into?: ArrayBuffer): Promise<Buffer | undefined> {
  try {
    return await readWholeFile(file, (size) => {
      if (size > buffer.constants.MAX_LENGTH) throw new BackupError('BACKUP_CORRUPT', `${file} has ${size} bytes, more than a buffer holds`, { file });
      return into !== undefined && into.byteLength >= size ? Buffer.from(into, 0, size) : allocReusable(size);
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EISDIR') return undefined;
    throw err;
  }
}

/** fsyncs a directory so a rename/link in it is durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Creates `tmp` (exclusively) in `dir`, making `dir` first. A delete emptying `dir` may remove it
 * between the two: then it is made again.
 */
async function openInDir(dir: string, tmp: string): Promise<fsp.FileHandle> {
  for (let attempt = 1; ; attempt++) {
    try {
      await fsp.mkdir(dir, { recursive: true });
    } catch {
      // Node's recursive mkdir says ENOENT for a parent on a read-only file system (or one it may
      // not write): health and the scheduled backup's error named the wrong problem. This names the real one.
      makeDir(dir);
    }
    try {
      return await fsp.open(tmp, 'wx');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt === 5) throw err;
    }
  }
}
