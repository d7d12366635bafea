import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EventLog, FakeClock, readSegments, toHex, walDirOf, type EventInput } from '@kyrodb/log';
import { exactSearch, materialize, type MaterializedState } from '@kyrodb/projections';
import { BackupManager, ContinuousBackup, LocalDirStore, isBackupError, planRestore, planRetention, restore, tagHolder, type BackupManifest } from '@kyrodb/backup';
import { quietLogger, tempDir } from './helpers.js';

const SEED = Number(process.env['FC_SEED'] ?? 4242);
const DIM = 4;

const vecArb = fc.array(fc.integer({ min: -8, max: 8 }), { minLength: DIM, maxLength: DIM }).map((xs) => Float32Array.from(xs, (x) => x / 4));
const collArb = fc.constantFrom('c1', 'c2');
const idArb = fc.constantFrom('a', 'b', 'c', 'd', 'e');
const eventArb: fc.Arbitrary<EventInput> = fc.oneof(
  { weight: 1, arbitrary: fc.tuple(collArb, fc.constantFrom(DIM, DIM, 3)).map(([c, d]): EventInput => ({ type: 'collection.created', collection: c, body: { dimension: d, metric: 'l2', hnsw: { M: 8, efConstruction: 20, efSearch: 10 } } })) },
  { weight: 1, arbitrary: collArb.map((c): EventInput => ({ type: 'collection.dropped', collection: c, body: {} })) },
  { weight: 6, arbitrary: fc.tuple(collArb, idArb, vecArb).map(([c, id, v]): EventInput => ({ type: 'vector.upserted', collection: c, body: { id, vector: v } })) },
  { weight: 2, arbitrary: fc.tuple(collArb, idArb).map(([c, id]): EventInput => ({ type: 'vector.deleted', collection: c, body: { id } })) },
);
/** A history: batches with a clock step (ms, 0 = same µs) before each. */
const historyArb = fc.array(fc.record({ step: fc.integer({ min: 0, max: 3 }), events: fc.array(eventArb, { minLength: 1, maxLength: 4 }) }), { minLength: 2, maxLength: 25 });

function stateOf(s: MaterializedState): unknown {
  const out: Record<string, unknown> = {};
  for (const [name, c] of [...s.collections].sort(([a], [b]) => (a < b ? -1 : 1))) {
    out[name] = [...c.docs.values()].map((d) => [d.id, Array.from(d.vector), d.seq]).sort((a, b) => (String(a[0]) < String(b[0]) ? -1 : 1));
  }
  return out;
}

async function write(log: EventLog, clock: FakeClock, batches: { step: number; events: EventInput[] }[]): Promise<void> {
  for (const b of batches) {
    clock.advance(b.step);
    await log.append(b.events);
  }
}

function records(log: EventLog, to?: number): string[] {
  return [...log.readRecords(1, to)].map((r) => r.record.toString('hex'));
}

/** The records in a data dir's write-ahead segments (what LMDB is rebuilt from): read up to the first frame whose CRC fails. */
function walRecords(dataDir: string): string[] {
  return [...readSegments(walDirOf(dataDir), 1)].map((r) => Buffer.from(r.record).toString('hex'));
}

/**
 * Restores `store` to T into a fresh dir and checks it holds exactly `log`'s events 1..expectSeq
 * (records, write-ahead segments, state, exact search for `q`); BACKUP_NOT_FOUND when expectSeq is 0.
 */
async function expectPitr(store: LocalDirStore, log: EventLog, T: number, expectSeq: number, q: Float32Array): Promise<void> {
  const target = path.join(tempDir(), 'pitr');
  if (expectSeq === 0) {
    await expect(restore({ store, dataDir: target, pointInTime: T })).rejects.toSatisfy((e) => isBackupError(e, 'BACKUP_NOT_FOUND'));
    return;
  }
  const r = await restore({ store, dataDir: target, pointInTime: T });
  expect(r.seq).toBe(expectSeq);
  expect(r.headHash).toBe(toHex(log.get(expectSeq)!.hash));
  const back = await EventLog.open({ dir: target, readOnly: true, logger: () => undefined });
  try {
    expect(records(back)).toEqual(records(log, expectSeq));
    expect(walRecords(target)).toEqual(records(log, expectSeq));
    const sb = materialize(back);
    const sl = materialize(log, expectSeq);
    expect(stateOf(sb)).toEqual(stateOf(sl));
    for (const [c, col] of sl.collections) if (col.info.dimension === DIM) expect(exactSearch(sb, c, { vector: q, k: 3 })).toEqual(exactSearch(sl, c, { vector: q, k: 3 }));
  } finally {
    await back.close();
  }
}

describe('backup laws', () => {
  it('round trip: restore(backup at S) has exactly events 1..S (same hashes) and the same state', async () => {
    await fc.assert(
      fc.asyncProperty(historyArb, fc.nat(), fc.nat(), fc.constantFrom('zstd' as const, 'none' as const), async (hist, a, b, compression) => {
        const dir = tempDir();
        const clock = new FakeClock();
        const log = await EventLog.open({ dir, clock, logger: () => undefined });
        const cut1 = 1 + (a % hist.length);
        const cut2 = cut1 + (b % (hist.length - cut1 + 1));
        const store = new LocalDirStore(tempDir());
        const mgr = new BackupManager({ log, dataDir: dir, store, compression, eventsPerFile: 7, logger: quietLogger() });
        await write(log, clock, hist.slice(0, cut1));
        const full = await mgr.createFull();
        await write(log, clock, hist.slice(cut1, cut2));
        const inc = await mgr.createIncremental();
        await write(log, clock, hist.slice(cut2)); // later writes are not in the backups
        for (const m of [full, inc]) {
          const target = path.join(tempDir(), 'r');
          const r = await restore({ store, dataDir: target, backupId: m.backup_id });
          const back = await EventLog.open({ dir: target, readOnly: true, logger: () => undefined });
          expect(r.seq).toBe(m.to_seq);
          expect(records(back)).toEqual(records(log, m.to_seq));
          expect(walRecords(target)).toEqual(records(log, m.to_seq));
          expect(stateOf(materialize(back))).toEqual(stateOf(materialize(log, m.to_seq)));
          expect(r.vectorCount).toBe(m.vector_count);
          const live = materialize(log, m.to_seq);
          expect(m.vector_count).toBe([...live.collections.values()].reduce((n, c) => n + c.docs.size, 0));
          await back.close();
        }
        await log.close();
      }),
      { numRuns: 12, seed: SEED },
    );
  });

  it('PITR: restore to random T = the log prefix with ts ≤ T (same records, state and search results)', async () => {
    await fc.assert(
      fc.asyncProperty(historyArb, fc.nat(), fc.integer({ min: -2, max: 80 }), fc.boolean(), vecArb, async (hist, a, tOffsetMs, withFull, q) => {
        const dir = tempDir();
        const clock = new FakeClock();
        const t0 = clock.nowMicros();
        const log = await EventLog.open({ dir, clock, logger: () => undefined });
        const store = new LocalDirStore(tempDir());
        const cb = new ContinuousBackup({ log, store, intervalMs: 2, maxBatchEvents: 5, logger: quietLogger() });
        await cb.start();
        const cut = 1 + (a % hist.length);
        await write(log, clock, hist.slice(0, cut));
        if (withFull) await new BackupManager({ log, dataDir: dir, store, eventsPerFile: 6, logger: quietLogger() }).createFull();
        await write(log, clock, hist.slice(cut));
        await cb.waitForShipped(log.head().seq);
        await cb.stop();
        const T = t0 + tOffsetMs * 1000;
        await expectPitr(store, log, T, log.seqAtTime(T), q);
        await log.close();
      }),
      { numRuns: 15, seed: SEED },
    );
  });

  it('PITR over a chain of a full and incrementals (with or without continuous backup): restore to random T = the prefix with ts ≤ T, up to what the store holds', async () => {
    // T: any instant, or one at most 1 ms after the last event of one of the backups — between two
    // backups of the chain (after the last event of one, before the first of the next) the chain
    // still holds every event up to T.
    const tArb = fc.oneof(fc.record({ offsetMs: fc.integer({ min: -2, max: 80 }) }), fc.record({ backup: fc.nat(), afterUs: fc.integer({ min: 0, max: 999 }) }));
    await fc.assert(
      fc.asyncProperty(historyArb, fc.uniqueArray(fc.nat(), { minLength: 1, maxLength: 4 }), fc.boolean(), fc.boolean(), tArb, vecArb, async (hist, picks, tail, continuous, t, q) => {
        const dir = tempDir();
        const clock = new FakeClock();
        const t0 = clock.nowMicros();
        const log = await EventLog.open({ dir, clock, logger: () => undefined });
        const store = new LocalDirStore(tempDir());
        const mgr = new BackupManager({ log, dataDir: dir, store, eventsPerFile: 5, logger: quietLogger() });
        // With continuous backup beside the chain, its segments overlap the backups and hold the tail too.
        const cb = continuous ? new ContinuousBackup({ log, store, intervalMs: 2, maxBatchEvents: 3, logger: quietLogger() }) : undefined;
        await cb?.start();
        // Backups after these batches: a full after the first, an incremental after each other; with `tail`, more writes no backup holds.
        const cuts = [...new Set(picks.map((x) => 1 + (x % hist.length)))].sort((x, y) => x - y);
        let done = 0;
        const ends: number[] = [];
        for (const [i, cut] of cuts.entries()) {
          await write(log, clock, hist.slice(done, cut));
          done = cut;
          ends.push((i === 0 ? await mgr.createFull() : await mgr.createIncremental()).to_ts);
        }
        if (tail) await write(log, clock, hist.slice(done));
        if (cb !== undefined) {
          await cb.waitForShipped(log.head().seq);
          await cb.stop();
        }
        const backedUp = cb !== undefined ? log.head().seq : (await mgr.list()).reduce((n, m) => Math.max(n, m.to_seq), 0);
        const T = 'offsetMs' in t ? t0 + t.offsetMs * 1000 : ends[t.backup % ends.length]! + t.afterUs;
        await expectPitr(store, log, T, Math.min(log.seqAtTime(T), backedUp), q);
        await log.close();
      }),
      { numRuns: 25, seed: SEED },
    );
  });

  it('retention plans never delete a backup a kept one depends on, nor a tagged one, nor the newest', () => {
    const HOUR = 3_600_000;
    const manifestsArb = fc.array(fc.record({ full: fc.boolean(), gapHours: fc.integer({ min: 0, max: 24 * 20 }), tagged: fc.integer({ min: 0, max: 9 }) }), { minLength: 1, maxLength: 60 }).map((xs) => {
      const out: BackupManifest[] = [];
      let t = Date.UTC(2026, 0, 1);
      let seq = 0;
      let parent: BackupManifest | undefined;
      for (const [i, x] of xs.entries()) {
        t += x.gapHours * HOUR + 1000;
        const full = x.full || parent === undefined;
        const from = full ? 1 : seq + 1;
        seq += 10;
        const m: BackupManifest = {
          backup_id: `b${String(i).padStart(3, '0')}`,
          type: full ? 'full' : 'incremental',
          parent: full ? null : parent!.backup_id,
          created: new Date(t).toISOString(),
          ...(x.tagged === 0 ? { tag: `t${i}` } : {}),
          from_seq: from,
          to_seq: seq,
          // A full starts at the log's first event; an incremental just after its parent's last.
          from_ts: full ? Date.UTC(2026, 0, 1) * 1000 : (parent!.to_ts + 1),
          to_ts: t * 1000,
          prev_hash: '',
          head_hash: '',
          event_count: seq - from + 1,
          vector_count: 0,
          collections: {},
          checkpoint_seq: null,
          files: [],
          format_version: 1,
          compression: 'zstd',
          encryption: null,
        };
        out.push(m);
        parent = m;
      }
      return { manifests: out, end: t };
    });
    fc.assert(
      fc.property(
        manifestsArb,
        fc.option(fc.integer({ min: 0, max: 60 }), { nil: undefined }),
        fc.option(fc.record({ hourly: fc.nat(30), daily: fc.nat(10), weekly: fc.nat(6), monthly: fc.nat(14) }), { nil: undefined }),
        fc.integer({ min: 0, max: 24 * 30 }),
        ({ manifests, end }, retentionDays, policy, laterHours) => {
          const now = end + laterHours * HOUR;
          const plan = planRetention(manifests, [], { now, ...(retentionDays !== undefined ? { retentionDays } : {}), ...(policy !== undefined ? { policy } : {}) });
          const kept = new Set(plan.keep.map((k) => k.backup_id));
          const byId = new Map(manifests.map((m) => [m.backup_id, m]));
          expect(kept.size + plan.delete.length).toBe(manifests.length);
          for (const k of plan.keep) expect(new Set(k.reasons).size, `${k.backup_id}: ${k.reasons.join('; ')}`).toBe(k.reasons.length); // each reason once
          for (const id of kept) {
            let m = byId.get(id);
            while (m?.parent != null) {
              expect(kept.has(m.parent)).toBe(true);
              m = byId.get(m.parent);
            }
          }
          for (const m of manifests) if (m.tag !== undefined) expect(kept.has(m.backup_id)).toBe(true);
          expect(kept.has(manifests[manifests.length - 1]!.backup_id)).toBe(true);
          if (retentionDays !== undefined) {
            const start = now - retentionDays * 86_400_000;
            for (const m of manifests) if (Date.parse(m.created) >= start) expect(kept.has(m.backup_id)).toBe(true);
            // PITR to the window start stays possible: a kept full ending at or before it, if any existed.
            const bases = manifests.filter((m) => m.type === 'full' && m.to_ts <= start * 1000);
            if (bases.length > 0) expect(bases.some((m) => kept.has(m.backup_id))).toBe(true);
            // And to any instant in the window: what planned without a gap before the prune still does after it.
            const left = manifests.filter((m) => kept.has(m.backup_id));
            for (const frac of [0, 0.25, 0.5, 0.75, 1]) {
              const T = Math.round((start + frac * (now - start)) * 1000);
              let before: ReturnType<typeof planRestore> | undefined;
              try {
                before = planRestore({ manifests, segments: [] }, { pointInTime: T });
              } catch {
                continue; // nothing covered T before the prune either
              }
              if (before.gapAfterSeq !== null) continue;
              const after = planRestore({ manifests: left, segments: [] }, { pointInTime: T });
              expect(after.gapAfterSeq, `T ${T}`).toBeNull();
            }
          }
        },
      ),
      { numRuns: 300, seed: SEED },
    );
  });

  it('tag claims: in any interleaving of claimants (put a claim, list, a refused one deletes its claim) on a linearizable store, at most one is admitted; none beside a committed claim', () => {
    const now = Date.UTC(2026, 10, 27, 12, 0, 0);
    const day = 86_400_000;
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 5 }),
        fc.array(fc.nat(), { minLength: 30, maxLength: 30 }),
        fc.constantFrom('none', 'stale', 'committed'),
        (n, picks, prior) => {
          // Claims already in the store: a killed backup's (older than the expiry) or a committed one's.
          const store = new Map<string, boolean>(); // backup id -> has a manifest
          if (prior === 'stale') store.set('20261120T000000Z-full-000000', false);
          if (prior === 'committed') store.set('20261120T000000Z-full-000000', true);
          const ids = Array.from({ length: n }, (_, i) => `20261127T1200${String(i).padStart(2, '0')}Z-full-${String(i).repeat(6)}`);
          const step = ids.map(() => 0); // 0: to put, 1: to list, 2: refused (to delete), 3: done
          const admitted: string[] = [];
          let k = 0;
          while (step.some((x) => x < 3)) {
            const live = step.flatMap((x, i) => (x < 3 ? [i] : []));
            const i = live[(picks[k++ % picks.length] ?? 0) % live.length]!;
            const id = ids[i]!;
            if (step[i] === 0) {
              store.set(id, false);
              step[i] = 1;
            } else if (step[i] === 1) {
              const others = [...store].filter(([b]) => b !== id).map(([backupId, hasManifest]) => ({ backupId, hasManifest }));
              if (tagHolder(id, others, now, day) === undefined) {
                admitted.push(id);
                step[i] = 3;
              } else step[i] = 2;
            } else {
              store.delete(id);
              step[i] = 3;
            }
          }
          expect(admitted.length, JSON.stringify({ n, prior, admitted })).toBeLessThanOrEqual(1);
          if (prior === 'committed') expect(admitted).toEqual([]);
        },
      ),
      { numRuns: 500, seed: SEED },
    );
  });
});
