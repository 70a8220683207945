// The workers running on this host, counted through a directory of pid files (one per worker), so that
// ONNX Runtime's threads are shared out between all of them instead of each worker taking every core.
import { mkdirSync, readFileSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** Where workers register when LAYERTAP_WORKERS_DIR is not set. */
export function defaultWorkersDir(): string {
  return path.join(tmpdir(), 'layertap-workers');
}

export interface HostWorkersOptions {
  /** The per-host directory of pid files. Default: `defaultWorkersDir()`. */
  dir?: string;
  /** This worker's pid. Default: `process.pid`. */
  pid?: number;
  /** Whether a process runs. Default: signal 0 (EPERM counts as running: another user's worker). */
  isAlive?: (pid: number) => boolean;
  /** When a process started, as the kernel counts it; undefined where unknown. Default: `processStartTime`. */
  startTime?: (pid: number) => string | undefined;
}

/**
 * When a process started, in clock ticks since boot (Linux: field 22 of /proc/<pid>/stat), or undefined where
 * there is no /proc. With the pid it names one process: a pid the kernel gave again names another.
 */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold both spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] || undefined;
  } catch {
    return undefined;
  }
}

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * This worker's entry in the directory of workers on this host: `start()` writes `<pid>.pid`, `count()`
 * counts the entries of running processes (stale ones, of workers that died without `close()`, are ignored
 * and removed), `close()` removes this worker's entry (also done on exit).
 */
export class HostWorkers {
  readonly dir: string;
  private readonly pid: number;
  private readonly isAlive: (pid: number) => boolean;
  private readonly startTime: (pid: number) => string | undefined;
  private registered = false;
  private readonly removeOnExit = () => this.close();

  constructor(options: HostWorkersOptions = {}) {
    this.dir = options.dir ?? defaultWorkersDir();
    this.pid = options.pid ?? process.pid;
    this.isAlive = options.isAlive ?? processRuns;
    this.startTime = options.startTime ?? processStartTime;
  }

  private get file(): string {
    return path.join(this.dir, `${this.pid}.pid`);
  }

  /** Registers this worker. A directory that cannot be written is no error: the count is then 1. */
  start(): void {
    try {
      mkdirSync(this.dir, { recursive: true });
      // The start time too: a pid file left by a worker that died, whose pid another process got since, is stale.
      const started = this.startTime(this.pid);
      writeFileSync(this.file, `${this.pid}${started ? ` ${started}` : ''}\n`);
      this.registered = true;
      process.once('exit', this.removeOnExit);
    } catch {
      this.registered = false;
    }
  }

  /** Workers running on this host now, this one included (at least 1). */
  count(): number {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return 1;
    }
    let running = 0;
    let self = false;
    for (const name of names) {
      const match = /^(\d+)\.pid$/.exec(name);
      if (!match) continue;
      const pid = Number(match[1]);
      if (pid === this.pid) {
        self = true;
        running++;
      } else if (this.isAlive(pid) && this.sameProcess(pid, path.join(this.dir, name))) {
        running++;
      } else {
        // A worker that died without cleaning up: its entry goes (another worker may have removed it first).
        try {
          unlinkSync(path.join(this.dir, name));
        } catch {
          // already gone
        }
      }
    }
    return self ? running : running + 1;
  }

  /** Whether the process with `pid` now is the one that wrote `file` (same start time, where both are known). */
  private sameProcess(pid: number, file: string): boolean {
    let recorded: string | undefined;
    try {
      recorded = readFileSync(file, 'utf8').trim().split(/\s+/)[1];
    } catch {
      return false;
    }
    const now = recorded === undefined ? undefined : this.startTime(pid);
    return recorded === undefined || now === undefined || now === recorded;
  }

  /** Removes this worker's entry. */
  close(): void {
    process.removeListener('exit', this.removeOnExit);
    if (!this.registered) return;
    this.registered = false;
    try {
      unlinkSync(this.file);
    } catch {
      // already gone
    }
  }
}

/** ONNX Runtime threads of one inference process: the cores shared out between every slot of every worker here. */
export function threadsPerProcess(cores: number, concurrency: number, workers: number): number {
  return Math.max(1, Math.floor(cores / (concurrency * Math.max(1, workers))));
}
