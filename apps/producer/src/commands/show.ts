// `layertap show <dataset>`: a PNG of one sample's feature maps beside its input image.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command } from 'commander';
import { ErrorCode, ValidationError, describeError, type ManifestLine } from '@layertap/contracts';
import { DEFAULT_MONTAGE_CHANNELS, DEFAULT_MONTAGE_TILE, ImageFetcher, renderMontage } from '@layertap/imaging';
import { findLayer, type DatasetReader } from '@layertap/datasets';
import type { LayertapQueues } from '@layertap/queue';
import { parseOutputRef } from '@layertap/storage';
import { readProducerConfig } from '../config';
import { withContext, type CliContext } from '../context';
import { openDataset } from '../open-dataset';
import { positiveInt } from '../options';

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

type ShownSample = Pick<ManifestLine, 'id' | 'uri' | 'status' | 'error' | 'outputs'>;

/** The first manifest line that is `ok`, or whose id (else URI) is one of `forms`; the manifest is streamed. */
async function findLine(reader: DatasetReader, forms: string[] | undefined): Promise<ShownSample | undefined> {
  let byUri: ShownSample | undefined;
  for await (const line of reader.lines()) {
    if (!forms) {
      if (line.status === 'ok') return line;
    } else if (forms.includes(line.id)) return line;
    else if (!byUri && forms.includes(line.uri)) byUri = line;
  }
  return byUri;
}

/** The sample one of `forms` names in the store's sample index (filled as chunks finish). */
async function indexedSample(queues: LayertapQueues, datasetId: string, forms: string[]): Promise<ShownSample | undefined> {
  for (const q of forms) {
    const found = await queues.store.findSample(datasetId, q);
    if (found) {
      return { id: found.id, uri: found.uri, status: found.status, outputs: found.outputs ?? {}, ...(found.code ? { error: { code: found.code, message: found.message ?? '' } } : {}) };
    }
  }
  return undefined;
}

/**
 * The sample asked for, by id or URI (a local path also matches its `file://` URI): from the store's sample
 * index when the dataset was opened by id, else from the manifest. Without one, the first sample that succeeded.
 */
async function pickSample(reader: DatasetReader, queues: LayertapQueues | undefined, wanted: string | undefined): Promise<ShownSample> {
  const { datasetId } = reader;
  if (wanted === undefined) {
    const first = await findLine(reader, undefined);
    if (!first) throw new ValidationError(ErrorCode.InvalidRequest, `dataset ${datasetId} has no successful sample yet`);
    return first;
  }
  const forms = path.isAbsolute(wanted) ? [wanted, pathToFileURL(wanted).href] : [wanted];
  const line = (queues && (await indexedSample(queues, datasetId, forms))) ?? (await findLine(reader, forms));
  if (!line) throw new ValidationError(ErrorCode.InvalidRequest, `dataset ${datasetId} has no sample with id or URI ${JSON.stringify(wanted)} (yet)`);
  if (line.status !== 'ok') {
    const reason = line.error ? `${line.error.code}: ${line.error.message}` : 'no reason recorded';
    throw new ValidationError(ErrorCode.InvalidRequest, `sample ${line.id} failed (${reason}): it has no activations to show`);
  }
  return line;
}

/** Renders the montage and writes it; resolves with the path written. */
export async function showCommand(ctx: CliContext, dataset: string, options: ShowOptions): Promise<number> {
  const { reader, info, queues } = await openDataset(ctx, dataset);
  const { datasetId } = reader;
  try {
    const layer = findLayer(info, options.layer).spec;
    const sample = await pickSample(reader, queues, options.sample);
    const ref = sample.outputs[layer];
    const activation = ref ? await reader.activation(ref) : undefined;
    if (!ref || !activation) {
      throw new ValidationError(ErrorCode.InvalidRequest, `sample ${sample.id} has no stored ${layer} output (${ref ? reader.urlFor(parseOutputRef(ref).key) : 'not in the manifest'})`);
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
      ...(input ? { input: { bytes: input, view: { preprocess: info.preprocess, imageSize: info.imageSize } } } : {}),
      activation: { ...activation, layout: info.layout },
      channels: options.channels,
      size: options.size,
      title: `${datasetId} / ${sample.id} / ${layer} (${activation.shape.join('x')})`,
    });
    const out = path.resolve(options.out ?? `${datasetId}-${sample.id}-${layer}.png`);
    await writeFile(out, png);
    process.stdout.write(options.json ? `${JSON.stringify({ datasetId, sample: sample.id, layer, shape: activation.shape, path: out })}\n` : `${out}\n`);
    return 0;
  } finally {
    await reader.close();
  }
}

/** Adds `layertap show` to the CLI. */
export function registerShowCommand(program: Command, options: ShowCommandOptions): Command {
  return program
    .command('show')
    .description("write a PNG of one sample's most active feature maps beside its input image")
    .argument('<dataset>', 'dataset id, or its output folder (s3://bucket/prefix/<id>, file:///dir/<id> or a path), read without Redis')
    .option('--sample <idOrUri>', 'sample id or URI (default: the first successful sample)')
    .option('--layer <spec>', 'layer spec or canonical name (default: the first layer of the dataset)')
    .option('--out <file.png>', 'where to write the PNG (default: <datasetId>-<sample>-<layer>.png)')
    .option('--channels <n>', 'channels shown, the most active by mean activation', positiveInt, DEFAULT_MONTAGE_CHANNELS)
    .option('--size <px>', 'side of one channel tile in pixels', positiveInt, DEFAULT_MONTAGE_TILE)
    .option('--json', 'print JSON', false)
    .action((dataset: string, opts: ShowOptions) =>
      options.run(() => withContext(readProducerConfig(), 'command', (ctx) => showCommand(ctx, dataset, opts))),
    );
}
