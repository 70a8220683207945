import { kernelShare, treeCpu, treeCpuMs } from './process-cpu';

describe('process CPU', () => {
  it("gives the kernel's share of CPU time", () => {
    expect(kernelShare({ user: 30, system: 10 })).toBe(0.25);
    expect(kernelShare({ user: 0, system: 0 })).toBe(0);
  });

  (process.platform === 'linux' ? it : it.skip)('reads user and kernel time of this process from /proc', async () => {
    const spin = Date.now() + 60;
    while (Date.now() < spin); // 60 ms of user time at least
    const cpu = await treeCpu(process.pid);
    const own = process.cpuUsage();
    expect(cpu?.user).toBeGreaterThanOrEqual(50);
    // /proc counts in ticks of 10 ms; the process's own account is in microseconds.
    expect(cpu?.user).toBeLessThanOrEqual(own.user / 1000 + 20);
    expect(await treeCpuMs(process.pid)).toBeGreaterThanOrEqual((cpu?.user ?? 0) + (cpu?.system ?? 0));
  });
});
