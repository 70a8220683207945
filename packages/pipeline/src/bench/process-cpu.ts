// CPU time of a process and its descendants, from /proc (Linux): for benchmarks of processes started
// elsewhere (a worker and its inference process), whatever version of them runs.
import { readFile, readdir } from 'node:fs/promises';

const TICKS_PER_SECOND = 100;

/** CPU milliseconds in user space and in the kernel (system). */
export interface CpuMs {
  user: number;
  system: number;
}

/** The kernel's share of CPU time, 0-1 (0 when there was none). */
export function kernelShare(cpu: CpuMs): number {
  const total = cpu.user + cpu.system;
  return total > 0 ? cpu.system / total : 0;
}

/** CPU milliseconds of `pid` and every descendant alive now, user and kernel apart; undefined off Linux. */
export async function treeCpu(pid: number): Promise<CpuMs | undefined> {
  if (process.platform !== 'linux') return undefined;
  const total = { user: 0, system: 0 };
  for (const p of await descendants(pid)) {
    const ticks = await cpuTicks(p);
    total.user += ticks?.user ?? 0;
    total.system += ticks?.system ?? 0;
  }
  return { user: (total.user / TICKS_PER_SECOND) * 1000, system: (total.system / TICKS_PER_SECOND) * 1000 };
}

/** CPU milliseconds (user + system) of `pid` and every descendant alive now; undefined off Linux. */
export async function treeCpuMs(pid: number): Promise<number | undefined> {
  const cpu = await treeCpu(pid);
  return cpu && cpu.user + cpu.system;
}

async function cpuTicks(pid: number): Promise<{ user: number; system: number } | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(fields[11]), system: Number(fields[12]) };
  } catch {
    return undefined;
  }
}

/** `pid` and its descendants (children listed by /proc/<pid>/task/<tid>/children). */
async function descendants(pid: number): Promise<number[]> {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    const p = out[i] as number;
    let tasks: string[] = [];
    try {
      tasks = await readdir(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const task of tasks) {
      const children = await readFile(`/proc/${p}/task/${task}/children`, 'utf8').catch(() => '');
      for (const c of children.split(' ').filter(Boolean)) out.push(Number(c));
    }
  }
  return out;
}
