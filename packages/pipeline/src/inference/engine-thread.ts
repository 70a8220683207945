// The engine's own thread. ONNX Runtime's `run` and TF.js' CPU kernels compute synchronously on the thread
// that calls them; here they block only this thread, so the thread that talks to the worker (pipe I/O, the
// next batch arriving, the last result leaving) is never stalled by a batch that computes.
import { parentPort } from 'node:worker_threads';
import { S3Client } from '@aws-sdk/client-s3';
import { describeError, isLayertapError } from '@layertap/contracts';
import { createTrustedFetcher, type ImageFetcher } from '@layertap/imaging';
import { childFaultDrill, childS3Settings } from './child-config';
import { ModelRunner } from './model-runner';
import type { EngineThreadReply, EngineThreadRequest } from './engine-client';
import { warningsAsJson } from './json-warnings';

let fetcher: ImageFetcher | undefined;
/** Remote weights (http(s), s3) are fetched with the worker's S3 settings. */
function weightsFetcher(): ImageFetcher {
  return (fetcher ??= createTrustedFetcher({ s3: new S3Client({ ...childS3Settings(), maxAttempts: 5 }) }));
}

warningsAsJson('layertap-inference');
const drill = childFaultDrill();
const runner = new ModelRunner({ fetchBytes: (uri) => weightsFetcher().fetch(uri), ...(drill ? { faultDrill: drill } : {}) });
const port = parentPort;
if (!port) throw new Error('engine-thread runs as a worker thread');

port.on('message', (request: EngineThreadRequest) => {
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
      const reply: EngineThreadReply = { id: request.id, ok: true, value };
      port.postMessage(reply, transferables(value));
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

/** The output buffers of a result, each once (two specs of one layer share an array): moved, not copied. */
function transferables(value: unknown): ArrayBuffer[] {
  const outputs = (value as { outputs?: { data: Float32Array | Uint16Array }[] } | undefined)?.outputs;
  if (!outputs) return [];
  const buffers = new Set<ArrayBuffer>();
  for (const output of outputs) if (output.data.buffer instanceof ArrayBuffer) buffers.add(output.data.buffer);
  return [...buffers];
}
