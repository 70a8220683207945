// `layertap layers --model M`: the hookable layers of a model with their output shapes at an input size.
import { Command, Option } from 'commander';
import { ModelName } from '@layertap/contracts';
// The table only: no TensorFlow.js, no ONNX Runtime.
import { getModel } from '@layertap/model/models';
import { imageSize } from '../options';

type Action = () => Promise<number>;

export interface LayersRow {
  name: string;
  aliases: string[];
  kind: string;
  shape: number[];
}

/** Every layer of `model` in forward order with its (C,H,W) or (C,) shape at `size`. */
export function listLayers(model: ModelName, size: number): LayersRow[] {
  const descriptor = getModel(model);
  descriptor.checkImageSize(size);
  return descriptor.layers.map((layer) => ({ name: layer.name, aliases: [...layer.aliases], kind: layer.kind, shape: descriptor.outputShape(layer.name, size) }));
}

export function registerLayersCommand(program: Command, run: (action: Action) => Promise<void>): Command {
  return program
    .command('layers')
    .description('list the layers a model can hook (--layer), with their output shapes at an input size')
    .addOption(new Option('--model <name>', 'the model').choices(ModelName.options).default('vgg16'))
    .option('--image-size <n>', 'network input size, 32 to 1024', imageSize, 224)
    .option('--json', 'print JSON', false)
    .action((opts: { model: ModelName; imageSize: number; json: boolean }) =>
      run(async () => {
        const rows = listLayers(opts.model, opts.imageSize);
        if (opts.json) {
          process.stdout.write(`${JSON.stringify({ model: opts.model, imageSize: opts.imageSize, layers: rows })}\n`);
          return 0;
        }
        const width = Math.max(...rows.map((row) => row.name.length));
        const shapeWidth = Math.max(...rows.map((row) => row.shape.join('x').length));
        process.stdout.write(`${getModel(opts.model).architecture}; output shapes (C,H,W) at ${opts.imageSize} px\n`);
        for (const row of rows) {
          const aliases = row.aliases.length > 0 ? `  also ${row.aliases.join(', ')}` : '';
          process.stdout.write(`${row.name.padEnd(width)}  ${row.shape.join('x').padEnd(shapeWidth)}  ${row.kind}${aliases}\n`);
        }
        return 0;
      }),
    );
}
