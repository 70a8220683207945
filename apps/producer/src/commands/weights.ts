// `layertap weights fetch | convert | inspect`: getting VGG16 weights and checking what a file can serve.
import { S3Client } from '@aws-sdk/client-s3';
import { createTrustedFetcher, type ImageFetcher } from '@layertap/imaging';
import { Argument, Command, InvalidArgumentError, Option } from 'commander';
import { ErrorCode, BUILTIN_MODELS, ModelName, ValidationError } from '@layertap/contracts';
import type * as Model from '@layertap/model';
import { PUBLISHED_WEIGHTS_ALIASES, PUBLISHED_WEIGHTS_NAMES } from '@layertap/model/weights';
import { readProducerConfig } from '../config';
import { createProgressBar } from '../progress-bar';

/** What a command action returns: its exit code. */
type Action = () => Promise<number>;

export interface WeightsCommandsOptions {
  /**
   * Runs each action: the CLI passes its `run()` (prints errors, sets the exit code). Default: sets
   * `process.exitCode` to the action's result and lets errors reach `parseAsync`.
   */
  run?: (action: Action) => Promise<void>;
  /** Where results go. Default `process.stdout`. */
  stdout?: NodeJS.WritableStream;
  /** Where progress goes. Default `process.stderr`. */
  stderr?: NodeJS.WritableStream;
}

const FORMATS = ['safetensors', 'tfjs-layers', 'keras-h5'] as const;
type Format = (typeof FORMATS)[number];
const NAMES = [...PUBLISHED_WEIGHTS_NAMES, ...Object.keys(PUBLISHED_WEIGHTS_ALIASES)];

// Loaded on use: the weights readers (h5wasm among them) are for these commands only.
function model(): Promise<typeof Model> {
  return import('@layertap/model');
}

/** Adds `layertap weights fetch`, `convert` and `inspect` to `program`; returns the `weights` command. */
export function registerWeightsCommands(program: Command, options: WeightsCommandsOptions = {}): Command {
  const run = options.run ?? (async (action: Action) => void (process.exitCode = await action()));
  const out = options.stdout ?? process.stdout;
  const err = options.stderr ?? process.stderr;
  const print = (line: string) => void out.write(`${line}\n`);

  const weights = program.command('weights').description('get VGG16 weights files, convert them, and see what a file can serve');

  weights
    .command('fetch')
    .description('download published VGG16 weights, checked against their published hash, into the weights cache (or a directory)')
    .addArgument(
      new Argument('<name>', 'keras-imagenet (with the classifier head), keras-imagenet-notop (convolutional layers only) or torchvision-imagenet').choices(NAMES),
    )
    .option('--to <dir>', 'save as <dir>/<published file name> instead of into the weights cache (to carry the file to another machine)')
    .option('--cache-dir <dir>', 'the weights cache (default: LAYERTAP_WEIGHTS_CACHE or ~/.cache/layertap/weights on Linux)')
    .option('--mirror <url>', 'base URL serving the published paths (default: LAYERTAP_WEIGHTS_MIRROR, else the published URLs)')
    .option('--json', 'print JSON', false)
    .action((name: string, opts: { to?: string; cacheDir?: string; mirror?: string; json: boolean }) =>
      run(async () => {
        const m = await model();
        const progress = createProgressBar(err, `fetching ${name}`);
        const result = await m
          .fetchPublishedWeights(name, {
            ...(opts.to ? { to: opts.to } : {}),
            ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}),
            ...(opts.mirror ? { mirror: opts.mirror } : {}),
            onProgress: progress.update,
          })
          .finally(progress.done);
        if (opts.json) {
          print(JSON.stringify(result));
          return 0;
        }
        print(
          result.downloaded
            ? `downloaded ${result.url}${result.resumedFrom ? ` (resumed at ${formatBytes(result.resumedFrom)})` : ''}`
            : `already there: ${result.path}`,
        );
        print(`saved     ${result.path}${result.cached ? ' (weights cache)' : ''}`);
        print(`size      ${formatBytes(result.size)}; matches ${m.describeChecksum(result.checksum)}`);
        print(`sha256    ${result.sha256}`);
        print(
          result.cached
            ? `use it    layertap submit <source> --weights ${result.name} ... (workers need it in their own cache: they download it, or share LAYERTAP_WEIGHTS_CACHE)`
            : `use it    layertap submit <source> --weights ${result.path} ... (workers must be able to read that path; upload it to s3:// for remote workers)`,
        );
        return 0;
      }),
    );

  weights
    .command('convert')
    .description('convert weights (any readable format) to safetensors, a TF.js layers directory or Keras HDF5')
    .argument('<in>', 'weights to read: a published name, or a path, file://, http(s):// or s3:// (.h5, .safetensors, .pth, TF.js model.json or its directory)')
    .argument('<out>', 'output: <file>.safetensors, <file>.h5, or a directory (TF.js layers model)')
    .addOption(new Option('--format <format>', 'output format (default: from <out>)').choices(FORMATS))
    .addOption(new Option('--naming <naming>', 'safetensors keys: keras (TF layout, default) or torchvision (a torchvision state_dict)').choices(['keras', 'torchvision']).default('keras'))
    .option('--force', 'replace an existing output', false)
    .option('--cache-dir <dir>', 'cache for downloaded weights')
    .option('--json', 'print JSON', false)
    .action((input: string, output: string, opts: { format?: Format; naming: 'keras' | 'torchvision'; force: boolean; cacheDir?: string; json: boolean }) =>
      run(async () => {
        const m = await model();
        const format = opts.format ?? formatFromPath(output);
        if (opts.naming === 'torchvision' && format !== 'safetensors') {
          throw new ValidationError(ErrorCode.InvalidRequest, '--naming torchvision applies to safetensors output only');
        }
        const loaded = await loadWithProgress(m, input, opts.cacheDir, err);
        const converted = await m.convertWeights(loaded, output, format, { naming: opts.naming, overwrite: opts.force });
        if (opts.json) {
          print(JSON.stringify({ input: loaded.description, sha256: loaded.sha256, output: converted }));
          return 0;
        }
        print(`read      ${loaded.description}`);
        print(`wrote     ${converted.path} (${converted.format}${format === 'safetensors' ? `, ${opts.naming} keys` : ''}, ${converted.files.length} file${converted.files.length === 1 ? '' : 's'}, ${formatBytes(converted.bytes)})`);
        print(`sha256    ${converted.sha256}`);
        print(`tensors   ${loaded.tensors.size}; serves ${m.weightsCoverage(loaded.tensors).summary}`);
        return 0;
      }),
    );

  weights
    .command('inspect')
    .description('show a weights file: format, sha256, tensors and shapes, and which layers it can serve')
    .argument('<uri>', 'a published name (torchvision-imagenet, ...), or a path, file://, http(s):// or s3:// (.h5, .safetensors, .pth, TF.js)')
    .option('--cache-dir <dir>', 'cache for downloaded weights')
    .addOption(new Option('--model <name>', 'the model the weights are for').choices(BUILTIN_MODELS).default('vgg16'))
    .option('--json', 'print JSON', false)
    .action((uri: string, opts: { cacheDir?: string; json: boolean; model: ModelName }) =>
      run(async () => {
        const m = await model();
        if (opts.model !== 'vgg16') return inspectNative(m, m.getModel(opts.model), uri, opts, print);
        const loaded = await loadWithProgress(m, uri, opts.cacheDir, err);
        const coverage = m.weightsCoverage(loaded.tensors);
        const tensors = [...loaded.tensors].map(([name, tensor]) => ({
          name,
          shape: tensor.shape,
          ...(loaded.origins.has(name) ? { stored: loaded.origins.get(name) } : {}),
        }));
        if (opts.json) {
          const { format, naming, sha256, size, metadata, description } = loaded;
          const preprocess = m.trainedPreprocess(loaded);
          print(JSON.stringify({ uri: m.displayUri(uri), description, format, naming, sha256, size, metadata, preprocess, coverage, tensors }));
          return 0;
        }
        const layout = loaded.metadata.layout && loaded.format === 'keras-h5' ? `, ${loaded.metadata.layout} layout` : '';
        print(`uri       ${m.displayUri(uri)}`);
        const serialization = loaded.format === 'pytorch' ? ` (${loaded.metadata.serialization} format, ${loaded.metadata.dtypes})` : '';
        print(`format    ${loaded.format}${serialization}${layout}${loaded.naming === 'torchvision' ? ', torchvision keys (converted to TF layout)' : ''}`);
        const trained = m.trainedPreprocess(loaded);
        print(`preproc   ${trained.mode} (${trained.reason})`);
        print(`sha256    ${loaded.sha256}`);
        print(`size      ${formatBytes(loaded.size)}`);
        print(`serves    ${coverage.summary}`);
        print(`head      ${coverage.classifierHead ? 'yes: fc1, fc2 and predictions' : 'no: fc1, fc2 and predictions need weights with the classifier head'}`);
        const metadata = Object.entries(loaded.metadata).filter(([key]) => !(loaded.format === 'keras-h5' && key === 'layout'));
        if (metadata.length > 0) print(`metadata  ${metadata.map(([k, v]) => `${k}=${v}`).join('\n          ')}`);
        print(`tensors   ${tensors.length} (TF layout)`);
        const width = Math.max(...tensors.map((t) => t.name.length));
        for (const t of tensors) print(`  ${t.name.padEnd(width)}  [${t.shape.join(', ')}]${t.stored ? `  <- ${t.stored}` : ''}`);
        return 0;
      }),
    );
  return weights;
}

/** `weights inspect --model M` for a torch-layout model: tensors by their own keys and the layers they serve. */
async function inspectNative(m: typeof Model, descriptor: Model.ModelDescriptor, uri: string, opts: { cacheDir?: string; json: boolean }, print: (line: string) => void): Promise<number> {
  const loaded = await m.loadWeights(uri, { model: descriptor, fetchBytes: fetchBytes(), ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}) });
  // The deepest layer whose every needed tensor the file has (a model is cut after the deepest hook).
  let deepest: Model.ModelLayer | undefined;
  for (const layer of descriptor.layers) {
    if (!descriptor.requiredWeights([layer.name]).every((spec) => loaded.tensors.has(spec.name))) break;
    deepest = layer;
  }
  const tensors = [...loaded.tensors].map(([name, tensor]) => ({ name, shape: tensor.shape }));
  const summary = deepest ? `every layer up to ${deepest.name}` : 'no layer (the first layer\'s tensors are missing)';
  if (opts.json) {
    const { format, naming, sha256, size, metadata, description } = loaded;
    print(JSON.stringify({ uri: m.displayUri(uri), model: descriptor.name, description, format, naming, sha256, size, metadata, serves: deepest?.name ?? null, tensors }));
    return 0;
  }
  print(`uri       ${m.displayUri(uri)}`);
  print(`model     ${descriptor.name} (${descriptor.architecture})`);
  print(`format    ${loaded.format}, torchvision keys (torch layout)`);
  print(`sha256    ${loaded.sha256}`);
  print(`size      ${formatBytes(loaded.size)}`);
  print(`serves    ${summary}`);
  print(`tensors   ${tensors.length} of ${descriptor.weights.length}`);
  const width = Math.max(...tensors.map((t) => t.name.length));
  for (const t of tensors) print(`  ${t.name.padEnd(width)}  [${t.shape.join(', ')}]`);
  return 0;
}

function formatFromPath(output: string): Format {
  const lower = output.toLowerCase();
  if (lower.endsWith('.safetensors')) return 'safetensors';
  if (lower.endsWith('.h5') || lower.endsWith('.hdf5')) return 'keras-h5';
  if (/\.[a-z0-9]{1,12}$/.test(lower.split(/[\\/]/).pop() ?? '')) {
    throw new InvalidArgumentError(`cannot tell the output format from ${output}: use .safetensors, .h5, a directory name, or --format`);
  }
  return 'tfjs-layers';
}

/** Loads any weights the CLI accepts, drawing a progress bar while a published name downloads. */
async function loadWithProgress(m: typeof Model, uri: string, cacheDir: string | undefined, err: NodeJS.WritableStream): Promise<Model.LoadedWeights> {
  const progress = createProgressBar(err, `downloading ${m.displayUri(uri)}`);
  return m
    .loadWeights(uri, { fetchBytes: fetchBytes(), ...(cacheDir ? { cacheDir } : {}), published: { onProgress: progress.update } })
    .finally(progress.done);
}

/** Downloads http(s):// and s3:// (with the S3 settings of the environment, AWS_*) for the weights readers. */
export function fetchBytes(): Model.FetchBytes {
  let fetcher: ImageFetcher | undefined;
  return (uri) => (fetcher ??= createTrustedFetcher({ s3: new S3Client({ ...readProducerConfig().s3, maxAttempts: 3 }), allowHosts: readProducerConfig().allowHosts })).fetch(uri);
}

function formatBytes(bytes: number): string {
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB (${bytes.toLocaleString('en-US')} bytes)` : `${bytes.toLocaleString('en-US')} bytes`;
}
