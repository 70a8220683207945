// What `--weights` asks for, resolved once at submit: seeded random weights, a published name (downloaded
// once, checked, cached) or a file; checked against the requested layers; and the preprocessing to use.
import { ErrorCode, LayertapError, ValidationError, describeError, type Preprocess } from '@layertap/contracts';
import type { LogFn } from '../log';
import type { ModelDescriptor } from '../models/descriptor';
import { type PublishedFetchOptions } from './fetch-published';
import { loadWeights, type WeightsFormat, type WeightsNaming } from './load-weights';
import { choosePreprocess } from './preprocess-for-weights';
import { PUBLISHED_WEIGHTS, publishedUrl, publishedWeightsName, type PublishedWeightsName } from './published-weights';
import type { FetchBytes } from './weights-cache';
import { defaultWeightsCacheDir, publishedWeightsSource } from './weights-env';

/** `--weights random`: seeded random weights (from `--seed`). */
export const RANDOM_WEIGHTS = 'random';

/**
 * What `submit` uses when `--weights` is not given: torchvision's ImageNet checkpoint, as
 * `models.vgg16(weights="IMAGENET1K_V1")` (downloaded once, verified, cached). Random weights are asked for.
 */
export const DEFAULT_WEIGHTS: string = 'torchvision-imagenet';

export type WeightsRequest = { kind: 'random' } | { kind: 'published'; name: PublishedWeightsName } | { kind: 'uri'; uri: string };

/**
 * Reads a `--weights` value: `random`, a published name (`keras-imagenet`, `keras-imagenet-notop`,
 * `torchvision-imagenet`) or anything else as a path or URI (`./random` is the file called random).
 * `undefined` means `DEFAULT_WEIGHTS`.
 */
export function parseWeightsRequest(value: string | undefined): WeightsRequest {
  const given = (value ?? DEFAULT_WEIGHTS).trim();
  if (given === RANDOM_WEIGHTS) return { kind: 'random' };
  const name = publishedWeightsName(given);
  if (name) return { kind: 'published', name };
  if (given === '') throw new ValidationError(ErrorCode.InvalidRequest, '--weights is empty: give random, a weights name, a path or a URI');
  return { kind: 'uri', uri: given };
}

export interface ResolveWeightsOptions {
  /** Layers (any spec) the weights must serve; a file that cannot serve them is refused. */
  layers: readonly string[];
  /** Seed of random weights. */
  seed: number;
  /** `--preprocess` when given; without it the weights decide. */
  preprocess?: Preprocess;
  /** Downloads `http(s)://` and `s3://` weights URIs (published names download on their own). */
  fetchBytes?: FetchBytes;
  /** Weights cache. Default `defaultWeightsCacheDir()`. */
  cacheDir?: string;
  /** Mirror, checksums, fetch and download progress for published names. Defaults: the environment. */
  published?: PublishedFetchOptions;
  log?: LogFn;
  /** The model the weights are for (default VGG16; see `LoadWeightsOptions.model`). */
  model?: ModelDescriptor;
}

export interface ResolvedWeights {
  request: WeightsRequest;
  /** What the dataset config carries: the published name or the URI as given; undefined for random weights. */
  weights?: string;
  /** Provenance in one line: `random, seed 3` or the file's description (source, format, sha256). */
  description: string;
  sha256?: string;
  format?: WeightsFormat;
  naming?: WeightsNaming;
  /** The preprocessing to run with, why, and a warning line when `--preprocess` contradicts the weights. */
  preprocess: Preprocess;
  preprocessReason: string;
  warning?: string;
}

/**
 * Resolves a `--weights` value (undefined: `DEFAULT_WEIGHTS`) for a submission: loads and checks the weights
 * against `options.layers` (published names are downloaded once, checked against their published hash and
 * cached by content; later calls make no request), and decides the preprocessing. A published name that is
 * neither cached nor downloadable fails with a `ValidationError` (`invalid_weights`, exit 2 in the CLI) that
 * says how to get the file onto the machine.
 */
export async function resolveWeightsRequest(value: string | undefined, options: ResolveWeightsOptions): Promise<ResolvedWeights> {
  if (value === undefined && options.model && options.model.name !== 'vgg16') {
    // The published default is VGG16's: another model's weights are named, never assumed.
    throw new ValidationError(
      ErrorCode.InvalidWeights,
      `--model ${options.model.name} needs --weights: a torchvision state_dict (.pth or .safetensors) as a path or URI, or random (seeded by --seed)`,
    );
  }
  const request = parseWeightsRequest(value);
  if (request.kind === 'random') {
    const choice = choosePreprocess('random', options.preprocess);
    return { request, description: `random, seed ${options.seed}`, preprocess: choice.mode, preprocessReason: choice.reason };
  }
  const target = request.kind === 'published' ? request.name : request.uri;
  const loaded = await loadWeights(target, {
    layers: options.layers,
    ...(options.fetchBytes ? { fetchBytes: options.fetchBytes } : {}),
    ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
    ...(options.published ? { published: options.published } : {}),
    ...(options.log ? { log: options.log } : {}),
    ...(options.model ? { model: options.model } : {}),
  }).catch((err: unknown) => {
    if (request.kind === 'published' && isDownloadFailure(err)) throw unavailable(request.name, err, options);
    throw err;
  });
  const choice = choosePreprocess(loaded, options.preprocess);
  return {
    request,
    weights: target,
    description: loaded.description,
    sha256: loaded.sha256,
    format: loaded.format,
    naming: loaded.naming,
    preprocess: choice.mode,
    preprocessReason: choice.reason,
    ...(choice.warning ? { warning: choice.warning } : {}),
  };
}

/** Network trouble or an HTTP error while downloading (not a download that arrived and failed its check). */
function isDownloadFailure(err: unknown): boolean {
  return err instanceof LayertapError && !(err instanceof ValidationError) && (err.code === ErrorCode.FetchFailed || err.code === ErrorCode.HttpError);
}

/** A published name that is not cached and cannot be downloaded here: the three ways to get going. */
function unavailable(name: PublishedWeightsName, err: unknown, options: ResolveWeightsOptions): ValidationError {
  const { file } = PUBLISHED_WEIGHTS[name];
  const mirror = options.published?.mirror ?? safeMirror();
  const cacheDir = options.cacheDir ?? defaultWeightsCacheDir();
  return new ValidationError(
    ErrorCode.InvalidWeights,
    `--weights ${name}: not in the weights cache (${cacheDir}) and the download from ${publishedUrl(name, mirror)} failed ` +
      `(${describeError(err)}). To get the file onto this machine: ` +
      `(1) on a machine with internet run \`layertap weights fetch ${name} --to <dir>\`, copy <dir>/${file} here ` +
      `and pass its path (--weights /path/to/${file}), or set LAYERTAP_WEIGHTS_MIRROR to a server that has it; ` +
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
