import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EventLog, lockHolder, lockPath, seededRandom, toHex } from '@kyrodb/log';
import { created, quietLogger, tempDir } from './helpers.js';

const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'crashWriter.ts');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A small seeded PRNG (mulberry32) so a failing schedule can be replayed with CRASH_SEED. */
const rng = seededRandom;

interface Round {
  acks: Map<number, string>;
  pid: number;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Runs the writer, kills it with SIGKILL `killAfterMs` after it is ready, returns the printed acks. */
function runAndKill(dir: string, writers: number, killAfterMs: number): Promise<Round> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--conditions=@kyrodb/source', '--import', 'tsx', fixture, dir, String(writers)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stderr = '';
    let pid = -1;
    let timer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (stderr += d));
    child.stdout.on('data', (d: string) => {
      out += d;
      if (pid < 0) {
        const m = /^ready (\d+) /m.exec(out);
        if (m) {
          pid = Number(m[1]);
          timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
        }
      }
    });
    const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (_code, signal) => {
      clearTimeout(guard);
      if (timer) clearTimeout(timer);
      const acks = new Map<number, string>();
      // only complete lines: a line cut by the kill was never fully printed
      const complete = out.slice(0, out.lastIndexOf('\n') + 1);
      for (const line of complete.split('\n')) {
        const m = /^ack (\d+) ([0-9a-f]{64})$/.exec(line);
        if (m) acks.set(Number(m[1]), m[2]!);
      }
      resolve({ acks, pid, signal, stderr });
    });
  });
}

describe('crash safety (SIGKILL)', () => {
  it('every append whose resolution was printed survives SIGKILL at random moments; the chain verifies; the dead writer lock is taken over', async () => {
    const seed = Number(process.env['CRASH_SEED'] ?? (process.env['CI'] ? 7 : Date.now() % 1_000_000));
    const random = rng(seed);
    const dir = tempDir('kyro-crash-');
    dirs.push(dir);
    {
      const log = await EventLog.open({ dir, logger: quietLogger() });
      await log.append([created('c', 32)]);
      await log.close();
    }
    const rounds = 15;
    let acked = 0;
    const everAcked = new Map<number, string>();
    for (let round = 0; round < rounds; round++) {
      const writers = 1 + Math.floor(random() * 8);
      const killAfterMs = Math.floor(random() * 250);
      const r = await runAndKill(dir, writers, killAfterMs);
      const ctx = `seed ${seed}, round ${round}, ${writers} writers, killed after ${killAfterMs} ms`;
      expect(r.pid, `${ctx}: the writer never became ready: ${r.stderr}`).toBeGreaterThan(0);
      expect(r.signal, ctx).toBe('SIGKILL');
      // the lock file still names the dead writer
      expect(fs.readFileSync(lockPath(dir), 'utf8').split(' ')[0], ctx).toBe(String(r.pid));
      expect(lockHolder(dir), ctx).toBeUndefined();

      const log = await EventLog.open({ dir, logger: quietLogger() }); // takes the stale lock over
      expect(fs.readFileSync(lockPath(dir), 'utf8').split(' ')[0]).toBe(String(process.pid));
      const report = log.verify();
      expect(report.ok, `${ctx}: ${JSON.stringify(report)}`).toBe(true);
      for (const [seq, hash] of r.acks) everAcked.set(seq, hash);
      for (const [seq, hash] of everAcked) {
        const e = log.get(seq);
        expect(e, `${ctx}: acknowledged seq ${seq} is missing`).toBeDefined();
        expect(toHex(e!.hash), `${ctx}: seq ${seq}`).toBe(hash);
      }
      acked += r.acks.size;
      await log.close();
    }
    console.log(`crash test: seed ${seed}, ${rounds} rounds, ${acked} acknowledged events checked, head ${Math.max(...everAcked.keys())}`);
    // the schedule must really have exercised acknowledged writes
    expect(acked).toBeGreaterThan(rounds);
  });
});
