// `layertap layers --model M`: the hookable layers of a model with their output shapes at an input size. For
// an ONNX file: every float32 tensor of its graph, with the shapes a probe run on zeros measured.
import { Command } from 'commander';
import type { BuiltinModelName } from '@layertap/contracts';
// The table only: no TensorFlow.js, no ONNX Runtime (for built-in models).
import { getModel, readOnnxFile } from '@layertap/model/models';
import { loadOnnxShapeProbe } from '@layertap/submission';
import { imageSize, modelOption, type ModelChoice } from '../options';
import { fetchBytes } from './weights';

type Action = () => Promise<number>;

export interface LayersRow {
  name: string;
  aliases: string[];
  kind: string;
  shape: number[];
}

/** Every layer of `model` in forward order with its (C,H,W) or (C,) shape at `size`. */
export function listLayers(model: BuiltinModelName, size: number): LayersRow[] {
  const descriptor = getModel(model);
  descriptor.checkImageSize(size);
  return descriptor.layers.map((layer) => ({ name: layer.name, aliases: [...layer.aliases], kind: layer.kind, shape: descriptor.outputShape(layer.name, size) }));
}

/** Every float32 tensor of an ONNX file's graph in graph order, with its per-sample shape at `size` (ONNX Runtime runs it once). */
export async function listOnnxLayers(uri: string, size: number): Promise<{ title: string; rows: LayersRow[] }> {
  const file = await readOnnxFile(uri, { fetchBytes: fetchBytes() });
  const { readOnnxModel } = await import('@layertap/model/onnx');
  const probeOnnxShapes = await loadOnnxShapeProbe();
  const info = readOnnxModel(file.bytes, file.source);
  const tensors = info.tensors.filter((t) => t.elemType === 'float32' && t.fromInput !== false);
  const shapes = await probeOnnxShapes(file.bytes, tensors.map((t) => t.name), { imageSize: size, source: file.source });
  const rows = tensors.map((t) => ({ name: t.name, aliases: t.node && t.node !== t.name ? [t.node] : [], kind: t.op ?? 'input', shape: shapes.get(t.name) ?? [] }));
  const title = `${file.source}: ONNX, ${info.nodes} nodes, input ${info.input.name}, sha256 ${file.sha256}`;
  return { title, rows };
}

export function registerLayersCommand(program: Command, run: (action: Action) => Promise<void>): Command {
  return program
    .command('layers')
    .description('list the layers a model can hook (--layer), with their output shapes at an input size')
    .option('--model <name|file.onnx>', 'the model: vgg16, resnet50, or an ONNX file (path or URI)', modelOption, { model: 'vgg16' } as ModelChoice)
    .option('--image-size <n>', 'network input size, 32 to 1024', imageSize, 224)
    .option('--json', 'print JSON', false)
    .action((opts: { model: ModelChoice; imageSize: number; json: boolean }) =>
      run(async () => {
        const choice = opts.model;
        const listed =
          choice.model === 'onnx'
            ? await listOnnxLayers(choice.file, opts.imageSize)
            : { title: `${getModel(choice.model).architecture}; output shapes (C,H,W) at ${opts.imageSize} px`, rows: listLayers(choice.model, opts.imageSize) };
        const { rows } = listed;
        if (opts.json) {
          process.stdout.write(`${JSON.stringify({ model: choice.model === 'onnx' ? choice.file : choice.model, imageSize: opts.imageSize, layers: rows })}\n`);
          return 0;
        }
        const width = Math.max(...rows.map((row) => row.name.length));
        const shapeWidth = Math.max(...rows.map((row) => row.shape.join('x').length));
        process.stdout.write(`${listed.title}${choice.model === 'onnx' ? `; per-sample shapes at ${opts.imageSize} px` : ''}\n`);
        for (const row of rows) {
          const aliases = row.aliases.length > 0 ? `  also ${row.aliases.join(', ')}` : '';
          process.stdout.write(`${row.name.padEnd(width)}  ${row.shape.join('x').padEnd(shapeWidth)}  ${row.kind}${aliases}\n`);
        }
        return 0;
      }),
    );
}
