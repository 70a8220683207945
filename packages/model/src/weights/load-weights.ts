// loadWeights: any supported weights file or URI -> VGG16 tensors in TF layout, with provenance.
import { createHash } from 'node:crypto';
import { open, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCode, LayertapError, ValidationError, describeError } from '@layertap/contracts';
import { layerInfo } from '../models/vgg16/layers';
import { silentLog, type LogFn } from '../log';
import { validateWeights, type WeightsMap } from '../weight-specs';
import { requiredWeights } from '../models/vgg16/weight-specs';
import type { ModelDescriptor } from '../models/descriptor';
import { checkPresentShapes, checkWeightsServe } from '../models/vgg16/coverage';
import { fetchPublishedWeights, type PublishedFetchOptions } from './fetch-published';
import { looksLikeHdf5, type KerasH5Layout } from './keras-h5';
import { readKerasH5InThread } from './keras-h5-thread';
import { torchConvToTf, torchDenseToTf } from './layout';
import { PUBLISHED_WEIGHTS, publishedUrl, publishedWeightsName, type PublishedWeightsName } from './published-weights';
import { fileAccess, memoryAccess } from './random-access';
import { decodeSafetensorsTensor, looksLikeSafetensors, parseSafetensors } from './safetensors';
import { kerasWeightKey, looksTorchvision, namingHint, torchvisionWeightKey, type TorchvisionKey } from '../models/vgg16/tensor-names';
import { TFJS_MODEL_JSON, decodeTfjsWeights, looksLikeJson, parseTfjsModelJson } from './tfjs-layers';
import { looksLikeTorchLegacy, looksLikeTorchZip, openTorchCheckpoint } from './torch-checkpoint';
import {
  WeightsCache,
  displayUri,
  fetchThroughCache,
  isRemoteUri,
  localPath,
  sha256Hex,
  sha256OfFile,
  type FetchBytes,
} from './weights-cache';
import { defaultWeightsCacheDir, h5ParseSeconds, publishedWeightsSource } from './weights-env';

/** Formats layertap reads; `pytorch` is a `torch.save` checkpoint (.pth, zip or legacy), read but not written. */
export type WeightsFormat = 'keras-h5' | 'safetensors' | 'tfjs-layers' | 'pytorch';

/** How the tensors were named in the file: Keras (`block1_conv1/kernel`, TF layout) or torchvision keys. */
export type WeightsNaming = 'keras' | 'torchvision';

export interface LoadWeightsOptions {
  /** Downloads `http(s)://` and `s3://` URIs. Without it, remote URIs fail unless already cached. */
  fetchBytes?: FetchBytes;
  /** Cache of downloaded files. Default: `defaultWeightsCacheDir()` (`~/.cache/layertap/weights` on Linux). */
  cacheDir?: string;
  /**
   * Layers (any spec) the weights will serve. Only the tensors they need are read and validated, and a file
   * that cannot serve them is refused here, saying why (a notop file asked for fc1). Default: every tensor
   * the file has is read, and only their shapes are checked.
   */
  layers?: readonly string[];
  /** Told about downloads and cache hits. Default: silent. */
  log?: LogFn;
  /**
   * For published names (`torchvision-imagenet`, ...): mirror, checksums, fetch and progress. Defaults:
   * `LAYERTAP_WEIGHTS_MIRROR` / `LAYERTAP_WEIGHTS_MIRROR_CHECKSUMS`, the global fetch, no progress.
   */
  published?: PublishedFetchOptions;
  /**
   * The model the weights are for. Default VGG16 (every format above, converted to TF layout). A model in
   * torch layout (ResNet-50) reads torchvision state_dicts (.pth, safetensors) by their own keys, unconverted.
   */
  model?: ModelDescriptor;
}

export interface LoadedWeights {
  /** VGG16 tensors in TF layout (see `WeightsMap`), converted from the file's layout where needed. */
  tensors: WeightsMap;
  /** One line of provenance: the URI (without secrets), format and sha256. */
  description: string;
  /**
   * sha256 of the file's bytes. For a TF.js layers model (several files): of model.json's bytes followed by
   * every shard's, in manifest order.
   */
  sha256: string;
  format: WeightsFormat;
  /** How tensors are named in the file; torchvision keys were converted to TF layout. */
  naming: WeightsNaming;
  /** The URI or name as given. */
  uri: string;
  /** The published weights the name stood for (`--weights torchvision-imagenet`). */
  published?: PublishedWeightsName;
  /** The local file read (for remote URIs, the cached copy; for TF.js, the model.json). */
  path: string;
  /** Bytes read (for TF.js: model.json and every shard). */
  size: number;
  /**
   * safetensors `__metadata__`, TF.js `userDefinedMetadata` (as strings), the HDF5 root's layout facts, or a
   * checkpoint's serialization (`zip` or `legacy`) and dtypes.
   */
  metadata: Record<string, string>;
  /** How each tensor was stored in the file, where it differs from its canonical name and shape. */
  origins: Map<string, string>;
}

interface Located {
  /** Local file whose first bytes decide the format. */
  path: string;
  /** Bytes, when already in memory (a download). */
  bytes?: Uint8Array;
  /** sha256 of the file, when already known (a verified cache hit). */
  sha256?: string;
  /** Resolves sibling files (TF.js shards) to local paths. */
  sibling: (relative: string) => Promise<{ path: string; bytes?: Uint8Array }>;
  /** Drops a remote file from the cache (it could not be read: the next load downloads it again). */
  forget?: () => Promise<void>;
  /** For a published name: the name and the URL it came from. */
  published?: { name: PublishedWeightsName; url: string };
}

const HEAD_BYTES = 4096;

/**
 * Loads VGG16 weights from a published name (`keras-imagenet`, `keras-imagenet-notop`,
 * `torchvision-imagenet`: downloaded once, checked and cached), a local path, `file://`, `http(s)://` or
 * `s3://` URI (remote ones through `options.fetchBytes`, cached on disk by content hash). The format is told
 * from the content, not the name: Keras HDF5 (keras-applications' files with or without top, Keras 2
 * `model.save`, Keras 3 `.weights.h5`), safetensors (torchvision state_dict keys, converted to TF layout, or
 * Keras-style keys already in TF layout: what `convertWeights` writes), PyTorch checkpoints (`.pth`, zip or
 * legacy format, read without running their pickle) and TF.js layers models (a directory or its model.json).
 * Throws `ValidationError` (`invalid_weights`) naming the tensor and both shapes when something does not fit.
 */
export async function loadWeights(uri: string, options: LoadWeightsOptions = {}): Promise<LoadedWeights> {
  if (options.model && options.model.name !== 'vgg16') return loadNativeWeights(uri, options.model, options);
  const source = displayUri(uri);
  const log = options.log ?? silentLog;
  // Specs as given (`classifier.6`), so messages name what the caller asked for.
  const layers = options.layers?.map((spec) => {
    layerInfo(spec); // throws `unknown_layer` for a bad spec
    return spec.trim();
  });
  const wanted = layers && layers.length > 0 ? new Set(requiredWeights(layers).map((spec) => spec.name)) : undefined;
  const located = await locate(uri, options, log);
  let read: FileContents;
  try {
    read = await readContents(located, source, wanted);
  } catch (err) {
    // A download that cannot be read is not kept: the next load fetches it again.
    await located.forget?.();
    throw err;
  }

  if (read.tensors.size === 0) {
    throw new ValidationError(ErrorCode.InvalidWeights, `${source} (${read.format}) holds no VGG16 tensor${wanted ? ' that the requested layers need' : ''}`);
  }
  const origin = (tensor: string) => read.origins.get(tensor);
  if (layers && layers.length > 0) checkWeightsServe(read.tensors, layers, source, origin);
  else checkPresentShapes(read.tensors, source, origin);
  log('weights loaded', { uri: source, format: read.format, sha256: read.sha256, tensors: read.tensors.size });
  const detail = `${read.format}${read.format === 'pytorch' ? ` ${read.metadata.serialization}` : ''}${read.naming === 'torchvision' ? ', torchvision keys' : ''}, sha256 ${read.sha256}`;
  return {
    ...read,
    uri,
    path: located.path,
    ...(located.published ? { published: located.published.name } : {}),
    description: located.published ? `${located.published.name}: ${displayUri(located.published.url)} (${detail})` : `${source} (${detail})`,
  };
}

type FileContents = Omit<LoadedWeights, 'description' | 'uri' | 'path'>;

/**
 * Weights of a model in torch layout (ResNet-50): a torchvision state_dict as .pth or safetensors, tensors
 * read by their own keys (only those the layers need, when `layers` is given) and checked against the
 * model's specs. Published names are VGG16's: refused.
 */
async function loadNativeWeights(uri: string, model: ModelDescriptor, options: LoadWeightsOptions): Promise<LoadedWeights> {
  const source = displayUri(uri);
  const log = options.log ?? silentLog;
  if (publishedWeightsName(uri)) {
    throw new ValidationError(
      ErrorCode.InvalidWeights,
      `--weights ${uri} names VGG16 weights; for ${model.title} pass a torchvision state_dict (.pth or .safetensors, e.g. torchvision's ${model.name} file) as a path or URI, or --weights random`,
    );
  }
  const layers = options.layers?.map((spec) => model.layer(spec).name);
  const required = layers && layers.length > 0 ? model.requiredWeights(layers) : [];
  const specs = new Map(model.weights.map((spec) => [spec.name, spec]));
  const wanted = new Set((required.length > 0 ? required : model.weights).map((spec) => spec.name));
  const located = await locate(uri, options, log);
  const head = located.bytes ? located.bytes.subarray(0, HEAD_BYTES) : await readHead(located.path);
  const size = located.bytes ? located.bytes.length : (await stat(located.path)).size;
  const tensors: WeightsMap = new Map();
  let metadata: Record<string, string> = {};
  let format: WeightsFormat;
  if (looksLikeSafetensors(head, size)) {
    format = 'safetensors';
    const bytes = located.bytes ?? (await readFile(located.path));
    const header = parseSafetensors(bytes, source);
    metadata = header.metadata;
    for (const entry of header.entries) if (wanted.has(entry.name)) tensors.set(entry.name, { shape: entry.shape, data: decodeSafetensorsTensor(bytes, entry, source) });
  } else if (looksLikeTorchZip(head) || looksLikeTorchLegacy(head)) {
    format = 'pytorch';
    const access = located.bytes ? memoryAccess(located.bytes) : await fileAccess(located.path);
    try {
      const checkpoint = await openTorchCheckpoint(access, source);
      metadata = { serialization: checkpoint.serialization };
      for (const entry of checkpoint.tensors) if (wanted.has(entry.name)) tensors.set(entry.name, { shape: entry.shape, data: await checkpoint.read(entry.name) });
    } finally {
      await access.close();
    }
  } else {
    throw new ValidationError(ErrorCode.InvalidWeights, `${source}: ${model.title} reads torchvision state_dicts as .pth or .safetensors; this file is neither`);
  }
  if (tensors.size === 0) throw new ValidationError(ErrorCode.InvalidWeights, `${source} (${format}) holds no ${model.title} tensor (torchvision state_dict keys such as ${model.weights[0]?.name})`);
  // Tensors present must be right; with layers given, every one they need must be present.
  validateWeights(tensors, [...tensors.keys()].map((name) => specs.get(name)).filter((spec) => spec !== undefined), model.title);
  if (required.length > 0) validateWeights(tensors, required, model.title);
  const sha256 = located.sha256 ?? (located.bytes ? sha256Hex(located.bytes) : await sha256OfFile(located.path));
  log('weights loaded', { uri: source, format, sha256, tensors: tensors.size });
  return {
    tensors,
    description: `${source} (${format}${format === 'pytorch' ? ` ${metadata.serialization}` : ''}, torchvision keys, sha256 ${sha256})`,
    sha256,
    format,
    naming: 'torchvision',
    uri,
    path: located.path,
    size,
    metadata,
    origins: new Map(),
  };
}

/** Tells the format from the first bytes and reads the tensors. */
async function readContents(located: Located, source: string, wanted: ReadonlySet<string> | undefined): Promise<FileContents> {
  const head = located.bytes ? located.bytes.subarray(0, HEAD_BYTES) : await readHead(located.path);
  const size = located.bytes ? located.bytes.length : (await stat(located.path)).size;
  if (looksLikeHdf5(head)) return readH5(located, source, wanted);
  if (looksLikeSafetensors(head, size)) return readSafetensors(located.bytes ?? (await readFile(located.path)), source, wanted, located.sha256);
  if (looksLikeTorchZip(head) || looksLikeTorchLegacy(head)) return readPytorch(located, source, wanted);
  if (looksLikeJson(head)) return readTfjs(located, source, wanted);
  throw new ValidationError(
    ErrorCode.InvalidWeights,
    `${source} is not a weights file layertap reads (Keras HDF5, safetensors, a PyTorch .pth or a TF.js model.json); it starts with ` +
      `${Buffer.from(head.subarray(0, 8)).toString('hex')}`,
  );
}

async function readHead(file: string): Promise<Uint8Array> {
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.alloc(HEAD_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, HEAD_BYTES, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

function formatExtension(bytes: Uint8Array): string {
  const head = bytes.subarray(0, HEAD_BYTES);
  if (looksLikeHdf5(head)) return 'h5';
  if (looksLikeSafetensors(head, bytes.length)) return 'safetensors';
  if (looksLikeTorchZip(head) || looksLikeTorchLegacy(head)) return 'pth';
  if (looksLikeJson(head)) return 'json';
  return 'bin';
}

async function locate(uri: string, options: LoadWeightsOptions, log: LogFn): Promise<Located> {
  const name = publishedWeightsName(uri);
  if (name) {
    const fetched = await fetchPublishedWeights(name, { ...options.published, ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}) }).catch((err: unknown) => {
      if (isDownloadFailure(err)) throw unavailable(name, err, options);
      throw err;
    });
    log(fetched.downloaded ? 'weights downloaded' : 'weights found in cache', { name, url: displayUri(fetched.url), path: fetched.path });
    return {
      path: fetched.path,
      sha256: fetched.sha256,
      published: { name, url: fetched.url },
      sibling: async () => {
        throw new ValidationError(ErrorCode.InvalidWeights, `${name} is a single file`);
      },
      forget: () => rm(fetched.path, { force: true }),
    };
  }
  if (isRemoteUri(uri)) {
    const cache = new WeightsCache(options.cacheDir ?? defaultWeightsCacheDir());
    const fetchOne = async (target: string) => {
      const file = await fetchThroughCache(target, options.fetchBytes, cache, formatExtension);
      log(file.downloaded ? 'weights downloaded' : 'weights found in cache', { uri: displayUri(target), path: file.path });
      return file;
    };
    const main = await fetchOne(uri);
    return {
      path: main.path,
      sha256: main.sha256,
      ...(main.bytes ? { bytes: main.bytes } : {}),
      sibling: async (relative) => fetchOne(resolveSibling(uri, relative)),
      forget: () => cache.forget(uri, main.path),
    };
  }
  const file = localPath(uri);
  const info = await stat(file).catch(() => undefined);
  if (!info) throw new ValidationError(ErrorCode.NotFound, `weights file not found: ${file}`);
  // A directory is a TF.js layers model: its model.json, shards beside it.
  const main = info.isDirectory() ? path.join(file, TFJS_MODEL_JSON) : file;
  if (info.isDirectory() && !(await stat(main).catch(() => undefined))?.isFile()) {
    throw new ValidationError(ErrorCode.InvalidWeights, `${file} is a directory without a ${TFJS_MODEL_JSON} (expected a TF.js layers model)`);
  }
  return { path: main, sibling: async (relative) => ({ path: path.resolve(path.dirname(main), relative) }) };
}

/** Network trouble or an HTTP error while downloading (not a download that arrived and failed its check). */
function isDownloadFailure(err: unknown): boolean {
  return err instanceof LayertapError && !(err instanceof ValidationError) && (err.code === ErrorCode.FetchFailed || err.code === ErrorCode.HttpError);
}

/** A published name that is not cached and cannot be downloaded here: the three ways to get going. */
function unavailable(name: PublishedWeightsName, err: unknown, options: LoadWeightsOptions): ValidationError {
  const { file } = PUBLISHED_WEIGHTS[name];
  const mirror = options.published?.mirror ?? safeMirror();
  const cacheDir = options.cacheDir ?? defaultWeightsCacheDir();
  return new ValidationError(
    ErrorCode.InvalidWeights,
    `--weights ${name}: not in the weights cache (${cacheDir}) and the download from ${publishedUrl(name, mirror)} failed ` +
      `(${describeError(err)}). To get the file onto this machine: ` +
      `(1) on a machine with internet run \`layertap weights fetch ${name} --to <dir>\`, copy <dir>/${file} here ` +
      `and pass its path (--weights /path/to/${file}), or set LAYERTAP_WEIGHTS_MIRROR to a server that has it ` +
      `(workers: LAYERTAP_WEIGHTS_CACHE on a volume that has it); ` +
      `(2) pass a path or URI of a copy you already have; ` +
      `(3) or run with seeded random weights: --weights random`,
    { cause: err },
  );
}

function safeMirror(): string | undefined {
  try {
    return publishedWeightsSource().mirror;
  } catch {
    return undefined;
  }
}

/** A shard path from a model.json, resolved against the model.json's URI (`s3://b/m/model.json` + `x.bin`). */
function resolveSibling(uri: string, relative: string): string {
  return new URL(relative, uri).toString();
}

async function readH5(located: Located, source: string, wanted: ReadonlySet<string> | undefined) {
  const sha256 = located.sha256 ?? (located.bytes ? sha256Hex(located.bytes) : await sha256OfFile(located.path));
  const seconds = h5ParseSeconds();
  const contents = await readKerasH5InThread(located.path, source, wanted, seconds ? { deadlineSeconds: seconds } : {});
  const size = located.bytes?.length ?? (await stat(located.path)).size;
  const metadata: Record<string, string> = {
    layout: contents.layout as KerasH5Layout,
    layers: contents.layerNames.join(','),
    ...(contents.preprocess ? { preprocess: contents.preprocess } : {}),
  };
  return { tensors: contents.tensors, sha256, format: 'keras-h5' as const, naming: 'keras' as const, size, metadata, origins: new Map<string, string>() };
}

/**
 * Which naming a file's tensor names use, refusing a mix (their layouts could not be told apart) and files
 * without a VGG16 tensor. Returns the names to read.
 */
export function pickNaming<T extends { name: string }>(entries: readonly T[], source: string): { naming: WeightsNaming; entries: T[] } {
  const hint = namingHint(entries.map((entry) => entry.name));
  if (hint) throw new ValidationError(ErrorCode.InvalidWeights, `${source}: ${hint}`);
  const torchvision = entries.filter((entry) => looksTorchvision(entry.name));
  const keras = entries.filter((entry) => kerasWeightKey(entry.name) !== undefined);
  if (torchvision.length > 0 && keras.length > 0) {
    throw new ValidationError(
      ErrorCode.InvalidWeights,
      `${source} mixes torchvision keys (${torchvision[0]?.name}) and Keras-style keys (${keras[0]?.name}); layertap cannot tell their layouts apart`,
    );
  }
  if (torchvision.length === 0 && keras.length === 0) {
    const names = entries.slice(0, 5).map((entry) => entry.name);
    throw new ValidationError(
      ErrorCode.InvalidWeights,
      `${source} has no VGG16 tensor: expected torchvision keys (features.0.weight) or Keras-style keys ` +
        `(block1_conv1/kernel); found ${names.length ? names.join(', ') : 'no tensors'}${entries.length > 5 ? ', ...' : ''}`,
    );
  }
  return torchvision.length > 0 ? { naming: 'torchvision', entries: torchvision } : { naming: 'keras', entries: keras };
}

/** The canonical key a tensor name stands for under `naming`, with its torchvision mapping when it has one. */
export function canonicalKey(name: string, naming: WeightsNaming): { key?: string; mapped?: TorchvisionKey } {
  if (naming === 'keras') return { key: kerasWeightKey(name) };
  const mapped = torchvisionWeightKey(name);
  return { key: mapped?.canonical, mapped };
}

/**
 * A torchvision tensor in TF layout. Tensors of an unexpected rank stay as they are and fail validation,
 * which names them with both shapes (and, through `origins`, the key they came from).
 */
function torchvisionToTf(mapped: TorchvisionKey, data: Float32Array, shape: number[]): { shape: number[]; data: Float32Array } {
  if (mapped.param === 'kernel' && mapped.kind === 'conv' && shape.length === 4) return torchConvToTf(data, shape);
  if (mapped.param === 'kernel' && mapped.kind === 'dense' && shape.length === 2) return torchDenseToTf(data, shape, mapped.canonical === 'fc1/kernel');
  return { shape, data };
}

function readSafetensors(bytes: Uint8Array, source: string, wanted: ReadonlySet<string> | undefined, knownSha256?: string) {
  const header = parseSafetensors(bytes, source);
  const { naming, entries } = pickNaming(header.entries, source);
  const tensors: WeightsMap = new Map();
  const origins = new Map<string, string>();
  for (const entry of entries) {
    const { key, mapped } = canonicalKey(entry.name, naming);
    if (!key || (wanted && !wanted.has(key))) continue;
    const data = decodeSafetensorsTensor(bytes, entry, source);
    if (!mapped) {
      tensors.set(key, { shape: entry.shape, data });
      continue;
    }
    origins.set(key, `${entry.name} [${entry.shape.join(', ')}]`);
    tensors.set(key, torchvisionToTf(mapped, data, entry.shape));
  }
  return {
    tensors,
    sha256: knownSha256 ?? sha256Hex(bytes),
    format: 'safetensors' as const,
    naming,
    size: bytes.length,
    metadata: header.metadata,
    origins,
  };
}

/**
 * A PyTorch checkpoint: its pickle is read (never run) and checked before any tensor data; then only the
 * storages of the wanted tensors are read, each once (from disk for local files, not the whole file).
 */
async function readPytorch(located: Located, source: string, wanted: ReadonlySet<string> | undefined): Promise<FileContents> {
  const access = located.bytes ? memoryAccess(located.bytes) : await fileAccess(located.path);
  try {
    const checkpoint = await openTorchCheckpoint(access, source);
    const { naming, entries } = pickNaming(checkpoint.tensors, source);
    const tensors: WeightsMap = new Map();
    const origins = new Map<string, string>();
    for (const entry of entries) {
      const { key, mapped } = canonicalKey(entry.name, naming);
      if (!key || (wanted && !wanted.has(key))) continue;
      const data = await checkpoint.read(entry.name);
      if (!mapped) {
        tensors.set(key, { shape: entry.shape, data });
        continue;
      }
      origins.set(key, `${entry.name} [${entry.shape.join(', ')}]${entry.dtype === 'float32' ? '' : ` ${entry.dtype}`}`);
      tensors.set(key, torchvisionToTf(mapped, data, entry.shape));
    }
    const sha256 = located.sha256 ?? (located.bytes ? sha256Hex(located.bytes) : await sha256OfFile(located.path));
    const dtypes = [...new Set(entries.map((entry) => entry.dtype))].join(',');
    return {
      tensors,
      sha256,
      format: 'pytorch',
      naming,
      size: access.size,
      metadata: { serialization: checkpoint.serialization, dtypes },
      origins,
    };
  } finally {
    await access.close();
  }
}

async function readTfjs(located: Located, source: string, wanted: ReadonlySet<string> | undefined) {
  const json = located.bytes ?? (await readFile(located.path));
  const model = parseTfjsModelJson(json, source);
  if (!model) throw new ValidationError(ErrorCode.InvalidWeights, `${source} is JSON but not a TF.js layers model (no "weightsManifest")`);
  const hash = createHash('sha256').update(json);
  let size = json.length;
  const tensors = await decodeTfjsWeights(
    model,
    async (shard) => {
      const file = await located.sibling(shard);
      const bytes = file.bytes ?? (await readFile(file.path).catch(() => {
        throw new ValidationError(ErrorCode.InvalidWeights, `${source}: shard ${shard} is missing (looked for ${file.path})`);
      }));
      hash.update(bytes);
      size += bytes.length;
      return bytes;
    },
    source,
    wanted,
  );
  const metadata = Object.fromEntries(Object.entries(model.metadata).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
  return { tensors, sha256: hash.digest('hex'), format: 'tfjs-layers' as const, naming: 'keras' as const, size, metadata, origins: new Map<string, string>() };
}
