import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupManager, LocalDirStore, findBackup, isBackupError, loadManifests, type ObjectStore } from '@kyrodb/backup';
import { filledLog, quietLogger, S3Server, s3Store, tempDir, until } from './helpers.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');

type Outcome = { ok: true; id: string } | { ok: false; code?: string; message: string };

/** A tagRaceChild process: `ask` sends one `<full|incr> <tag>` line and resolves with its outcome. */
class RaceChild {
  private readonly proc: ChildProcess;
  private readonly lines: string[] = [];
  private stderr = '';
  private exited = false;
  constructor(args: string[]) {
    this.proc = spawn(process.execPath, ['--conditions=@kyrodb/source', '--import', 'tsx', path.join(fixtures, 'tagRaceChild.ts'), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let buf = '';
    this.proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const parts = buf.split('\n');
      buf = parts.pop()!;
      this.lines.push(...parts);
    });
    this.proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.proc.on('exit', () => (this.exited = true));
  }
  async ready(): Promise<void> {
    await until(() => this.lines.includes('ready') || this.exited, 60_000, `a race child to start (${this.stderr})`);
    expect(this.exited, this.stderr).toBe(false);
    this.lines.length = 0;
  }
  send(line: string): void {
    this.proc.stdin!.write(line + '\n');
  }
  async outcome(): Promise<Outcome> {
    await until(() => this.lines.length > 0 || this.exited, 60_000, `a race child's outcome (${this.stderr})`);
    const line = this.lines.shift();
    if (line === undefined) throw new Error(`race child exited: ${this.stderr}`);
    return JSON.parse(line) as Outcome;
  }
  async stop(): Promise<void> {
    this.proc.stdin!.end();
    await until(() => this.exited, 10_000, 'a race child to exit');
  }
}

/** The store key of backup `id`'s claim on `tag` (a store format: pinned here, not imported). */
const tagClaimKey = (tag: string, id: string): string => `tags/${tag}/${id}`;

/** A backup id made at `ms` (the shape newBackupId gives). */
function idAt(ms: number, suffix = 'aaaaaa'): string {
  return `${new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-full-${suffix}`;
}

const CHILDREN = 4;
const ROUNDS = 5;

describe('a tag across processes: several processes given one tag at once', { timeout: 240_000 }, () => {
  const s3 = new S3Server();
  beforeAll(async () => {
    await s3.start(17517);
  });
  afterAll(async () => {
    await s3.stop();
  });

  for (const kind of ['local', 's3'] as const) {
    it(`${kind} store: each round at most one takes the tag; every other is refused (BACKUP_TAG_EXISTS) and leaves nothing behind`, async () => {
      const { log, dir } = await filledLog(2000);
      const storeDir = tempDir();
      const prefix = `race-${Date.now()}`;
      const store: ObjectStore = kind === 'local' ? new LocalDirStore(storeDir) : s3Store(s3.endpoint, prefix);
      const mgr = new BackupManager({ log, dataDir: dir, store, logger: quietLogger() });
      await mgr.createFull(); // a parent for the rounds' incrementals
      const children = Array.from({ length: CHILDREN }, () => new RaceChild(kind === 'local' ? [dir, storeDir] : [dir, s3.endpoint, prefix]));
      try {
        await Promise.all(children.map((c) => c.ready()));
        const winners = new Map<string, string>();
        for (let round = 0; round < ROUNDS; round++) {
          const tag = `race${round}`;
          // Told together: each loads the store's manifests (no backup has the tag) before any completes.
          for (const [i, c] of children.entries()) c.send(`${round % 2 === 1 && i % 2 === 1 ? 'incr' : 'full'} ${tag}`);
          const outcomes = await Promise.all(children.map((c) => c.outcome()));
          const won = outcomes.flatMap((o) => (o.ok ? [o.id] : []));
          expect(won.length, `round ${round}: ${JSON.stringify(outcomes)}`).toBeLessThanOrEqual(1);
          for (const o of outcomes) if (!o.ok) expect(o.code, o.message).toBe('BACKUP_TAG_EXISTS');
          // All refused (they claimed at the same time): a retry takes it.
          if (won.length === 0) {
            children[0]!.send(`full ${tag}`);
            const again = await children[0]!.outcome();
            expect(again.ok, JSON.stringify(again)).toBe(true);
            if (again.ok) won.push(again.id);
          }
          winners.set(tag, won[0]!);
          // Nothing of the refused ones is left: one claim, one tagged backup, no objects without a manifest.
          expect(await store.list(`tags/${tag}/`)).toEqual([tagClaimKey(tag, won[0]!)]);
          const { manifests, incomplete } = await loadManifests(store);
          expect(incomplete).toEqual([]);
          expect(manifests.filter((m) => m.tag === tag).map((m) => m.backup_id)).toEqual(won);
        }
        // A tag taken in an earlier round is refused to all of them, and nothing is stored.
        const before = (await store.list('')).join('\n');
        for (const c of children) c.send('full race0');
        for (const o of await Promise.all(children.map((c) => c.outcome()))) expect(o.ok ? 'ok' : o.code).toBe('BACKUP_TAG_EXISTS');
        expect((await store.list('')).join('\n')).toBe(before);
        // Each tag names one restore point, the one each creator was told it took; listing sees no claim.
        const listed = await mgr.list();
        expect(listed).toHaveLength(ROUNDS + 1);
        for (const [tag, id] of winners) {
          expect(findBackup(listed, tag)?.backup_id).toBe(id);
          const report = await mgr.verify(tag);
          expect([report.ok, report.backupId]).toEqual([true, id]);
        }
        // Retention keeps every tagged backup and its claim.
        const pruned = await mgr.prune({ retentionDays: 0, now: Date.now() + 400 * 86_400_000 });
        expect(pruned.deleteTagClaims).toEqual([]);
        expect((await mgr.list()).filter((m) => m.tag !== undefined)).toHaveLength(ROUNDS);
        expect(await store.list('tags/')).toEqual([...winners].map(([tag, id]) => tagClaimKey(tag, id)).sort());
      } finally {
        await Promise.all(children.map((c) => c.stop()));
        await log.close();
      }
    });
  }
});

describe('tag claims of backups that never completed', () => {
  it('a claim under way refuses the tag; one older than the incomplete-backup expiry is ignored and pruned; a committed one stays', async () => {
    const { log, dir } = await filledLog(50);
    const store = new LocalDirStore(tempDir());
    const now = Date.now();
    const mgr = new BackupManager({ log, dataDir: dir, store, logger: quietLogger() });
    // A backup in another process that claimed `busy` a minute ago and has no manifest yet.
    const busy = idAt(now - 60_000, 'b0b0b0');
    await store.put(tagClaimKey('busy', busy), Buffer.from('{}'));
    await expect(mgr.createFull({ tag: 'busy' })).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_TAG_EXISTS') && e.details['backupId'] === busy && /retry/.test(e.message));
    expect(await store.list('')).toEqual([tagClaimKey('busy', busy)]);
    // One killed two days ago (a claim and half its files): its tag is free again.
    const dead = idAt(now - 2 * 86_400_000, 'dead00');
    await store.put(tagClaimKey('old', dead), Buffer.from('{}'));
    await store.put(`backups/${dead}/events-x`, Buffer.from('half'));
    const m = await mgr.createFull({ tag: 'old' });
    expect(findBackup(await mgr.list(), 'old')?.backup_id).toBe(m.backup_id);
    expect(await store.list('tags/old/')).toEqual([tagClaimKey('old', dead), tagClaimKey('old', m.backup_id)].sort());
    // Prune deletes the dead claim with the dead backup's files; the live claim and the committed one stay.
    const dry = await mgr.prune({ dryRun: true });
    expect([dry.deleteIncomplete, dry.deleteTagClaims]).toEqual([[dead], [tagClaimKey('old', dead)]]);
    const res = await mgr.prune({});
    expect(res.deleteTagClaims).toEqual([tagClaimKey('old', dead)]);
    expect(await store.list('')).toEqual([`backups/${m.backup_id}/events-0000000000000001-0000000000000051`, `backups/${m.backup_id}/manifest.json`, tagClaimKey('busy', busy), tagClaimKey('old', m.backup_id)].sort());
    // Once `busy`'s claim is a day old, it no longer blocks the tag.
    const later = new BackupManager({ log, dataDir: dir, store, logger: quietLogger(), now: () => now + 2 * 86_400_000 });
    expect((await later.createFull({ tag: 'busy' })).tag).toBe('busy');
    await log.close();
  });

  it('a claim left by a backup that failed with the store down (its claim could not be deleted) frees its tag at once when its process is gone, or is this one', async () => {
    const { log, dir } = await filledLog(20);
    const inner = new LocalDirStore(tempDir());
    // The store fails this backup's second file write and every delete: as S3 going down mid-backup.
    let failPuts = false;
    const store: ObjectStore = Object.assign(Object.create(inner) as ObjectStore, {
      put: (k: string, b: Buffer) => (failPuts && k.startsWith('backups/') ? Promise.reject(Object.assign(new Error('S3 put failed: connect ECONNREFUSED'), { code: 'BACKUP_STORE_ERROR' })) : inner.put(k, b)),
      delete: (k: string) => (failPuts ? Promise.reject(new Error('S3 delete failed: connect ECONNREFUSED')) : inner.delete(k)),
    });
    const mgr = new BackupManager({ log, dataDir: dir, store, logger: quietLogger() });
    failPuts = true;
    await expect(mgr.createFull({ tag: 'st1' })).rejects.toThrow(/ECONNREFUSED/);
    const [left] = await inner.list('tags/st1/');
    expect(left).toBeDefined(); // the claim could not be deleted
    failPuts = false;
    // The store is back: the same process retries, and the tag is its own again.
    const m = await mgr.createFull({ tag: 'st1' });
    expect(await inner.list('tags/st1/')).toEqual([tagClaimKey('st1', m.backup_id)]);
    // A claim of a process of this host that is gone: free. One of another host: under way (refused).
    const now = Date.now();
    const gone = idAt(now - 60_000, 'd1d1d1');
    await inner.put(tagClaimKey('st2', gone), Buffer.from(JSON.stringify({ backup_id: gone, tag: 'st2', host: os.hostname(), pid: deadPid() })));
    expect((await mgr.createFull({ tag: 'st2' })).tag).toBe('st2');
    expect(await inner.list('tags/st2/')).toHaveLength(1);
    const elsewhere = idAt(now - 60_000, 'e1e1e1');
    await inner.put(tagClaimKey('st3', elsewhere), Buffer.from(JSON.stringify({ backup_id: elsewhere, tag: 'st3', host: `not-${os.hostname()}`, pid: deadPid() })));
    await expect(mgr.createFull({ tag: 'st3' })).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_TAG_EXISTS'));
    await log.close();
  });
});

/** A pid that was just used and is gone. */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
}
