import { z } from 'zod';
import { EngineInfo } from './engines';
import { idProblem } from './ids';
import { BATCH_SIZE, CHUNK_SIZE, IMAGE_SIZE } from './limits';

/** Queue names. With the default prefix the Redis keys are `layertap:<queue>:...`. */
export const QueueName = {
  /** One parent job per dataset run: merges the chunk parts into the manifest once every chunk is done. */
  Datasets: 'datasets',
  /** Child jobs: each carries one chunk of samples. */
  Chunks: 'chunks',
} as const;
export type QueueName = (typeof QueueName)[keyof typeof QueueName];

export const DEFAULT_QUEUE_PREFIX = 'layertap';

export const SafeId = z.string().superRefine((id, ctx) => {
  const problem = idProblem(id);
  if (problem) ctx.addIssue({ code: 'custom', message: `id ${JSON.stringify(id.slice(0, 60))} ${problem}` });
});

/**
 * `torchvision`: IMAGENET1K_V1's evaluation (resize 256, crop 224); `torchvision-v2`: IMAGENET1K_V2's (resize
 * 232, crop 224; torchvision's V2 weights of ResNet-50 and others), same normalisation; `caffe`: Keras VGG16.
 */
export const Preprocess = z.enum(['torchvision', 'torchvision-v2', 'caffe']);
export type Preprocess = z.infer<typeof Preprocess>;

/**
 * What decoding does with an EXIF orientation tag: `ignore` keeps the stored pixels as torchvision's default
 * loader (Pillow's `Image.open`) does; `apply` turns the photo upright first.
 */
export const ExifOrientation = z.enum(['ignore', 'apply']);
export type ExifOrientation = z.infer<typeof ExifOrientation>;
export const Dtype = z.enum(['float32', 'float16']);
export type Dtype = z.infer<typeof Dtype>;
export const Layout = z.enum(['chw', 'hwc']);
export type Layout = z.infer<typeof Layout>;
export const Pool = z.enum(['none', 'avg', 'max']);
export type Pool = z.infer<typeof Pool>;
/**
 * How a dataset's arrays are stored: `npy`, one `.npy` per sample and layer; `shards`, one safetensors file
 * per chunk holding every sample's tensors (fewer, larger objects for big datasets).
 */
export const OutputFormat = z.enum(['npy', 'shards']);
export type OutputFormat = z.infer<typeof OutputFormat>;

/** The built-in models layertap has, and `onnx`: a user's ONNX file (the dataset's `onnx` says which). */
export const ModelName = z.enum(['vgg16', 'resnet50', 'onnx']);
export type ModelName = z.infer<typeof ModelName>;
/** The models layertap builds itself (every model name but `onnx`). */
export const BUILTIN_MODELS = ['vgg16', 'resnet50'] as const;
export type BuiltinModelName = (typeof BUILTIN_MODELS)[number];

/** One tensor of an ONNX model that a plan knows: its name, its position in the graph and its per-sample shape. */
export const OnnxTensorRef = z.object({
  name: z.string().min(1),
  /** Position of the node that computes it, in graph order (the input: -1). */
  order: z.number().int().min(-1),
  /** Op type of that node (`Conv`, `Relu`, ...). */
  op: z.string(),
  /** Per sample (after the batch dimension), as the probe at submit measured it at the dataset's image size. */
  shape: z.array(z.number().int().nonnegative()),
  /** What the user called it, where that was not its name (a node name). */
  aliases: z.array(z.string().min(1)).optional(),
});
export type OnnxTensorRef = z.infer<typeof OnnxTensorRef>;

/**
 * A user's ONNX model, fixed at submit: where workers load it, the sha256 they check it against, and what the
 * probe at submit found (the hooked tensors and the largest activations on the way to the deepest, so that
 * workers size their batches without running it first).
 */
export const OnnxModelRef = z.object({
  /** Absolute `file://` URI, `http(s)://` or `s3://`. */
  uri: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  bytes: z.number().int().positive(),
  /** The graph's image input (NCHW float32). */
  input: z.string().min(1),
  imageSize: z.number().int().positive(),
  /** The hooked tensors and the two largest on the way to the deepest of them (each once). */
  tensors: z.array(OnnxTensorRef).min(1),
});
export type OnnxModelRef = z.infer<typeof OnnxModelRef>;

/** `--mean` / `--std`: per-channel normalisation (R, G, B on the [0, 1] scale) in place of the mode's. */
export const Normalization = z.object({
  mean: z.tuple([z.number(), z.number(), z.number()]),
  std: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]),
});
export type Normalization = z.infer<typeof Normalization>;

/**
 * A requested layer, resolved once at submit: the spec as the user wrote it (it names the output folder), its
 * canonical name, and the shape each sample's array is stored with (layout and pooling applied). Workers
 * trust it after schema validation and never resolve specs again.
 */
export const LayerRequest = z.object({ spec: z.string().min(1), canonical: z.string().min(1), shape: z.array(z.number().int().positive()).min(1) });
export type LayerRequest = z.infer<typeof LayerRequest>;

/** Samples by status: how many are ok, how many failed, and the failures by reason code. */
export const SampleCounts = z.object({
  ok: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
  failures: z.record(z.string(), z.number().int().nonnegative()),
});
export type SampleCounts = z.infer<typeof SampleCounts>;

/** Everything a worker needs to know about a dataset; fixed at submit time, copied into every job. */
export const DatasetConfig = z.object({
  datasetId: SafeId,
  model: ModelName.default('vgg16'),
  /** The ONNX file of `model: onnx`. */
  onnx: OnnxModelRef.optional(),
  /** `s3://bucket/prefix` or `file:///abs/dir`; outputs go under `<output>/<datasetId>/`. */
  output: z.string().min(1),
  layers: z.array(LayerRequest).min(1),
  /** Weights URI; absent means seeded random weights (`seed`). */
  weights: z.string().min(1).optional(),
  seed: z.number().int().nonnegative(),
  preprocess: Preprocess,
  /** Normalisation given with `--mean`/`--std` in place of the preprocessing mode's (torchvision modes only). */
  normalize: Normalization.optional(),
  /** Why this preprocessing: given as `--preprocess`, or the one the weights were trained with (recorded in dataset.json). */
  preprocessReason: z.string().min(1).max(1000).optional(),
  imageSize: z.number().int().min(IMAGE_SIZE.min).max(IMAGE_SIZE.max),
  /** EXIF orientation when decoding; absent in datasets planned before the option, which applied it. */
  exifOrientation: ExifOrientation.optional(),
  /** Largest batch a worker runs, or `auto`: the largest that fits the worker's memory budget. */
  batchSize: z.union([z.number().int().min(BATCH_SIZE.min).max(BATCH_SIZE.max), z.literal('auto')]),
  chunkSize: z.number().int().min(CHUNK_SIZE.min).max(CHUNK_SIZE.max),
  dtype: Dtype,
  layout: Layout,
  pool: Pool.default('none'),
  format: OutputFormat.default('npy'),
  totalSamples: z.number().int().nonnegative(),
  submittedAt: z.string(),
  /** 0 for the first submission, then one more for each `retry`: parts of later runs win in the manifest. */
  run: z.number().int().nonnegative(),
  /**
   * The dataset's samples outside this run when it was planned (what earlier runs left them), so that the
   * counts of a run that resumes or retries add up to the whole dataset. Absent for a first run.
   */
  earlier: SampleCounts.optional(),
  /**
   * How long Redis keeps the dataset's state and sample index after a run finishes, in seconds; a new run
   * keeps them again until it finishes. Absent: until `layertap forget`.
   */
  retentionSeconds: z.number().int().positive().optional(),
});
export type DatasetConfig = z.infer<typeof DatasetConfig>;

export const Sample = z.object({ id: SafeId, uri: z.string().min(1).max(8192) });
export type Sample = z.infer<typeof Sample>;

export const ChunkJob = z.object({
  kind: z.literal('chunk'),
  dataset: DatasetConfig,
  chunk: z.number().int().nonnegative(),
  samples: z.array(Sample).min(1),
});
export type ChunkJob = z.infer<typeof ChunkJob>;

export const DatasetJob = z.object({
  kind: z.literal('dataset'),
  dataset: DatasetConfig,
  chunks: z.number().int().nonnegative(),
});
export type DatasetJob = z.infer<typeof DatasetJob>;

export const SampleErrorInfo = z.object({ code: z.string(), message: z.string() });
export type SampleErrorInfo = z.infer<typeof SampleErrorInfo>;

/** One line of `manifest.jsonl` (and of a chunk's part file). */
export const ManifestLine = z.object({
  id: z.string(),
  uri: z.string(),
  status: z.enum(['ok', 'failed']),
  error: SampleErrorInfo.optional(),
  /** layer spec -> object key relative to the output root. */
  outputs: z.record(z.string(), z.string()),
  /** layer spec -> shape of the stored array. */
  shape: z.record(z.string(), z.array(z.number().int())),
  dtype: Dtype,
});
export type ManifestLine = z.infer<typeof ManifestLine>;

/**
 * `dataset.json`, written beside the manifest when a run finishes. What readers rely on (layers and their
 * stored shapes, dtype, layout, preprocessing) is checked; the rest (model, weights, backend, runs, times) is
 * kept as written. Datasets from before `pool` and `format` existed read as `none` and `npy`.
 */
export const DatasetDocument = z.looseObject({
  datasetId: SafeId,
  layers: z.array(LayerRequest.extend({ shape: z.array(z.number().int().nonnegative()) })).min(1),
  preprocessing: z.looseObject({ mode: Preprocess }),
  imageSize: z.number().int().positive(),
  dtype: Dtype,
  layout: Layout,
  pool: Pool.default('none'),
  format: OutputFormat.default('npy'),
});
export type DatasetDocument = z.infer<typeof DatasetDocument>;

/** What a chunk job returns (and what progress reports carry while it runs). */
export const ChunkResult = z.object({
  chunk: z.number().int(),
  run: z.number().int(),
  ok: z.number().int(),
  failed: z.number().int(),
  /** reason code -> count */
  failures: z.record(z.string(), z.number().int()),
  backend: z.string(),
  /** Provenance of the weights that produced the outputs ("random, seed 0" or a source and sha256). */
  weights: z.object({ description: z.string(), sha256: z.string().optional() }),
  startedAt: z.string(),
  durationMs: z.number(),
  /** Time spent per stage, summed over the chunk's batches, and the longest single inference. */
  timings: z
    .object({
      inferenceMs: z.number(),
      readbackMs: z.number(),
      maxBatchMs: z.number(),
      batches: z.number().int(),
      fetchMs: z.number().optional(),
      decodeMs: z.number().optional(),
      preprocessMs: z.number().optional(),
      /** The batches to the inference process and their outputs back (serialisation and the pipe). */
      transferMs: z.number().optional(),
      encodeMs: z.number().optional(),
      writeMs: z.number().optional(),
    })
    .optional(),
  /** Which engine ran the chunk, on what device, and why. */
  engine: EngineInfo.optional(),
  /** Samples whose outputs an earlier attempt had already stored (not recomputed). */
  skipped: z.number().int().optional(),
  /** The worker process that ran the chunk. */
  worker: z.object({ hostname: z.string(), pid: z.number().int() }).optional(),
  /** After the last batch: tensors alive in the inference process, and RSS of both processes. */
  memory: z
    .object({ numTensors: z.number().int(), numBytes: z.number(), childRssBytes: z.number(), rssBytes: z.number() })
    .optional(),
});
export type ChunkResult = z.infer<typeof ChunkResult>;

/** What the dataset parent job returns once the manifest is written. */
export const DatasetResult = z.object({
  datasetId: z.string(),
  ok: z.number().int(),
  failed: z.number().int(),
  failures: z.record(z.string(), z.number().int()),
  manifestKey: z.string(),
});
export type DatasetResult = z.infer<typeof DatasetResult>;

/** Turns a zod error into one readable line per problem, with the path that is wrong. */
export function formatIssues(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.length ? issue.path.join('.') + ': ' : ''}${issue.message}`).join('; ');
}
