import { totalmem } from 'node:os';
import { z } from 'zod';
import { BackendName, DEFAULT_MEMORY_BUDGET_CAP_BYTES, EngineName, engineTargets } from '@layertap/contracts';
import { parseEnv, readCommonConfig, type Env } from '@layertap/config';
import { AllowList } from '@layertap/imaging';
import type { WorkerSettings } from '@layertap/pipeline';

/** Settings of one worker process. Flags beat environment variables, which beat the defaults. */
export type WorkerConfig = WorkerSettings;

const positiveInt = z.coerce.number().int().positive();

const WorkerEnv = z.object({
  /** Chunk jobs at once (default 1). */
  LAYERTAP_CONCURRENCY: positiveInt.default(1),
  /** auto | cpu | webgpu | cuda | tensorflow | wasm (default auto): the engine's backend. */
  LAYERTAP_BACKEND: BackendName.default('auto'),
  /** auto | onnx | tfjs | null (default auto: CUDA, then a hardware WebGPU adapter, then ONNX Runtime CPU, then TF.js wasm). */
  LAYERTAP_ENGINE: EngineName.default('auto'),
  /** ONNX Runtime threads per inference process (default: cores / (concurrency x workers running on this host)). */
  LAYERTAP_THREADS: positiveInt.optional(),
  /**
   * The per-host directory where each worker writes its pid file, to count the workers sharing the cores
   * (default: <tmpdir>/layertap-workers).
   */
  LAYERTAP_WORKERS_DIR: z.string().min(1).optional(),
  /** 1: TF.js WebGPU computes convolutions with its separate im2col shader (slices sized to fit the adapter). */
  LAYERTAP_WEBGPU_IM2COL: z.enum(['0', '1', 'true', 'false']).optional(),
  LAYERTAP_LOCK_DURATION_MS: positiveInt.default(30_000),
  /**
   * Seconds with no work in any queue before `--exit-when-idle` exits, when the flag gives none (default 60:
   * long enough for a dataset submitted just after the worker started).
   */
  LAYERTAP_EXIT_WHEN_IDLE_SECONDS: z.coerce.number().nonnegative().default(60),
  LAYERTAP_SHUTDOWN_TIMEOUT_MS: positiveInt.default(30_000),
  LAYERTAP_DECODE_CONCURRENCY: positiveInt.default(4),
  LAYERTAP_UPLOAD_CONCURRENCY: positiveInt.default(8),
  /** Largest decoded image in pixels (default 100 MP): bigger ones fail as `pixel_limit`. */
  LAYERTAP_MAX_PIXELS: positiveInt.default(100_000_000),
  /** Largest image download in bytes (default 50 MiB). */
  LAYERTAP_MAX_IMAGE_BYTES: positiveInt.default(50 * 1024 * 1024),
  LAYERTAP_FETCH_TIMEOUT_MS: positiveInt.default(30_000),
  /**
   * Memory for one batch's activations per inference process (its and the worker's copies, weights excluded), in
   * MiB: a limit (a batch size that does not fit runs smaller) and what `--batch-size auto` fills (default: half
   * the machine's memory shared out between the processes, at most 8 GiB each).
   */
  LAYERTAP_MEMORY_BUDGET_MB: positiveInt.optional(),
  /** Colon-separated directories images may be read from (default: anywhere). */
  LAYERTAP_FILE_ROOTS: z.string().default(''),
  /**
   * Comma-separated entries allowed over HTTP even on private addresses: host, host:port, an IPv4 or IPv6
   * address, [v6]:port, or a CIDR range. An entry that cannot be parsed stops the worker at start.
   */
  LAYERTAP_ALLOW_HOSTS: z.string().default(''),
});

export interface WorkerFlags {
  concurrency?: number;
  backend?: BackendName;
  engine?: EngineName;
  threads?: number;
  /** `--exit-when-idle` (true) or `--exit-when-idle=<seconds>` (the grace period). */
  exitWhenIdle?: boolean | number;
  lockDuration?: number;
}

export function readWorkerConfig(flags: WorkerFlags, env: Env = process.env): WorkerConfig {
  const e = parseEnv(WorkerEnv, env);
  const list = (s: string, sep: string) => s.split(sep).map((x) => x.trim()).filter(Boolean);
  const engine = flags.engine ?? e.LAYERTAP_ENGINE;
  const backend = flags.backend ?? e.LAYERTAP_BACKEND;
  // An impossible pair is refused now (ValidationError: exit 2 with the valid ones), not at the first chunk.
  engineTargets(engine, backend);
  return {
    ...readCommonConfig(env),
    concurrency: flags.concurrency ?? e.LAYERTAP_CONCURRENCY,
    backend,
    engine,
    ...(flags.threads ?? e.LAYERTAP_THREADS ? { threads: (flags.threads ?? e.LAYERTAP_THREADS) as number } : {}),
    ...(e.LAYERTAP_WORKERS_DIR ? { workersDir: e.LAYERTAP_WORKERS_DIR } : {}),
    ...(e.LAYERTAP_WEBGPU_IM2COL === '1' || e.LAYERTAP_WEBGPU_IM2COL === 'true' ? { im2col: true } : {}),
    exitWhenIdle: flags.exitWhenIdle !== undefined && flags.exitWhenIdle !== false,
    idleGraceMs: (typeof flags.exitWhenIdle === 'number' ? flags.exitWhenIdle : e.LAYERTAP_EXIT_WHEN_IDLE_SECONDS) * 1000,
    lockDurationMs: flags.lockDuration ?? e.LAYERTAP_LOCK_DURATION_MS,
    shutdownTimeoutMs: e.LAYERTAP_SHUTDOWN_TIMEOUT_MS,
    decodeConcurrency: e.LAYERTAP_DECODE_CONCURRENCY,
    uploadConcurrency: e.LAYERTAP_UPLOAD_CONCURRENCY,
    maxPixels: e.LAYERTAP_MAX_PIXELS,
    maxImageBytes: e.LAYERTAP_MAX_IMAGE_BYTES,
    fetchTimeoutMs: e.LAYERTAP_FETCH_TIMEOUT_MS,
    memoryBudgetBytes: e.LAYERTAP_MEMORY_BUDGET_MB
      ? e.LAYERTAP_MEMORY_BUDGET_MB * 1024 ** 2
      : Math.min(DEFAULT_MEMORY_BUDGET_CAP_BYTES, Math.floor(totalmem() / 2 / (flags.concurrency ?? e.LAYERTAP_CONCURRENCY))),
    fileRoots: list(e.LAYERTAP_FILE_ROOTS, ':'),
    allowHosts: checkedAllowHosts(list(e.LAYERTAP_ALLOW_HOSTS, ',')),
  };
}

/** The entries as given, once every one parses (`AllowListError` names the first that does not). */
function checkedAllowHosts(entries: string[]): string[] {
  AllowList.parse(entries, 'LAYERTAP_ALLOW_HOSTS');
  return entries;
}
