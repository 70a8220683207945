import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { BackendName, EngineName, ErrorCode, ExitCode, isLayertapError } from '@layertap/contracts';
import { applyProcessDefaults, createLogger, isHelpOrVersion, nodeSupportNotice, usageErrorLine } from '@layertap/config';
import { readWorkerConfig } from './config';
import { readMetricsConfig } from './metrics-config';
import { LayertapWorker } from '@layertap/pipeline';
import { WorkerMetrics } from './metrics';
import { MetricsServer, startMetricsServer } from './metrics-server';
import { version } from './version';
import { writeFatalError, writeFatalLine } from './fatal-line';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function seconds(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number of seconds, 0 or more');
  return n;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port from 0 to 65535 (0 turns metrics off)');
  return n;
}

const program = new Command('layertap-worker')
  .description('Process layertap chunk jobs: fetch images, run each dataset\'s model (--model at submit) with forward hooks, write activations.')
  .version(version)
  .option('--concurrency <n>', 'chunk jobs at once, each with its own inference process', positiveInt)
  .addOption(new Option('--engine <name>', 'what runs the model: auto picks the fastest that works here; null computes nothing (measures the pipeline)').choices(EngineName.options))
  .addOption(new Option('--backend <name>', "the engine's backend: an ONNX Runtime provider or a TF.js backend").choices(BackendName.options))
  .option('--threads <n>', 'ONNX Runtime threads per inference process (default: cores / (concurrency x workers running on this host))', positiveInt)
  .option(
    '--exit-when-idle [seconds]',
    'exit once no queue has had work for this many seconds, whether or not this worker did any (batch runs, Kubernetes Jobs, tests; default LAYERTAP_EXIT_WHEN_IDLE_SECONDS or 60)',
    seconds,
  )
  .option('--lock-duration <ms>', 'BullMQ job lock duration', positiveInt)
  .option('--metrics-port <port>', 'serve Prometheus metrics on this port (0: off; default LAYERTAP_METRICS_PORT or 9464, or a free port when 9464 is taken)', port)
  .option('--metrics-host <address>', 'listen address of the metrics endpoint (default LAYERTAP_METRICS_HOST or 127.0.0.1; 0.0.0.0 in a pod that Prometheus scrapes)')
  .exitOverride()
  .configureOutput({ outputError: () => undefined });

async function main(): Promise<void> {
  try {
    program.parse();
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    if (isHelpOrVersion(err)) process.exit(err.exitCode);
    writeFatalLine(usageErrorLine(err), { exitCode: ExitCode.BadRequest });
    process.exit(ExitCode.BadRequest);
  }
  applyProcessDefaults();
  const opts = program.opts<{ concurrency?: number; engine?: EngineName; threads?: number; backend?: BackendName; exitWhenIdle?: boolean | number; lockDuration?: number; metricsPort?: number; metricsHost?: string }>();
  const config = readWorkerConfig(opts);
  const log = createLogger({ name: 'layertap-worker', level: config.logLevel });
  // Node's own warnings (deprecations, experimental features) go to the JSON log, not as free text on stderr.
  process.removeAllListeners('warning');
  process.on('warning', (warning) => log.warn({ warning: warning.name, code: (warning as NodeJS.ErrnoException).code, detail: warning.message }, 'node warning'));
  const notice = nodeSupportNotice();
  if (notice) log.warn(notice);
  const metricsConfig = readMetricsConfig({
    ...(opts.metricsPort !== undefined ? { metricsPort: opts.metricsPort } : {}),
    ...(opts.metricsHost !== undefined ? { metricsHost: opts.metricsHost } : {}),
  });
  const metrics = metricsConfig.port > 0 ? new WorkerMetrics({ concurrency: config.concurrency }) : undefined;
  const worker = new LayertapWorker({ config, log, version, ...(metrics ? { observer: metrics } : {}) });
  let metricsServer: MetricsServer | undefined;

  let signals = 0;
  const shutdown = (signal: string) => {
    signals++;
    if (signals > 1) {
      if (signals > 2) process.exit(ExitCode.Interrupted);
      log.warn({ signal }, 'second signal: handing running chunks back and exiting now');
      void worker.abort().finally(() => process.exit(ExitCode.Interrupted));
      return;
    }
    log.info({ signal }, 'shutting down: finishing or releasing running jobs');
    void worker
      .close()
      .then(() => metricsServer?.close())
      .then(() => process.exit(0));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  // No engine left (every one the request allows dropped after faults or failing its proof run): the worker
  // has released its chunks and closed; exit non-zero so a supervisor notices.
  void worker.failed().then(async (err) => {
    log.error({ err: err.message }, 'worker stopped: no engine left');
    await metricsServer?.close();
    process.exit(1);
  });
  await worker.start();
  if (metrics) metricsServer = await startMetricsServer(metrics.registry, metricsConfig, log);
  if (config.exitWhenIdle) {
    await worker.idle();
    await worker.close();
    await metricsServer?.close();
    process.exit(0);
  }
}

main().catch((err: unknown) => {
  // 2: a request that can never work (bad configuration, an impossible engine pair, a backend not installed),
  // as the CLI's 2 for a bad request; 1: anything else.
  const bad = isLayertapError(err) && (err.code === ErrorCode.InvalidRequest || err.code === ErrorCode.BackendUnavailable);
  const exitCode = bad ? ExitCode.BadRequest : ExitCode.Error;
  writeFatalError(err, exitCode);
  process.exit(exitCode);
});
