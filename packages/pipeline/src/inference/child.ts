/**
 * The inference process. TF.js runs synchronously for the length of a batch (seconds on CPU backends), so
 * it runs here, in a child of the worker, where it cannot block the BullMQ lock renewal that happens on
 * the worker's own event loop. The model stays loaded between jobs while they ask for the same one.
 */
import { Extractor, loadWeights } from '@layertap/model';
import { S3Client } from '@aws-sdk/client-s3';
import { describeError, isLayertapError } from '@layertap/contracts';
import { createTrustedFetcher, type ImageFetcher } from '@layertap/imaging';
import { childS3Settings } from './child-config';
import { modelKey, wallClockMs, type ChildResponse, type ChildUsage, type HostRequest, type InferResult, type LayerBuffer, type ModelInfo, type ModelSpec } from './protocol';

let fetcher: ImageFetcher | undefined;
/** Remote weights (http(s), s3) are fetched with the worker's S3 settings and cached on disk by content hash. */
function weightsFetcher(): ImageFetcher {
  return (fetcher ??= createTrustedFetcher({ s3: new S3Client({ ...childS3Settings(), maxAttempts: 5 }) }));
}

let current: { key: string; extractor: Extractor; info: ModelInfo } | undefined;
let collected: LayerBuffer[] = [];

async function load(spec: ModelSpec): Promise<ModelInfo> {
  const key = modelKey(spec);
  if (current?.key === key) return { ...current.info, fresh: false };
  current?.extractor.dispose();
  current = undefined;
  const started = Date.now();
  const weights = spec.weights
    ? await loadWeights(spec.weights, { layers: spec.layers.map((l) => l.spec), fetchBytes: (uri) => weightsFetcher().fetch(uri) })
    : undefined;
  const extractor = await Extractor.create({
    engine: spec.engine,
    backend: spec.backend,
    ...(spec.exclude?.length ? { exclude: new Map(spec.exclude) } : {}),
    ...(spec.im2col ? { im2col: true } : {}),
    // The proof run: the chosen engine must agree with ONNX Runtime on the CPU on these layers first.
    verify: spec.layers.map((l) => l.canonical),
    ...(spec.threads ? { threads: spec.threads } : {}),
    imageSize: spec.imageSize,
    seed: spec.seed,
    ...(weights ? { weights: weights.tensors, weightsDescription: weights.description } : {}),
  });
  for (const layer of spec.layers) {
    extractor.registerForwardHook(layer.spec, (out) => {
      collected.push({ spec: layer.spec, canonical: out.canonical, data: out.data, shape: out.shape, layout: out.layout });
    });
  }
  await extractor.warmup();
  const info: ModelInfo = {
    backend: `${extractor.engine}:${extractor.backend}`,
    engine: extractor.info,
    fresh: true,
    backendReason: extractor.backendReason,
    weights: weights ? { description: weights.description, sha256: weights.sha256 } : { description: extractor.weightsDescription },
    loadMs: Date.now() - started,
  };
  current = { key, extractor, info };
  return info;
}

async function infer(batch: Float32Array, batchSize: number, receivedAt: number): Promise<InferResult> {
  if (!current) throw new Error('no model loaded: send a load request first');
  const startedAt = wallClockMs();
  collected = [];
  const timings = await current.extractor.run({ data: batch, batchSize });
  const outputs = collected;
  collected = [];
  return {
    outputs,
    inferenceMs: timings.inferenceMs,
    readbackMs: timings.readbackMs,
    memory: { ...current.extractor.memory(), childRssBytes: process.memoryUsage().rss },
    times: { receivedAt, startedAt, finishedAt: wallClockMs() },
  };
}

function usage(): ChildUsage {
  const cpu = process.cpuUsage();
  return { cpuUserMs: cpu.user / 1000, cpuSystemMs: cpu.system / 1000, rssBytes: process.memoryUsage().rss };
}

function reply(message: ChildResponse): void {
  process.send?.(message);
}

/** Loads and runs happen one at a time, in arrival order: the host may send the next batch early. */
let tail: Promise<unknown> = Promise.resolve();

process.on('message', (raw: HostRequest) => {
  const receivedAt = wallClockMs();
  let run: Promise<unknown>;
  if (raw.type === 'usage') run = Promise.resolve(usage());
  else {
    run = tail.then((): Promise<unknown> => (raw.type === 'load' ? load(raw.spec) : infer(raw.batch, raw.batchSize, receivedAt)));
    tail = run.catch(() => undefined);
  }
  run.then(
    (value) => reply({ id: raw.id, ok: true, value }),
    (err: unknown) =>
      reply({
        id: raw.id,
        ok: false,
        error: {
          name: err instanceof Error ? err.name : 'Error',
          ...(isLayertapError(err) ? { code: err.code } : {}),
          message: describeError(err),
        },
      }),
  );
});

// The worker died or closed the channel: nothing left to serve.
process.on('disconnect', () => process.exit(0));
