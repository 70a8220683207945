import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { HostWorkers, defaultWorkersDir, processStartTime, threadsPerProcess } from './host-workers';

describe('HostWorkers (pid files in a per-host directory)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = path.join(await mkdtemp(path.join(tmpdir(), 'layertap-host-workers-')), 'workers');
  });
  afterEach(async () => {
    await rm(path.dirname(dir), { recursive: true, force: true });
  });

  it('counts the running workers that registered, itself included, and forgets one that closed', async () => {
    const alive = new Set([101, 102, 103]);
    const isAlive = (pid: number) => alive.has(pid);
    const a = new HostWorkers({ dir, pid: 101, isAlive });
    const b = new HostWorkers({ dir, pid: 102, isAlive });
    const c = new HostWorkers({ dir, pid: 103, isAlive });
    a.start();
    expect(a.count()).toBe(1);
    b.start();
    c.start();
    expect(await readdir(dir)).toEqual(['101.pid', '102.pid', '103.pid']);
    expect([a.count(), b.count(), c.count()]).toEqual([3, 3, 3]);
    b.close();
    expect(existsSync(path.join(dir, '102.pid'))).toBe(false);
    expect(a.count()).toBe(2);
    a.close();
    c.close();
    expect(await readdir(dir)).toEqual([]);
  });

  it('ignores and removes a pid file whose pid another process got since (its start time differs)', async () => {
    const started = new Map([[7, '1000'], [8, '2000'], [9, '3000']]);
    const startTime = (pid: number) => started.get(pid);
    const isAlive = (pid: number) => started.has(pid);
    const me = new HostWorkers({ dir, pid: 7, isAlive, startTime });
    const other = new HostWorkers({ dir, pid: 8, isAlive, startTime });
    me.start();
    other.start();
    expect(me.count()).toBe(2);
    // Worker 9 died without cleaning up and the kernel gave pid 9 to another process, started later.
    await writeFile(path.join(dir, '9.pid'), '9 2500\n');
    expect(me.count()).toBe(2);
    expect(existsSync(path.join(dir, '9.pid'))).toBe(false);
    // Entries from before start times were written count as before.
    await writeFile(path.join(dir, '9.pid'), '9\n');
    expect(me.count()).toBe(3);
  });

  it("reads this process's start time from /proc on Linux", () => {
    if (process.platform !== 'linux') return;
    expect(processStartTime(process.pid)).toMatch(/^\d+$/);
    expect(processStartTime(process.pid)).toBe(processStartTime(process.pid));
    expect(processStartTime(2 ** 22 + 1)).toBeUndefined();
  });

  it('ignores and removes the pid files of dead processes, and files that are not pid files', async () => {
    const me = new HostWorkers({ dir, pid: 7, isAlive: (pid) => pid === 8 });
    me.start();
    await writeFile(path.join(dir, '8.pid'), '8\n');
    await writeFile(path.join(dir, '9.pid'), '9\n');
    await writeFile(path.join(dir, 'notes.txt'), 'x');
    expect(me.count()).toBe(2);
    expect((await readdir(dir)).sort()).toEqual(['7.pid', '8.pid', 'notes.txt']);
    me.close();
  });

  it('tells a dead process from a live one for real (signal 0)', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    await new Promise((r) => child.once('spawn', r));
    const gone = spawn(process.execPath, ['-e', '']);
    await new Promise((r) => gone.once('exit', r));
    try {
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, `${child.pid}.pid`), '');
      await writeFile(path.join(dir, `${gone.pid}.pid`), '');
      const me = new HostWorkers({ dir });
      me.start();
      expect(me.count()).toBe(2);
      me.close();
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('removes its pid file when the process exits without close()', async () => {
    const before = process.listeners('exit');
    const me = new HostWorkers({ dir });
    me.start();
    const added = process.listeners('exit').filter((l) => !before.includes(l));
    expect(added).toHaveLength(1);
    expect(await readdir(dir)).toEqual([`${process.pid}.pid`]);
    added[0]!(0);
    expect(await readdir(dir)).toEqual([]);
    expect(process.listeners('exit')).toEqual(before);
  });

  it('counts 1 when the directory cannot be written', async () => {
    await writeFile(path.join(path.dirname(dir), 'file'), '');
    const me = new HostWorkers({ dir: path.join(path.dirname(dir), 'file', 'workers') });
    me.start();
    expect(me.count()).toBe(1);
    me.close();
  });

  it('defaults to a directory under the system temp directory', () => {
    expect(defaultWorkersDir()).toBe(path.join(tmpdir(), 'layertap-workers'));
    expect(new HostWorkers().dir).toBe(defaultWorkersDir());
  });
});

describe('threadsPerProcess', () => {
  it.each([
    [2, 1, 1, 2],
    [2, 1, 2, 1],
    [16, 2, 2, 4],
    [16, 3, 2, 2],
    [2, 4, 3, 1],
    [8, 1, 0, 8],
  ])('%i cores, concurrency %i, %i workers: %i threads', (cores, concurrency, workers, threads) => {
    expect(threadsPerProcess(cores, concurrency, workers)).toBe(threads);
  });
});
