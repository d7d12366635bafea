// rxjs, loaded on first use. Taking the whole package costs ~55 ms of every process start, and
// most `kyrodb` commands (restore, audit, backup to a directory) never tail the log. Loaded
// through `require` (rxjs ships CommonJS as its main), so every package shares one copy.
import { createRequire } from 'node:module';

type Rx = typeof import('rxjs');
let rx: Rx | undefined;

/** The rxjs module, loaded the first time it is asked for. */
export function rxjs(): Rx {
  return (rx ??= createRequire(import.meta.url)('rxjs') as Rx);
}
