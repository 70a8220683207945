import { Command, CommanderError, Option } from 'commander';
import path from 'node:path';
import { ZodError } from 'zod';
import {
  BackendName,
  Dtype,
  EngineName,
  ExifOrientation,
  ErrorCode,
  ExitCode,
  Layout,
  OutputFormat,
  Pool,
  Preprocess,
  ValidationError,
  describeError,
  engineTargets,
  formatIssues,
  isLayertapError,
} from '@layertap/contracts';
import { applyProcessDefaults, isHelpOrVersion, usageErrorLine } from '@layertap/config';
import { readProducerConfig } from './config';
import { withContext } from './context';
import { demoCommand } from './commands/demo';
import { listCommand } from './commands/list';
import { cancelCommand, forgetCommand, retryCommand, statusCommand } from './commands/manage';
import { registerBenchCommand } from './commands/bench';
import { registerExportCommand } from './commands/export';
import { registerLayersCommand } from './commands/layers';
import { registerShowCommand } from './commands/show';
import { submitCommand } from './commands/submit';
import { registerWeightsCommands } from './commands/weights';
import { batchSize, channelTriple, chunkSize, imageSize, intIn, modelOption, nonNegativeInt, outputUri, retentionOption, type ModelChoice } from './options';
import { version } from './version';
// The names only: the weights readers behind @layertap/model's index are for the weights commands.
import { DEFAULT_WEIGHTS, PUBLISHED_WEIGHTS_NAMES } from '@layertap/model/weights';

function layerList(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)];
}

/** Writes one error line and exits with `code` at once: a probe that gave up may leave a stuck call behind. */
function fail(code: number, line: string): never {
  process.stderr.write(`layertap: ${line}\n`);
  process.exit(code);
}

/** Runs a command: its result is the exit code; errors become one line and an exit code (see `ExitCode`). */
async function run(action: () => Promise<number>): Promise<void> {
  let code: number;
  try {
    code = await action();
  } catch (err) {
    if (err instanceof ZodError) fail(ExitCode.BadRequest, `error [invalid_request]: ${formatIssues(err)}`);
    const prefix = isLayertapError(err) ? `error [${err.code}]` : 'error';
    fail(err instanceof ValidationError ? ExitCode.BadRequest : ExitCode.Error, `${prefix}: ${describeError(err)}`);
  }
  process.exitCode = code;
}

/** `--mean` and `--std` go together. */
function normalize(mean: [number, number, number] | undefined, std: [number, number, number] | undefined): { normalize: { mean: [number, number, number]; std: [number, number, number] } } | undefined {
  if (mean === undefined && std === undefined) return undefined;
  if (mean === undefined || std === undefined) throw new ValidationError(ErrorCode.InvalidRequest, `--${mean === undefined ? 'std' : 'mean'} needs --${mean === undefined ? 'mean' : 'std'} too: give both, R,G,B on the [0, 1] scale`);
  return { normalize: { mean, std } };
}

/** A flag that the command needs (checked after unknown options, so a typo is reported as one). */
function required<T>(value: T | undefined, flag: string, what: string): T {
  if (value === undefined) throw new ValidationError(ErrorCode.InvalidRequest, `missing ${flag}: ${what}`);
  return value;
}

applyProcessDefaults();
// `layertap submit ... | head -1`: the reader left; what is left to print has nowhere to go. Without this
// handler the write error is an unhandled 'error' event and a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

// Parser errors (unknown option, bad value, missing argument) are printed by `fail` as one line, exit 2.
const program = new Command('layertap')
  .description('Turn image datasets into per-sample VGG16 activations: submit, watch, retry.')
  .version(version)
  .exitOverride()
  .configureOutput({ outputError: () => undefined });

program
  .command('submit')
  .description('validate a dataset and enqueue it')
  .argument('<source>', 'text file of URIs, .jsonl/.csv manifest (uri, id), image directory, or s3:// prefix')
  .option('--model <name|file.onnx>', 'the model: vgg16, resnet50 (torchvision; ONNX Runtime only), or an ONNX file (path, file://, http(s):// or s3:// URI; it carries its weights); `layertap layers --model M` lists its layers', modelOption, { model: 'vgg16' } as ModelChoice)
  .option('--layer <spec...>', 'layer(s): for vgg16 Keras names (block2_pool, fc2) or torchvision indices (features.9); for resnet50 torchvision names (layer3, layer4.2.relu); comma-separated or repeated', layerList)
  .option('--output <uri>', 'where outputs go: s3://bucket/prefix or file:///abs/dir or a directory path (relative to here)')
  .option(
    '--weights <name|uri>',
    `weights: random (seeded by --seed); for vgg16 also ${PUBLISHED_WEIGHTS_NAMES.join(', ')} (downloaded once, checked, cached), ` +
      `or a .h5, .safetensors, .pth or TF.js model; for resnet50 a torchvision state_dict (.pth, .safetensors); as a path, file://, http(s):// or s3:// URI (default: ${DEFAULT_WEIGHTS})`,
  )
  .addOption(
    new Option('--exif-orientation <mode>', 'EXIF orientation of photos: ignore (as torchvision\'s loader: the stored pixels) or apply (turn them upright)')
      .choices(ExifOrientation.options)
      .default('ignore'),
  )
  .addOption(new Option('--preprocess <mode>', "preprocessing (default: the weights' training: caffe for Keras files, torchvision otherwise)").choices(Preprocess.options))
  .option('--mean <r,g,b>', 'per-channel mean on the [0, 1] scale, in place of the preprocessing\'s (torchvision modes; e.g. 0.5,0.5,0.5); with --std', channelTriple('--mean', false))
  .option('--std <r,g,b>', 'per-channel std on the [0, 1] scale, in place of the preprocessing\'s; with --mean', channelTriple('--std', true))
  .option('--image-size <n>', 'network input size (crop size for torchvision), 32 to 1024', imageSize, 224)
  .option('--batch-size <n|auto>', 'largest batch a worker runs (1 to 1024), or auto: the largest that fits its memory budget', batchSize, 16)
  .option('--chunk-size <n>', 'samples per chunk job, 1 to 100000 (default 64, or LAYERTAP_CHUNK_SIZE)', chunkSize)
  .addOption(new Option('--dtype <dtype>', 'stored dtype').choices(Dtype.options).default('float32'))
  .addOption(new Option('--layout <layout>', 'stored layout: chw as PyTorch, hwc as Keras').choices(Layout.options).default('chw'))
  .addOption(new Option('--pool <pool>', 'global spatial pooling of each layer').choices(Pool.options).default('none'))
  .addOption(new Option('--format <format>', 'npy: one .npy per sample and layer; shards: one safetensors file per chunk').choices(OutputFormat.options).default('npy'))
  .option('--seed <n>', 'seed of random weights (--weights random)', nonNegativeInt, 0)
  .option('--dataset-id <id>', 'dataset id (default: derived from the source and settings)')
  .option('--retention <duration>', 'how long Redis keeps the finished dataset\'s state and sample index: 90s, 12h, 30d or forever (default LAYERTAP_RETENTION or 30d)', retentionOption)
  .option('--wait', 'show progress until the dataset is done; exit 0 all ok, 3 finished with failures, 4 stopped without finishing', false)
  .option('--json', 'print JSON', false)
  .action((source: string, opts) =>
    run(() => {
      const layers = required<string[]>(opts.layer, '--layer <spec>', 'the layer(s) to extract, e.g. --layer block2_pool,features.16');
      const output = outputUri(required<string>(opts.output, '--output <uri>', 'where outputs go: s3://bucket/prefix, file:///absolute/dir or a directory path'));
      const config = readProducerConfig();
      const retention: number | 'forever' | undefined = opts.retention;
      const retentionSeconds = retention === 'forever' ? undefined : (retention ?? config.retentionSeconds);
      return withContext(config, opts.wait ? 'waiting' : 'command', (ctx) =>
        submitCommand(ctx, {
          model: (opts.model as ModelChoice).model,
          ...('file' in opts.model ? { onnxModel: (opts.model as { file: string }).file } : {}),
          ...(normalize(opts.mean, opts.std) ?? {}),
          source,
          layers,
          output,
          ...(retentionSeconds ? { retentionSeconds } : {}),
          ...(opts.weights ? { weights: opts.weights } : {}),
          ...(opts.preprocess ? { preprocess: opts.preprocess } : {}),
          imageSize: opts.imageSize,
          exifOrientation: opts.exifOrientation,
          batchSize: opts.batchSize,
          chunkSize: opts.chunkSize ?? config.defaultChunkSize,
          dtype: opts.dtype,
          layout: opts.layout,
          pool: opts.pool,
          format: opts.format,
          seed: opts.seed,
          ...(opts.datasetId !== undefined ? { datasetId: opts.datasetId } : {}),
          wait: opts.wait,
          json: opts.json,
        }),
      );
    }),
  );

program
  .command('status')
  .description('counts, failures by reason and output location of a dataset')
  .argument('<datasetId>')
  .option('--watch', 'refresh the view until the dataset finishes; exit 0 all ok, 3 finished with failures, 4 stopped without finishing', false)
  .option('--json', 'print JSON (with --watch: one JSON line per change)', false)
  .action((datasetId: string, opts) =>
    run(() => withContext(readProducerConfig(), opts.watch ? 'waiting' : 'command', (ctx) => statusCommand(ctx, datasetId, opts))),
  );

program
  .command('list')
  .description('the datasets Redis knows, newest first: id, state, samples ok/failed/cancelled/pending, started, duration, output')
  .option('--limit <n>', 'most datasets shown, 1 to 10000', intIn({ min: 1, max: 10_000 }), 100)
  .option('--json', 'print a JSON array', false)
  .action((opts) => run(() => withContext(readProducerConfig(), 'command', (ctx) => listCommand(ctx, opts))));

program
  .command('cancel')
  .description('stop a dataset: samples not yet run are recorded as cancelled (a dataset that stopped gets its manifest written now)')
  .argument('<datasetId>')
  .option('--json', 'print JSON', false)
  .action((datasetId: string, opts) => run(() => withContext(readProducerConfig(), 'command', (ctx) => cancelCommand(ctx, datasetId, opts))));

program
  .command('retry')
  .description('run the failed, cancelled and never-run samples of a dataset that is not running again (and write its manifest)')
  .argument('<datasetId>')
  .option('--wait', 'show progress until the retry is done', false)
  .option('--json', 'print JSON', false)
  .action((datasetId: string, opts) =>
    run(() => withContext(readProducerConfig(), opts.wait ? 'waiting' : 'command', (ctx) => retryCommand(ctx, datasetId, opts))),
  );

program
  .command('forget')
  .description("remove a dataset's state, sample index and jobs from Redis (the outputs stay); refused while it runs")
  .argument('<datasetId>')
  .option('--json', 'print JSON', false)
  .action((datasetId: string, opts) => run(() => withContext(readProducerConfig(), 'command', (ctx) => forgetCommand(ctx, datasetId, opts))));

registerWeightsCommands(program, { run });
registerLayersCommand(program, run);
registerBenchCommand(program, { run });
registerShowCommand(program, { run });
registerExportCommand(program, { run });

program
  .command('demo')
  .description('start redis-server and an S3 server, extract the sample photos with one worker, print where the files are')
  .option('--dashboard', 'keep the dashboard up afterwards and print its URL and credentials', false)
  .option('--dir <dir>', 'where the demo keeps its data', path.join(process.cwd(), '.layertap', 'demo'))
  .option('--port <n>', 'dashboard port', intIn({ min: 1, max: 65535 }), 3000)
  .addOption(new Option('--engine <engine>', "the worker's engine, as layertap-worker takes it").choices(EngineName.options).default('auto'))
  .addOption(new Option('--backend <name>', "the engine's backend, as layertap-worker takes it").choices(BackendName.options).default('auto'))
  .action((opts) =>
    run(() => {
      // The same vocabulary and check as the worker's: an impossible pair exits 2 before anything starts.
      engineTargets(opts.engine, opts.backend);
      return demoCommand(opts);
    }),
  );

program.parseAsync().catch((err: unknown) => {
  if (err instanceof CommanderError) {
    // Help asked for: 0. Help shown because no command was given: a bad request.
    if (isHelpOrVersion(err)) process.exit(err.exitCode === 0 ? ExitCode.Ok : ExitCode.BadRequest);
    fail(ExitCode.BadRequest, `error: ${usageErrorLine(err)}`);
  }
  fail(ExitCode.Error, `error: ${describeError(err)}`);
});
