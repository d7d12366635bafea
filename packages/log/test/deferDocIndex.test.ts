import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EventLog, isLogError, seededRandom, type EventInput } from '@kyrodb/log';
import { created, openTestLog, quietLogger, tempDir, upsert } from './helpers.js';

// `deferDocIndex`: a bulk loader's by-doc entries are gathered and written sorted at once. What
// the index answers must not depend on it, and a writer that stops before writing them must not
// leave a log whose by-doc index silently misses them.

const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'deferredWriter.ts');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** `n` ids that sort in no relation to the order they are written in (as UUIDs do). */
function seededIds(n: number, seed: number): string[] {
  const r = seededRandom(seed);
  return Array.from({ length: n }, (_, i) => `${Math.floor(r() * 1e9).toString(36)}-${i}`);
}

/** A history over two collections, with random-looking ids, deletes, a drop and a re-create. */
function history(): EventInput[][] {
  const ids = seededIds(60, 11);
  const batches: EventInput[][] = [[created('c', 2), created('e', 2)]];
  for (let b = 0; b < 12; b++) batches.push(ids.slice(0, 40).map((id, i) => upsert(id, [b, i], i % 3 === 0 ? 'e' : 'c')));
  batches.push([{ type: 'vector.deleted', collection: 'c', body: { id: ids[1]! } }, { type: 'collection.dropped', collection: 'e', body: {} }, created('e', 2), upsert(ids[3]!, [9, 9], 'e')]);
  batches.push(ids.slice(20).map((id, i) => upsert(id, [i, 1])));
  return batches;
}

describe('deferDocIndex', () => {
  it('answers history and docAsOf as a log that put its by-doc entries at once, before and after close', async () => {
    const plain = await openTestLog();
    const deferred = await openTestLog({ deferDocIndex: 'always' });
    dirs.push(plain.dir, deferred.dir);
    const ids = seededIds(60, 11);
    const answers = (log: EventLog): unknown[] => ['c', 'e'].flatMap((c) => ids.map((id) => [log.history(c, id).map((e) => e.seq), log.docAsOf(c, id)?.seq, log.history(c, '').map((e) => e.seq)]));
    const batches = history();
    for (const [i, b] of batches.entries()) {
      await plain.log.append(b);
      await deferred.log.append(b);
      // Read midway too: a flush, then more deferred rows, then another.
      if (i === 6) expect(answers(deferred.log)).toEqual(answers(plain.log));
    }
    const expected = answers(plain.log);
    expect(answers(deferred.log)).toEqual(expected);
    await deferred.log.close();
    const back = await EventLog.open({ dir: deferred.dir, readOnly: true, logger: quietLogger() });
    try {
      expect(answers(back)).toEqual(expected);
    } finally {
      await back.close();
      await plain.log.close();
    }
  });

  it('a writer that stops before writing its deferred entries: a read-only open refuses by-doc reads, the next writer writes them', () => {
    const dir = tempDir();
    dirs.push(dir);
    const child = spawnSync(process.execPath, ['--conditions=@kyrodb/source', '--import', 'tsx', fixture, dir, '500'], { encoding: 'utf8', timeout: 60_000 });
    expect(child.stderr).toBe('');
    expect(child.stdout).toMatch(/^applied 501$/m);
    return (async () => {
      const ro = await EventLog.open({ dir, readOnly: true, logger: quietLogger() });
      try {
        expect(ro.head().seq).toBe(501);
        let err: unknown;
        try {
          ro.history('c', 'doc-1');
        } catch (e) {
          err = e;
        }
        expect(isLogError(err, 'LOG_INDEX_INCOMPLETE')).toBe(true);
      } finally {
        await ro.close();
      }
      const lines: string[] = [];
      const w = await EventLog.open({ dir, logger: quietLogger(lines) });
      try {
        expect(lines.some((l) => l.includes('by-doc index entries'))).toBe(true);
        // doc-k was written by every batch whose ids cover k: seqs 2 + 50·b + j with (50·b + j) % 70 = k.
        for (const k of [0, 1, 33, 69]) {
          const want: number[] = [];
          for (let i = 0; i < 500; i++) if (i % 70 === k) want.push(2 + i);
          expect(w.history('c', `doc-${k}`).map((e) => e.seq)).toEqual(want);
        }
        expect(w.history('c', '').map((e) => e.seq)).toEqual([1]);
      } finally {
        await w.close();
      }
      const again = await EventLog.open({ dir, readOnly: true, logger: quietLogger() });
      try {
        expect(again.history('c', 'doc-2')).toHaveLength(Math.ceil((500 - 2) / 70));
      } finally {
        await again.close();
      }
    })();
  });
});
