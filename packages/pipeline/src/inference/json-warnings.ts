/**
 * Node's warnings (deprecations, experimental features) of an inference process or its engine thread as JSON
 * lines on stderr, the worker's log format, instead of Node's free text that breaks a JSON log. The worker
 * reads that stderr and logs each JSON line with its fields (native-output.ts).
 */
export function warningsAsJson(name: string): void {
  process.removeAllListeners('warning');
  process.on('warning', (warning) => {
    const line = { level: 40, time: new Date().toISOString(), pid: process.pid, name, warning: warning.name, code: (warning as NodeJS.ErrnoException).code, detail: warning.message, msg: 'node warning' };
    process.stderr.write(`${JSON.stringify(line)}\n`);
  });
}
