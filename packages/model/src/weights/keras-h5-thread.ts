// Keras HDF5 weights read in a worker thread, under a deadline and a heap cap. HDF5's C code (compiled to wasm
// by h5wasm) trusts a file's structure: a hostile file whose B-tree or object header points back at itself
// can keep it busy forever, and a synchronous wasm loop cannot be interrupted from its own thread.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { readKerasH5, type KerasH5Contents } from './keras-h5';

/** Default of `LAYERTAP_H5_PARSE_SECONDS`. */
export const DEFAULT_H5_PARSE_SECONDS = 20;
/** Default JS heap of the parsing thread, in MB (tensor data lives outside it, in ArrayBuffers). */
export const DEFAULT_H5_HEAP_MB = 256;

export interface KerasH5ThreadOptions {
  /** Seconds the parse may take before the thread is stopped and the file refused. Default 20. */
  deadlineSeconds?: number;
  /** The thread's V8 old-generation heap limit in MB. Default 256. */
  maxHeapMb?: number;
}

interface Request {
  kind: 'layertap-keras-h5';
  file: string;
  source: string;
  wanted?: ReadonlySet<string>;
}

type Reply = { ok: KerasH5Contents } | { error: { message: string; code?: ErrorCode; validation: boolean } };

/**
 * `readKerasH5` in a worker thread: refuses the file (a ValidationError, exit 2) when the parse outlasts
 * `deadlineSeconds` or its heap cap. Run from TypeScript sources (jest), where no compiled script exists to
 * start a thread with, it reads in this thread without a deadline.
 */
export function readKerasH5InThread(file: string, source: string, wanted?: ReadonlySet<string>, options: KerasH5ThreadOptions = {}): Promise<KerasH5Contents> {
  if (!__filename.endsWith('.js')) return readKerasH5(file, source, wanted);
  const seconds = options.deadlineSeconds ?? DEFAULT_H5_PARSE_SECONDS;
  const heapMb = options.maxHeapMb ?? DEFAULT_H5_HEAP_MB;
  const request: Request = { kind: 'layertap-keras-h5', file, source, ...(wanted ? { wanted } : {}) };
  // The thread's own output is dropped: emscripten's and HDF5's diagnostics ("Cannot enlarge memory", the
  // error stack) would bury the one line the refusal is; what went wrong comes back in the reply.
  const worker = new Worker(__filename, { workerData: request, resourceLimits: { maxOldGenerationSizeMb: heapMb }, stdout: true, stderr: true });
  worker.stdout.resume();
  worker.stderr.resume();
  return new Promise<KerasH5Contents>((resolve, reject) => {
    const settle = (action: () => void) => {
      clearTimeout(timer);
      void worker.terminate();
      action();
    };
    const timer = setTimeout(
      () =>
        settle(() =>
          reject(
            new ValidationError(
              ErrorCode.InvalidWeights,
              `${source}: refused: reading it as HDF5 did not finish within ${seconds} s (LAYERTAP_H5_PARSE_SECONDS); its structure may loop (a B-tree or object header pointing back at itself)`,
            ),
          ),
        ),
      seconds * 1000,
    );
    worker.once('message', (reply: Reply) =>
      settle(() => {
        if ('ok' in reply) resolve(reply.ok);
        else if (reply.error.validation) reject(new ValidationError(reply.error.code ?? ErrorCode.InvalidWeights, reply.error.message));
        else reject(new Error(reply.error.message));
      }),
    );
    worker.once('error', (err: NodeJS.ErrnoException) =>
      settle(() =>
        reject(
          err.code === 'ERR_WORKER_OUT_OF_MEMORY'
            ? new ValidationError(ErrorCode.InvalidWeights, `${source}: refused: reading it as HDF5 needed more than ${heapMb} MB of heap`)
            : err,
        ),
      ),
    );
    worker.once('exit', (code) => settle(() => reject(new Error(`${source}: the HDF5 reading thread stopped (exit code ${code}) without an answer`))));
  });
}

async function serve(request: Request): Promise<void> {
  let reply: Reply;
  let transfer: ArrayBuffer[] = [];
  try {
    const contents = await readKerasH5(request.file, request.source, request.wanted);
    reply = { ok: contents };
    transfer = [...contents.tensors.values()].map((t) => t.data.buffer as ArrayBuffer);
  } catch (err) {
    const validation = err instanceof ValidationError;
    reply = { error: { message: err instanceof Error ? err.message : String(err), validation, ...(validation ? { code: err.code } : {}) } };
  }
  parentPort?.postMessage(reply, transfer);
}

if (!isMainThread && (workerData as Request | undefined)?.kind === 'layertap-keras-h5') void serve(workerData as Request);
