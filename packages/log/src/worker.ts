import { Worker } from 'node:worker_threads';
import type { WorkerOptions } from 'node:worker_threads';

/**
 * Starts a worker thread from a module URL. When the URL is a `.ts` source (tests and `tsx`
 * runs), the worker first registers the `tsx` loader; built `.js` files start directly.
 */
export function startWorker(url: URL, options: WorkerOptions = {}): Worker {
  if (url.pathname.endsWith('.ts')) {
    const boot = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`;
    return new Worker(boot, { ...options, eval: true });
  }
  return new Worker(url, options);
}
