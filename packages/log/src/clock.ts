/** A source of time, injectable so tests can drive breakers, backoff and timestamps. */
export interface Clock {
  /** Wall-clock time in milliseconds since the epoch. */
  now(): number;
  /** Wall-clock time in microseconds since the epoch (integer). */
  nowMicros(): number;
  /** Resolves after `ms` milliseconds of this clock's time. */
  sleep(ms: number): Promise<void>;
}

/** The real clock: `Date`/`performance` time and `setTimeout`. */
export const systemClock: Clock = {
  now: () => Date.now(),
  nowMicros: () => Math.floor((performance.timeOrigin + performance.now()) * 1000),
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
