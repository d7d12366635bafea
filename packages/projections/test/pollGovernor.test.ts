// When the search channel's two ends poll for each other and when they sleep (ColdTier's policy).
import { describe, expect, it } from 'vitest';
import { POLL_BACKOFF_MS, POLL_HOP_LIMIT_US, PollGovernor } from '../src/searchChannel.js';

describe('poll governor', () => {
  it('polls from the first search, and keeps polling while a search costs little beyond itself', () => {
    const g = new PollGovernor();
    expect(g.polling).toBe(false);
    g.note(90, 0); // the first search slept: it turns polling on
    expect(g.polling).toBe(true);
    for (let i = 0; i < 1000; i++) g.note(8 + (i % 5), i);
    expect(g.polling).toBe(true);
  });

  it('one stall (a GC pause) does not switch polling off; three in a row under contention do', () => {
    const g = new PollGovernor();
    g.note(0, 0);
    for (let i = 0; i < 20; i++) g.note(10, 1);
    g.note(5000, 2);
    expect(g.polling).toBe(true);
    for (let i = 0; i < 20; i++) g.note(10, 3);
    g.note(600, 4);
    g.note(600, 4);
    expect(g.polling).toBe(true);
    g.note(600, 4);
    expect(g.polling).toBe(false);
  });

  it('sleeps for the back-off, then tries polling again, and stops again if it still does not pay', () => {
    const g = new PollGovernor();
    g.note(0, 0);
    for (let i = 0; i < 3; i++) g.note(10 * POLL_HOP_LIMIT_US, 10);
    expect(g.polling).toBe(false);
    g.note(10, 10 + POLL_BACKOFF_MS - 1);
    expect(g.polling).toBe(false);
    g.note(10, 10 + POLL_BACKOFF_MS);
    expect(g.polling).toBe(true);
    for (let i = 0; i < 3; i++) g.note(10 * POLL_HOP_LIMIT_US, 200);
    expect(g.polling).toBe(false);
  });
});
