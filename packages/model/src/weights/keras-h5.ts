// Keras HDF5 weights, read and written through h5wasm.
import { statSync } from 'node:fs';
import { ErrorCode, LayertapError, ValidationError } from '@layertap/contracts';
import { type WeightSpec, type WeightsMap } from '../weight-specs';
import { VGG16_WEIGHTS } from '../models/vgg16/weight-specs';
import { loadH5wasm, type H5wasm } from './h5wasm';
import type { NamedTensor } from './safetensors';
import { kerasWeightKey } from '../models/vgg16/tensor-names';

/** HDF5's signature; it sits at offset 0 unless the file has a user block (then at 512, 1024, ...). */
export const HDF5_MAGIC = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Whether the first bytes of a file hold the HDF5 signature (at 0 or a user-block offset). */
export function looksLikeHdf5(head: Uint8Array): boolean {
  for (let offset = 0; offset + HDF5_MAGIC.length <= head.length; offset = offset === 0 ? 512 : offset * 2) {
    if (HDF5_MAGIC.equals(head.subarray(offset, offset + HDF5_MAGIC.length))) return true;
  }
  return false;
}

type H5File = InstanceType<H5wasm['File']>;
type H5Group = InstanceType<H5wasm['Group']>;
type H5Dataset = InstanceType<H5wasm['Dataset']>;

/**
 * Which Keras layout a file uses:
 * - `keras2`: `save_weights` / keras-applications: `<layer>/<layer>/kernel:0` under the root, `layer_names`
 *   on the root;
 * - `keras2-model`: a whole model saved by Keras 2 `model.save`: the same under `model_weights/`;
 * - `keras3`: Keras 3 `.weights.h5`: `layers/<layer>/vars/0` (kernel) and `vars/1` (bias).
 */
export type KerasH5Layout = 'keras2' | 'keras2-model' | 'keras3';

export interface KerasH5Contents {
  tensors: WeightsMap;
  layout: KerasH5Layout;
  /** Layer groups the file lists (its `layer_names`, or the group names). */
  layerNames: string[];
  /** The root's `preprocess` attribute, where `layertap weights convert` wrote one. */
  preprocess?: string;
}

/** Values read per HDF5 call: keeps h5wasm's wasm heap small while fc1 (102M values) is read. */
const CHUNK_VALUES = 1 << 24;

/**
 * Reads VGG16's tensors from a Keras HDF5 file at `file` (a local path). Only tensors in `wanted` are read
 * (default: all); tensors the file lacks are simply absent from the result (the caller validates).
 */
export async function readKerasH5(file: string, source: string, wanted?: ReadonlySet<string>): Promise<KerasH5Contents> {
  const h5 = await loadH5wasm();
  const fileBytes = statSync(file).size;
  let handle: H5File;
  try {
    handle = new h5.File(file, 'r');
  } catch (err) {
    throw damaged(source, err);
  }
  try {
    const modelWeights = handle.get('model_weights');
    const base: H5Group = modelWeights instanceof h5.Group ? modelWeights : handle;
    const keras3 = !(modelWeights instanceof h5.Group) && base.get('layers') instanceof h5.Group && !(base.get('block1_conv1') instanceof h5.Group);
    const layout: KerasH5Layout = keras3 ? 'keras3' : modelWeights instanceof h5.Group ? 'keras2-model' : 'keras2';
    const layerNames = listLayers(h5, keras3 ? (base.get('layers') as H5Group) : base);
    const tensors: WeightsMap = new Map();
    for (const spec of VGG16_WEIGHTS) {
      if (wanted && !wanted.has(spec.name)) continue;
      const dataset = keras3 ? keras3Dataset(h5, base, spec) : keras2Dataset(h5, base, spec);
      if (dataset) tensors.set(spec.name, readDataset(dataset, `${source}: ${dataset.path}`, fileBytes));
    }
    const preprocess = handle.attrs['preprocess']?.json_value;
    return { tensors, layout, layerNames, ...(typeof preprocess === 'string' ? { preprocess } : {}) };
  } catch (err) {
    // A truncated or damaged file fails deep inside h5wasm (HDF5 errors, even a ReferenceError of its own).
    if (err instanceof LayertapError) throw err;
    throw damaged(source, err);
  } finally {
    try {
      handle.close();
    } catch {
      // A damaged file may not close cleanly either; the error above says what is wrong.
    }
  }
}

function damaged(source: string, err: unknown): ValidationError {
  const text = err instanceof Error ? err.message : String(err);
  // HDF5's error stack, outermost first: `#000: <file> line N in H5Fopen(): unable to open file`.
  const outer = /#000: .* in ([A-Za-z0-9_]+\(\)): (.*)/.exec(text);
  const detail = outer ? `${outer[1]}: ${outer[2]?.trim()}` : (text.split('\n')[0] ?? '');
  return new ValidationError(ErrorCode.InvalidWeights, `${source}: not a readable HDF5 file, truncated or damaged (${detail})`);
}

function listLayers(h5: H5wasm, group: H5Group): string[] {
  const attr = group.attrs['layer_names'];
  const value = attr ? attr.json_value : undefined;
  if (Array.isArray(value)) return value.map(String);
  return group.keys().filter((key) => group.get(key) instanceof h5.Group);
}

function keras2Dataset(h5: H5wasm, base: H5Group, spec: WeightSpec): H5Dataset | undefined {
  const group = base.get(spec.layer);
  if (!(group instanceof h5.Group)) return undefined;
  // `weight_names` lists the layer's datasets relative to its group (`block1_conv1/kernel:0`).
  const names = group.attrs['weight_names']?.json_value;
  if (Array.isArray(names)) {
    const list = names.map(String);
    const keys = list.map((n) => kerasWeightKey(`${spec.layer}/${n.split('/').pop() ?? n}`));
    // By name (`kernel:0`); failing that by position, as Keras' own loader does (Keras 1 named them
    // `block1_conv1_W_1:0` and `block1_conv1_b_1:0`).
    const byName = list[keys.indexOf(spec.name)];
    const name = byName ?? (keys.every((key) => key === undefined) && list.length === 2 ? list[spec.param === 'kernel' ? 0 : 1] : undefined);
    const dataset = name === undefined ? undefined : group.get(name);
    if (dataset instanceof h5.Dataset) return dataset;
  }
  return findDataset(h5, group, spec);
}

/** Depth-first search under a layer's group for a dataset named `kernel`/`kernel:0` (or `bias`). */
function findDataset(h5: H5wasm, group: H5Group, spec: WeightSpec): H5Dataset | undefined {
  for (const key of group.keys()) {
    const entity = group.get(key);
    if (entity instanceof h5.Dataset && kerasWeightKey(`${spec.layer}/${key}`) === spec.name) return entity;
    if (entity instanceof h5.Group) {
      const found = findDataset(h5, entity, spec);
      if (found) return found;
    }
  }
  return undefined;
}

function keras3Dataset(h5: H5wasm, base: H5Group, spec: WeightSpec): H5Dataset | undefined {
  const dataset = base.get(`layers/${spec.layer}/vars/${spec.param === 'kernel' ? 0 : 1}`);
  return dataset instanceof h5.Dataset ? dataset : undefined;
}

function readDataset(dataset: H5Dataset, where: string, fileBytes: number): { shape: number[]; data: Float32Array } {
  const meta = dataset.metadata;
  const shape = (dataset.shape ?? []).map(Number);
  // H5T_FLOAT is class 1.
  if (meta.type !== 1 || (meta.size !== 4 && meta.size !== 8)) {
    throw new ValidationError(ErrorCode.InvalidWeights, `${where} is not float32 or float64 (HDF5 class ${meta.type}, ${meta.size} bytes)`);
  }
  const count = shape.reduce((a, b) => a * b, 1);
  // Before anything is allocated: Keras stores weights uncompressed, so their bytes are in the file. A
  // declared shape whose bytes the file cannot hold (chunks never written, or compressed) would make memory
  // and time follow the shape, not the file (an 8 KB file declaring 3 GB).
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0) || !Number.isSafeInteger(count) || count * meta.size > fileBytes) {
    throw new ValidationError(
      ErrorCode.InvalidWeights,
      `${where} declares shape [${shape.join(', ')}] (${count * meta.size} bytes) in a file of ${fileBytes} bytes: ` +
        'its data is not in the file (unwritten or compressed chunks); layertap reads uncompressed weights',
    );
  }
  const data = new Float32Array(count);
  const rowValues = shape.length > 0 ? count / (shape[0] as number) : count;
  const rows = shape[0] ?? 1;
  const step = Math.max(1, Math.floor(CHUNK_VALUES / Math.max(1, rowValues)));
  for (let row = 0; row < rows; row += step) {
    const end = Math.min(rows, row + step);
    const part = shape.length > 0 ? dataset.slice([[row, end]]) : dataset.value;
    if (!ArrayBuffer.isView(part)) throw new ValidationError(ErrorCode.InvalidWeights, `${where} could not be read as numbers`);
    // Copies (and converts float64) into this realm's Float32Array.
    data.set(part as unknown as ArrayLike<number>, row * rowValues);
  }
  return { shape, data };
}

/**
 * Writes tensors (canonical names, TF layout) as a Keras 2 weights file, the layout of keras-applications'
 * VGG16 files: `layer_names` on the root, one group per layer with `weight_names`, datasets
 * `<layer>/<layer>/kernel:0` and `bias:0`. `attributes` are added to the root (provenance).
 */
export async function writeKerasH5(file: string, tensors: readonly NamedTensor[], attributes: Record<string, string>): Promise<void> {
  const h5 = await loadH5wasm();
  const handle = new h5.File(file, 'w');
  try {
    const layers = [...new Set(tensors.map((tensor) => tensor.name.split('/')[0] as string))];
    handle.create_attribute('layer_names', layers);
    // Keras reads these to decide whether old-format conversions apply: this is Keras 2 / TF layout.
    handle.create_attribute('backend', 'tensorflow');
    handle.create_attribute('keras_version', '2.2.4');
    for (const [key, value] of Object.entries(attributes)) handle.create_attribute(key, value);
    for (const layer of layers) {
      const own = tensors.filter((tensor) => tensor.name.startsWith(`${layer}/`));
      const group = handle.create_group(layer);
      group.create_attribute('weight_names', own.map((tensor) => `${layer}/${tensor.name.split('/')[1]}:0`));
      const inner = group.create_group(layer);
      for (const tensor of own) {
        inner.create_dataset({ name: `${tensor.name.split('/')[1]}:0`, data: tensor.data, shape: [...tensor.shape], dtype: '<f4' });
      }
    }
  } finally {
    handle.close();
  }
}
