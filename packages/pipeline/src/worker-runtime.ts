// A worker process's runtime: BullMQ workers for chunk and dataset jobs wired to the ChunkRunner (one
// inference process per concurrency slot) and the dataset finalizer, with shutdown and idle handling.
import { availableParallelism, hostname } from 'node:os';
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import { S3Client } from '@aws-sdk/client-s3';
import {
  ChunkJob,
  DatasetJob,
  ErrorCode,
  LayertapError,
  QueueName,
  ValidationError,
  formatIssues,
  isLayertapError,
  type BackendName,
  type ChunkResult,
  type DatasetResult,
  type EngineName,
} from '@layertap/contracts';
import type { CommonConfig, Logger } from '@layertap/config';
import { ImageFetcher } from '@layertap/imaging';
import { LayertapQueues, connectRedis, isOrphaned, safeRedisUrl, type Redis } from '@layertap/queue';
import { openOutput, type OutputWriter } from '@layertap/storage';
import { ChunkRunner } from './chunk-runner';
import { finalizeDataset } from '@layertap/datasets';
import { HostWorkers, threadsPerProcess } from './host-workers';
import { InferenceHost } from './inference/host';
import type { ChunkMetrics } from './metrics';

/** What a worker process is told to do (the worker app reads it from flags and the environment). */
export interface WorkerSettings extends CommonConfig {
  /** Chunk jobs processed at once; each gets its own inference process. */
  concurrency: number;
  engine: EngineName;
  backend: BackendName;
  /** ONNX Runtime threads per inference process (default: cores / (concurrency x workers on this host)). */
  threads?: number;
  /** The per-host directory where workers register, to be counted for the threads default (LAYERTAP_WORKERS_DIR). */
  workersDir?: string;
  /** TF.js WebGPU: convolutions through the separate im2col shader. */
  im2col?: boolean;
  /** Exit once no queue has had work for `idleGraceMs` (batch runs, tests), whether or not any was done. */
  exitWhenIdle: boolean;
  /**
   * With `exitWhenIdle`: how long every queue must stay without work before the worker exits, so that a
   * worker started before the dataset is submitted waits for it.
   */
  idleGraceMs: number;
  /** BullMQ lock duration; the lock is renewed at half of it from this process's event loop. */
  lockDurationMs: number;
  /** How long SIGTERM waits for running chunks before aborting them (they are then retried elsewhere). */
  shutdownTimeoutMs: number;
  decodeConcurrency: number;
  uploadConcurrency: number;
  maxPixels: number;
  maxImageBytes: number;
  fetchTimeoutMs: number;
  /** Memory budget of one inference process's batch, in bytes (`--batch-size auto`). */
  memoryBudgetBytes: number;
  /** Directories `file://` and plain-path images may come from; empty = anywhere. */
  fileRoots: string[];
  /** Hosts allowed over HTTP(S) even when they resolve to private or loopback addresses. */
  allowHosts: string[];
}

/** Engine faults in a row after which a slot drops its engine and loads the next one in the chain. */
export const MAX_ENGINE_FAULTS = 2;

/** What a worker tells its observer (the worker app's Prometheus metrics). */
export interface WorkerObserver {
  /** An engine failed a batch (the chunk was released); `dropped` when the slot moves to the next engine. */
  engineFault?(engine: string, dropped: boolean): void;
  /** The metrics of one concurrency slot (one inference process). */
  forSlot(slot: number): ChunkMetrics;
  chunkStarted(): void;
  chunkEnded(outcome: 'done' | 'failed' | 'released', seconds: number): void;
  /** Wraps an output writer (to count bytes written). */
  meter?(writer: OutputWriter): OutputWriter;
  /** Starts watching queue depths. */
  watchQueues?(queues: LayertapQueues): void;
}

export interface LayertapWorkerOptions {
  config: WorkerSettings;
  log: Logger;
  version: string;
  /** Injected for tests; default: a client made from the config's S3 settings. */
  s3?: S3Client;
  /** Where chunks, samples, stages and memory are reported. Default: nowhere. */
  observer?: WorkerObserver;
}

/** Errors that no retry can fix: the job fails at once. */
function isPermanent(err: unknown): boolean {
  return err instanceof ValidationError || (err instanceof LayertapError && (err.code === ErrorCode.TensorLeak || err.code === ErrorCode.BadPayload));
}

/**
 * One worker process: a BullMQ worker for chunk jobs (each slot with its own inference child process) and
 * one for dataset parent jobs (manifest merge). Lock renewal, events and shutdown happen on this event
 * loop, which inference never blocks.
 */
export class LayertapWorker {
  private connection: Redis | undefined;
  private queues: LayertapQueues | undefined;
  private chunkWorker: Worker | undefined;
  private datasetWorker: Worker | undefined;
  private readonly hosts: InferenceHost[] = [];
  private readonly runners: ChunkRunner[] = [];
  /** Per slot: faults in a row of its current engine, and the engines it dropped (with why). */
  private readonly slotEngines: { faults: number; engine?: string; dropped: Map<string, string> }[] = [];
  private fatal: Error | undefined;
  private readonly fatalWaiters: Array<(err: Error) => void> = [];
  /** Free concurrency slots: an inference process and the runner driving it. */
  private readonly freeSlots: number[] = [];
  private readonly writers = new Map<string, OutputWriter>();
  private readonly s3: S3Client;
  private readonly fetcher: ImageFetcher;
  private idleTimer: NodeJS.Timeout | undefined;
  /** When this worker last started or ended a job: the idle grace counts from it, even when a whole dataset ran between two idle checks. */
  private lastWorkAt = 0;
  private readonly orphansLogged = new Set<string>();
  private closing: Promise<void> | undefined;
  private readonly idleWaiters: Array<() => void> = [];
  private readonly identity = { hostname: hostname(), pid: process.pid };
  /** The chunk jobs running now with their lock tokens, so that `abort` can hand them back. */
  private readonly running = new Map<string, { job: Job; token: string; log: LayertapWorkerOptions['log'] }>();
  /** This worker's entry among the workers on this host (they share the cores). */
  private readonly hostWorkers: HostWorkers;

  constructor(private readonly options: LayertapWorkerOptions) {
    const { config } = options;
    this.s3 = options.s3 ?? new S3Client({ ...config.s3, maxAttempts: 5 });
    this.fetcher = new ImageFetcher({
      maxBytes: config.maxImageBytes,
      timeoutMs: config.fetchTimeoutMs,
      s3: this.s3,
      ...(config.fileRoots.length ? { allowedRoots: config.fileRoots } : {}),
      allowHosts: config.allowHosts,
    });
    this.hostWorkers = new HostWorkers(config.workersDir ? { dir: config.workersDir } : {});
    for (let slot = 0; slot < config.concurrency; slot++) {
      this.hosts.push(new InferenceHost({ log: options.log }));
      this.slotEngines.push({ faults: 0, dropped: new Map() });
    }
  }

  private runnerFor(slot: number, host: InferenceHost, queues: LayertapQueues): ChunkRunner {
    const { config, log, observer } = this.options;
    return new ChunkRunner({
      fetcher: this.fetcher,
      inference: host,
      store: queues.store,
      output: this.output,
      log,
      engine: config.engine,
      backend: config.backend,
      // ONNX Runtime threads: the cores shared out between the inference processes of every worker on this
      // host, counted again at each chunk as workers come and go.
      threads: config.threads ?? (() => threadsPerProcess(availableParallelism(), config.concurrency, this.hostWorkers.count())),
      ...(config.im2col ? { im2col: true } : {}),
      excludedEngines: () => (this.slotEngines[slot] as { dropped: Map<string, string> }).dropped,
      decodeConcurrency: config.decodeConcurrency,
      uploadConcurrency: config.uploadConcurrency,
      maxPixels: config.maxPixels,
      memoryBudgetBytes: config.memoryBudgetBytes,
      ...(observer ? { metrics: observer.forSlot(slot) } : {}),
      worker: this.identity,
      version: this.options.version,
    });
  }



  private output = (uri: string): OutputWriter => {
    let writer = this.writers.get(uri);
    if (!writer) {
      const opened = openOutput(uri, { s3: this.s3 });
      writer = this.options.observer?.meter?.(opened) ?? opened;
      this.writers.set(uri, writer);
    }
    return writer;
  };

  async start(): Promise<void> {
    const { config, log } = this.options;
    // The engine this worker will run, found before it takes a job: a backend that cannot run here stops the
    // worker now (NoEngineError: exit 2 with the reasons), not at its first chunk. Each chunk's model is
    // then proven on the dataset's layers before it computes (the proof run).
    const [firstHost] = this.hosts;
    if (!firstHost) throw new Error('no inference process (concurrency 0)');
    this.hostWorkers.start();
    const engine = await firstHost.probe({ engine: config.engine, backend: config.backend, ...(config.threads ? { threads: config.threads } : {}) });
    this.connection = await connectRedis(config.redis.url, { mode: 'blocking' });
    const queues = new LayertapQueues({ connection: this.connection, prefix: config.redis.prefix });
    this.queues = queues;
    this.hosts.forEach((host, slot) => {
      this.runners.push(this.runnerFor(slot, host, queues));
      this.freeSlots.push(slot);
    });
    // Stalled jobs are looked for as often as a lock lasts: a dead worker's chunk goes back quickly.
    const common = {
      connection: this.connection,
      prefix: config.redis.prefix,
      lockDuration: config.lockDurationMs,
      stalledInterval: config.lockDurationMs,
      autorun: false,
    };

    this.chunkWorker = new Worker(QueueName.Chunks, (job, token, signal) => this.tracked(() => this.runChunk(job, token, signal)), {
      ...common,
      concurrency: config.concurrency,
      // A chunk whose worker died is retried; one that keeps killing workers fails after a few tries.
      maxStalledCount: 3,
    });
    this.datasetWorker = new Worker(QueueName.Datasets, (job) => this.tracked(() => this.runDataset(job)), { ...common, concurrency: 1 });

    for (const [name, worker] of [['chunks', this.chunkWorker], ['datasets', this.datasetWorker]] as const) {
      worker.on('failed', (job, err) => log.error({ queue: name, jobId: job?.id, attempt: job?.attemptsMade, err: err.message }, 'job failed'));
      worker.on('stalled', (jobId) => log.warn({ queue: name, jobId }, 'job stalled'));
      worker.on('error', (err) => log.error({ queue: name, err: err.message }, 'worker error'));
    }
    void this.chunkWorker.run();
    void this.datasetWorker.run();
    this.options.observer?.watchQueues?.(queues);
    log.info(
      {
        redis: safeRedisUrl(config.redis.url),
        prefix: config.redis.prefix,
        concurrency: config.concurrency,
        // The threads default at start (recounted at each chunk): the cores over concurrency x workers here.
        threads: config.threads ?? threadsPerProcess(availableParallelism(), config.concurrency, this.hostWorkers.count()),
        engine: `${engine.engine}/${engine.backend}`,
        device: engine.device.description,
        reason: engine.reason,
        ...(engine.warnings.length ? { warnings: engine.warnings } : {}),
        requested: `${config.engine}/${config.backend}`,
        hostname: this.identity.hostname,
      },
      'worker started',
    );
    for (const warning of engine.warnings) log.warn({ engine: `${engine.engine}/${engine.backend}` }, warning);
    if (config.exitWhenIdle) this.watchIdle();
  }

  private async runChunk(job: Job, token: string | undefined, signal?: AbortSignal): Promise<ChunkResult> {
    const parsed = ChunkJob.safeParse(job.data);
    if (!parsed.success) {
      throw new UnrecoverableError(`${ErrorCode.BadPayload}: malformed chunk job ${job.id}: ${formatIssues(parsed.error)}`);
    }
    const slot = this.freeSlots.pop();
    const runner = slot === undefined ? undefined : this.runners[slot];
    if (slot === undefined || !runner || !this.queues) throw new Error('no free inference process (concurrency accounting is off)');
    const { log, observer } = this.options;
    const { dataset, chunk, samples } = parsed.data;
    const jobLog = log.child({ datasetId: dataset.datasetId, run: dataset.run, chunk, jobId: job.id });
    jobLog.info({ samples: samples.length, attempt: job.attemptsMade + 1, slot }, 'chunk started');
    if (token && job.id) this.running.set(job.id, { job, token, log: jobLog });
    const started = performance.now();
    let outcome: 'done' | 'failed' | 'released' = 'failed';
    observer?.chunkStarted();
    try {
      const result = await runner.run(parsed.data, {
        // A chunk that ran before (failed, stalled, or a resumed run) may have stored some samples already.
        checkExisting: job.attemptsMade > 0 || (job.attemptsStarted ?? 0) > 1 || dataset.run > 0,
        reportProgress: (p) => job.updateProgress(p),
        ...(signal ? { signal } : {}),
      });
      jobLog.info({ ok: result.ok, failed: result.failed, ms: result.durationMs, backend: result.backend }, 'chunk done');
      outcome = 'done';
      (this.slotEngines[slot] as { faults: number }).faults = 0;
      return result;
    } catch (err) {
      if (signal?.aborted && token) {
        // Shutting down: hand the chunk back without spending one of its attempts. Objects already stored
        // are whole (atomic puts) and the next attempt skips them.
        jobLog.warn('chunk released: worker shutting down');
        outcome = 'released';
        await job.moveToDelayed(Date.now() + 1_000, token);
        throw new DelayedError();
      }
      if (isLayertapError(err) && err.code === ErrorCode.EngineFault && token) {
        // The engine broke, not the samples: release the chunk without spending an attempt (objects already
        // stored are whole and the next attempt skips them), and after faults in a row, drop the engine.
        outcome = 'released';
        this.engineFault(slot, runner.engine ?? 'unknown', err, jobLog);
        await job.moveToDelayed(Date.now() + 1_000, token);
        throw new DelayedError();
      }
      if (isLayertapError(err) && err.code === ErrorCode.BackendUnavailable && token) {
        // No engine the request allows can run here any more (all dropped or failing their proof runs):
        // hand the chunk back for other workers and stop this one.
        outcome = 'released';
        jobLog.error({ err: err.message }, 'no engine left: chunk released, worker stopping');
        await job.moveToDelayed(Date.now() + 1_000, token);
        this.stopFatally(err);
        throw new DelayedError();
      }
      if (isPermanent(err)) {
        jobLog.error({ err: (err as Error).message, code: (err as LayertapError).code }, 'chunk failed permanently');
        throw new UnrecoverableError(`${(err as LayertapError).code}: ${(err as Error).message}`);
      }
      throw err;
    } finally {
      if (job.id) this.running.delete(job.id);
      observer?.chunkEnded(outcome, (performance.now() - started) / 1000);
      this.freeSlots.push(slot);
    }
  }

  private async runDataset(job: Job): Promise<DatasetResult> {
    const parsed = DatasetJob.safeParse(job.data);
    if (!parsed.success) {
      throw new UnrecoverableError(`${ErrorCode.BadPayload}: malformed dataset job ${job.id}: ${formatIssues(parsed.error)}`);
    }
    if (!this.queues) throw new Error('worker not started');
    return finalizeDataset(job as Job<DatasetJob>, {
      queues: this.queues,
      output: this.output,
      log: this.options.log.child({ datasetId: parsed.data.dataset.datasetId, run: parsed.data.dataset.run }),
      version: this.options.version,
    });
  }

  /** Counts a fault of `engine` in `slot`; at MAX_ENGINE_FAULTS in a row the slot drops it. */
  private engineFault(slot: number, engine: string, err: Error, log: Logger): void {
    const state = this.slotEngines[slot] as { faults: number; engine?: string; dropped: Map<string, string> };
    state.faults = state.engine === engine ? state.faults + 1 : 1;
    state.engine = engine;
    const dropped = state.faults >= MAX_ENGINE_FAULTS;
    log.error({ engine, faults: state.faults, err: err.message }, 'engine fault: chunk released without spending an attempt');
    if (dropped) {
      state.dropped.set(engine, `faulted ${state.faults} times in a row: ${err.message.slice(0, 300)}`);
      state.faults = 0;
      log.warn({ engine, dropped: [...state.dropped.keys()] }, `engine ${engine} dropped after ${MAX_ENGINE_FAULTS} faults in a row: the next chunk loads the next engine the request allows`);
    }
    this.options.observer?.engineFault?.(engine, dropped);
  }

  /** Stops taking jobs and closes; `failed()` resolves with the reason (the worker app exits non-zero). */
  private stopFatally(err: Error): void {
    if (this.fatal) return;
    this.fatal = err;
    // Not awaited here: this runs inside a job's processor, and close() waits for running jobs.
    setImmediate(() => void this.close().then(() => this.fatalWaiters.splice(0).forEach((w) => w(err))));
  }

  /** Resolves, after the worker closed, when it stopped because it cannot go on (no engine left). */
  failed(): Promise<Error> {
    return new Promise((resolve) => this.fatalWaiters.push(resolve));
  }

  /** Resolves when the worker should exit because no queue had work for the grace period (with `exitWhenIdle`). */
  idle(): Promise<void> {
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Polls the queues; once none has had work (waiting, active, delayed, prioritized or a parent waiting for
   * its children) for the whole grace period, resolves `idle()`. Work showing up starts the period again.
   */
  /** Runs a job, noting when it started and ended for --exit-when-idle's grace. */
  private async tracked<T>(run: () => Promise<T>): Promise<T> {
    this.lastWorkAt = Date.now();
    try {
      return await run();
    } finally {
      this.lastWorkAt = Date.now();
    }
  }

  private watchIdle(): void {
    const { config, log } = this.options;
    const graceMs = config.idleGraceMs;
    const pollMs = Math.max(100, Math.min(500, graceMs / 2));
    let idleSince: number | undefined;
    log.info({ graceSeconds: graceMs / 1000 }, 'exits after this long with no work (--exit-when-idle)');
    const check = async () => {
      if (!this.queues || this.closing) return;
      try {
        const states = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children'] as const;
        const [chunks, datasets] = await Promise.all([
          this.queues.chunks.getJobCounts(...states),
          this.queues.datasets.getJobCounts(...states),
        ]);
        let busy = Object.values(chunks).reduce((a, b) => a + b, 0) + Object.values(datasets).reduce((a, b) => a + b, 0);
        // With nothing else to do, a parent waiting only for chunk jobs that no longer exist (Bull Board's
        // "Empty") is no work: it would keep the worker forever.
        if (busy > 0 && busy === (datasets['waiting-children'] ?? 0)) busy -= await this.orphanedParents(log);
        const now = Date.now();
        idleSince = busy > 0 ? undefined : Math.max(idleSince ?? now, this.lastWorkAt);
        if (idleSince !== undefined && now - idleSince >= graceMs) {
          log.info({ idleSeconds: (now - idleSince) / 1000 }, 'no work in the queues: exiting (--exit-when-idle)');
          for (const waiter of this.idleWaiters.splice(0)) waiter();
          return;
        }
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'idle check failed');
      }
      this.idleTimer = setTimeout(() => void check(), pollMs);
    };
    this.idleTimer = setTimeout(() => void check(), pollMs);
  }

  /** How many dataset parents wait only for vanished chunks; each is logged once, with the way on. */
  private async orphanedParents(log: Logger): Promise<number> {
    if (!this.queues) return 0;
    let orphaned = 0;
    for (const parent of await this.queues.datasets.getJobs(['waiting-children'], 0, 999)) {
      if (!(await isOrphaned(parent, this.queues.options.connection))) continue;
      orphaned++;
      if (this.orphansLogged.has(parent.id ?? '')) continue;
      this.orphansLogged.add(parent.id ?? '');
      log.warn({ jobId: parent.id }, 'this dataset run waits only for chunk jobs that were removed from Redis: it is no work (`layertap status` names them; `layertap retry` runs their samples)');
    }
    return orphaned;
  }

  /**
   * A second signal: hands the running chunks back now (delayed by a second, without spending an attempt),
   * so another worker takes each at once instead of after its lock expires; resolves once they are handed
   * back, or after `capMs`. The caller exits next.
   */
  async abort(capMs = 3_000): Promise<void> {
    for (const w of [this.chunkWorker, this.datasetWorker]) w?.cancelAllJobs('worker interrupted');
    // Hand the running chunks back now, without waiting for their batch to end: the process exits next.
    const handBack = [...this.running.values()].map(async ({ job, token, log }) => {
      this.running.delete(job.id as string);
      await job.moveToDelayed(Date.now() + 1_000, token).then(
        () => log.warn('chunk released: worker shutting down'),
        (err: unknown) => log.warn({ err: (err as Error).message }, 'chunk not released: its lock will expire'),
      );
    });
    await Promise.race([Promise.all(handBack), new Promise((resolve) => setTimeout(resolve, capMs).unref())]);
  }

  /**
   * Stops taking jobs and waits for running ones; past `shutdownTimeoutMs` it aborts them, so they fail
   * this attempt and are retried by another worker. Inference processes are stopped last.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const { config, log } = this.options;
      if (this.idleTimer) clearTimeout(this.idleTimer);
      const workers = [this.chunkWorker, this.datasetWorker].filter((w): w is Worker => w !== undefined);
      const graceful = Promise.all(workers.map((w) => w.close()));
      const timer = setTimeout(() => {
        log.warn({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown timeout: aborting running jobs');
        for (const w of workers) w.cancelAllJobs('worker shutting down');
      }, config.shutdownTimeoutMs);
      await graceful;
      clearTimeout(timer);
      await Promise.all(this.hosts.map((h) => h.close()));
      this.hostWorkers.close();
      await this.queues?.close();
      await this.connection?.quit().catch(() => undefined);
      this.s3.destroy();
      log.info('worker stopped');
    })();
    return this.closing;
  }
}
