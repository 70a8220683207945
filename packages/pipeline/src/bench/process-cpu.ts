// CPU time of a process and its descendants, from /proc (Linux): for benchmarks of processes started
// elsewhere (a worker and its inference process), whatever version of them runs.
import { readFile, readdir } from 'node:fs/promises';

const TICKS_PER_SECOND = 100;

/** CPU milliseconds (user + system) of `pid` and every descendant alive now; undefined off Linux. */
export async function treeCpuMs(pid: number): Promise<number | undefined> {
  if (process.platform !== 'linux') return undefined;
  let total = 0;
  for (const p of await descendants(pid)) total += (await cpuTicks(p)) ?? 0;
  return (total / TICKS_PER_SECOND) * 1000;
}

async function cpuTicks(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
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
