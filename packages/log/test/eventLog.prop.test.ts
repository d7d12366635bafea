import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { EventLog, GENESIS_HASH } from '@kyrodb/log';
import type { Clock, EventInput, LogEvent } from '@kyrodb/log';
import { collectionArb, eventInputArb, fcParams, idArb, inputOf, openTestLog, quietLogger, sameInput, vectorArb } from './helpers.js';

/** A clock that returns scripted microsecond readings, which may go backwards. */
class ScriptClock implements Clock {
  private i = 0;
  constructor(private readonly readings: number[]) {}
  now(): number {
    return Math.floor(this.nowMicros() / 1000);
  }
  monotonicMs(): number {
    return performance.now();
  }
  nowMicros(): number {
    const r = this.readings[this.i % this.readings.length] ?? 0;
    this.i += 1;
    return r;
  }
  sleep(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms));
  }
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

// Events that touch few documents so that histories, deletes and drops interact.
const smallEventArb: fc.Arbitrary<EventInput> = fc.oneof(
  { weight: 1, arbitrary: collectionArb.map((collection): EventInput => ({ type: 'collection.created', collection, body: { dimension: 3, metric: 'l2', hnsw: { M: 16, efConstruction: 100, efSearch: 50 } } })) },
  { weight: 1, arbitrary: collectionArb.map((collection): EventInput => ({ type: 'collection.dropped', collection, body: {} })) },
  { weight: 5, arbitrary: fc.record({ collection: collectionArb, id: idArb, vector: vectorArb(8) }).map((r): EventInput => ({ type: 'vector.upserted', collection: r.collection, body: { id: r.id, vector: r.vector } })) },
  { weight: 2, arbitrary: fc.record({ collection: collectionArb, id: idArb }).map((r): EventInput => ({ type: 'vector.deleted', collection: r.collection, body: { id: r.id } })) },
);

/** Waves of batches: the batches of one wave are appended concurrently (one group commit). */
const wavesArb = fc.array(fc.array(fc.array(smallEventArb, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 6 });
const readingsArb = fc.array(fc.integer({ min: 1_000_000, max: 1_000_050 }), { minLength: 1, maxLength: 20 });

async function appendWaves(log: EventLog, waves: EventInput[][][]): Promise<EventInput[]> {
  const appended: EventInput[] = [];
  for (const wave of waves) {
    const results = await Promise.all(wave.map((b) => log.append(b)));
    results.forEach((r, i) => {
      expect(r.lastSeq - r.firstSeq + 1).toBe(wave[i]!.length);
      expect(r.events.map((e) => e.seq)).toEqual(wave[i]!.map((_, j) => r.firstSeq + j));
    });
    for (const b of wave) appended.push(...b);
  }
  return appended;
}

// ---------------------------------------------------------------- the linear-scan model

function docOf(e: EventInput): string | undefined {
  return e.type === 'vector.upserted' || e.type === 'vector.deleted' ? e.body.id : undefined;
}

function modelSeqAtTime(evs: LogEvent[], t: number): number {
  let s = 0;
  for (const e of evs) if (e.ts <= t) s = e.seq;
  return s;
}

function modelDocAsOf(evs: LogEvent[], collection: string, id: string, t: number): LogEvent | undefined {
  // The projections' rules: writes to a collection that does not exist, or of another
  // dimension, change nothing; a repeated create changes nothing; a drop ends every document.
  let dim: number | undefined;
  let live: LogEvent | undefined;
  for (const e of evs) {
    if (e.ts > t || e.collection !== collection) continue;
    if (e.type === 'collection.created') {
      if (dim === undefined) dim = e.body.dimension;
    } else if (e.type === 'collection.dropped') {
      dim = undefined;
      live = undefined;
    } else if (docOf(e) === id && dim !== undefined) {
      if (e.type === 'vector.deleted') live = undefined;
      else if (e.body.vector.length === dim) live = e;
    }
  }
  return live;
}

describe('EventLog laws', () => {
  it('read back = appended; seqs gapless; ts non-decreasing; the chain verifies (also after reopen)', async () => {
    await fc.assert(
      fc.asyncProperty(wavesArb, readingsArb, async (waves, readings) => {
        const { log, dir } = await openTestLog({ clock: new ScriptClock(readings) });
        dirs.push(dir);
        const appended = await appendWaves(log, waves);
        const check = (l: EventLog): void => {
          const back = [...l.read()];
          expect(back.length).toBe(appended.length);
          back.forEach((e, i) => {
            expect(e.seq).toBe(i + 1);
            expect(sameInput(inputOf(e), appended[i]!)).toBe(true);
            if (i > 0) {
              expect(e.ts).toBeGreaterThanOrEqual(back[i - 1]!.ts);
              expect(Buffer.from(e.prevHash).equals(Buffer.from(back[i - 1]!.hash))).toBe(true);
            } else expect(Buffer.from(e.prevHash).equals(Buffer.from(GENESIS_HASH))).toBe(true);
          });
          const v = l.verify();
          expect(v.ok).toBe(true);
          expect(l.head().seq).toBe(appended.length);
        };
        check(log);
        await log.close();
        const again = await EventLog.open({ dir, logger: quietLogger() });
        check(again);
        await again.close();
      }),
      fcParams(40),
    );
  });

  it('seqAtTime / readUntilTime / docAsOf / history agree with a linear scan', async () => {
    await fc.assert(
      fc.asyncProperty(wavesArb, readingsArb, async (waves, readings) => {
        const { log, dir } = await openTestLog({ clock: new ScriptClock(readings) });
        dirs.push(dir);
        await appendWaves(log, waves);
        const evs = [...log.read()];
        const times = new Set<number>([0, Number.MAX_SAFE_INTEGER]);
        for (const e of evs) for (const d of [-1, 0, 1]) times.add(e.ts + d);
        for (const t of times) {
          const s = modelSeqAtTime(evs, t);
          expect(log.seqAtTime(t)).toBe(s);
          expect([...log.readUntilTime(t)].map((e) => e.seq)).toEqual(evs.filter((e) => e.seq <= s).map((e) => e.seq));
          for (const c of ['c1', 'c2', 'Docs_9']) {
            for (const id of ['a', 'b', 'doc-1', 'x~y', 'Z']) {
              expect(log.docAsOf(c, id, t)?.seq).toBe(modelDocAsOf(evs, c, id, t)?.seq);
            }
          }
        }
        for (const c of ['c1', 'c2', 'Docs_9']) {
          for (const id of ['a', 'b', 'doc-1', 'x~y', 'Z']) {
            expect(log.docAsOf(c, id)?.seq).toBe(modelDocAsOf(evs, c, id, Number.MAX_SAFE_INTEGER)?.seq);
            const own = evs.filter((e) => e.collection === c && docOf(e) === id).map((e) => e.seq);
            expect(log.history(c, id).map((e) => e.seq)).toEqual(own);
            // Bounded: only the events before a seq (every event's own seq, and one past the end).
            for (const before of [1, ...own, evs.length + 1]) expect(log.history(c, id, before).map((e) => e.seq)).toEqual(own.filter((s) => s < before));
          }
        }
        await log.close();
      }),
      fcParams(30),
    );
  });

  it('decode ∘ encode = id through the store for every event shape', async () => {
    const { log, dir } = await openTestLog();
    dirs.push(dir);
    await fc.assert(
      fc.asyncProperty(fc.array(eventInputArb, { minLength: 1, maxLength: 5 }), async (batch) => {
        const r = await log.append(batch);
        const back = [...log.read(r.firstSeq, r.lastSeq)];
        expect(back.length).toBe(batch.length);
        back.forEach((e, i) => expect(sameInput(inputOf(e), batch[i]!)).toBe(true));
      }),
      fcParams(100),
    );
    expect(log.verify().ok).toBe(true);
    await log.close();
  });

  it('any single altered record (a byte flipped in the LMDB file after close) is named by verify()', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 40 }), fc.nat(), fc.integer({ min: 1, max: 255 }), async (n, pick, mask) => {
        const { log, dir } = await openTestLog();
        dirs.push(dir);
        for (let i = 0; i < n; i += 4) {
          await log.append(Array.from({ length: Math.min(4, n - i) }, (_, j) => ({ type: 'vector.upserted' as const, collection: 'c', body: { id: `d${i + j}`, vector: Float32Array.from({ length: 16 }, (_, k) => i + j + k / 16) } })));
        }
        const seq = 1 + (pick % n);
        const record = log.getRecord(seq);
        if (record === undefined) throw new Error('no record');
        const victim = Buffer.from(record);
        await log.close();

        // LMDB is copy-on-write: stale copies of the record's page may also be in the file.
        // Alter every copy; the live one is among them.
        const file = path.join(dir, 'log.mdb');
        const bytes = fs.readFileSync(file);
        const offset = pick % victim.length;
        let copies = 0;
        for (let at = bytes.indexOf(victim); at >= 0; at = bytes.indexOf(victim, at + 1)) {
          bytes[at + offset] = bytes[at + offset]! ^ mask;
          copies += 1;
        }
        expect(copies).toBeGreaterThan(0);
        fs.writeFileSync(file, bytes);

        const ro = await EventLog.open({ dir, readOnly: true, logger: quietLogger() });
        const report = ro.verify();
        expect(report.ok).toBe(false);
        if (!report.ok) expect(report.seq).toBe(seq);
        await ro.close();
        // A writer re-checks the last 16 records at open and refuses to extend a broken tail.
        if (seq > n - 16) {
          const err: unknown = await EventLog.open({ dir, logger: quietLogger() }).then(
            async (l) => {
              await l.close();
              return undefined;
            },
            (e: unknown) => e,
          );
          expect(err).toMatchObject({ code: 'LOG_CHAIN_BROKEN', details: { seq } });
        }
      }),
      fcParams(40),
    );
  });
});
