// What `--weights` asks for, resolved once at submit: seeded random weights, a published name (not read: its
// contents are known) or a file (its header read); checked against the requested layers; and the preprocessing.
import { ErrorCode, ValidationError, type Preprocess } from '@layertap/contracts';
import type { LogFn } from '../log';
import type { ModelDescriptor } from '../models/descriptor';
import { type PublishedFetchOptions } from './fetch-published';
import { checkWeightsHeader, type WeightsHeader } from './check-weights-header';
import type { WeightsFormat, WeightsNaming } from './load-weights';
import { choosePreprocess } from './preprocess-for-weights';
import { publishedWeightsName, type PublishedWeightsName } from './published-weights';
import type { FetchRange, RemoteAccessStats } from './random-access';
import type { FetchBytes } from './weights-cache';

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
  /** Downloads `http(s)://` and `s3://` weights URIs whole (Keras HDF5 and TF.js files, which are loaded at submit). */
  fetchBytes?: FetchBytes;
  /** Reads byte ranges of `http(s)://` and `s3://` weights URIs: their headers, without the tensors. */
  fetchRange?: FetchRange;
  /** Counts range requests and the bytes they brought. */
  stats?: RemoteAccessStats;
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
  /**
   * Provenance in one line: `random, seed 3`, or the file's description (source, format and `header checked`;
   * a published name: its URL and the checksum the workers check; a file loaded whole: its sha256).
   */
  description: string;
  /** sha256 of the file, only when submit read it whole (Keras HDF5, TF.js); the workers report what they load. */
  sha256?: string;
  /** What submit read: the header, nothing (a published name), or the whole file. Undefined for random weights. */
  read?: WeightsHeader['read'];
  format?: WeightsFormat;
  naming?: WeightsNaming;
  /** The preprocessing to run with, why, and a warning line when `--preprocess` contradicts the weights. */
  preprocess: Preprocess;
  preprocessReason: string;
  warning?: string;
}

/**
 * Resolves a `--weights` value (undefined: `DEFAULT_WEIGHTS`) for a submission: checks the weights against
 * `options.layers` from their header only (`checkWeightsHeader`: a published name makes no request and reads
 * nothing, its contents are known; a file's tensors are listed without their data, by range requests when
 * remote), and decides the preprocessing. The workers download, verify and cache the file when they load it.
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
  // The header only: a published name is not read at all (the table says what it holds), a file's tensors are
  // listed without their data (by range requests for remote files). The workers load and hash the whole file.
  const header = await checkWeightsHeader(target, {
    layers: options.layers,
    ...(options.fetchBytes ? { fetchBytes: options.fetchBytes } : {}),
    ...(options.fetchRange ? { fetchRange: options.fetchRange } : {}),
    ...(options.stats ? { stats: options.stats } : {}),
    ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
    ...(options.published ? { published: options.published } : {}),
    ...(options.log ? { log: options.log } : {}),
    ...(options.model ? { model: options.model } : {}),
  });
  const choice = choosePreprocess(header, options.preprocess);
  return {
    request,
    weights: target,
    description: header.description,
    ...(header.sha256 ? { sha256: header.sha256 } : {}),
    format: header.format,
    naming: header.naming,
    read: header.read,
    preprocess: choice.mode,
    preprocessReason: choice.reason,
    ...(choice.warning ? { warning: choice.warning } : {}),
  };
}
