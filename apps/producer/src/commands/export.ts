// `layertap export <dataset> --layer L --to out.npy`: one layer of every ok sample as one stacked array.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Command, Option } from 'commander';
import { Dtype, ErrorCode, Pool, ValidationError } from '@layertap/contracts';
import { exportLayer, exportPaths } from '@layertap/datasets';
import { readProducerConfig } from '../config';
import { withContext, type CliContext } from '../context';
import { openDataset } from '../open-dataset';
import { createProgressBar } from '../progress-bar';

/** What a command action returns: its exit code. */
type Action = () => Promise<number>;

export interface ExportCommandOptions {
  /** Runs the action: the CLI passes its `run()` (prints errors, sets the exit code). */
  run: (action: Action) => Promise<void>;
}

export interface ExportOptions {
  layer: string;
  to: string;
  pool: Pool;
  dtype?: Dtype;
  json: boolean;
}

/** Creates the folder `--to` names (as `mkdir -p`), or says in one line why it cannot be. */
async function makeParent(to: string): Promise<void> {
  const dir = path.dirname(to);
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOTDIR' || code === 'EEXIST' ? 'a file is in the way of the folder' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (err as Error).message;
    throw new ValidationError(ErrorCode.InvalidRequest, `--to ${to}: cannot create the folder ${dir}: ${why}`);
  }
}

/** Writes the stacked array and its ids; a bad `--to` is refused before anything is read. */
export async function exportCommand(ctx: CliContext, dataset: string, options: ExportOptions): Promise<number> {
  const to = path.resolve(options.to);
  exportPaths(to);
  const { reader, info } = await openDataset(ctx, dataset);
  await makeParent(to).catch(async (err: unknown) => {
    await reader.close();
    throw err;
  });
  const bar = createProgressBar(process.stderr, `${reader.datasetId} ${options.layer}`);
  try {
    const result = await exportLayer(reader, info, {
      layer: options.layer,
      to,
      pool: options.pool,
      ...(options.dtype ? { dtype: options.dtype } : {}),
      onProgress: (p) => bar.update(p.bytes, p.totalBytes),
    });
    bar.done();
    process.stdout.write(
      options.json
        ? `${JSON.stringify({ ...result, source: reader.uri })}\n`
        : `${result.path}: ${result.shape.join(' x ')} ${result.dtype} (${result.layer} of ${result.datasetId})\n${result.idsPath}: the ${result.shape[0]} sample ids, same order\n`,
    );
    return 0;
  } finally {
    bar.done();
    await reader.close();
  }
}

/** Adds `layertap export` to the CLI. */
export function registerExportCommand(program: Command, options: ExportCommandOptions): Command {
  return program
    .command('export')
    .description("write one layer of a dataset's ok samples as one stacked (N, ...) array, in manifest order, with the ids beside it")
    .argument('<dataset>', 'dataset id, or its output folder (s3://bucket/prefix/<id>, file:///dir/<id> or a path), read without Redis')
    .requiredOption('--layer <spec>', 'layer spec or canonical name')
    .requiredOption('--to <file>', 'out.npy or out.safetensors; the ids go to out.ids.txt beside it')
    .addOption(new Option('--pool <pool>', 'global spatial pooling of each (C,H,W) or (H,W,C) array to (C,)').choices(Pool.options).default('none'))
    .addOption(new Option('--dtype <dtype>', "exported dtype (default: the dataset's)").choices(Dtype.options))
    .option('--json', 'print JSON', false)
    .action((dataset: string, opts: ExportOptions) =>
      options.run(() => withContext(readProducerConfig(), 'command', (ctx) => exportCommand(ctx, dataset, opts))),
    );
}
