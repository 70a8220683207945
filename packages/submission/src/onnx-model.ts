// `--model file.onnx` at submit: the file is read (size-capped, parsed without running anything), the
// requested tensors resolved, and the graph probed once on zeros so that the plan knows every hooked tensor's
// shape, and the largest activations on the way, before any worker runs it.
import { ErrorCode, ValidationError, type OnnxModelRef, type OnnxTensorRef } from '@layertap/contracts';
import { readOnnxFile, type ReadOnnxFileOptions } from '@layertap/model/models';
import type { OnnxModelInfo, OnnxTensorInfo } from '@layertap/model/onnx';

/** What probes a graph (`probeOnnxShapes` of @layertap/engines; injected by tests). */
export type OnnxShapeProbe = (bytes: Uint8Array, tensors: readonly string[], options: { imageSize: number; batchSize?: number; source: string }) => Promise<Map<string, number[]>>;

export interface PlanOnnxOptions {
  /** `--layer` specs: tensor names, or node names (their first output). */
  layers: readonly string[];
  imageSize: number;
  /** Where workers will load it: an absolute `file://` URI, or the http(s)/s3 URI as given. */
  workerUri: string;
  fetchBytes?: ReadOnnxFileOptions['fetchBytes'];
  maxBytes?: number;
  probe?: OnnxShapeProbe;
}

export interface PlannedOnnxModel {
  ref: OnnxModelRef;
  /** Spec -> tensor name, in request order. */
  resolved: { spec: string; tensor: string }[];
  info: OnnxModelInfo;
  /** One line for the terminal: file, size, sha256, graph. */
  description: string;
}

/** The ONNX model of a submission, checked and probed (see the file's header). */
export async function planOnnxModel(uri: string, options: PlanOnnxOptions): Promise<PlannedOnnxModel> {
  const file = await readOnnxFile(uri, { ...(options.fetchBytes ? { fetchBytes: options.fetchBytes } : {}), ...(options.maxBytes ? { maxBytes: options.maxBytes } : {}) });
  const { readOnnxModel, resolveOnnxTensor } = await import('@layertap/model/onnx');
  const info = readOnnxModel(file.bytes, file.source);
  checkInput(info, options.imageSize, file.source);
  // The spec names the output folder: ONNX names (`/layer3/Relu_output_0`, `onnx::Conv_12`) are made safe for one.
  const resolved = options.layers.map((given) => ({ spec: folderName(given.trim()), tensor: resolveOnnxTensor(info, given.trim()) }));
  const folders = new Map<string, string>();
  const seen = new Map<string, string>();
  for (const { spec, tensor } of resolved) {
    const other = folders.get(spec);
    if (other !== undefined && other !== tensor.name) {
      throw new ValidationError(ErrorCode.InvalidRequest, `tensors ${other} and ${tensor.name} would both be stored in the folder ${spec}: hook one of them per dataset`);
    }
    folders.set(spec, tensor.name);
    if (tensor.fromInput === false) {
      throw new ValidationError(ErrorCode.InvalidRequest, `--layer ${spec}: tensor ${tensor.name} is computed from the model's weights alone, not from the image; hook an activation (\`layertap layers --model ${file.source}\` lists them)`);
    }
    const first = seen.get(tensor.name);
    if (first !== undefined) {
      throw new ValidationError(ErrorCode.InvalidRequest, first === spec ? `layer ${JSON.stringify(spec)} is requested twice` : `--layer names one tensor twice: ${first} and ${spec} are both ${tensor.name}; name it once`);
    }
    seen.set(tensor.name, spec);
  }
  const order = new Map(info.tensors.map((t, i) => [t.name, i]));
  const orderOf = (name: string) => order.get(name) ?? -1;
  const deepest = Math.max(...resolved.map((r) => orderOf(r.tensor.name)));
  // Every float tensor up to the deepest (for the largest activations on the way), once at batch 1; then the
  // graph the workers build, at batch 2, which a graph fixed to one image fails.
  const probe = options.probe ?? (await loadOnnxShapeProbe());
  const wanted = resolved.map((r) => r.tensor.name);
  const path = info.tensors.filter((t, i) => i <= deepest && t.elemType === 'float32' && t.fromInput !== false && !seen.has(t.name)).map((t) => t.name);
  const shapes = await probe(file.bytes, [...wanted, ...path], { imageSize: options.imageSize, source: file.source });
  const batched = await probe(file.bytes, wanted, { imageSize: options.imageSize, batchSize: 2, source: file.source });
  for (const name of wanted) {
    const one = shapes.get(name) ?? [];
    const two = batched.get(name) ?? [];
    if (one.join('x') !== two.join('x')) {
      throw new ValidationError(ErrorCode.InvalidModel, `${file.source}: tensor ${name} is ${one.join('x')} per image alone but ${two.join('x')} in a batch of 2: layertap runs batches; export the model with a dynamic batch axis`);
    }
  }
  const elements = (name: string) => (shapes.get(name) ?? []).reduce((a, b) => a * b, 1);
  const largest = path.sort((a, b) => elements(b) - elements(a)).slice(0, 2);
  const byName = new Map(info.tensors.map((t) => [t.name, t]));
  const aliases = new Map<string, string[]>();
  for (const { spec, tensor } of resolved) if (spec !== tensor.name) aliases.set(tensor.name, [spec]);
  const ref = (name: string): OnnxTensorRef => ({
    name,
    order: orderOf(name),
    op: byName.get(name)?.op ?? 'input',
    shape: shapes.get(name) ?? [],
    ...(aliases.has(name) ? { aliases: aliases.get(name) } : {}),
  });
  const tensors = [...wanted, ...largest].map(ref).sort((a, b) => a.order - b.order);
  return {
    ref: { uri: options.workerUri, sha256: file.sha256, bytes: file.bytes.length, input: info.input.name, imageSize: options.imageSize, tensors },
    resolved: resolved.map((r) => ({ spec: r.spec, tensor: r.tensor.name })),
    info,
    description: `${file.source} (ONNX, ${(file.bytes.length / 1024 ** 2).toFixed(1)} MiB, ${info.nodes} nodes, opset ${opsetOf(info)}, weights in the file, sha256 ${file.sha256})`,
  };
}

/**
 * The output folder of a hooked tensor: its name, or spec, with every character outside a safe id's (letters,
 * digits, `_ . @ + = , -`) made `_`, runs of dots too, and no leading `_`, `.` or `-` (`/layer3/Relu_output_0`
 * -> `layer3_Relu_output_0`).
 */
export function folderName(spec: string): string {
  const safe = spec
    .replace(/[^A-Za-z0-9_.@+=,-]/g, '_')
    .replace(/\.{2,}/g, '_')
    .replace(/^[-._]+/, '')
    .replace(/_{2,}/g, '_');
  return safe.slice(0, 200) || 'tensor';
}

/** The graph's image input must be N x 3 x H x W float32, H and W free or the image size. */
function checkInput(info: OnnxModelInfo, imageSize: number, source: string): void {
  const input: OnnxTensorInfo = info.input;
  const shape = input.shape ?? [];
  const [, channels, height, width] = shape;
  if (channels !== 3 && typeof channels === 'number') {
    throw new ValidationError(ErrorCode.InvalidModel, `${source}: input ${input.name} has ${channels} channels; layertap feeds RGB images (3 channels, NCHW)`);
  }
  const fixed = [height, width].filter((d): d is number => typeof d === 'number');
  if (fixed.some((d) => d !== imageSize)) {
    throw new ValidationError(ErrorCode.InvalidRequest, `${source} takes ${height}x${width} images (input ${input.name}): use --image-size ${fixed[0]}`);
  }
}

function opsetOf(info: OnnxModelInfo): string {
  return String(info.opsets.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? '?');
}

/** ONNX Runtime's probe (@layertap/engines, an optional peer): where it is not installed, a line that says so. */
export async function loadOnnxShapeProbe(): Promise<OnnxShapeProbe> {
  try {
    const engines = await import('@layertap/engines/onnx-probe');
    return engines.probeOnnxShapes;
  } catch (err) {
    throw new ValidationError(
      ErrorCode.InvalidRequest,
      `an .onnx model needs ONNX Runtime here to probe the graph's shapes (install @layertap/engines, which brings onnxruntime-node): ${(err as Error).message.split('\n')[0]}`,
      { cause: err },
    );
  }
}
