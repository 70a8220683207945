// Downloading the weights layertap knows by name (published-weights.ts), checked against their published
// checksums, into the weights cache (content-addressed, found again by name) or into a directory.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { ErrorCode, LayertapError, TransientError, ValidationError, describeError } from '@layertap/contracts';
import {
  PUBLISHED_WEIGHTS,
  PUBLISHED_WEIGHTS_NAMES,
  checksumProblem,
  publishedCacheKey,
  publishedUrl,
  publishedWeightsName,
  type PublishedWeightsName,
  type WeightsChecksum,
} from './published-weights';
import { WeightsCache, sha256OfFile } from './weights-cache';
import { defaultWeightsCacheDir, publishedWeightsSource, type PublishedWeightsSource } from './weights-env';

/** How long a server may take to answer before a download counts as failed. */
const RESPONSE_TIMEOUT_MS = 30_000;

export interface PublishedFetchOptions {
  /** Base URL of a mirror. Default: `LAYERTAP_WEIGHTS_MIRROR`, else the published URLs. */
  mirror?: string;
  /** Checksums replacing the published ones, by name. Default: `LAYERTAP_WEIGHTS_MIRROR_CHECKSUMS` (with the environment's mirror). */
  checksums?: PublishedWeightsSource['checksums'];
  /** `fetch` to use. Default: the global one. */
  fetchImpl?: typeof fetch;
  /** Called as bytes arrive (resumed bytes included); `total` is 0 when the size is unknown. */
  onProgress?: (received: number, total: number) => void;
}

export interface FetchPublishedWeightsOptions extends PublishedFetchOptions {
  /** Save as `<to>/<published file name>` instead of into the weights cache (to carry the file elsewhere). */
  to?: string;
  /** The weights cache. Default `defaultWeightsCacheDir()`. */
  cacheDir?: string;
}

export interface FetchedWeights {
  name: PublishedWeightsName;
  path: string;
  url: string;
  size: number;
  md5?: string;
  sha256: string;
  /** False when a complete, matching copy was already there. */
  downloaded: boolean;
  /** Bytes taken from an interrupted earlier download (0 when it started afresh). */
  resumedFrom: number;
  /** Whether the file lives in the weights cache (found again by name) rather than in `to`. */
  cached: boolean;
  /** What the file was checked against (the published checksum, or a mirror's). */
  checksum: WeightsChecksum;
}

/** The checksum a download of `name` must match, and where it comes from. */
function settings(name: PublishedWeightsName, options: PublishedFetchOptions): { url: string; checksum: WeightsChecksum } {
  const env = options.mirror !== undefined && options.checksums !== undefined ? {} : publishedWeightsSource();
  const mirror = options.mirror ?? env.mirror;
  // The environment's checksums belong to the environment's mirror.
  const checksums = options.checksums ?? (options.mirror === undefined ? env.checksums : undefined);
  return { url: publishedUrl(name, mirror), checksum: checksums?.[name] ?? PUBLISHED_WEIGHTS[name].checksum };
}

function known(value: string): PublishedWeightsName {
  const name = publishedWeightsName(value);
  if (!name) throw new ValidationError(ErrorCode.InvalidRequest, `unknown weights ${JSON.stringify(value)}: expected ${PUBLISHED_WEIGHTS_NAMES.join(', ')}`);
  return name;
}

/**
 * Makes sure a checked copy of `name` is on this machine and returns where. Into the weights cache by
 * default: found there again by name (and by the checksum it was checked against), without a request; each
 * use re-hashes the cached file, and a copy that changed is downloaded again. With `to`, saved as
 * `<to>/<published file name>`. Downloads stream into `<file>.part` and resume with a range request after an
 * interruption; a finished download that does not match is deleted and refused (`InvalidWeights`); network
 * trouble is a `TransientError` (HTTP errors: `http_error`).
 */
export async function fetchPublishedWeights(value: string, options: FetchPublishedWeightsOptions = {}): Promise<FetchedWeights> {
  const name = known(value);
  const { url, checksum } = settings(name, options);
  const file = PUBLISHED_WEIGHTS[name].file;
  if (options.to !== undefined) {
    const dir = path.resolve(options.to);
    const target = path.join(dir, file);
    const existing = await stat(target).catch(() => undefined);
    if (existing?.isFile() && (checksum.size === undefined || existing.size === checksum.size)) {
      const digests = await digestFile(target);
      if (!checksumProblem(checksum, existing.size, digests)) {
        options.onProgress?.(existing.size, existing.size);
        return { name, path: target, url, size: existing.size, ...digests, downloaded: false, resumedFrom: 0, cached: false, checksum };
      }
    }
    const got = await download(url, target, checksum, options);
    await rename(got.partial, target);
    return { name, path: target, url, size: got.size, md5: got.md5, sha256: got.sha256, downloaded: true, resumedFrom: got.resumedFrom, cached: false, checksum };
  }

  const cache = new WeightsCache(options.cacheDir ?? defaultWeightsCacheDir());
  const key = publishedCacheKey(name, checksum);
  const hit = await cache.lookup(key);
  if (hit) {
    if ((await sha256OfFile(hit.path)) === hit.sha256) {
      const { size } = await stat(hit.path);
      options.onProgress?.(size, size);
      return { name, path: hit.path, url, size, sha256: hit.sha256, downloaded: false, resumedFrom: 0, cached: true, checksum };
    }
    await cache.forget(key, hit.path);
  }
  const got = await download(url, path.join(cache.dir, 'downloads', file), checksum, options);
  const stored = await cache.adopt(key, got.partial, got.sha256, path.extname(file).slice(1) || 'bin');
  return { name, path: stored.path, url, size: got.size, md5: got.md5, sha256: got.sha256, downloaded: true, resumedFrom: got.resumedFrom, cached: true, checksum };
}

/** The cached copy of `name` when there is a checked one, without downloading (undefined otherwise). */
export async function cachedPublishedWeights(value: string, options: Omit<FetchPublishedWeightsOptions, 'to'> = {}): Promise<string | undefined> {
  const name = known(value);
  const { checksum } = settings(name, options);
  const cache = new WeightsCache(options.cacheDir ?? defaultWeightsCacheDir());
  const hit = await cache.lookup(publishedCacheKey(name, checksum));
  return hit && (await sha256OfFile(hit.path)) === hit.sha256 ? hit.path : undefined;
}

interface Downloaded {
  partial: string;
  size: number;
  md5: string;
  sha256: string;
  resumedFrom: number;
}

/** Streams `url` into `<target>.part` (resuming one left by an interruption) and checks it. */
async function download(url: string, target: string, checksum: WeightsChecksum, options: PublishedFetchOptions): Promise<Downloaded> {
  await mkdir(path.dirname(target), { recursive: true });
  const partial = `${target}.part`;
  const md5 = createHash('md5');
  const sha256 = createHash('sha256');
  let resumedFrom = (await stat(partial).catch(() => undefined))?.size ?? 0;
  if (checksum.size !== undefined && resumedFrom >= checksum.size) {
    await rm(partial, { force: true });
    resumedFrom = 0;
  }
  const fetchImpl = options.fetchImpl ?? fetch;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), RESPONSE_TIMEOUT_MS);
  let response: Response;
  try {
    response = await fetchImpl(url, { signal: controller.signal, ...(resumedFrom > 0 ? { headers: { range: `bytes=${resumedFrom}-` } } : {}) });
  } catch (err) {
    const reason = controller.signal.aborted ? `no answer in ${RESPONSE_TIMEOUT_MS / 1000} s` : describeError(err);
    throw new TransientError(ErrorCode.FetchFailed, `GET ${url} failed: ${reason}${causeOf(err)}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
  if (resumedFrom > 0 && response.status !== 206) resumedFrom = 0; // the server sends the whole file again
  if (response.status !== 200 && response.status !== 206) {
    await response.body?.cancel().catch(() => undefined);
    const message = `GET ${url}: HTTP ${response.status} ${response.statusText}`;
    throw response.status >= 500 || response.status === 429
      ? new TransientError(ErrorCode.HttpError, message)
      : new LayertapError(ErrorCode.HttpError, message);
  }
  if (!response.body) throw new TransientError(ErrorCode.FetchFailed, `GET ${url}: empty response body`);
  if (resumedFrom > 0) await hashInto(partial, [md5, sha256]);
  const announced = Number(response.headers.get('content-length') ?? NaN);
  const total = checksum.size ?? (Number.isFinite(announced) ? resumedFrom + announced : 0);

  let received = resumedFrom;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      md5.update(chunk);
      sha256.update(chunk);
      received += chunk.length;
      options.onProgress?.(received, total);
      done(null, chunk);
    },
  });
  try {
    await pipeline(
      Readable.fromWeb(response.body as unknown as WebReadableStream<Uint8Array>),
      counter,
      createWriteStream(partial, { flags: resumedFrom > 0 ? 'a' : 'w' }),
    );
  } catch (err) {
    throw new TransientError(
      ErrorCode.FetchFailed,
      `download of ${url} broke off after ${received}${total ? ` of ${total}` : ''} bytes (${describeError(err)}); ` +
        `the partial file ${partial} is kept: run the command again to resume`,
      { cause: err },
    );
  }
  const digests = { md5: md5.digest('hex'), sha256: sha256.digest('hex') };
  const problem = checksumProblem(checksum, received, digests);
  if (problem) {
    await rm(partial, { force: true });
    throw new ValidationError(
      ErrorCode.InvalidWeights,
      `download of ${url} does not match the published file: ${problem} (${received < (checksum.size ?? 0) ? 'truncated' : 'corrupted'}); the download was deleted`,
    );
  }
  return { partial, size: received, ...digests, resumedFrom };
}

/** undici hides the reason (ECONNREFUSED, ENOTFOUND) in `cause`. */
function causeOf(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  const text = cause?.code ?? cause?.message;
  return text ? ` (${text})` : '';
}

async function hashInto(file: string, hashes: Hash[]): Promise<void> {
  for await (const chunk of createReadStream(file)) for (const hash of hashes) hash.update(chunk as Buffer);
}

async function digestFile(file: string): Promise<{ md5: string; sha256: string }> {
  const md5 = createHash('md5');
  const sha256 = createHash('sha256');
  await hashInto(file, [md5, sha256]);
  return { md5: md5.digest('hex'), sha256: sha256.digest('hex') };
}
