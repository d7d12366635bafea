import type { ObjectStore } from './objectStore.js';

/** An `abortableStore`: `settled` resolves once no call it passed on is still running (those an abort let go of included). */
export interface AbortableStore extends ObjectStore {
  settled(): Promise<void>;
}

/**
 * `store`, with every call ending as soon as `signal` aborts, rejected with `aborted()`: a put's
 * request is cancelled (its signal), any other is left to end by its own timeout, unwaited. What
 * a backup manager talks to, so that stopping it (a server shutting down) does not wait out a
 * store that does not answer: each request's timeout and retries held a shutdown ~5 minutes.
 * Whoever removes what the stopped work stored waits for `settled` first (bounded): a local put
 * let go of still finished writing, after its backup's objects were removed.
 */
export function abortableStore(store: ObjectStore, signal: AbortSignal, aborted: () => Error): AbortableStore {
  const inFlight = new Set<Promise<unknown>>();
  const race = <T>(op: () => Promise<T>): Promise<T> => {
    if (signal.aborted) return Promise.reject(aborted());
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => reject(aborted());
      signal.addEventListener('abort', onAbort, { once: true });
      const p = op();
      inFlight.add(p);
      p.then(resolve, reject).finally(() => {
        inFlight.delete(p);
        signal.removeEventListener('abort', onAbort);
      });
    });
  };
  const out: AbortableStore = {
    settled: async () => {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
    url: store.url,
    put: (key, body, options) => race(() => store.put(key, body, { ...options, signal: options?.signal !== undefined ? AbortSignal.any([options.signal, signal]) : signal })),
    get: (key, options) => race(() => store.get(key, options)),
    head: (key) => race(() => store.head(key)),
    list: (prefix) => race(() => store.list(prefix)),
    delete: (key) => race(() => store.delete(key)),
  };
  if (store.readPrefix !== undefined) out.readPrefix = (key, bytes) => race(() => store.readPrefix!(key, bytes));
  if (store.presignGet !== undefined) out.presignGet = (key, secs) => race(() => store.presignGet!(key, secs));
  if (store.sweep !== undefined) out.sweep = (opts) => race(() => store.sweep!(opts));
  return out;
}
