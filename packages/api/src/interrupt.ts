import { removeRegisteredScratch } from '@kyrodb/log';

/**
 * How a command other than `serve` ends on SIGINT or SIGTERM: what it was making is undone, then
 * it exits 130 (SIGINT) or 143 (SIGTERM) with CLI_INTERRUPTED. Hooks (`onInterrupt`: a backup
 * under way stops and removes what it stored) get up to INTERRUPT_GRACE_MS; a second signal
 * ends it at once. Scratch dirs and partial files (see @kyrodb/log's scratch.ts) are removed
 * either way. Before this, an interrupted command exited silently (the shell's 130), leaving
 * its scratch copies and partial outputs behind for good.
 */
const hooks = new Set<() => Promise<void>>();
let signal: 'SIGINT' | 'SIGTERM' | undefined;
let installed = false;
let json = false;

/** How long hooks may take before the command exits anyway, ms. */
export const INTERRUPT_GRACE_MS = 10_000;

/** Exit code of a command ended by `sig`. */
export function interruptExitCode(sig: 'SIGINT' | 'SIGTERM'): number {
  return sig === 'SIGINT' ? 130 : 143;
}

/** Runs `hook` (once) when the command is interrupted; returns a function that removes it. */
export function onInterrupt(hook: () => Promise<void>): () => void {
  hooks.add(hook);
  return () => void hooks.delete(hook);
}

/** The signal that interrupted the command, if one did. */
export function interruptedBy(): 'SIGINT' | 'SIGTERM' | undefined {
  return signal;
}

/** Removes the scratch paths, says the command was interrupted (and `detail`), and exits 130/143. */
export function exitInterrupted(detail?: string): never {
  const sig = signal ?? 'SIGINT';
  const removed = removeRegisteredScratch();
  const message = `interrupted by ${sig}${detail !== undefined ? `: ${detail}` : ''}${removed.length > 0 ? `; removed ${removed.length} scratch or partial file(s) it was writing` : ''}`;
  if (json) process.stdout.write(JSON.stringify({ error: { code: 'CLI_INTERRUPTED', message } }) + '\n');
  process.stderr.write(`kyrodb: CLI_INTERRUPTED: ${message}\n`);
  process.exit(interruptExitCode(sig));
}

/** Installs the handlers (once per process; not for `serve`, which stops gracefully on its own). */
export function installInterruptHandlers(jsonOutput: boolean): void {
  if (installed) return;
  installed = true;
  json = jsonOutput;
  const handle = (sig: 'SIGINT' | 'SIGTERM'): void => {
    if (signal !== undefined || hooks.size === 0) {
      signal ??= sig;
      exitInterrupted();
    }
    signal = sig;
    process.stderr.write(`kyrodb: ${sig}: stopping and removing what it stored (${sig} again to stop at once)\n`);
    const timer = setTimeout(() => exitInterrupted(`not stopped within ${INTERRUPT_GRACE_MS / 1000} s`), INTERRUPT_GRACE_MS);
    timer.unref();
    void Promise.allSettled([...hooks].map((h) => h())).then(() => exitInterrupted());
  };
  process.on('SIGINT', () => handle('SIGINT'));
  process.on('SIGTERM', () => handle('SIGTERM'));
}
