/**
 * The data dir a reading command was given, checked before anything opens it, so that every
 * command (`query`, `backup create`, the `audit` ones) says the same about a bad one: exit 2,
 * API_CONFIG_INVALID, the message naming the setting that gave it (a flag, variable or key).
 */
import fs from 'node:fs';
import { interruptedRestoreNote } from '@kyrodb/backup';
import { ApiError } from './errors.js';

/**
 * What is at `dir`: a directory, nothing (ENOENT), or something that is no directory — a file,
 * or a path through one (ENOTDIR). Other errors (EACCES, …) are thrown.
 */
export function dirState(dir: string): 'dir' | 'missing' | 'notDir' {
  try {
    return fs.statSync(dir).isDirectory() ? 'dir' : 'notDir';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'missing';
    if (code === 'ENOTDIR') return 'notDir';
    throw err;
  }
}

/**
 * `dir` when it is a directory (or, unless `mustExist`, nothing yet); one that is a file (or lies
 * inside one) is bad input naming `setting`, not an errno from deep in the open; so is a missing
 * one for commands that only read it (`mustExist`), with what a restore stopped mid-swap left.
 */
export function checkDataDir(dir: string, setting: string, mustExist: boolean): string {
  const state = dirState(dir);
  if (state === 'notDir') throw new ApiError('API_CONFIG_INVALID', `${setting}: ${dir} is not a directory (a file is in the way)`);
  if (state === 'missing' && mustExist) throw new ApiError('API_CONFIG_INVALID', `${setting}: there is no data dir at ${dir}${interruptedRestoreNote(dir) ?? ''}`);
  return dir;
}

/** A read-only open's LOG_CLOSED (the dir holds no log.mdb) as bad input naming `setting`; any other error as it is. */
export function noLogError(err: unknown, dir: string, setting: string): unknown {
  if ((err as { code?: unknown } | undefined)?.code !== 'LOG_CLOSED') return err;
  return new ApiError('API_CONFIG_INVALID', `${setting}: ${dir} holds no KyroDB log (no log.mdb)`);
}
