// `layertap show <datasetId>`: a PNG of one sample's feature maps beside its input image.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { ErrorCode, ManifestLine, ValidationError, describeError, type DatasetConfig } from '@layertap/contracts';
import { DEFAULT_MONTAGE_CHANNELS, DEFAULT_MONTAGE_TILE, ImageFetcher, renderMontage } from '@layertap/imaging';
import { unknownDatasetError, type LayertapQueues } from '@layertap/queue';
import {
  decodeNpy,
  decodeSafetensors,
  float16BitsToFloat32,
  manifestKey,
  openOutput,
  parseOutputRef,
  readManifestParts,
  type OutputWriter,
} from '@layertap/storage';
import { readProducerConfig } from '../config';
import { withContext, type CliContext } from '../context';

/** What a command action returns: its exit code. */
type Action = () => Promise<number>;

export interface ShowCommandOptions {
  /** Runs the action: the CLI passes its `run()` (prints errors, sets the exit code). */
  run: (action: Action) => Promise<void>;
}

export interface ShowOptions {
  sample?: string;
  layer?: string;
  out?: string;
  channels: number;
  size: number;
  json: boolean;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

/** The dataset's manifest lines: `manifest.jsonl` once written, else the chunk parts stored so far. */
async function readSamples(writer: OutputWriter, datasetId: string): Promise<ManifestLine[]> {
  const body = await writer.get(manifestKey(datasetId));
  if (!body) return [...(await readManifestParts(writer, datasetId)).lines.values()];
  return body
    .toString('utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => ManifestLine.parse(JSON.parse(l)));
}

type ShownSample = Pick<ManifestLine, 'id' | 'uri' | 'status' | 'error' | 'outputs'>;

/**
 * The sample asked for, by id or URI (a local path also matches its `file://` URI): from the store's sample
 * index, else from the manifest. Without one, the first sample of the manifest that succeeded.
 */
async function pickSample(queues: LayertapQueues, writer: OutputWriter, datasetId: string, wanted: string | undefined): Promise<ShownSample> {
  if (wanted === undefined) {
    const first = (await readSamples(writer, datasetId)).find((l) => l.status === 'ok');
    if (!first) throw new ValidationError(ErrorCode.InvalidRequest, `dataset ${datasetId} has no successful sample yet`);
    return first;
  }
  const forms = path.isAbsolute(wanted) ? [wanted, pathToFileURL(wanted).href] : [wanted];
  let line: ShownSample | undefined;
  for (const q of forms) {
    const found = await queues.store.findSample(datasetId, q);
    if (found) {
      line = { id: found.id, uri: found.uri, status: found.status, outputs: found.outputs ?? {}, ...(found.code ? { error: { code: found.code, message: found.message ?? '' } } : {}) };
      break;
    }
  }
  if (!line) {
    const lines = await readSamples(writer, datasetId);
    line = forms.map((q) => lines.find((l) => l.id === q) ?? lines.find((l) => l.uri === q)).find(Boolean);
  }
  if (!line) throw new ValidationError(ErrorCode.InvalidRequest, `dataset ${datasetId} has no sample with id or URI ${JSON.stringify(wanted)} (yet)`);
  if (line.status !== 'ok') {
    const reason = line.error ? `${line.error.code}: ${line.error.message}` : 'no reason recorded';
    throw new ValidationError(ErrorCode.InvalidRequest, `sample ${line.id} failed (${reason}): it has no activations to show`);
  }
  return line;
}

/** The layer's spec as the dataset names it: the spec itself or its canonical name; default the first. */
function pickLayer(config: DatasetConfig, wanted: string | undefined): string {
  if (wanted === undefined) return config.layers[0]!.spec;
  const layer = config.layers.find((l) => l.spec === wanted) ?? config.layers.find((l) => l.canonical === wanted);
  if (!layer) {
    const known = config.layers.map((l) => (l.spec === l.canonical ? l.spec : `${l.spec} (${l.canonical})`)).join(', ');
    throw new ValidationError(ErrorCode.UnknownLayer, `dataset ${config.datasetId} has no layer ${JSON.stringify(wanted)}; it has ${known}`);
  }
  return layer.spec;
}

/**
 * The array a manifest `outputs` value names, as float32: a `.npy` key, or `<shard key>#<tensor>` for
 * `--format shards` (the shard is read whole). `undefined` when the object or the tensor is gone.
 */
async function readActivation(writer: OutputWriter, ref: string): Promise<{ data: Float32Array; shape: number[] } | undefined> {
  const { key, tensor } = parseOutputRef(ref);
  const body = await writer.get(key);
  if (!body) return undefined;
  if (tensor === undefined) {
    const npy = decodeNpy(body);
    return { data: npy.dtype === 'float16' ? float16BitsToFloat32(npy.data) : npy.data, shape: npy.shape };
  }
  const found = decodeSafetensors(body).tensors.find((t) => t.name === tensor);
  if (!found) return undefined;
  return { data: found.dtype === 'F16' ? float16BitsToFloat32(found.data as Uint16Array) : (found.data as Float32Array), shape: found.shape };
}

/** Renders the montage and writes it; resolves with the path written. */
export async function showCommand(ctx: CliContext, datasetId: string, options: ShowOptions): Promise<number> {
  const queues = await ctx.queues();
  const config = await queues.store.latestRun(datasetId);
  if (!config) throw unknownDatasetError(datasetId);
  const layer = pickLayer(config, options.layer);
  const writer = openOutput(config.output, { s3: ctx.s3 });
  try {
    const sample = await pickSample(queues, writer, datasetId, options.sample);
    const ref = sample.outputs[layer];
    const activation = ref ? await readActivation(writer, ref) : undefined;
    if (!ref || !activation) {
      throw new ValidationError(ErrorCode.InvalidRequest, `sample ${sample.id} has no stored ${layer} output (${ref ? writer.urlFor(parseOutputRef(ref).key) : 'not in the manifest'})`);
    }

    // The operator's own command on their own dataset: internal image servers are allowed, as at submit.
    const fetcher = new ImageFetcher({ s3: ctx.s3, allowPrivateNetworks: true });
    let input: Buffer | undefined;
    try {
      input = await fetcher.fetch(sample.uri);
    } catch (err) {
      process.stderr.write(`layertap: warning: the source image could not be read, showing the feature maps only: ${describeError(err)}\n`);
    } finally {
      fetcher.close();
    }
    const png = await renderMontage({
      ...(input ? { input: { bytes: input, view: { preprocess: config.preprocess, imageSize: config.imageSize } } } : {}),
      activation: { ...activation, layout: config.layout },
      channels: options.channels,
      size: options.size,
      title: `${datasetId} / ${sample.id} / ${layer} (${activation.shape.join('x')})`,
    });
    const out = path.resolve(options.out ?? `${datasetId}-${sample.id}-${layer}.png`);
    await writeFile(out, png);
    process.stdout.write(options.json ? `${JSON.stringify({ datasetId, sample: sample.id, layer, shape: activation.shape, path: out })}\n` : `${out}\n`);
    return 0;
  } finally {
    await writer.close();
  }
}

/** Adds `layertap show` to the CLI. */
export function registerShowCommand(program: Command, options: ShowCommandOptions): Command {
  return program
    .command('show')
    .description("write a PNG of one sample's most active feature maps beside its input image")
    .argument('<datasetId>')
    .option('--sample <idOrUri>', 'sample id or URI (default: the first successful sample)')
    .option('--layer <spec>', 'layer spec or canonical name (default: the first layer of the dataset)')
    .option('--out <file.png>', 'where to write the PNG (default: <datasetId>-<sample>-<layer>.png)')
    .option('--channels <n>', 'channels shown, the most active by mean activation', positiveInt, DEFAULT_MONTAGE_CHANNELS)
    .option('--size <px>', 'side of one channel tile in pixels', positiveInt, DEFAULT_MONTAGE_TILE)
    .option('--json', 'print JSON', false)
    .action((datasetId: string, opts: ShowOptions) =>
      options.run(() => withContext(readProducerConfig(), 'command', (ctx) => showCommand(ctx, datasetId, opts))),
    );
}
