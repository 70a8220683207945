import type { S3Client } from '@aws-sdk/client-s3';
import {
  DEFAULT_MEMORY_BUDGET_CAP_BYTES,
  DatasetConfig,
  ErrorCode,
  MAX_SHARD_BYTES,
  ValidationError,
  idProblem,
  isLayertapError,
  shortHash,
  storedUri,
  type Dtype,
  type ExifOrientation,
  type Layout,
  type LayerRequest,
  type ModelName,
  type Normalization,
  type OnnxModelRef,
  type OutputFormat,
  type Pool,
  type Preprocess,
  type Sample,
} from '@layertap/contracts';
import { sampleMemoryBytes } from '@layertap/model/batch-size';
import { maxModelBytes, modelFor } from '@layertap/model/models';
import { openOutput, readManifestParts, type OutputWriter } from '@layertap/storage';
import { createTrustedFetcher } from '@layertap/imaging';
import path from 'node:path';
import { IMAGE_EXTENSIONS, caseCollisions, normalizeUri, resolveSource } from './source';
import { countLines, storedShape } from '@layertap/datasets';
import { PROBE_TIMEOUT_MS, probeSource, withDeadline } from './probe';
import { planOnnxModel, type OnnxShapeProbe } from './onnx-model';

export interface SubmitOptions {
  /** The model (default `vgg16`); `onnx` with `onnxModel`. */
  model?: ModelName;
  /** `--model file.onnx`: the ONNX file's path or URI (it carries its weights: no `weights`). */
  onnxModel?: string;
  /** `--mean`/`--std`: normalisation in place of the preprocessing mode's (torchvision modes). */
  normalize?: Normalization;
  source: string;
  layers: string[];
  output: string;
  /**
   * `random` (seeded, from `seed`), a published name (`keras-imagenet`, `keras-imagenet-notop`,
   * `torchvision-imagenet`), or a path or URI. Default: `DEFAULT_WEIGHTS` of @layertap/model (random).
   */
  weights?: string;
  /** EXIF orientation when decoding (default `ignore`, as torchvision's loader). */
  exifOrientation?: ExifOrientation;
  /** `--preprocess` as given; undefined: the preprocessing the weights were trained with. */
  preprocess?: Preprocess;
  imageSize: number;
  batchSize: number | 'auto';
  chunkSize: number;
  dtype: Dtype;
  layout: Layout;
  pool: Pool;
  /** `npy` (default): one file per sample and layer; `shards`: one safetensors file per chunk. */
  format?: OutputFormat;
  datasetId?: string;
  seed: number;
  /**
   * The most memory a worker gives one batch's activations (its `LAYERTAP_MEMORY_BUDGET_MB`): a request whose
   * single sample needs more is refused. Default `DEFAULT_MEMORY_BUDGET_CAP_BYTES` (8 GiB, the most a worker's
   * budget defaults to).
   */
  memoryLimitBytes?: number;
  /** Largest source in bytes (default `DEFAULT_MAX_SOURCE_BYTES`, 64 MiB). */
  maxSourceBytes?: number;
  /** Most samples of a source (default `DEFAULT_MAX_SAMPLES`, 1,000,000). */
  maxSamples?: number;
}

export interface Submission {
  config: DatasetConfig;
  samples: Sample[];
  /** Provenance of the weights in one line (`random, seed 0`, or source, format and how submit checked them). */
  weightsDescription: string;
  /**
   * Lines for the terminal about a submission that still runs: `--preprocess` contradicts the weights, a batch
   * workers will run smaller, sample ids that collide on a case-insensitive disk.
   */
  warnings: string[];
  /** Files of a directory or prefix left out because their extension is not an image's (`skippedWarning` words it). */
  skipped: string[];
}

export interface PrepareSubmissionDeps {
  s3: S3Client;
  submittedAt?: Date;
  /** Download progress of published weights (no longer downloaded at submit: kept for callers). */
  onWeightsProgress?: (received: number, total: number) => void;
  /** Counts the range requests submit makes to read a remote weights file's header, and their bytes. */
  weightsStats?: { requests: number; bytes: number };
  /** `LAYERTAP_ALLOW_HOSTS`: private and loopback hosts a weights URI may reach (default: none). */
  allowHosts?: readonly string[];
  /**
   * Called once the request itself is checked (layers, output, source) and before the weights are resolved,
   * which can mean reading a remote header or downloading a Keras HDF5 file: the producer checks that Redis answers here, so that
   * Redis being down is said in a second, after a bad request would have been.
   */
  beforeWeights?: () => Promise<void>;
  /** Probes an ONNX model's shapes (default: ONNX Runtime on the CPU, from @layertap/engines). */
  probeOnnx?: OnnxShapeProbe;
}

/**
 * A readable default dataset id: the source's name plus a digest of where the source is and what is being
 * asked for (`weights` as resolved: absent for random weights; `preprocess` as decided). The source counts by
 * its location, not its contents, so a folder or manifest that grew names the same dataset and a submission
 * adds its new samples as a new run. URIs count without their credentials, so a fresh signature names the
 * same dataset.
 */
export function defaultDatasetId(options: SubmitOptions, baseDir = process.cwd()): string {
  const trimmed = options.source.replace(/\/+$/, '');
  const base = path.basename(trimmed).replace(/\.[^.]+$/, '').replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 60) || 'dataset';
  const digest = shortHash(
    JSON.stringify([
      storedUri(normalizeUri(trimmed || '/', baseDir)),
      options.layers,
      options.output.replace(/\/+$/, ''),
      // Random weights count as none, named (`random`) or not (resolved: absent).
      options.weights && options.weights !== 'random' ? storedUri(options.weights) : null,
      options.preprocess ?? null,
      options.imageSize,
      options.dtype,
      options.layout,
      options.pool,
      options.seed,
      // Only shards change the digest, so ids of npy datasets stay what they were.
      ...(options.format === 'shards' ? ['shards'] : []),
      // Likewise only models other than VGG16 (`avgpool` names a layer of both).
      ...(options.model && options.model !== 'vgg16' ? [options.model] : []),
      // Only `apply` changes it: datasets decoded as torchvision does keep their ids.
      ...(options.exifOrientation === 'apply' ? ['exif-apply'] : []),
      // An ONNX model counts by where it is (as a source does), --mean/--std by their values.
      ...(options.onnxModel ? [storedUri(normalizeUri(options.onnxModel, baseDir))] : []),
      ...(options.normalize ? [options.normalize] : []),
    ]),
    10,
  );
  return `${base.replace(/^[-.]+/, '') || 'dataset'}-${digest}`;
}

/**
 * Validates everything about a submission before anything is enqueued: layers (listing the valid ones),
 * output URI and that it is writable, dataset id, the source (readable, non-empty, ids safe and unique) and
 * the weights (which also decide the preprocessing when `--preprocess` is not given).
 */
export async function prepareSubmission(options: SubmitOptions, deps: PrepareSubmissionDeps): Promise<Submission> {
  const onnx = options.model === 'onnx' || options.onnxModel ? await planOnnx(options, deps) : undefined;
  const withModel = onnx ? { ...options, onnx: onnx.ref } : options;
  const layers = planLayers(withModel, onnx?.resolved);
  if (options.format === 'shards') checkShardSize(layers, options);
  const warnings: string[] = [];
  const memory = checkMemory(layers, withModel);
  if (memory) warnings.push(memory);
  if (options.datasetId !== undefined) {
    const problem = idProblem(options.datasetId);
    if (problem) throw new ValidationError(ErrorCode.InvalidId, `--dataset-id ${JSON.stringify(options.datasetId.slice(0, 80))} ${problem}`);
  }
  const writer = openOutput(options.output, { s3: deps.s3 });
  // Probes are bounded in time: a source or an output that hangs fails the submission instead.
  await probeSource(options.source);
  const skipped: string[] = [];
  const samples = await resolveSource(options.source, {
    s3: deps.s3,
    onSkipped: (name) => skipped.push(name),
    ...(options.maxSourceBytes !== undefined ? { maxBytes: options.maxSourceBytes } : {}),
    ...(options.maxSamples !== undefined ? { maxSamples: options.maxSamples } : {}),
  });
  await withDeadline(writer.checkWritable(), PROBE_TIMEOUT_MS, `checking that ${options.output} is writable`);

  if (/^file:/i.test(options.output)) {
    const collisions = caseCollisionWarning(caseCollisions(samples));
    if (collisions) warnings.push(collisions);
  }
  await deps.beforeWeights?.();
  if (options.normalize && options.preprocess === 'caffe') {
    throw new ValidationError(ErrorCode.InvalidRequest, '--mean/--std replace the normalisation of the torchvision modes; caffe has its own (BGR, 0-255): drop them or use --preprocess torchvision');
  }
  // Refuse weights that cannot serve the layers (missing tensor, wrong shape, notop asked for fc1) now, not
  // in every worker, from the weights' header only: published names are not read at all (their contents are
  // known), files are read up to their tensors' data, remote ones by range requests. The workers download,
  // verify and hash what they load. Without --preprocess the weights' training decides it.
  const { resolveWeightsRequest } = await import('@layertap/model/weights');
  const policyRefusal = refusedBy('--weights');
  let resolved: Awaited<ReturnType<typeof resolveWeightsRequest>>;
  if (onnx) resolved = onnxWeights(options, onnx.description);
  else {
    const weightsFetcher = createTrustedFetcher({ s3: deps.s3, ...(deps.allowHosts ? { allowHosts: deps.allowHosts } : {}) });
    try {
      resolved = await resolveWeightsRequest(options.weights, {
        model: modelFor(options),
        layers: layers.map((l) => l.spec),
        seed: options.seed,
        ...(options.preprocess ? { preprocess: options.preprocess } : {}),
        // Headers only: remote .pth and safetensors by range requests; Keras HDF5 and TF.js files whole.
        fetchRange: (uri, offset, length) => weightsFetcher.fetchRange(uri, offset, length).catch(policyRefusal),
        fetchBytes: (uri) => weightsFetcher.fetch(uri).catch(policyRefusal),
        ...(deps.weightsStats ? { stats: deps.weightsStats } : {}),
        ...(deps.onWeightsProgress ? { published: { onProgress: deps.onWeightsProgress } } : {}),
      });
    } finally {
      weightsFetcher.close();
    }
  }
  const datasetId = options.datasetId ?? defaultDatasetId({ ...options, weights: resolved.weights, preprocess: resolved.preprocess });
  // Workers resolve a local weights path, not this shell: it is made absolute. Names travel as they are.
  const weights = resolved.request.kind === 'uri' ? normalizeUri(resolved.request.uri, process.cwd()) : resolved.weights;
  const config = DatasetConfig.parse({
    datasetId,
    output: options.output.replace(/\/+$/, ''),
    model: options.model ?? 'vgg16',
    ...(onnx ? { onnx: onnx.ref } : {}),
    layers,
    ...(weights ? { weights } : {}),
    ...(options.normalize ? { normalize: options.normalize } : {}),
    seed: options.seed,
    preprocess: resolved.preprocess,
    preprocessReason: resolved.preprocessReason,
    imageSize: options.imageSize,
    exifOrientation: options.exifOrientation ?? 'ignore',
    batchSize: options.batchSize,
    chunkSize: options.chunkSize,
    dtype: options.dtype,
    layout: options.layout,
    pool: options.pool,
    format: options.format ?? 'npy',
    totalSamples: samples.length,
    submittedAt: (deps.submittedAt ?? new Date()).toISOString(),
    run: 0,
  });
  return { config, samples, weightsDescription: resolved.description, warnings: [...(resolved.warning ? [resolved.warning] : []), ...warnings], skipped };
}

/** A URI of `flag` that the address policy refuses is a bad request (exit 2), not a passing fault: said so. */
function refusedBy(flag: string): (err: unknown) => never {
  return (err) => {
    if (isLayertapError(err) && err.code === ErrorCode.AddressBlocked) {
      throw new ValidationError(ErrorCode.AddressBlocked, `${flag} ${err.message.replace(/ \(allowHosts or allowPrivateNetworks allow it\)$/, '')} (list the host in LAYERTAP_ALLOW_HOSTS to allow it)`);
    }
    throw err;
  };
}

/** `--model file.onnx`: the file read, its tensors resolved and its graph probed (see `planOnnxModel`). */
async function planOnnx(options: SubmitOptions, deps: PrepareSubmissionDeps) {
  const uri = options.onnxModel;
  if (!uri) throw new ValidationError(ErrorCode.InvalidRequest, '--model onnx needs the file: give --model path/to/model.onnx (or its URI)');
  if (options.weights !== undefined) {
    throw new ValidationError(ErrorCode.InvalidWeights, `--weights ${JSON.stringify(options.weights.slice(0, 80))} with an ONNX model: the .onnx file carries its weights; drop --weights`);
  }
  // Remote files under the address policy of images and weights, and the model size cap.
  const fetcher = createTrustedFetcher({ s3: deps.s3, ...(deps.allowHosts ? { allowHosts: deps.allowHosts } : {}), maxBytes: maxModelBytes() });
  try {
    return await planOnnxModel(uri, {
      layers: options.layers,
      imageSize: options.imageSize,
      workerUri: normalizeUri(uri, process.cwd()),
      fetchBytes: (remote) => fetcher.fetch(remote).catch(refusedBy('--model')),
      ...(deps.probeOnnx ? { probe: deps.probeOnnx } : {}),
    });
  } finally {
    fetcher.close();
  }
}

/** An ONNX model's weights are in its file: what the submission says of them, and the preprocessing (torchvision's unless told). */
function onnxWeights(options: SubmitOptions, description: string) {
  const preprocess: Preprocess = options.preprocess ?? 'torchvision';
  const stats = options.normalize ? `, normalised with --mean ${options.normalize.mean.join(',')} --std ${options.normalize.std.join(',')}` : '';
  const preprocessReason = options.preprocess
    ? `--preprocess ${options.preprocess}${stats}`
    : `an ONNX model does not say how it was trained: torchvision's evaluation (resize 256, crop)${stats || ' with the ImageNet mean and std, unless --preprocess or --mean/--std say otherwise'}`;
  return { request: { kind: 'random' as const }, description, preprocess, preprocessReason };
}

/** What a submission runs when no job of its dataset is live in Redis. */
export interface RunPlan {
  config: DatasetConfig;
  samples: Sample[];
  /** Samples whose outputs an earlier run already stored. */
  alreadyDone: number;
  /** Samples of the source that no earlier run had (all of them for a first run). */
  added: number;
  /** Samples an earlier run recorded as failed (or cancelled) that this run leaves alone (`rerunFailed: false`). */
  failedEarlier: number;
  /** Samples earlier runs recorded that the source no longer lists: their outputs and manifest lines stay. */
  removed: number;
}

export interface PlanRunOptions {
  /**
   * Whether samples an earlier run recorded as failed run again (default true: resuming a run that stopped).
   * False for a dataset that finished: a resubmission adds what is new, and `retry` is the way to run failures.
   */
  rerunFailed?: boolean;
}

/**
 * Works out what a submission must run when no job of this dataset is live in Redis: samples that an
 * earlier run recorded `ok` (in the chunk parts under the output) are left out, and the new run is numbered
 * after every run found there, so its parts win in the merged manifest. Samples new to the source are always
 * in the run; failed ones only with `rerunFailed`.
 */
export async function planRun(
  writer: OutputWriter,
  config: DatasetConfig,
  samples: Sample[],
  knownRuns: readonly DatasetConfig[],
  options: PlanRunOptions = {},
): Promise<RunPlan> {
  const parts = await readManifestParts(writer, config.datasetId);
  const lastKnownRun = Math.max(parts.maxRun, knownRuns.at(-1)?.run ?? -1);
  if (lastKnownRun < 0) return { config, samples, alreadyDone: 0, added: samples.length, failedEarlier: 0, removed: 0 };
  const rerunFailed = options.rerunFailed ?? true;
  const listed = new Set(samples.map((s) => s.id));
  let alreadyDone = 0;
  let failedEarlier = 0;
  let added = 0;
  const remaining = samples.filter((s) => {
    const line = parts.lines.get(s.id);
    if (!line) {
      added++;
      return true;
    }
    if (line.status === 'ok') {
      alreadyDone++;
      return false;
    }
    if (rerunFailed) return true;
    failedEarlier++;
    return false;
  });
  let removed = 0;
  for (const id of parts.lines.keys()) if (!listed.has(id)) removed++;
  // What the run leaves alone, so that its counts add up to the whole dataset while it runs.
  const running = new Set(remaining.map((s) => s.id));
  const earlier = countLines([...parts.lines.values()].filter((l) => !running.has(l.id)));
  return {
    config: { ...config, run: lastKnownRun + 1, totalSamples: remaining.length, earlier },
    samples: remaining,
    alreadyDone,
    added,
    failedEarlier,
    removed,
  };
}

/**
 * Settings that must not change between submissions of the same dataset id. URIs are compared without their
 * credentials: the same weights behind a fresh signature are the same setting.
 */
export function sameSettings(a: DatasetConfig, b: DatasetConfig): string | undefined {
  const keys = ['model', 'output', 'weights', 'seed', 'preprocess', 'imageSize', 'dtype', 'layout', 'pool', 'format', 'exifOrientation'] as const;
  const shown = (value: unknown) => (typeof value === 'string' ? storedUri(value) : String(value));
  // Runs planned before --exif-orientation applied it.
  const settings = (c: DatasetConfig) => ({ ...c, exifOrientation: c.exifOrientation ?? 'apply' });
  const [sa, sb] = [settings(a), settings(b)];
  for (const key of keys) if (shown(sa[key]) !== shown(sb[key])) return `${key} (${shown(sa[key])} then ${shown(sb[key])})`;
  // An ONNX file that changed at the same place is another model; so are other --mean/--std.
  const [fa, fb] = [a.onnx?.sha256 ?? 'none', b.onnx?.sha256 ?? 'none'];
  if (fa !== fb) return `the ONNX model (sha256 ${fa.slice(0, 12)} then ${fb.slice(0, 12)})`;
  const [na, nb] = [a.normalize, b.normalize].map((n) => (n ? `mean ${n.mean.join(',')} std ${n.std.join(',')}` : 'the mode\'s'));
  if (na !== nb) return `normalisation (${na} then ${nb})`;
  const la = a.layers.map((l) => l.spec).join(',');
  const lb = b.layers.map((l) => l.spec).join(',');
  if (la !== lb) return `layers (${la} then ${lb})`;
  return undefined;
}

/**
 * The layers as every job carries them: spec, canonical name and stored shape, resolved here once. Two specs
 * of one tensor (`block3_pool` and `features.16`) are refused: the same arrays would be computed and stored
 * twice.
 */
export function planLayers(
  options: Pick<SubmitOptions, 'model' | 'layers' | 'imageSize' | 'layout' | 'pool'> & { onnx?: OnnxModelRef },
  onnxResolved?: readonly { spec: string; tensor: string }[],
): LayerRequest[] {
  const model = modelFor(options);
  model.checkImageSize(options.imageSize);
  // An ONNX model's specs were resolved against its whole graph (node names too) when it was read.
  const resolved = onnxResolved
    ? onnxResolved.map((r) => ({ spec: r.spec, canonical: r.tensor, order: model.layer(r.tensor).order }))
    : model.resolveLayers(options.layers);
  const seen = new Map<string, string>();
  for (const layer of resolved) {
    const first = seen.get(layer.canonical);
    if (first !== undefined) {
      throw new ValidationError(
        ErrorCode.InvalidRequest,
        `--layer names one layer twice: ${first} and ${layer.spec} are both ${layer.canonical}; name it once`,
      );
    }
    seen.set(layer.canonical, layer.spec);
  }
  return resolved.map((l) => ({ spec: l.spec, canonical: l.canonical, shape: storedShape(l.canonical, options) }));
}

/**
 * A worker builds a chunk's shard in memory: refuse chunks whose shard would pass MAX_SHARD_BYTES, naming the
 * size and a chunk size that fits.
 */
function checkShardSize(layers: readonly LayerRequest[], options: SubmitOptions): void {
  const itemBytes = options.dtype === 'float16' ? 2 : 4;
  const perSample = layers.reduce((sum, l) => sum + l.shape.reduce((a, b) => a * b, 1) * itemBytes, 0);
  const shardBytes = perSample * options.chunkSize;
  if (shardBytes > MAX_SHARD_BYTES) {
    const fits = Math.max(1, Math.floor(MAX_SHARD_BYTES / perSample));
    throw new ValidationError(
      ErrorCode.InvalidRequest,
      `--format shards: a chunk of ${options.chunkSize} samples makes a ${(shardBytes / 1024 ** 2).toFixed(0)} MiB shard, over the ` +
        `${MAX_SHARD_BYTES / 1024 ** 3} GiB a worker holds in memory: use --chunk-size ${fits} or less`,
    );
  }
}

function formatBytes(bytes: number): string {
  return bytes >= 1024 ** 3 ? `${Number((bytes / 1024 ** 3).toFixed(1))} GiB` : `${Number((bytes / 1024 ** 2).toFixed(1))} MiB`;
}

/**
 * A batch's activation memory estimated from the plan (every layer's activation shape at the image size,
 * times the batch; `sampleMemoryBytes`) against the memory limit of a worker's batch: a request whose single
 * sample cannot fit is refused, naming the layers and their shapes, the batch and the limit. A batch that
 * cannot fit while one sample does is run smaller by the workers (their budget is a limit): the line returned
 * says so.
 */
export function checkMemory(
  layers: readonly LayerRequest[],
  options: Pick<SubmitOptions, 'model' | 'imageSize' | 'batchSize' | 'memoryLimitBytes'> & { onnx?: OnnxModelRef },
): string | undefined {
  const model = modelFor(options);
  const limit = options.memoryLimitBytes ?? DEFAULT_MEMORY_BUDGET_CAP_BYTES;
  const perSample = sampleMemoryBytes(
    layers.map((l) => l.canonical),
    options.imageSize,
    model,
  );
  const batch = options.batchSize === 'auto' ? 1 : options.batchSize;
  if (perSample * batch <= limit) return undefined;
  const what = layers.length === 1 ? '1 layer' : `${layers.length} layers`;
  const need = layers.length === 1 ? 'needs' : 'need';
  const sizes = `${formatBytes(perSample)} per sample` + (options.batchSize === 'auto' ? '' : `, ${formatBytes(perSample * batch)} for a batch of ${batch}`);
  const over = `over the memory limit of ${formatBytes(limit)} a worker gives one batch (LAYERTAP_MEMORY_BUDGET_MB)`;
  if (perSample > limit) {
    const shapes = layers.map((l) => `${l.spec} ${model.outputShape(l.canonical, options.imageSize).join('x')}`).join(', ');
    throw new ValidationError(
      ErrorCode.InvalidRequest,
      `${what} (${shapes}) at ${options.imageSize} px ${need} ${sizes}: ${over}; even a batch of 1 does not fit: ask for fewer or smaller layers, or a smaller --image-size`,
    );
  }
  return `--batch-size ${batch}: ${what} at ${options.imageSize} px ${need} ${sizes}, ${over}: workers with that budget run batches of ${Math.floor(limit / perSample)}`;
}

/** One line about sample ids that differ only by case, with a few examples; undefined when none do. */
export function caseCollisionWarning(groups: readonly string[][], examples = 4): string | undefined {
  if (groups.length === 0) return undefined;
  const ids = groups.reduce((sum, group) => sum + group.length, 0);
  const shown = groups
    .slice(0, examples)
    .map((group) => group.slice(0, 3).join(' = ') + (group.length > 3 ? ' = ...' : ''))
    .join(', ');
  const rest = groups.length - examples;
  return (
    `${ids} sample ids differ from another only by case (${shown}${rest > 0 ? `, and ${rest} more group${rest === 1 ? '' : 's'}` : ''}): ` +
    'their files collide on a case-insensitive file system (macOS, Windows), where one overwrites the other; give ids that differ by more than case, or write to s3://'
  );
}

/** One line about the files of a directory or prefix that were left out as not images; undefined when none were. */
export function skippedWarning(names: readonly string[], examples = 3): string | undefined {
  if (names.length === 0) return undefined;
  const shown = names.slice(0, examples).map((n) => path.basename(n)).join(', ');
  const rest = names.length > examples ? `, and ${names.length - examples} more` : '';
  const files = names.length === 1 ? '1 file' : `${names.length} files`;
  return `skipped ${files} whose extension is not an image's (${shown}${rest}); images are read by extension: ${[...IMAGE_EXTENSIONS].join(' ')}`;
}
