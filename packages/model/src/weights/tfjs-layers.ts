// TF.js layers-model weights: a `model.json` whose `weightsManifest` lists groups of shard files; each group's
// shards, concatenated, hold its weights back to back in manifest order.
import { ErrorCode, ValidationError } from '@layertap/contracts';
import type { WeightsMap } from '../weight-specs';
import { float16BitsToFloat32 } from '@layertap/storage/formats';
import type { NamedTensor } from './safetensors';
import { kerasWeightKey } from '../models/vgg16/tensor-names';

export interface TfjsWeightEntry {
  name: string;
  shape: number[];
  dtype: string;
  /** tfjs-converter's quantization: value = q * scale + min (uint8/uint16), or float16 storage. */
  quantization?: { dtype: string; scale?: number; min?: number };
}

export interface TfjsWeightsGroup {
  paths: string[];
  weights: TfjsWeightEntry[];
}

export interface TfjsModelJson {
  weightsManifest: TfjsWeightsGroup[];
  /** `userDefinedMetadata`, where layertap keeps provenance. */
  metadata: Record<string, unknown>;
}

/** Shard size of tfjs-converter (and of what layertap writes): 4 MiB. */
export const TFJS_SHARD_BYTES = 4 * 1024 * 1024;
export const TFJS_MODEL_JSON = 'model.json';

/** Whether a file's first bytes could be a JSON object (possibly after a BOM or whitespace). */
export function looksLikeJson(head: Uint8Array): boolean {
  let i = head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf ? 3 : 0;
  while (i < head.length && (head[i] === 0x20 || head[i] === 0x0a || head[i] === 0x0d || head[i] === 0x09)) i++;
  return head[i] === 0x7b;
}

/** Parses a model.json, or returns undefined when it is JSON without a `weightsManifest`. */
export function parseTfjsModelJson(bytes: Uint8Array, source: string): TfjsModelJson | undefined {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8').replace(/^\uFEFF/, ''));
  } catch {
    return undefined;
  }
  const model = json as { weightsManifest?: unknown; userDefinedMetadata?: unknown };
  if (typeof json !== 'object' || json === null || !Array.isArray(model.weightsManifest)) return undefined;
  const groups = model.weightsManifest.map((group, g): TfjsWeightsGroup => {
    const { paths, weights } = group as { paths?: unknown; weights?: unknown };
    if (!Array.isArray(paths) || !paths.every((p) => typeof p === 'string') || !Array.isArray(weights)) {
      throw new ValidationError(ErrorCode.InvalidWeights, `${source}: weightsManifest[${g}] needs "paths" and "weights" arrays`);
    }
    for (const w of weights as TfjsWeightEntry[]) {
      if (typeof w?.name !== 'string' || !Array.isArray(w.shape) || typeof w.dtype !== 'string') {
        throw new ValidationError(ErrorCode.InvalidWeights, `${source}: weightsManifest[${g}] has an entry without name, shape and dtype`);
      }
    }
    return { paths, weights: weights as TfjsWeightEntry[] };
  });
  const metadata = typeof model.userDefinedMetadata === 'object' && model.userDefinedMetadata !== null ? (model.userDefinedMetadata as Record<string, unknown>) : {};
  return { weightsManifest: groups, metadata };
}

function bytesPerValue(entry: TfjsWeightEntry): number | undefined {
  const dtype = entry.quantization?.dtype ?? entry.dtype;
  return { float32: 4, int32: 4, uint8: 1, uint16: 2, float16: 2, bool: 1 }[dtype];
}

/**
 * Decodes the VGG16 tensors of a manifest (`wanted` only, default all). `readShard` returns one shard's bytes
 * by its path as written in the manifest; it is called once per shard, in order.
 */
export async function decodeTfjsWeights(
  model: TfjsModelJson,
  readShard: (path: string) => Promise<Uint8Array>,
  source: string,
  wanted?: ReadonlySet<string>,
): Promise<WeightsMap> {
  const tensors: WeightsMap = new Map();
  for (const group of model.weightsManifest) {
    const shards: Uint8Array[] = [];
    for (const shardPath of group.paths) shards.push(await readShard(shardPath));
    const reader = new ConcatReader(shards);
    let offset = 0;
    for (const entry of group.weights) {
      const width = bytesPerValue(entry);
      const count = entry.shape.reduce((a, b) => a * b, 1);
      if (width === undefined) throw new ValidationError(ErrorCode.InvalidWeights, `${source}: weight ${entry.name} has unknown dtype ${entry.dtype}`);
      const size = count * width;
      const key = kerasWeightKey(entry.name);
      if (key && (!wanted || wanted.has(key))) {
        if (offset + size > reader.length) {
          throw new ValidationError(ErrorCode.InvalidWeights, `${source}: the shards end before weight ${entry.name} (${reader.length} bytes, it needs ${offset + size})`);
        }
        tensors.set(key, { shape: [...entry.shape], data: decodeValues(reader.read(offset, size), entry, count, source) });
      }
      offset += size;
    }
  }
  return tensors;
}

function decodeValues(bytes: Uint8Array, entry: TfjsWeightEntry, count: number, source: string): Float32Array {
  const raw = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const quantization = entry.quantization;
  if (!quantization) {
    if (entry.dtype !== 'float32') throw new ValidationError(ErrorCode.InvalidWeights, `${source}: weight ${entry.name} is ${entry.dtype}, not float32`);
    return new Float32Array(raw);
  }
  if (quantization.dtype === 'float16') return float16BitsToFloat32(new Uint16Array(raw, 0, count));
  const q = quantization.dtype === 'uint8' ? new Uint8Array(raw) : new Uint16Array(raw, 0, count);
  const scale = quantization.scale ?? 1;
  const min = quantization.min ?? 0;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = (q[i] as number) * scale + min;
  return out;
}

/** Reads byte ranges across consecutive shards as if they were one buffer. */
class ConcatReader {
  private readonly starts: number[] = [];
  readonly length: number;

  constructor(private readonly parts: readonly Uint8Array[]) {
    let total = 0;
    for (const part of parts) {
      this.starts.push(total);
      total += part.length;
    }
    this.length = total;
  }

  read(offset: number, size: number): Uint8Array {
    const out = new Uint8Array(size);
    let written = 0;
    for (let i = 0; i < this.parts.length && written < size; i++) {
      const part = this.parts[i] as Uint8Array;
      const start = this.starts[i] as number;
      const from = offset + written - start;
      if (from < 0 || from >= part.length) continue;
      const chunk = part.subarray(from, Math.min(part.length, from + size - written));
      out.set(chunk, written);
      written += chunk.length;
    }
    return out;
  }
}

/**
 * Lays tensors out as a weights-only TF.js layers model: one weights group, shards of 4 MiB named like
 * tfjs-converter's (`group1-shard1of3.bin`). The model.json has no `modelTopology` (layertap builds the
 * network itself): layertap and `tf.io.loadWeights` read it; `tf.loadLayersModel` does not.
 */
export function encodeTfjsLayers(
  tensors: readonly NamedTensor[],
  metadata: Record<string, unknown>,
): { modelJson: string; shards: { name: string; bytes: Uint8Array }[] } {
  const total = tensors.reduce((sum, tensor) => sum + tensor.data.byteLength, 0);
  const count = Math.max(1, Math.ceil(total / TFJS_SHARD_BYTES));
  const shards = Array.from({ length: count }, (_, i) => ({
    name: `group1-shard${i + 1}of${count}.bin`,
    bytes: new Uint8Array(Math.min(TFJS_SHARD_BYTES, total - i * TFJS_SHARD_BYTES)),
  }));
  let offset = 0;
  for (const tensor of tensors) {
    const bytes = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
    let copied = 0;
    while (copied < bytes.length) {
      const at = offset + copied;
      const shard = shards[Math.floor(at / TFJS_SHARD_BYTES)] as { bytes: Uint8Array };
      const within = at % TFJS_SHARD_BYTES;
      const chunk = bytes.subarray(copied, copied + Math.min(bytes.length - copied, shard.bytes.length - within));
      shard.bytes.set(chunk, within);
      copied += chunk.length;
    }
    offset += bytes.length;
  }
  const modelJson = {
    format: 'layers-model',
    generatedBy: 'layertap',
    convertedBy: 'layertap weights convert',
    weightsManifest: [
      {
        paths: shards.map((shard) => shard.name),
        weights: tensors.map((tensor) => ({ name: tensor.name, shape: [...tensor.shape], dtype: 'float32' })),
      },
    ],
    userDefinedMetadata: metadata,
  };
  return { modelJson: `${JSON.stringify(modelJson, null, 1)}\n`, shards };
}
