// loadWeights: any supported weights file or URI -> VGG16 tensors in TF layout, with provenance.
import { createHash } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { layerInfo } from '../layers';
import { silentLog, type LogFn } from '../log';
import { requiredWeights, type WeightsMap } from '../weight-specs';
import { checkPresentShapes, checkWeightsServe } from './coverage';
import { looksLikeHdf5, readKerasH5, type KerasH5Layout } from './keras-h5';
import { torchConvToTf, torchDenseToTf } from './layout';
import { decodeSafetensorsTensor, looksLikeSafetensors, parseSafetensors } from './safetensors';
import { kerasWeightKey, looksTorchvision, torchvisionWeightKey } from './tensor-names';
import { TFJS_MODEL_JSON, decodeTfjsWeights, looksLikeJson, parseTfjsModelJson } from './tfjs-layers';
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
import { defaultWeightsCacheDir } from './weights-env';

export type WeightsFormat = 'keras-h5' | 'safetensors' | 'tfjs-layers';

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
  /** The URI as given. */
  uri: string;
  /** The local file read (for remote URIs, the cached copy; for TF.js, the model.json). */
  path: string;
  /** Bytes read (for TF.js: model.json and every shard). */
  size: number;
  /** safetensors `__metadata__`, TF.js `userDefinedMetadata` (as strings) or the HDF5 root's layout facts. */
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
}

const HEAD_BYTES = 4096;

/**
 * Loads VGG16 weights from a local path, `file://`, `http(s)://` or `s3://` URI (remote ones through
 * `options.fetchBytes`, cached on disk by content hash). The format is told from the content, not the name:
 * Keras HDF5 (keras-applications' files with or without top, Keras 2 `model.save`, Keras 3 `.weights.h5`),
 * safetensors (torchvision state_dict keys, converted to TF layout, or Keras-style keys already in TF layout:
 * what `convertWeights` writes) and TF.js layers models (a directory or its model.json). Throws
 * `ValidationError` (`invalid_weights`) naming the tensor and both shapes when something does not fit.
 */
export async function loadWeights(uri: string, options: LoadWeightsOptions = {}): Promise<LoadedWeights> {
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
  return {
    ...read,
    uri,
    path: located.path,
    description: `${source} (${read.format}${read.naming === 'torchvision' ? ', torchvision keys' : ''}, sha256 ${read.sha256})`,
  };
}

type FileContents = Omit<LoadedWeights, 'description' | 'uri' | 'path'>;

/** Tells the format from the first bytes and reads the tensors. */
async function readContents(located: Located, source: string, wanted: ReadonlySet<string> | undefined): Promise<FileContents> {
  const head = located.bytes ? located.bytes.subarray(0, HEAD_BYTES) : await readHead(located.path);
  const size = located.bytes ? located.bytes.length : (await stat(located.path)).size;
  if (looksLikeHdf5(head)) return readH5(located, source, wanted);
  if (looksLikeSafetensors(head, size)) return readSafetensors(located.bytes ?? (await readFile(located.path)), source, wanted, located.sha256);
  if (looksLikeJson(head)) return readTfjs(located, source, wanted);
  throw new ValidationError(
    ErrorCode.InvalidWeights,
    `${source} is not a weights file layertap reads (Keras HDF5, safetensors or a TF.js model.json); it starts with ` +
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
  if (looksLikeJson(head)) return 'json';
  return 'bin';
}

async function locate(uri: string, options: LoadWeightsOptions, log: LogFn): Promise<Located> {
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

/** A shard path from a model.json, resolved against the model.json's URI (`s3://b/m/model.json` + `x.bin`). */
function resolveSibling(uri: string, relative: string): string {
  return new URL(relative, uri).toString();
}

async function readH5(located: Located, source: string, wanted: ReadonlySet<string> | undefined) {
  const sha256 = located.sha256 ?? (located.bytes ? sha256Hex(located.bytes) : await sha256OfFile(located.path));
  const contents = await readKerasH5(located.path, source, wanted);
  const size = located.bytes?.length ?? (await stat(located.path)).size;
  const metadata: Record<string, string> = { layout: contents.layout as KerasH5Layout, layers: contents.layerNames.join(',') };
  return { tensors: contents.tensors, sha256, format: 'keras-h5' as const, naming: 'keras' as const, size, metadata, origins: new Map<string, string>() };
}

function readSafetensors(bytes: Uint8Array, source: string, wanted: ReadonlySet<string> | undefined, knownSha256?: string) {
  const header = parseSafetensors(bytes, source);
  const torchvision = header.entries.filter((entry) => looksTorchvision(entry.name));
  const keras = header.entries.filter((entry) => kerasWeightKey(entry.name) !== undefined);
  if (torchvision.length > 0 && keras.length > 0) {
    throw new ValidationError(
      ErrorCode.InvalidWeights,
      `${source} mixes torchvision keys (${torchvision[0]?.name}) and Keras-style keys (${keras[0]?.name}); layertap cannot tell their layouts apart`,
    );
  }
  if (torchvision.length === 0 && keras.length === 0) {
    const names = header.entries.slice(0, 5).map((entry) => entry.name);
    throw new ValidationError(
      ErrorCode.InvalidWeights,
      `${source} has no VGG16 tensor: expected torchvision keys (features.0.weight) or Keras-style keys ` +
        `(block1_conv1/kernel); found ${names.length ? names.join(', ') : 'no tensors'}${header.entries.length > 5 ? ', ...' : ''}`,
    );
  }
  const tensors: WeightsMap = new Map();
  const origins = new Map<string, string>();
  for (const entry of torchvision.length > 0 ? torchvision : keras) {
    const mapped = torchvision.length > 0 ? torchvisionWeightKey(entry.name) : undefined;
    const key = mapped?.canonical ?? kerasWeightKey(entry.name);
    if (!key || (wanted && !wanted.has(key))) continue;
    const data = decodeSafetensorsTensor(bytes, entry, source);
    if (!mapped) {
      tensors.set(key, { shape: entry.shape, data });
      continue;
    }
    // torchvision layout -> TF layout. Tensors of an unexpected rank stay as they are and fail validation,
    // which names them with both shapes (and, through `origins`, the key they came from).
    origins.set(key, `${entry.name} [${entry.shape.join(', ')}]`);
    if (mapped.param === 'kernel' && mapped.kind === 'conv' && entry.shape.length === 4) tensors.set(key, torchConvToTf(data, entry.shape));
    else if (mapped.param === 'kernel' && mapped.kind === 'dense' && entry.shape.length === 2) tensors.set(key, torchDenseToTf(data, entry.shape, key === 'fc1/kernel'));
    else tensors.set(key, { shape: entry.shape, data });
  }
  return {
    tensors,
    sha256: knownSha256 ?? sha256Hex(bytes),
    format: 'safetensors' as const,
    naming: (torchvision.length > 0 ? 'torchvision' : 'keras') as WeightsNaming,
    size: bytes.length,
    metadata: header.metadata,
    origins,
  };
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
