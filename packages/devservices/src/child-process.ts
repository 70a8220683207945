import type { ChildProcess } from 'node:child_process';

// Children still running when this process exits normally are killed here; abrupt deaths (SIGKILL) are
// covered by each child watching a pipe from us (see RedisServer and S3Server).
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Kills `child` if this process exits while it still runs. */
export function killOnExit(child: ChildProcess): void {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of liveChildren) c.kill('SIGKILL');
  });
}

/** Resolves when `child` has exited, with how it ended (`code 0`, `signal SIGKILL`). */
export function exitOf(child: ChildProcess): Promise<string> {
  if (child.exitCode !== null) return Promise.resolve(`code ${child.exitCode}`);
  if (child.signalCode !== null) return Promise.resolve(`signal ${child.signalCode}`);
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(signal ? `signal ${signal}` : `code ${code}`)));
}

/** SIGTERM, then SIGKILL after `timeoutMs`; resolves once the child has exited. */
export async function terminate(child: ChildProcess, timeoutMs: number): Promise<void> {
  const exited = exitOf(child);
  child.kill('SIGTERM');
  // A stopped (SIGSTOP) process only acts on SIGTERM once continued; harmless otherwise.
  child.kill('SIGCONT');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
  }
}
