// A user's ONNX file behind the model seam. What the plan knows (the hooked tensors, their shapes at the
// dataset's image size, the largest activations on the way) comes from the probe at submit (`OnnxModelRef`);
// the graph itself, cut after the deepest hooked tensor, comes from the file's bytes, which only workers load.
import { ErrorCode, ValidationError, type OnnxModelRef } from '@layertap/contracts';
import type { ModelDescriptor, ModelLayer, OnnxBuild } from '../descriptor';
import { LayerTable } from '../layer-table';

const NO_TFJS = 'an ONNX model runs on ONNX Runtime only (--engine onnx, on the cpu, webgpu or cuda provider)';

/** How an ONNX model is called in messages: its file name. */
export function onnxModelTitle(ref: Pick<OnnxModelRef, 'uri'>): string {
  const name = ref.uri.replace(/[?#].*$/, '').split('/').pop() ?? '';
  return name ? decodeURIComponentSafe(name) : 'ONNX model';
}

/**
 * The descriptor of an ONNX model as a plan fixed it: its layers are the tensors the probe recorded, by their
 * graph names. `bytes`, the file (checked against `ref.sha256` by whoever read it), is needed to build.
 */
export function onnxFileModel(ref: OnnxModelRef, bytes?: Uint8Array): ModelDescriptor {
  const title = onnxModelTitle(ref);
  const layers: ModelLayer[] = ref.tensors.map((t) => ({ name: t.name, kind: t.op, channels: t.shape[0] ?? 0, aliases: t.aliases ?? [], order: t.order }));
  const table = new LayerTable(title, layers, () => `the tensors of ${title}'s graph (\`layertap layers --model ${title}\` lists them)`);
  const shapes = new Map(ref.tensors.map((t) => [t.name, t.shape]));
  const checkImageSize = (imageSize: number) => {
    if (imageSize !== ref.imageSize) {
      throw new ValidationError(ErrorCode.InvalidRequest, `${title} was probed at ${ref.imageSize} px, not ${imageSize}: its shapes are known at ${ref.imageSize} px only`);
    }
  };
  return {
    name: 'onnx',
    title,
    architecture: `ONNX model ${title} (sha256 ${ref.sha256})`,
    layers,
    layer: (spec) => table.layer(spec),
    resolveLayers: (specs) => table.resolve(specs),
    outputShape: (canonical, imageSize) => {
      checkImageSize(imageSize);
      const shape = shapes.get(table.layer(canonical).name);
      return [...(shape ?? [])];
    },
    checkImageSize,
    describeValidSpecs: () => `the tensors of ${title}'s graph`,
    weights: [],
    requiredWeights: () => [],
    engines: { onnx: true, tfjs: NO_TFJS },
    buildOnnx: (options): OnnxBuild => {
      if (!bytes) throw new Error(`internal: ${title} is built from its bytes, which were not loaded`);
      checkImageSize(options.imageSize);
      const rows = table.outputs(options.outputs);
      // The protobuf reader loads only where a graph is built (workers), not with the table.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { cutOnnxModel } = require('../../onnx') as typeof import('../../onnx');
      const cut = cutOnnxModel(bytes, rows.map((row) => row.name), { inputLayout: options.inputLayout ?? 'nhwc', imageSize: options.imageSize, source: title });
      const deepest = rows.reduce((a, b) => (b.order > a.order ? b : a));
      return {
        bytes: cut.bytes,
        outputs: rows.map((row) => ({ name: row.name, sampleShape: [...(shapes.get(row.name) ?? [])] })),
        nodes: cut.ops,
        weightBytes: cut.weightBytes,
        deepest: deepest.name,
        layers: layers.filter((l) => l.order <= deepest.order).map((l) => l.name),
        weights: [],
        name: `${title}_to_${deepest.name}`,
      };
    },
  };
}

function decodeURIComponentSafe(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
