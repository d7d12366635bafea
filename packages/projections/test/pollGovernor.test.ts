// When the search channel's two ends poll for each other and when they sleep (ColdTier's policy).
import { describe, expect, it } from 'vitest';
import { POLL_BACKOFF_MS, POLL_HOP_LIMIT_US, POLL_STALLS_OFF, POLL_WINDOW, PollGovernor } from '../src/searchChannel.js';

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

  it('sleeps for the back-off, then tries polling again, every time it does not pay', () => {
    const g = new PollGovernor();
    g.note(0, 0);
    let now = 10;
    for (let i = 0; i < 5; i++) {
      expect(stallUntilOff(g, now)).toBe(POLL_STALLS_OFF);
      g.note(10, now + POLL_BACKOFF_MS - 1);
      expect(g.polling).toBe(false);
      now += POLL_BACKOFF_MS;
      g.note(10, now); // the probe
      expect(g.polling).toBe(true);
    }
  });
});
