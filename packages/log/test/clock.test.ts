import { describe, expect, it } from 'vitest';
import { wallMicrosSource } from '../src/clock.js';

/** A wall clock and a monotonic clock the test moves by hand (ms, fractional for the monotonic one). */
function clocks(startWallMs = 1_700_000_000_000): { wall: number; mono: number; read: () => number } {
  const c = { wall: startWallMs, mono: 5_000.25, read: () => 0 };
  c.read = wallMicrosSource(
    () => Math.floor(c.wall),
    () => c.mono,
  );
  return c;
}

describe('wallMicrosSource', () => {
  it('has microsecond resolution within the wall clock\'s millisecond while the two clocks agree', () => {
    const c = clocks();
    const seen: number[] = [];
    for (let i = 0; i < 5000; i++) {
      c.mono += 0.0137; // 13.7 µs a step, the wall clock moving alike
      c.wall += 0.0137;
      const us = c.read();
      seen.push(us);
      expect(us).toBeGreaterThanOrEqual(Math.floor(c.wall) * 1000 - 1000);
      expect(us).toBeLessThan(Math.floor(c.wall) * 1000 + 2000);
    }
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
    expect(new Set(seen.map((us) => us % 1000)).size).toBeGreaterThan(500); // not whole milliseconds
  });

  it('follows the wall clock when it steps ahead while the monotonic clock stood still (a suspend)', () => {
    const c = clocks();
    c.read();
    c.wall += 3_600_000; // an hour's suspend: only the wall clock moved
    c.mono += 0.01;
    expect(c.read()).toBe(Math.floor(c.wall) * 1000);
    c.mono += 0.5;
    c.wall += 0.5;
    const us = c.read();
    expect(us - Math.floor(c.wall) * 1000).toBeGreaterThanOrEqual(-1000);
    expect(us - Math.floor(c.wall) * 1000).toBeLessThan(1000);
  });

  it('follows a step back of the wall clock, and a slow drift between the two', () => {
    const c = clocks();
    c.read();
    c.wall -= 7_200_000;
    c.mono += 1;
    expect(c.read()).toBe(Math.floor(c.wall) * 1000);
    // The monotonic clock runs 0.1% fast for a minute: the reading never leaves the wall clock by more than 2 ms.
    for (let i = 0; i < 60_000; i++) {
      c.mono += 1.001;
      c.wall += 1;
      const d = c.read() - Math.floor(c.wall) * 1000;
      expect(d).toBeGreaterThanOrEqual(-1000);
      expect(d).toBeLessThan(2000);
    }
  });
});
