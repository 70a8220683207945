import { Command, InvalidArgumentError, Option } from 'commander';
import path from 'node:path';
import { BackendName, Dtype, EngineName, Layout, OutputFormat, Pool, Preprocess, ValidationError, describeError, engineTargets, isLayertapError } from '@layertap/contracts';
import { applyProcessDefaults } from '@layertap/config';
import { readProducerConfig } from './config';
import { withContext } from './context';
import { demoCommand } from './commands/demo';
import { cancelCommand, retryCommand, statusCommand } from './commands/manage';
import { registerBenchCommand } from './commands/bench';
import { registerExportCommand } from './commands/export';
import { registerShowCommand } from './commands/show';
import { submitCommand } from './commands/submit';
import { registerWeightsCommands } from './commands/weights';
// The names only: @layertap/model's index loads TensorFlow.js, which parsing arguments never needs.
import { DEFAULT_WEIGHTS, PUBLISHED_WEIGHTS_NAMES } from '@layertap/model/weights';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { version } = require('../package.json') as { version: string };

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

function batchSizeOption(value: string): number | 'auto' {
  return value === 'auto' ? 'auto' : positiveInt(value);
}

function layerList(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)];
}

/** Runs a command and turns errors into a message and an exit code (2: bad request, 1: anything else). */
async function run(action: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await action();
  } catch (err) {
    const prefix = isLayertapError(err) ? `error [${err.code}]` : 'error';
    process.stderr.write(`layertap: ${prefix}: ${describeError(err)}\n`);
    process.exitCode = err instanceof ValidationError ? 2 : 1;
  }
}

applyProcessDefaults();

const program = new Command('layertap')
  .description('Turn image datasets into per-sample VGG16 activations: submit, watch, retry.')
  .version(version)
  .showHelpAfterError();

program
  .command('submit')
  .description('validate a dataset and enqueue it')
  .argument('<source>', 'text file of URIs, .jsonl/.csv manifest (uri, id), image directory, or s3:// prefix')
  .requiredOption('--layer <spec...>', 'layer(s): Keras names (block2_pool, fc2) or torchvision indices (features.9); comma-separated or repeated', layerList)
  .requiredOption('--output <uri>', 'where outputs go: s3://bucket/prefix or file:///abs/dir')
  .option(
    '--weights <name|uri>',
    `VGG16 weights: random (seeded by --seed), ${PUBLISHED_WEIGHTS_NAMES.join(', ')} (downloaded once, checked, cached), ` +
      `or a .h5, .safetensors, .pth or TF.js model as a path, file://, http(s):// or s3:// URI (default: ${DEFAULT_WEIGHTS})`,
  )
  .addOption(new Option('--preprocess <mode>', "preprocessing (default: the weights' training: caffe for Keras files, torchvision otherwise)").choices(Preprocess.options))
  .option('--image-size <n>', 'network input size (crop size for torchvision)', positiveInt, 224)
  .option('--batch-size <n|auto>', 'largest batch a worker runs, or auto: the largest that fits its memory budget', batchSizeOption, 16)
  .option('--chunk-size <n>', 'samples per chunk job (default 64, or LAYERTAP_CHUNK_SIZE)', positiveInt)
  .addOption(new Option('--dtype <dtype>', 'stored dtype').choices(Dtype.options).default('float32'))
  .addOption(new Option('--layout <layout>', 'stored layout: chw as PyTorch, hwc as Keras').choices(Layout.options).default('chw'))
  .addOption(new Option('--pool <pool>', 'global spatial pooling of each layer').choices(Pool.options).default('none'))
  .addOption(new Option('--format <format>', 'npy: one .npy per sample and layer; shards: one safetensors file per chunk').choices(OutputFormat.options).default('npy'))
  .option('--seed <n>', 'seed of random weights (--weights random)', nonNegativeInt, 0)
  .option('--dataset-id <id>', 'dataset id (default: derived from the source and settings)')
  .option('--wait', 'show progress until the dataset is done', false)
  .option('--json', 'print JSON', false)
  .action((source: string, opts) =>
    run(() => {
      const config = readProducerConfig();
      return withContext(config, opts.wait ? 'waiting' : 'command', (ctx) =>
        submitCommand(ctx, {
          source,
          layers: opts.layer,
          output: opts.output,
          ...(opts.weights ? { weights: opts.weights } : {}),
          ...(opts.preprocess ? { preprocess: opts.preprocess } : {}),
          imageSize: opts.imageSize,
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
  .option('--watch', 'refresh the view until the dataset finishes (exit 0 when it is done)', false)
  .option('--json', 'print JSON (with --watch: one JSON line per change)', false)
  .action((datasetId: string, opts) =>
    run(() => withContext(readProducerConfig(), opts.watch ? 'waiting' : 'command', (ctx) => statusCommand(ctx, datasetId, opts))),
  );

program
  .command('cancel')
  .description('stop a dataset: samples not yet run are recorded as cancelled')
  .argument('<datasetId>')
  .option('--json', 'print JSON', false)
  .action((datasetId: string, opts) => run(() => withContext(readProducerConfig(), 'command', (ctx) => cancelCommand(ctx, datasetId, opts))));

program
  .command('retry')
  .description('run the failed samples of a finished dataset again')
  .argument('<datasetId>')
  .option('--wait', 'show progress until the retry is done', false)
  .option('--json', 'print JSON', false)
  .action((datasetId: string, opts) =>
    run(() => withContext(readProducerConfig(), opts.wait ? 'waiting' : 'command', (ctx) => retryCommand(ctx, datasetId, opts))),
  );

registerWeightsCommands(program, { run });
registerBenchCommand(program, { run });
registerShowCommand(program, { run });
registerExportCommand(program, { run });

program
  .command('demo')
  .description('start redis-server and an S3 server, extract the sample photos with one worker, print where the files are')
  .option('--dashboard', 'keep the dashboard up afterwards and print its URL and credentials', false)
  .option('--dir <dir>', 'where the demo keeps its data', path.join(process.cwd(), '.layertap', 'demo'))
  .option('--port <n>', 'dashboard port', positiveInt, 3000)
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
  process.stderr.write(`layertap: ${describeError(err)}\n`);
  process.exitCode = 1;
});
