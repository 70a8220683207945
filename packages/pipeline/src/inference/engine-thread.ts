// The engine's own thread. ONNX Runtime's `run` and TF.js' CPU kernels compute synchronously on the thread
// that calls them; here they block only this thread, so the thread that talks to the worker (pipe I/O, the
// next batch arriving, the last result leaving) is never stalled by a batch that computes.
import { parentPort } from 'node:worker_threads';
import { S3Client } from '@aws-sdk/client-s3';
import { describeError, isLayertapError } from '@layertap/contracts';
import { createTrustedFetcher, type ImageFetcher } from '@layertap/imaging';
import { childAllowHosts, childFaultDrill, childS3Settings } from './child-config';
import { ModelRunner } from './model-runner';
import type { EngineThreadReply, EngineThreadRequest } from './engine-client';
import { warningsAsJson } from './json-warnings';

let fetcher: ImageFetcher | undefined;
/** Remote weights (http(s), s3) are fetched with the worker's S3 settings. */
function weightsFetcher(): ImageFetcher {
  return (fetcher ??= createTrustedFetcher({ s3: new S3Client({ ...childS3Settings(), maxAttempts: 5 }), allowHosts: childAllowHosts() }));
}

/** Buffers given back (`recycle`) for the next batches' converted arrays, by size; at most 128 MiB held. */
const spare = new Map<number, ArrayBuffer[]>();
let spareBytes = 0;
const SPARE_BYTES = 128 * 1024 * 1024;
function allocate(bytes: number): ArrayBuffer {
  const reused = spare.get(bytes)?.pop();
  if (reused) {
    spareBytes -= bytes;
    return reused;
  }
  return new ArrayBuffer(bytes);
}
function keep(buffers: ArrayBuffer[]): void {
  for (const buffer of buffers) {
    if (buffer.byteLength === 0 || spareBytes + buffer.byteLength > SPARE_BYTES) continue;
    const list = spare.get(buffer.byteLength) ?? [];
    spare.set(buffer.byteLength, list);
    list.push(buffer);
    spareBytes += buffer.byteLength;
  }
}

warningsAsJson('layertap-inference');
const drill = childFaultDrill();
const runner = new ModelRunner({ fetchBytes: (uri) => weightsFetcher().fetch(uri), allocate, ...(drill ? { faultDrill: drill } : {}) });
const port = parentPort;
if (!port) throw new Error('engine-thread runs as a worker thread');

port.on('message', (request: EngineThreadRequest) => {
  if (request.type === 'recycle') return keep(request.buffers);
  const run: Promise<unknown> =
    request.type === 'load'
      ? runner.load(request.spec)
      : request.type === 'infer'
        ? runner.infer(request.batch, request.batchSize, request.receivedAt)
        : request.type === 'probe'
          ? runner.probe(request.probe)
          : Promise.resolve(runner.dispose());
  run.then(
    (value) => {
      // The batch's pixels (normalised into the runner's own input by now) go back for the next batch.
      const input = request.type === 'infer' ? wholeBuffer(request.batch) : undefined;
      const reply: EngineThreadReply = { id: request.id, ok: true, value, ...(input ? { recycled: [input] } : {}) };
      port.postMessage(reply, [...transferables(value), ...(input ? [input] : [])]);
    },
    (err: unknown) => {
      const reply: EngineThreadReply = {
        id: request.id,
        ok: false,
        error: { name: err instanceof Error ? err.name : 'Error', ...(isLayertapError(err) ? { code: err.code } : {}), message: describeError(err) },
      };
      port.postMessage(reply);
    },
  );
});

/** The memory of `array` when the array is all of it (so it can move whole). */
function wholeBuffer(array: Uint8Array | Float32Array): ArrayBuffer | undefined {
  const buffer = array.buffer;
  return buffer instanceof ArrayBuffer && array.byteOffset === 0 && array.byteLength === buffer.byteLength && buffer.byteLength > 0 ? buffer : undefined;
}

/** The output buffers of a result, each once (two specs of one layer share an array): moved, not copied. */
function transferables(value: unknown): ArrayBuffer[] {
  const outputs = (value as { outputs?: { data: Float32Array | Uint16Array }[] } | undefined)?.outputs;
  if (!outputs) return [];
  const buffers = new Set<ArrayBuffer>();
  for (const output of outputs) if (output.data.buffer instanceof ArrayBuffer) buffers.add(output.data.buffer);
  return [...buffers];
}
