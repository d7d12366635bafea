/** Exponential backoff with full jitter. */
export interface RetryOptions {
  /** Attempts, the first included. Default 5. */
  attempts: number;
  /** First delay, ms; doubles per attempt. Default 100. */
  baseDelayMs: number;
  /** Largest delay, ms. Default 5000. */
  maxDelayMs: number;
}

/** Defaults: 5 attempts, 100 ms doubling to at most 5 s, full jitter. */
export const defaultRetryOptions: RetryOptions = Object.freeze({ attempts: 5, baseDelayMs: 100, maxDelayMs: 5000 });

/** The delay before retry number `attempt` (0-based): uniform in [d/2, d] with d = min(max, base·2^attempt). */
export function backoffDelay(attempt: number, o: RetryOptions, random: () => number = Math.random): number {
  const d = Math.min(o.maxDelayMs, o.baseDelayMs * 2 ** attempt);
  return d / 2 + random() * (d / 2);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Runs `fn` until it succeeds, `retryable(err)` is false, or the attempts are spent; rethrows
 * the last error. `onRetry` sees each failure that will be retried.
 */
export async function withRetry<T>(fn: () => Promise<T>, retryable: (err: unknown) => boolean, o: RetryOptions = defaultRetryOptions, onRetry?: (err: unknown, attempt: number) => void): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt + 1 >= o.attempts || !retryable(err)) throw err;
      onRetry?.(err, attempt);
      await sleep(backoffDelay(attempt, o));
    }
  }
}
