// What `submit` checks of `--weights` without reading the tensors (issue 17): the file's header only, from
// disk or through range requests. safetensors: the 8-byte length and the JSON header. PyTorch zip: the
// central directory and data.pkl. PyTorch legacy: the pickles before the storages and each storage's 8-byte
// element count. A published name: nothing at all, its contents are in the table. The tensors the requested
// layers need must be there with the right shapes and a dtype layertap reads, and the bytes they declare must
// lie within the file; the workers read (and hash) the whole file when they load it.
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { silentLog } from '../log';
import type { ModelDescriptor } from '../models/descriptor';
import { checkPresentShapes, checkWeightsServe } from '../models/vgg16/coverage';
import { layerInfo } from '../models/vgg16/layers';
import { VGG16_WEIGHTS, requiredWeights } from '../models/vgg16/weight-specs';
import { validateWeights, type WeightShapes } from '../weight-specs';
import { looksLikeHdf5 } from './keras-h5';
import { canonicalKey, loadWeights, pickNaming, type LoadWeightsOptions, type WeightsFormat, type WeightsNaming } from './load-weights';
import { PUBLISHED_WEIGHTS, describeChecksum, publishedUrl, publishedWeightsName, type PublishedWeightsName } from './published-weights';
import { fileAccess, remoteAccess, type FetchRange, type RandomAccess, type RemoteAccessStats } from './random-access';
import { looksLikeSafetensors, parseSafetensors } from './safetensors';
import { looksLikeJson } from './tfjs-layers';
import { looksLikeTorchLegacy, looksLikeTorchZip, openTorchCheckpoint } from './torch-checkpoint';
import { WeightsCache, displayUri, isRemoteUri, localPath } from './weights-cache';
import { defaultWeightsCacheDir, publishedWeightsSource } from './weights-env';
import { stat } from 'node:fs/promises';

export interface CheckWeightsHeaderOptions extends LoadWeightsOptions {
  /**
   * Reads byte ranges of `http(s)://` and `s3://` URIs. Without it, remote files are downloaded whole with
   * `fetchBytes` (and cached), as `loadWeights` does.
   */
  fetchRange?: FetchRange;
  /** Counts the range requests made and the bytes they brought (for tests and measurements). */
  stats?: RemoteAccessStats;
}

/** What the header said: enough to decide the preprocessing and to describe the weights. */
export interface WeightsHeader {
  /** One line of provenance: the URI (without secrets), the format, and how it was checked. */
  description: string;
  format: WeightsFormat;
  naming: WeightsNaming;
  /** safetensors `__metadata__`, a checkpoint's serialization; for HDF5 and TF.js, what `loadWeights` gives. */
  metadata: Record<string, string>;
  /** The published weights a name stands for. */
  published?: PublishedWeightsName;
  /** The file's size in bytes (undefined for a published name, which is not looked at). */
  size?: number;
  /**
   * sha256 of the file, only where it was read whole (Keras HDF5 and TF.js models, which are loaded as
   * `loadWeights` does). Header-only checks do not hash what they did not read.
   */
  sha256?: string;
  /** `header`: only the header was read; `published`: nothing was; `whole`: the file was loaded. */
  read: 'header' | 'published' | 'whole';
}

const HEAD_BYTES = 4096;

/**
 * Checks `--weights` for a submission from its header only (see the top of this file). Throws
 * `ValidationError` (`invalid_weights`) with the messages `loadWeights` gives for a tensor that is missing or
 * misshapen, a notop file asked for fc1, a truncated file, a pickle naming a foreign global. Keras HDF5 and
 * TF.js models are loaded whole, as `loadWeights` does (remote ones downloaded through `fetchBytes`).
 */
export async function checkWeightsHeader(uri: string, options: CheckWeightsHeaderOptions = {}): Promise<WeightsHeader> {
  const model = options.model && options.model.name !== 'vgg16' ? options.model : undefined;
  const name = publishedWeightsName(uri);
  if (name) {
    if (model) {
      throw new ValidationError(
        ErrorCode.InvalidWeights,
        `--weights ${uri} names VGG16 weights; for ${model.title} pass a torchvision state_dict (.pth or .safetensors, e.g. torchvision's ${model.name} file) as a path or URI, or --weights random`,
      );
    }
    return publishedHeader(name, options);
  }
  const source = displayUri(uri);
  const access = await openAccess(uri, options);
  if (!access) return wholeFile(uri, options);
  let header: Omit<WeightsHeader, 'description' | 'read'> & { shapes: Map<string, Shape>; origins: Map<string, string> };
  try {
    if (access.size === 0) throw new ValidationError(ErrorCode.InvalidWeights, `${source} is empty`);
    const head = await access.read(0, Math.min(access.size, HEAD_BYTES));
    if (looksLikeHdf5(head) || looksLikeJson(head)) {
      // h5wasm reads a whole file, and a TF.js model's tensors are in its shards: loaded as the workers do.
      await access.close();
      return wholeFile(uri, options);
    }
    if (looksLikeSafetensors(head, access.size)) header = await safetensorsHeader(access, head, source, model);
    else if (looksLikeTorchZip(head) || looksLikeTorchLegacy(head)) header = await pytorchHeader(access, source, model, options);
    else {
      throw new ValidationError(
        ErrorCode.InvalidWeights,
        `${source} is not a weights file layertap reads (Keras HDF5, safetensors, a PyTorch .pth or a TF.js model.json); it starts with ` +
          `${Buffer.from(head.subarray(0, 8)).toString('hex')}`,
      );
    }
  } finally {
    await access.close();
  }
  const { shapes, origins, ...rest } = header;
  if (model) checkNative(shapes, model, options.layers, source, rest.format);
  else checkVgg16(shapes, origins, options.layers, source, rest.format);
  const detail = `${rest.format}${rest.format === 'pytorch' ? ` ${rest.metadata.serialization}` : ''}${rest.naming === 'torchvision' ? ', torchvision keys' : ''}`;
  (options.log ?? silentLog)('weights header checked', { uri: source, format: rest.format, tensors: shapes.size });
  return { ...rest, description: `${source} (${detail}; header checked)`, read: 'header' };
}

/** A tensor as its header declares it: shape (in the model's layout) and the values its bytes hold. */
type Shape = { shape: number[]; data: { length: number }; refused?: string };

/** A published name: what the table says it holds; the workers download it and check its published checksum. */
function publishedHeader(name: PublishedWeightsName, options: CheckWeightsHeaderOptions): WeightsHeader {
  const published = PUBLISHED_WEIGHTS[name];
  const layers = options.layers?.map((spec) => {
    layerInfo(spec);
    return spec.trim();
  });
  if (layers && layers.length > 0) {
    // Every VGG16 tensor, less the classifier head for a notop file: the checks (and messages) of a file.
    const head = new Set(['fc1', 'fc2', 'predictions']);
    const shapes: WeightShapes = new Map(
      VGG16_WEIGHTS.filter((spec) => published.classifierHead || !head.has(spec.layer)).map((spec) => [spec.name, { shape: [...spec.shape], data: { length: spec.shape.reduce((a, b) => a * b, 1) } }]),
    );
    checkWeightsServe(shapes, layers, name);
  }
  const keras = published.trainedWith === 'caffe';
  // The mirror and checksums the workers will use (as `fetchPublishedWeights` picks them): a bad
  // LAYERTAP_WEIGHTS_MIRROR or LAYERTAP_WEIGHTS_MIRROR_CHECKSUMS is still refused here, at submit.
  const given = options.published ?? {};
  const env = given.mirror !== undefined && given.checksums !== undefined ? {} : publishedWeightsSource();
  const mirror = given.mirror ?? env.mirror;
  const checksums = given.checksums ?? (given.mirror === undefined ? env.checksums : undefined);
  const checksum = checksums?.[name] ?? published.checksum;
  return {
    description: `${name}: ${displayUri(publishedUrl(name, mirror))} (published ${keras ? 'keras-h5' : 'pytorch'}${keras ? '' : ', torchvision keys'}; not read at submit: workers download it and check ${describeChecksum(checksum)})`,
    format: keras ? 'keras-h5' : 'pytorch',
    naming: keras ? 'keras' : 'torchvision',
    metadata: {},
    published: name,
    read: 'published',
  };
}

/**
 * Random access to the file: local files from disk, remote ones from the weights cache when a copy is there,
 * else by ranges. Undefined where the header cannot be read apart (a TF.js directory; a remote file without
 * `fetchRange`): `loadWeights` then does it all.
 */
async function openAccess(uri: string, options: CheckWeightsHeaderOptions): Promise<RandomAccess | undefined> {
  if (isRemoteUri(uri)) {
    const hit = await new WeightsCache(options.cacheDir ?? defaultWeightsCacheDir()).lookup(uri);
    if (hit) return fileAccess(hit.path);
    if (!options.fetchRange) return undefined;
    return remoteAccess(uri, options.fetchRange, options.stats);
  }
  const file = localPath(uri);
  const info = await stat(file).catch(() => undefined);
  if (!info) throw new ValidationError(ErrorCode.NotFound, `weights file not found: ${file}`);
  if (info.isDirectory()) return undefined;
  return fileAccess(file);
}

/** Keras HDF5, TF.js, or no range reader: loaded whole as `loadWeights` does (and so hashed). */
async function wholeFile(uri: string, options: CheckWeightsHeaderOptions): Promise<WeightsHeader> {
  const loaded = await loadWeights(uri, options);
  return {
    description: loaded.description,
    format: loaded.format,
    naming: loaded.naming,
    metadata: loaded.metadata,
    size: loaded.size,
    sha256: loaded.sha256,
    read: 'whole',
  };
}

/** The dtypes layertap reads from safetensors (`decodeSafetensorsTensor`). */
const SAFETENSORS_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

async function safetensorsHeader(access: RandomAccess, head: Uint8Array, source: string, model: ModelDescriptor | undefined) {
  const length = Number(Buffer.from(head.buffer, head.byteOffset, 8).readBigUInt64LE(0));
  const bytes = await access.read(0, 8 + length);
  const parsed = parseSafetensors(bytes, source, access.size);
  const { entries, naming } = model ? { entries: parsed.entries, naming: 'torchvision' as const } : pickNaming(parsed.entries, source);
  const shapes = new Map<string, Shape>();
  const origins = new Map<string, string>();
  for (const entry of entries) {
    const key = model ? entry.name : canonicalKey(entry.name, naming).key;
    if (!key) continue;
    setShape(shapes, origins, key, entry.name, entry.shape, naming, model, undefined);
    // Refused only where it would be read: a tensor the layers need.
    if (!SAFETENSORS_DTYPES.has(entry.dtype)) (shapes.get(key) as Shape).refused = `${source}: tensor ${entry.name} is ${entry.dtype}; layertap reads F32, F16, BF16 and F64 weights`;
  }
  return { format: 'safetensors' as const, naming, metadata: parsed.metadata, size: access.size, shapes, origins };
}

async function pytorchHeader(access: RandomAccess, source: string, model: ModelDescriptor | undefined, options: CheckWeightsHeaderOptions) {
  const checkpoint = await openTorchCheckpoint(access, source);
  const picked = model ? { naming: 'torchvision' as const, entries: checkpoint.tensors } : pickNaming(checkpoint.tensors, source);
  const wanted = wantedKeys(model, options.layers);
  const shapes = new Map<string, Shape>();
  const origins = new Map<string, string>();
  for (const entry of picked.entries) {
    const key = model ? entry.name : canonicalKey(entry.name, picked.naming).key;
    if (!key) continue;
    // What `read` checks first (storage inside the file, view inside the storage, dtype), for the tensors
    // that would be read.
    if (!wanted || wanted.has(key)) await checkpoint.check(entry.name);
    setShape(shapes, origins, key, entry.name, entry.shape, picked.naming, model, entry.dtype);
  }
  const dtypes = [...new Set(picked.entries.map((entry) => entry.dtype))].join(',');
  return { format: 'pytorch' as const, naming: picked.naming, metadata: { serialization: checkpoint.serialization, dtypes }, size: access.size, shapes, origins };
}

/** Tensor keys the layers need (undefined: every tensor the file has is checked). */
function wantedKeys(model: ModelDescriptor | undefined, layers: readonly string[] | undefined): Set<string> | undefined {
  if (!layers || layers.length === 0) return undefined;
  if (model) return new Set(model.requiredWeights(layers.map((spec) => model.layer(spec).name)).map((spec) => spec.name));
  return new Set(requiredWeights(layers.map((spec) => spec.trim())).map((spec) => spec.name));
}

/** A tensor's shape in the model's layout (torchvision conv and Linear weights as `loadWeights` converts them). */
function setShape(
  shapes: Map<string, Shape>,
  origins: Map<string, string>,
  key: string,
  name: string,
  shape: readonly number[],
  naming: WeightsNaming,
  model: ModelDescriptor | undefined,
  dtype: string | undefined,
): void {
  const count = shape.reduce((a, b) => a * b, 1);
  if (model) {
    shapes.set(key, { shape: [...shape], data: { length: count } });
    return;
  }
  const mapped = canonicalKey(name, naming).mapped;
  if (!mapped) {
    shapes.set(key, { shape: [...shape], data: { length: count } });
    return;
  }
  origins.set(key, `${name} [${shape.join(', ')}]${dtype === undefined || dtype === 'float32' ? '' : ` ${dtype}`}`);
  let tf = [...shape];
  if (mapped.param === 'kernel' && mapped.kind === 'conv' && shape.length === 4) tf = [shape[2], shape[3], shape[1], shape[0]] as number[];
  else if (mapped.param === 'kernel' && mapped.kind === 'dense' && shape.length === 2) tf = [shape[1], shape[0]] as number[];
  shapes.set(key, { shape: tf, data: { length: count } });
}

/** `loadWeights`' checks for VGG16, on shapes. */
function checkVgg16(shapes: Map<string, Shape>, origins: Map<string, string>, layers: readonly string[] | undefined, source: string, format: WeightsFormat): void {
  const specs = layers?.map((spec) => {
    layerInfo(spec);
    return spec.trim();
  });
  const wanted = specs && specs.length > 0 ? new Set(requiredWeights(specs).map((spec) => spec.name)) : undefined;
  const kept = new Map([...shapes].filter(([key]) => !wanted || wanted.has(key)));
  refuseUnreadable(kept);
  if (kept.size === 0) {
    throw new ValidationError(ErrorCode.InvalidWeights, `${source} (${format}) holds no VGG16 tensor${wanted ? ' that the requested layers need' : ''}`);
  }
  const origin = (tensor: string) => origins.get(tensor);
  if (specs && specs.length > 0) checkWeightsServe(kept, specs, source, origin);
  else checkPresentShapes(kept, source, origin);
}

/** `loadWeights`' checks for a model in torch layout (ResNet-50), on shapes. */
function checkNative(shapes: Map<string, Shape>, model: ModelDescriptor, layers: readonly string[] | undefined, source: string, format: WeightsFormat): void {
  const names = layers?.map((spec) => model.layer(spec).name);
  const required = names && names.length > 0 ? model.requiredWeights(names) : [];
  const specs = new Map(model.weights.map((spec) => [spec.name, spec]));
  const wanted = new Set((required.length > 0 ? required : model.weights).map((spec) => spec.name));
  const kept = new Map([...shapes].filter(([key]) => wanted.has(key)));
  refuseUnreadable(kept);
  if (kept.size === 0) throw new ValidationError(ErrorCode.InvalidWeights, `${source} (${format}) holds no ${model.title} tensor (torchvision state_dict keys such as ${model.weights[0]?.name})`);
  validateWeights(kept, [...kept.keys()].map((name) => specs.get(name)).filter((spec) => spec !== undefined), model.title);
  if (required.length > 0) validateWeights(kept, required, model.title);
}

/** A tensor that would be read in a dtype layertap does not read: refused as reading it would be. */
function refuseUnreadable(kept: Map<string, Shape>): void {
  const refused = [...kept.values()].find((shape) => shape.refused !== undefined)?.refused;
  if (refused) throw new ValidationError(ErrorCode.InvalidWeights, refused);
}
