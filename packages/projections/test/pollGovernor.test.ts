// When the search channel's two ends poll for each other and when they sleep (ColdTier's policy).
import { describe, expect, it } from 'vitest';
import { POLL_BACKOFF_MAX_MS, POLL_BACKOFF_MS, POLL_HOP_LIMIT_US, POLL_PROBATION, POLL_PROBATION_STALLS, POLL_STALLS_OFF, POLL_WINDOW, PollGovernor } from '../src/searchChannel.js';

const BAD = 10 * POLL_HOP_LIMIT_US;

/** Feeds bad hops at `now` until polling goes off; returns how many it took. */
function stallUntilOff(g: PollGovernor, now: number): number {
  let n = 0;
  while (g.polling && n < 100) {
    g.note(BAD, now);
    n++;
  }
  return n;
}

describe('poll governor', () => {
  it('polls from the first search, and keeps polling while a search costs little beyond itself', () => {
    const g = new PollGovernor();
    expect(g.polling).toBe(false);
    g.note(90, 0); // the first search slept: it turns polling on
    expect(g.polling).toBe(true);
    for (let i = 0; i < 1000; i++) g.note(8 + (i % 5), i);
    expect(g.polling).toBe(true);
  });

  it('bursts of stalls (a background job preempting one end) do not switch polling off; contention does', () => {
    const g = new PollGovernor();
    g.note(0, 0);
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < POLL_WINDOW; i++) g.note(10, 1);
      for (let i = 0; i < POLL_STALLS_OFF - 1; i++) g.note(5000, 2);
      expect(g.polling).toBe(true);
    }
    for (let i = 0; i < POLL_WINDOW; i++) g.note(10, 3);
    // Every other search stalled: half the window, not POLL_STALLS_OFF of it.
    for (let i = 0; i < 10 * POLL_WINDOW; i++) g.note(i % 2 === 0 ? 10 : BAD, 3);
    expect(g.polling).toBe(true);
    // A search exactly at the limit is not a stall.
    for (let i = 0; i < 2 * POLL_WINDOW; i++) g.note(POLL_HOP_LIMIT_US, 3);
    expect(g.polling).toBe(true);
    // Contention: three searches in four stall, and a fast one between does not save it.
    let n = 0;
    while (g.polling && n < 100) g.note(n++ % 4 === 3 ? 10 : BAD, 4);
    expect(n).toBeGreaterThan(POLL_STALLS_OFF);
    expect(n).toBeLessThanOrEqual(POLL_WINDOW);
    expect(g.polling).toBe(false);
    // Every search stalled: POLL_STALLS_OFF of them switch it off.
    const h = new PollGovernor();
    h.note(0, 0);
    for (let i = 0; i < POLL_WINDOW; i++) h.note(10, 1);
    expect(stallUntilOff(h, 4)).toBe(POLL_STALLS_OFF);
  });

  /** Checks that polling stays off until `from + ms` and is tried again then (the probe turns it on); returns that time. */
  function triedAfter(g: PollGovernor, from: number, ms: number): number {
    g.note(10, from + ms - 1);
    expect(g.polling).toBe(false);
    g.note(10, from + ms);
    expect(g.polling).toBe(true);
    return from + ms;
  }

  it('after polling stopped paying in the long run, it sleeps POLL_BACKOFF_MS, then tries again', () => {
    const g = new PollGovernor();
    g.note(0, 0);
    for (let i = 0; i < POLL_WINDOW; i++) g.note(10, 1);
    let now = 10;
    for (let i = 0; i < 5; i++) {
      expect(stallUntilOff(g, now)).toBe(POLL_STALLS_OFF);
      now = triedAfter(g, now, POLL_BACKOFF_MS);
      for (let j = 0; j < POLL_PROBATION; j++) g.note(10, now); // through probation
      expect(g.polling).toBe(true);
    }
  });

  it('a try that stalls on probation is given up at once, the back-off doubling up to its cap; a try that gets through resets it', () => {
    const g = new PollGovernor();
    g.note(0, 0); // the first search: polling on, on probation
    let now = 1;
    expect(stallUntilOff(g, now)).toBe(POLL_PROBATION_STALLS);
    const seen: number[] = [];
    let backoff = POLL_BACKOFF_MS;
    for (let i = 0; i < 7; i++) {
      now = triedAfter(g, now, backoff);
      seen.push(backoff);
      expect(stallUntilOff(g, now)).toBe(POLL_PROBATION_STALLS);
      backoff = Math.min(2 * backoff, POLL_BACKOFF_MAX_MS);
    }
    expect(seen).toEqual([1, 2, 4, 8, 16, 32, 64].map((m) => Math.min(m * POLL_BACKOFF_MS, POLL_BACKOFF_MAX_MS)));
    // A try with fewer stalls than POLL_PROBATION_STALLS in its first POLL_PROBATION searches gets through …
    now = triedAfter(g, now, POLL_BACKOFF_MAX_MS);
    for (let j = 0; j < POLL_PROBATION; j++) g.note(j < POLL_PROBATION_STALLS - 1 ? BAD : 10, now);
    expect(g.polling).toBe(true);
    // … and then only the long-run rule switches it off (the window still holds those stalls) …
    for (let j = 0; j < POLL_WINDOW; j++) g.note(10, now);
    expect(stallUntilOff(g, now)).toBe(POLL_STALLS_OFF);
    // … for POLL_BACKOFF_MS, and the next failed try backs off POLL_BACKOFF_MS again.
    now = triedAfter(g, now, POLL_BACKOFF_MS);
    expect(stallUntilOff(g, now)).toBe(POLL_PROBATION_STALLS);
    triedAfter(g, now, POLL_BACKOFF_MS);
  });
});
