/** Progress of long work: `phase` names the step; `done`/`total` count its units (events or bytes). */
export interface Progress {
  phase: string;
  done: number;
  total: number;
}

/** A progress callback (the CLI draws bars from it). */
export type ProgressFn = (p: Progress) => void;

/** A structured log line from backup. */
export type BackupLogger = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

/** The default logger: JSON lines on stderr for warn/error. */
export const defaultBackupLogger: BackupLogger = (level, msg, fields) => {
  if (level === 'info') return;
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level, component: 'backup', msg, ...fields }) + '\n');
};
