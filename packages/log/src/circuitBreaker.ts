import type { Clock } from './clock.js';
import { systemClock } from './clock.js';

/** The three states of a circuit breaker. */
export type BreakerState = 'closed' | 'open' | 'half_open';

/** The states, for metric labels. */
export const BREAKER_STATES: readonly BreakerState[] = ['closed', 'open', 'half_open'];

/** Options of a circuit breaker. */
export interface CircuitBreakerOptions {
  /** Consecutive failures that open the breaker. Default 3. */
  failureThreshold: number;
  /** How long the breaker stays open before it half-opens, ms. Default 60 000. */
  openTimeoutMs: number;
  /** Time source. Default the system clock. */
  clock: Clock;
  /** Called on every state change (for metrics and logs). */
  onStateChange?: (to: BreakerState, from: BreakerState, reason: string) => void;
}

/** Defaults of the sketch: open after 3 failures, stay open 60 s. */
export const defaultCircuitBreakerOptions: Omit<CircuitBreakerOptions, 'onStateChange'> = Object.freeze({
  failureThreshold: 3,
  openTimeoutMs: 60_000,
  clock: systemClock,
});

/** What `tryAcquire` decided. `probe` means this call is the single half-open trial. */
export type BreakerPermit = { allowed: true; probe: boolean } | { allowed: false; retryAfterMs: number; reason: string };

/**
 * A circuit breaker: closed → open after `failureThreshold` consecutive failures (or at once
 * through `trip`) → half-open after `openTimeoutMs` → one probe; the probe's success closes it,
 * its failure re-opens it for another timeout. `reset` closes it by hand.
 */
export class CircuitBreaker {
  private s: BreakerState = 'closed';
  private failures = 0;
  private openedAt = 0;
  private probeInFlight = false;
  private lastReason = '';
  private readonly opts: CircuitBreakerOptions;

  constructor(readonly name: string, options: Partial<CircuitBreakerOptions> = {}) {
    this.opts = { ...defaultCircuitBreakerOptions, ...options };
  }

  /** The current state; an open breaker whose timeout has passed reports `half_open`. */
  get state(): BreakerState {
    if (this.s === 'open' && this.opts.clock.monotonicMs() - this.openedAt >= this.opts.openTimeoutMs) this.transition('half_open', 'open timeout elapsed');
    return this.s;
  }

  /** Consecutive failures counted while closed. */
  get consecutiveFailures(): number {
    return this.failures;
  }

  /** Why the breaker last opened. */
  get reason(): string {
    return this.lastReason;
  }

  /** Milliseconds until an open breaker half-opens (0 unless open). */
  get retryAfterMs(): number {
    if (this.state !== 'open') return 0;
    return Math.max(0, this.openedAt + this.opts.openTimeoutMs - this.opts.clock.monotonicMs());
  }

  /**
   * Asks to run one operation. Closed: allowed. Open: refused with the time until half-open.
   * Half-open: the first caller is allowed as the probe, others are refused until it reports.
   */
  tryAcquire(): BreakerPermit {
    const st = this.state;
    if (st === 'closed') return { allowed: true, probe: false };
    if (st === 'half_open' && !this.probeInFlight) {
      this.probeInFlight = true;
      return { allowed: true, probe: true };
    }
    return { allowed: false, retryAfterMs: Math.max(1, this.retryAfterMs), reason: this.lastReason };
  }

  /** Reports success of an allowed operation; closes a half-open breaker. */
  recordSuccess(): void {
    this.failures = 0;
    this.probeInFlight = false;
    if (this.s !== 'closed') this.transition('closed', 'probe succeeded');
  }

  /** Reports failure of an allowed operation; opens the breaker at the threshold or on a failed probe. */
  recordFailure(reason = 'failure'): void {
    const st = this.state;
    this.probeInFlight = false;
    if (st === 'half_open') {
      this.open(`probe failed: ${reason}`);
      return;
    }
    if (st === 'open') return;
    this.failures += 1;
    if (this.failures >= this.opts.failureThreshold) this.open(`${this.failures} consecutive failures: ${reason}`);
  }

  /** Opens the breaker at once (e.g. disk full). */
  trip(reason: string): void {
    this.probeInFlight = false;
    this.open(reason);
  }

  /**
   * Half-opens an open breaker now, without waiting out its timeout: what it guards was replaced
   * (a crashed worker restarted), so the next operation probes the new one. No change otherwise.
   */
  probeNow(reason: string): void {
    if (this.s !== 'open') return;
    this.probeInFlight = false;
    this.transition('half_open', reason);
  }

  /** Closes the breaker by hand (admin reset). */
  reset(): void {
    this.failures = 0;
    this.probeInFlight = false;
    if (this.s !== 'closed') this.transition('closed', 'manual reset');
  }

  private open(reason: string): void {
    this.lastReason = reason;
    this.openedAt = this.opts.clock.monotonicMs();
    this.failures = 0;
    this.transition('open', reason);
  }

  private transition(to: BreakerState, reason: string): void {
    const from = this.s;
    this.s = to;
    if (from !== to || to === 'open') this.opts.onStateChange?.(to, from, reason);
  }
}
