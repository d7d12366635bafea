/**
 * Child-process helpers for the end-to-end tests: the real `kyrodb` CLI (packages/api/dist/cli.js,
 * built by the test command's `tsc -b`), real HTTP.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '..');
export const CLI = path.join(ROOT, 'packages/api/dist/cli.js');
/** How long `kyrodb()` lets a command run. */
const COMMAND_TIMEOUT_MS = 120_000;

export function tmp(prefix = 'kyro-e2e-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface ServerProc {
  url: string;
  proc: ChildProcess;
  stderr: () => string;
  /** Sends `signal` and resolves with the exit code (null when killed by a signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `kyrodb serve --port 0 --json …args` and resolves once it prints its URL. */
export function startServer(args: string[], env: Record<string, string> = {}): Promise<ServerProc> {
  const proc = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--json', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const exited = new Promise<number | null>((resolve) =>
    proc.on('exit', (code, signal) => {
      // A server that dies by a signal it was not sent (a crash) says so, with its last words.
      if (signal !== null && signal !== 'SIGKILL') console.error(`kyrodb server ${proc.pid} ended by ${signal}; stderr tail:\n${err.slice(-4000)}`);
      resolve(code);
    }),
  );
  proc.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer): void => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.includes('"listening"'));
      if (line === undefined) return;
      proc.stdout.off('data', onData);
      const { url } = JSON.parse(line) as { url: string };
      resolve({
        url,
        proc,
        stderr: () => err,
        stop: (signal = 'SIGTERM') => {
          if (proc.exitCode !== null || proc.signalCode !== null) return exited;
          proc.kill(signal);
          return exited;
        },
      });
    };
    proc.stdout.on('data', onData);
    void exited.then((code) => reject(new Error(`server exited (${code}) before listening:\n${err}`)));
  });
}

/** Runs the CLI to completion. */
export function kyrodb(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // A command that does not end (a serve that should have refused to start) fails its test with a
    // message, and is not left running.
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024, timeout: COMMAND_TIMEOUT_MS, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      if (error?.killed === true) stderr += `\n[test] kyrodb ${args.join(' ')}: killed after ${COMMAND_TIMEOUT_MS / 1000} s, it did not exit\n`;
      resolve({ code, stdout, stderr });
    });
  });
}

/** JSON over HTTP (the body is loosely typed: tests check it field by field). */
/* eslint-disable @typescript-eslint/no-explicit-any */
export async function call(url: string, method: string, p: string, body?: unknown): Promise<{ status: number; json: any; headers: Headers }> {
  const res = await fetch(url + p, { method, ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}) });
  const text = await res.text();
  let json: any = text;
  try {
    json = JSON.parse(text);
  } catch {
    /* text */
  }
  return { status: res.status, json, headers: res.headers };
}

/* eslint-enable @typescript-eslint/no-explicit-any */

/** A deterministic pseudo-random vector. */
export function vectorFor(seed: number, dim: number): number[] {
  let x = (seed * 2654435761) >>> 0 || 1;
  return Array.from({ length: dim }, () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return (x / 0xffffffff) * 2 - 1;
  });
}
