// When the search channel's two ends poll for each other and when they sleep (ColdTier's policy).
import { describe, expect, it } from 'vitest';
import { POLL_BACKOFF_MS, POLL_HOP_LIMIT_US, PollGovernor } from '../src/searchChannel.js';

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

  it('stalls now and then (a GC pause) do not switch polling off; five in a row under contention do', () => {
    const g = new PollGovernor();
    g.note(0, 0);
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 20; i++) g.note(10, 1);
      for (let i = 0; i < 3; i++) g.note(5000, 2);
      expect(g.polling).toBe(true);
    }
    for (let i = 0; i < 20; i++) g.note(10, 3);
    expect(stallUntilOff(g, 4)).toBe(5);
    expect(g.polling).toBe(false);
  });

  it('sleeps for the back-off, then tries polling again, every time it does not pay', () => {
    const g = new PollGovernor();
    g.note(0, 0);
    let now = 10;
    for (let i = 0; i < 5; i++) {
      expect(stallUntilOff(g, now)).toBeLessThanOrEqual(6);
      g.note(10, now + POLL_BACKOFF_MS - 1);
      expect(g.polling).toBe(false);
      now += POLL_BACKOFF_MS;
      g.note(10, now); // the probe
      expect(g.polling).toBe(true);
    }
  });
});
