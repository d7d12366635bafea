// recoverInterruptedRestore on each state a killed restore can leave (the kills themselves, for
// real, are in tests/restoreKill.int.test.ts): it undoes a swap cut short, finishes tidying one
// that was done, removes staging dirs of dead processes, and touches nothing of a live restore.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EventLog, toHex } from '@kyrodb/log';
import { recoverInterruptedRestore } from '@kyrodb/backup';
import { created, fill } from './helpers.js';
import { tempDir } from './helpers.js';

/** A pid that was just used and is gone. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

function dirWith(p: string, content: string): void {
  fs.mkdirSync(p, { recursive: true });
  fs.writeFileSync(path.join(p, 'f'), content);
}

const read = (p: string): string => fs.readFileSync(path.join(p, 'f'), 'utf8');

describe('recoverInterruptedRestore', () => {
  it('a swap cut short between its renames (no data dir): the moved-aside data dir comes back; dead staging goes', async () => {
    const parent = tempDir();
    const data = path.join(parent, 'data');
    const pid = deadPid();
    const previous = `${data}.pre-restore-20261127T000000000Z`;
    const staging = `${data}.restore-staging-20261127T000000000Z-${pid}`;
    dirWith(previous, 'old');
    dirWith(staging, 'new');
    fs.writeFileSync(`${data}.restore-swap.json`, JSON.stringify({ previous, staging, pid }));
    const warnings: string[] = [];
    const r = await recoverInterruptedRestore(data, (_l, msg) => warnings.push(msg));
    expect(r).toEqual({ movedBack: previous, removedStaging: [path.basename(staging)], removedPrevious: null, swappingBy: null });
    expect(read(data)).toBe('old');
    expect(fs.readdirSync(parent)).toEqual(['data']);
    expect(warnings.join('\n')).toMatch(/moved aside is back/);
  });

  it('a swap that finished (both dirs there): only the marker goes; the previous data dir is kept and named', async () => {
    const parent = tempDir();
    const data = path.join(parent, 'data');
    const previous = `${data}.pre-restore-20261127T000000000Z`;
    dirWith(data, 'new');
    dirWith(previous, 'old');
    fs.writeFileSync(`${data}.restore-swap.json`, JSON.stringify({ previous, staging: `${data}.restore-staging-x-1`, pid: deadPid() }));
    const warnings: string[] = [];
    expect(await recoverInterruptedRestore(data, (_l, msg) => warnings.push(msg))).toEqual({ movedBack: null, removedStaging: [], removedPrevious: null, swappingBy: null });
    expect([read(data), read(previous)]).toEqual(['new', 'old']);
    expect(fs.existsSync(`${data}.restore-swap.json`)).toBe(false);
    expect(warnings.join('\n')).toContain(previous);
  });

  it('a swap that finished and was checked, stopped while deleting the data dir it replaced: the rest of that dir is removed', async () => {
    const parent = tempDir();
    const data = path.join(parent, 'data');
    const previous = `${data}.pre-restore-20261127T000000000Z`;
    dirWith(data, 'new');
    dirWith(previous, 'half deleted');
    fs.writeFileSync(`${data}.restore-swap.json`, JSON.stringify({ previous, staging: `${data}.restore-staging-x-1`, pid: deadPid(), verified: true }));
    fs.writeFileSync(`${data}.restore-swap.json.tmp`, '{"prev'); // a rewrite of the marker cut short
    expect(await recoverInterruptedRestore(data)).toEqual({ movedBack: null, removedStaging: [], removedPrevious: previous, swappingBy: null });
    expect(read(data)).toBe('new');
    expect(fs.readdirSync(parent)).toEqual(['data']);
  });

  it('a swap stopped after both renames, before its check: the check is done now; passed, the replaced dir is removed; failed, or kept on request, it stays', async () => {
    const parent = tempDir();
    const data = path.join(parent, 'data');
    const previous = `${data}.pre-restore-20261127T000000000Z`;
    const log = await EventLog.open({ dir: data, logger: () => undefined });
    await log.append([created('c', 8)]);
    await fill(log, 20);
    const head = { seq: log.head().seq, hash: toHex(log.head().hash) };
    await log.close();
    const staging = `${data}.restore-staging-20261127T000000000Z-${deadPid()}`; // renamed to data: gone
    const marker = (extra: object): void => fs.writeFileSync(`${data}.restore-swap.json`, JSON.stringify({ previous, staging, pid: deadPid(), expect: head, ...extra }));
    // Another head than the restore's: not its dir; the old one stays.
    dirWith(previous, 'old');
    marker({ expect: { ...head, hash: '00'.repeat(32) } });
    expect((await recoverInterruptedRestore(data)).removedPrevious).toBeNull();
    expect(read(previous)).toBe('old');
    // Kept on request (keepPrevious).
    marker({ keep: true });
    expect((await recoverInterruptedRestore(data)).removedPrevious).toBeNull();
    expect(read(previous)).toBe('old');
    // The restore's head: it was done but for its check.
    marker({});
    const logged: string[] = [];
    expect(await recoverInterruptedRestore(data, (_l, msg) => logged.push(msg))).toEqual({ movedBack: null, removedStaging: [], removedPrevious: previous, swappingBy: null });
    expect(logged.join('\n')).toMatch(/before checking the new one: it checks \(head 21\), and the data dir it replaced is removed/);
    expect(fs.readdirSync(parent).sort()).toEqual(['data']);
  });

  it('a torn marker (its first rename never happened) is dropped; the data dir is left as it is', async () => {
    const parent = tempDir();
    const data = path.join(parent, 'data');
    dirWith(data, 'current');
    fs.writeFileSync(`${data}.restore-swap.json`, '{"previous": "/x');
    expect(await recoverInterruptedRestore(data)).toEqual({ movedBack: null, removedStaging: [], removedPrevious: null, swappingBy: null });
    expect(read(data)).toBe('current');
    expect(fs.readdirSync(parent)).toEqual(['data']);
  });

  it("a restore that is still running (its process lives): nothing of it is touched, nor another target's staging", async () => {
    const parent = tempDir();
    const data = path.join(parent, 'data');
    const live = process.ppid; // alive, and not this process
    const previous = `${data}.pre-restore-20261127T000000000Z`;
    const staging = `${data}.restore-staging-20261127T000000000Z-${live}`;
    const other = path.join(parent, `data2.restore-staging-20261127T000000000Z-${deadPid()}`);
    dirWith(previous, 'old');
    dirWith(staging, 'new');
    dirWith(other, 'x');
    fs.writeFileSync(`${data}.restore-swap.json`, JSON.stringify({ previous, staging, pid: live }));
    expect(await recoverInterruptedRestore(data)).toEqual({ movedBack: null, removedStaging: [], removedPrevious: null, swappingBy: live });
    expect(fs.readdirSync(parent).sort()).toEqual([path.basename(other), path.basename(previous), 'data.restore-staging-20261127T000000000Z-' + live, 'data.restore-swap.json'].sort());
    // Without the marker, the live restore's staging dir still stays.
    fs.rmSync(`${data}.restore-swap.json`);
    expect(await recoverInterruptedRestore(data)).toEqual({ movedBack: null, removedStaging: [], removedPrevious: null, swappingBy: null });
    expect(fs.existsSync(staging)).toBe(true);
  });
});
