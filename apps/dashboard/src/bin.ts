import { Command, InvalidArgumentError } from 'commander';
import { ValidationError, describeError } from '@layertap/contracts';
import { applyProcessDefaults, createLogger, nodeSupportNotice } from '@layertap/config';
import { readDashboardConfig } from './config';
import { DashboardServer } from './server';
import { version } from './version';

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number');
  return n;
}

const program = new Command('layertap-dashboard')
  .description("Bull Board for layertap's queues (datasets and their chunk flows), behind basic authentication.")
  .version(version)
  .option('--port <n>', 'listen port (default 3000, or PORT)', port)
  .option('--host <host>', 'listen address (default 127.0.0.1)')
  .option('--read-only', 'no retries, cleaning or removal from the UI')
  .option('--insecure-no-auth', 'serve without a password (local use only: dashboard access is Redis access)')
  .option('--metrics-port <n>', 'also serve /metrics and /healthz, without a password, on this port (0: off; default LAYERTAP_DASHBOARD_METRICS_PORT or 0)', port)
  .showHelpAfterError();

async function main(): Promise<void> {
  program.parse();
  applyProcessDefaults();
  const config = readDashboardConfig(program.opts());
  const log = createLogger({ name: 'layertap-dashboard', level: config.logLevel });
  const notice = nodeSupportNotice();
  if (notice) log.warn(notice);
  if (!config.auth) log.warn('serving WITHOUT authentication (--insecure-no-auth)');
  const server = new DashboardServer({ config, log });
  await server.start();
  const stop = () => void server.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`layertap-dashboard: ${describeError(err)}\n`);
  // 2: the configuration is wrong (as the CLI's 2 for a bad request); 1: anything else.
  process.exit(err instanceof ValidationError ? 2 : 1);
});
