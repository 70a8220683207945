// convertWeights: loaded weights -> safetensors, a TF.js layers directory or a Keras HDF5 file.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { VGG16_WEIGHTS } from '../models/vgg16/weight-specs';
import { writeKerasH5 } from './keras-h5';
import { tfConvToTorch, tfDenseToTorch } from './layout';
import type { LoadedWeights, WeightsFormat } from './load-weights';
import { trainedPreprocess } from './preprocess-for-weights';
import { safetensorsHeader } from '@layertap/storage/formats';
import { type NamedTensor } from './safetensors';
import { torchvisionKeyOf } from '../models/vgg16/tensor-names';
import { TFJS_MODEL_JSON, encodeTfjsLayers } from './tfjs-layers';
import { sha256OfFile } from './weights-cache';

export interface ConvertWeightsOptions {
  /**
   * safetensors only: `keras` (default) writes Keras-style keys (`block1_conv1/kernel`) in TF layout, which
   * layertap reads back as they are; `torchvision` writes a torchvision VGG16 state_dict (`features.0.weight`,
   * torch layout, fc1 columns in (C,H,W) order) that `torchvision.models.vgg16().load_state_dict` accepts.
   */
  naming?: 'keras' | 'torchvision';
  /** Replace an existing output. Default false: an existing file or non-empty directory is refused. */
  overwrite?: boolean;
}

/** The formats `convertWeights` writes (a PyTorch checkpoint is read, never written). */
export type WritableWeightsFormat = Exclude<WeightsFormat, 'pytorch'>;

export interface ConvertedWeights {
  format: WritableWeightsFormat;
  /** The file written, or the directory for `tfjs-layers`. */
  path: string;
  /** Every file written. */
  files: string[];
  bytes: number;
  /** What `loadWeights` reports for the output (for TF.js: model.json then the shards). */
  sha256: string;
}

/**
 * Where a converted file came from: goes into safetensors `__metadata__`, HDF5 root attributes, TF.js metadata.
 * `preprocess` carries the training's preprocessing across the conversion (torchvision weights written with
 * Keras-style names still expect torchvision preprocessing).
 */
function provenance(input: LoadedWeights, naming: string): Record<string, string> {
  return {
    created_by: 'layertap weights convert',
    layout: naming === 'torchvision' ? 'torchvision' : 'tf',
    source: input.description,
    source_format: input.format,
    source_sha256: input.sha256,
    preprocess: trainedPreprocess(input).mode,
  };
}

/** The input's VGG16 tensors in forward order (canonical names, TF layout). */
function orderedTensors(input: LoadedWeights): NamedTensor[] {
  return VGG16_WEIGHTS.flatMap((spec) => {
    const tensor = input.tensors.get(spec.name);
    return tensor ? [{ name: spec.name, shape: tensor.shape, data: tensor.data }] : [];
  });
}

function toTorchvision(tensors: readonly NamedTensor[]): NamedTensor[] {
  return tensors.map((tensor) => {
    const name = torchvisionKeyOf(tensor.name);
    if (tensor.shape.length === 4) return { name, ...tfConvToTorch(tensor.data, tensor.shape) };
    if (tensor.shape.length === 2) return { name, ...tfDenseToTorch(tensor.data, tensor.shape, tensor.name === 'fc1/kernel') };
    return { ...tensor, name };
  });
}

/**
 * Writes `input`'s tensors to `outPath` as `safetensors`, `tfjs-layers` (a directory: model.json + 4 MiB
 * shards) or `keras-h5` (keras-applications' layout). Every output records its source and sha256, and
 * `loadWeights` reads it back to the same tensors. Outputs appear atomically (written under a temporary name,
 * then renamed).
 */
export async function convertWeights(
  input: LoadedWeights,
  outPath: string,
  format: WritableWeightsFormat,
  options: ConvertWeightsOptions = {},
): Promise<ConvertedWeights> {
  const target = path.resolve(outPath);
  await refuseExisting(target, options.overwrite ?? false);
  await mkdir(path.dirname(target), { recursive: true });
  const tensors = orderedTensors(input);
  if (tensors.length === 0) throw new ValidationError(ErrorCode.InvalidWeights, `${input.description} has no VGG16 tensor to convert`);
  const temp = `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    let result: ConvertedWeights;
    switch (format) {
      case 'safetensors': {
        const naming = options.naming ?? 'keras';
        const metadata = { ...provenance(input, naming), ...(naming === 'torchvision' ? { format: 'pt' } : {}) };
        await writeSafetensorsFile(temp, naming === 'torchvision' ? toTorchvision(tensors) : tensors, metadata);
        result = await finishFile(temp, target, format);
        break;
      }
      case 'keras-h5':
        await writeKerasH5(temp, tensors, provenance(input, 'keras'));
        result = await finishFile(temp, target, format);
        break;
      case 'tfjs-layers':
        result = await writeTfjsDirectory(temp, target, tensors, provenance(input, 'keras'));
        break;
      default:
        throw new ValidationError(ErrorCode.InvalidRequest, `unknown weights format ${String(format)} (expected safetensors, tfjs-layers or keras-h5)`);
    }
    return result;
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

async function refuseExisting(target: string, overwrite: boolean): Promise<void> {
  const info = await stat(target).catch(() => undefined);
  if (!info) return;
  const empty = info.isDirectory() && (await readdir(target)).length === 0;
  if (empty) return;
  if (!overwrite) {
    throw new ValidationError(ErrorCode.InvalidRequest, `${target} already exists; choose another output or allow overwriting`);
  }
  await rm(target, { recursive: true, force: true });
}

/**
 * Streams a safetensors file tensor by tensor (a 553 MB model is not assembled in memory a second time): the
 * format's one header writer, then each tensor's bytes.
 */
async function writeSafetensorsFile(file: string, tensors: readonly NamedTensor[], metadata: Record<string, string>): Promise<void> {
  const header = safetensorsHeader(tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: [...t.shape] })), metadata);
  const handle = await open(file, 'w');
  try {
    await handle.write(header);
    for (const tensor of tensors) await handle.write(new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength));
  } finally {
    await handle.close();
  }
}

async function finishFile(temp: string, target: string, format: WritableWeightsFormat): Promise<ConvertedWeights> {
  const sha256 = await sha256OfFile(temp);
  const { size } = await stat(temp);
  await rename(temp, target);
  return { format, path: target, files: [target], bytes: size, sha256 };
}

async function writeTfjsDirectory(
  temp: string,
  target: string,
  tensors: readonly NamedTensor[],
  metadata: Record<string, string>,
): Promise<ConvertedWeights> {
  const { modelJson, shards } = encodeTfjsLayers(tensors, { layertap: metadata });
  await mkdir(temp, { recursive: true });
  const hash = createHash('sha256').update(modelJson);
  await writeFile(path.join(temp, TFJS_MODEL_JSON), modelJson);
  let bytes = Buffer.byteLength(modelJson);
  for (const shard of shards) {
    await writeFile(path.join(temp, shard.name), shard.bytes);
    hash.update(shard.bytes);
    bytes += shard.bytes.length;
  }
  await rm(target, { recursive: true, force: true }); // an empty directory (refuseExisting allowed it)
  await rename(temp, target);
  const files = [TFJS_MODEL_JSON, ...shards.map((shard) => shard.name)].map((name) => path.join(target, name));
  return { format: 'tfjs-layers', path: target, files, bytes, sha256: hash.digest('hex') };
}
