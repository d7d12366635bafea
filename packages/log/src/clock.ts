/** A source of time, injectable so tests can drive breakers, backoff and timestamps. */
export interface Clock {
  /** Wall-clock time in milliseconds since the epoch: for instants that are stored or shown. */
  now(): number;
  /**
   * Milliseconds on a clock that only moves forward, at a steady rate, whatever the wall clock
   * does (an NTP step, `date -s`, a VM resumed): for durations and deadlines. A breaker timed on
   * the wall clock stayed open for the length of a step back.
   */
  monotonicMs(): number;
  /** Wall-clock time in microseconds since the epoch (integer). */
  nowMicros(): number;
  /** Resolves after `ms` milliseconds of this clock's time. */
  sleep(ms: number): Promise<void>;
}

/**
 * The wall clock to the microsecond, from two sources: `wallMs` (the wall clock, to the
 * millisecond) and `monoMs` (a monotonic clock with sub-millisecond resolution). The microseconds
 * since an anchor taken on the wall clock are the monotonic clock's; the anchor is taken again
 * whenever that reading leaves the wall clock's current millisecond by more than `toleranceUs`.
 *
 * The monotonic clock alone (`performance.timeOrigin + performance.now()`) is fixed to the wall
 * clock once, when the process starts: it stands still while the machine is suspended and does
 * not follow a step of the wall clock (an NTP step, a VM resumed or migrated, `date -s`). A server
 * stamped its events an hour behind the wall clock after a one-hour step, so an as-of answer or a
 * point-in-time restore for the hour before held writes made after it (tests/clockStep.int.test.ts).
 * After a step back the reading steps back too; the log keeps event timestamps from decreasing.
 */
export function wallMicrosSource(wallMs: () => number, monoMs: () => number, toleranceUs = 1000): () => number {
  let anchorUs = Math.floor(wallMs()) * 1000;
  let anchorMono = monoMs();
  return () => {
    const mono = monoMs();
    const wallUs = Math.floor(wallMs()) * 1000;
    const us = anchorUs + Math.floor((mono - anchorMono) * 1000);
    if (us >= wallUs - toleranceUs && us < wallUs + 1000 + toleranceUs) return us;
    anchorUs = wallUs;
    anchorMono = mono;
    return wallUs;
  };
}

/** The real clock: `Date`/`performance` time and `setTimeout`. */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonicMs: () => performance.now(),
  nowMicros: wallMicrosSource(
    () => Date.now(),
    () => performance.now(),
  ),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/**
 * A manual clock for tests: time moves only through `advance`, which also fires due sleeps.
 */
export class FakeClock implements Clock {
  private ms: number;
  private sleepers: { at: number; resolve: () => void }[] = [];
  constructor(startMs = 1_700_000_000_000) {
    this.ms = startMs;
  }
  now(): number {
    return this.ms;
  }
  monotonicMs(): number {
    return this.ms;
  }
  nowMicros(): number {
    return Math.floor(this.ms * 1000);
  }
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.sleepers.push({ at: this.ms + ms, resolve });
    });
  }
  /** Moves time forward by `ms` and resolves every sleep that is now due. */
  advance(ms: number): void {
    this.ms += ms;
    const due = this.sleepers.filter((s) => s.at <= this.ms);
    this.sleepers = this.sleepers.filter((s) => s.at > this.ms);
    for (const s of due) s.resolve();
  }
  /** Number of sleeps still waiting. */
  get pendingSleeps(): number {
    return this.sleepers.length;
  }
}

/** Microseconds since the epoch as ISO-8601 UTC with 6 fractional digits (`2024-01-15T10:00:00.123456Z`). */
export function microsToIso(us: number): string {
  const ms = Math.floor(us / 1000);
  const iso = new Date(ms).toISOString(); // …SS.mmmZ
  return iso.slice(0, -1) + String(us - ms * 1000).padStart(3, '0') + 'Z';
}
