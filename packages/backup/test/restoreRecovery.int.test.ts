// recoverInterruptedRestore on each state a killed restore can leave (the kills themselves, for
// real, are in tests/restoreKill.int.test.ts): it undoes a swap cut short, finishes tidying one
// that was done, removes staging dirs of dead processes, and touches nothing of a live restore.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recoverInterruptedRestore } from '@kyrodb/backup';
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
