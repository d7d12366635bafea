import { describe, expect, it } from 'vitest';
import { CircuitBreaker, FakeClock } from '@kyrodb/log';
import type { BreakerState } from '@kyrodb/log';

function make(threshold = 3, timeout = 60_000) {
  const clock = new FakeClock();
  const changes: [BreakerState, BreakerState, string][] = [];
  const b = new CircuitBreaker('t', { failureThreshold: threshold, openTimeoutMs: timeout, clock, onStateChange: (to, from, reason) => changes.push([from, to, reason]) });
  return { b, clock, changes };
}

describe('CircuitBreaker state machine (FakeClock)', () => {
  it('defaults are the sketch: 3 failures, 60 s', () => {
    const clock = new FakeClock();
    const b = new CircuitBreaker('d', { clock });
    b.recordFailure();
    b.recordFailure();
    expect(b.state).toBe('closed');
    b.recordFailure();
    expect(b.state).toBe('open');
    clock.advance(59_999);
    expect(b.state).toBe('open');
    clock.advance(1);
    expect(b.state).toBe('half_open');
  });

  it('closed → open at the threshold of consecutive failures; a success resets the count', () => {
    const { b, changes } = make(3);
    b.recordFailure('x');
    b.recordFailure('x');
    expect(b.consecutiveFailures).toBe(2);
    b.recordSuccess();
    expect(b.consecutiveFailures).toBe(0);
    b.recordFailure('x');
    b.recordFailure('x');
    expect(b.state).toBe('closed');
    expect(b.tryAcquire()).toEqual({ allowed: true, probe: false });
    b.recordFailure('boom');
    expect(b.state).toBe('open');
    expect(b.reason).toContain('3 consecutive failures: boom');
    expect(changes.map(([f, t]) => `${f}->${t}`)).toEqual(['closed->open']);
  });

  it('open fails fast with retryAfter counting down to the timeout', () => {
    const { b, clock } = make(1, 10_000);
    b.recordFailure('x');
    expect(b.tryAcquire()).toMatchObject({ allowed: false, retryAfterMs: 10_000 });
    clock.advance(2_500);
    expect(b.tryAcquire()).toMatchObject({ allowed: false, retryAfterMs: 7_500 });
    expect(b.retryAfterMs).toBe(7_500);
    // failures reported while open do not extend it
    b.recordFailure('late');
    expect(b.retryAfterMs).toBe(7_500);
  });

  it('half-open after the timeout lets exactly one probe; its success closes', () => {
    const { b, clock, changes } = make(1, 1_000);
    b.recordFailure();
    clock.advance(1_000);
    expect(b.state).toBe('half_open');
    expect(b.tryAcquire()).toEqual({ allowed: true, probe: true });
    const refused = b.tryAcquire();
    expect(refused.allowed).toBe(false);
    expect(b.tryAcquire().allowed).toBe(false);
    b.recordSuccess();
    expect(b.state).toBe('closed');
    expect(b.tryAcquire()).toEqual({ allowed: true, probe: false });
    expect(changes.map(([f, t]) => `${f}->${t}`)).toEqual(['closed->open', 'open->half_open', 'half_open->closed']);
  });

  it('probeNow half-opens an open breaker at once (what it guards was replaced); closed or half-open, it changes nothing', () => {
    const { b, changes } = make(1, 600_000);
    b.probeNow('replaced');
    expect(b.state).toBe('closed');
    b.recordFailure();
    expect(b.state).toBe('open');
    b.probeNow('replaced');
    expect(b.state).toBe('half_open');
    expect(b.tryAcquire()).toEqual({ allowed: true, probe: true });
    b.probeNow('again'); // the probe in flight stays the one probe
    expect(b.tryAcquire().allowed).toBe(false);
    b.recordSuccess();
    expect(b.state).toBe('closed');
    expect(changes.map(([f, t, r]) => `${f}->${t} ${r}`)).toEqual(['closed->open 1 consecutive failures: failure', 'open->half_open replaced', 'half_open->closed probe succeeded']);
  });

  it('a failed probe re-opens for a full timeout', () => {
    const { b, clock } = make(1, 1_000);
    b.recordFailure();
    clock.advance(1_500);
    expect(b.tryAcquire()).toMatchObject({ allowed: true, probe: true });
    b.recordFailure('still broken');
    expect(b.state).toBe('open');
    expect(b.reason).toContain('probe failed: still broken');
    expect(b.retryAfterMs).toBe(1_000);
    clock.advance(999);
    expect(b.state).toBe('open');
    clock.advance(1);
    expect(b.tryAcquire()).toMatchObject({ allowed: true, probe: true });
  });

  it('trip opens at once (disk full); reset closes from any state', () => {
    const { b, clock } = make(3, 1_000);
    b.trip('disk full');
    expect(b.state).toBe('open');
    expect(b.reason).toBe('disk full');
    b.reset();
    expect(b.state).toBe('closed');
    expect(b.consecutiveFailures).toBe(0);
    b.trip('again');
    clock.advance(1_000);
    expect(b.tryAcquire()).toMatchObject({ allowed: true, probe: true });
    b.reset(); // reset while a probe is in flight
    expect(b.state).toBe('closed');
    expect(b.tryAcquire()).toEqual({ allowed: true, probe: false });
    b.reset(); // closing a closed breaker is a no-op
    expect(b.state).toBe('closed');
  });
});
