import { totalmem } from 'node:os';
import { z } from 'zod';
import { BackendName } from '@layertap/contracts';
import { parseEnv, readCommonConfig, type CommonConfig, type Env } from '@layertap/config';
import { AllowList } from '@layertap/imaging';

/** Settings of one worker process. Flags beat environment variables, which beat the defaults. */
export interface WorkerConfig extends CommonConfig {
  /** Chunk jobs processed at once; each gets its own inference process (TF.js wasm uses one core each). */
  concurrency: number;
  backend: BackendName;
  /** What runs the model: tfjs, onnx (ONNX Runtime) or auto (the fastest that works here). */
  engine: 'auto' | 'tfjs' | 'onnx';
  /** ONNX Runtime threads per inference process (default: cores / concurrency). */
  threads?: number;
  /** Exit once every queue is empty and nothing is running (batch runs, tests). */
  exitWhenIdle: boolean;
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
  /** Hosts allowed over HTTP(S) even when they resolve to private or loopback addresses (checked entries). */
  allowHosts: string[];
}

const positiveInt = z.coerce.number().int().positive();

const WorkerEnv = z.object({
  /** Chunk jobs at once (default 1). */
  LAYERTAP_CONCURRENCY: positiveInt.default(1),
  /** auto | tensorflow | webgpu | wasm | cpu (default auto). */
  LAYERTAP_BACKEND: BackendName.default('auto'),
  /** auto | tfjs | onnx (default auto: a CUDA engine, then WebGPU, then ONNX Runtime CPU, then TF.js wasm). */
  LAYERTAP_ENGINE: z.enum(['auto', 'tfjs', 'onnx']).default('auto'),
  /** ONNX Runtime threads per inference process (default: cores / concurrency). */
  LAYERTAP_THREADS: positiveInt.optional(),
  LAYERTAP_LOCK_DURATION_MS: positiveInt.default(30_000),
  LAYERTAP_SHUTDOWN_TIMEOUT_MS: positiveInt.default(30_000),
  LAYERTAP_DECODE_CONCURRENCY: positiveInt.default(4),
  LAYERTAP_UPLOAD_CONCURRENCY: positiveInt.default(8),
  /** Largest decoded image in pixels (default 100 MP): bigger ones fail as `pixel_limit`. */
  LAYERTAP_MAX_PIXELS: positiveInt.default(100_000_000),
  /** Largest image download in bytes (default 50 MiB). */
  LAYERTAP_MAX_IMAGE_BYTES: positiveInt.default(50 * 1024 * 1024),
  LAYERTAP_FETCH_TIMEOUT_MS: positiveInt.default(30_000),
  /** Memory for a batch's activations per inference process, in MiB, for `--batch-size auto` (default: half the machine's memory shared out between the processes, at most 8 GiB each). */
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
  engine?: 'auto' | 'tfjs' | 'onnx';
  threads?: number;
  exitWhenIdle?: boolean;
  lockDuration?: number;
}

export function readWorkerConfig(flags: WorkerFlags, env: Env = process.env): WorkerConfig {
  const e = parseEnv(WorkerEnv, env);
  const list = (s: string, sep: string) => s.split(sep).map((x) => x.trim()).filter(Boolean);
  return {
    ...readCommonConfig(env),
    concurrency: flags.concurrency ?? e.LAYERTAP_CONCURRENCY,
    backend: flags.backend ?? e.LAYERTAP_BACKEND,
    engine: flags.engine ?? e.LAYERTAP_ENGINE,
    ...(flags.threads ?? e.LAYERTAP_THREADS ? { threads: (flags.threads ?? e.LAYERTAP_THREADS) as number } : {}),
    exitWhenIdle: flags.exitWhenIdle ?? false,
    lockDurationMs: flags.lockDuration ?? e.LAYERTAP_LOCK_DURATION_MS,
    shutdownTimeoutMs: e.LAYERTAP_SHUTDOWN_TIMEOUT_MS,
    decodeConcurrency: e.LAYERTAP_DECODE_CONCURRENCY,
    uploadConcurrency: e.LAYERTAP_UPLOAD_CONCURRENCY,
    maxPixels: e.LAYERTAP_MAX_PIXELS,
    maxImageBytes: e.LAYERTAP_MAX_IMAGE_BYTES,
    fetchTimeoutMs: e.LAYERTAP_FETCH_TIMEOUT_MS,
    memoryBudgetBytes: e.LAYERTAP_MEMORY_BUDGET_MB
      ? e.LAYERTAP_MEMORY_BUDGET_MB * 1024 ** 2
      : Math.min(8 * 1024 ** 3, Math.floor(totalmem() / 2 / (flags.concurrency ?? e.LAYERTAP_CONCURRENCY))),
    fileRoots: list(e.LAYERTAP_FILE_ROOTS, ':'),
    allowHosts: checkedAllowHosts(list(e.LAYERTAP_ALLOW_HOSTS, ',')),
  };
}

/** The entries as given, once every one parses (`AllowListError` names the first that does not). */
function checkedAllowHosts(entries: string[]): string[] {
  AllowList.parse(entries, 'LAYERTAP_ALLOW_HOSTS');
  return entries;
}
