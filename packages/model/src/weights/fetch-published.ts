// Downloading keras-applications' published VGG16 weights, checked against their published size and MD5.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { ErrorCode, LayertapError, TransientError, ValidationError, describeError } from '@layertap/contracts';

export const PUBLISHED_WEIGHTS_BASE_URL = 'https://storage.googleapis.com/tensorflow/keras-applications/vgg16/';

/** keras-applications' VGG16 files, with the sizes and MD5s Keras itself checks them against. */
export const PUBLISHED_WEIGHTS = {
  'keras-vgg16': { file: 'vgg16_weights_tf_dim_ordering_tf_kernels.h5', size: 553_467_096, md5: '64373286793e3c8b2b4e3219cbf3544b' },
  'keras-vgg16-notop': { file: 'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5', size: 58_889_256, md5: '6d6bbae143d832006294945121d1f1fc' },
} as const;

export type PublishedWeightsName = keyof typeof PUBLISHED_WEIGHTS;

export function isPublishedWeightsName(name: string): name is PublishedWeightsName {
  return Object.prototype.hasOwnProperty.call(PUBLISHED_WEIGHTS, name);
}

export interface FetchPublishedWeightsOptions {
  /** Directory the file goes into (created if needed). */
  to: string;
  /** Where the files are published. Default `PUBLISHED_WEIGHTS_BASE_URL`; tests point it at a local server. */
  baseUrl?: string;
  /** `fetch` to use. Default: the global one. */
  fetchImpl?: typeof fetch;
  /** Size and MD5 to check instead of the published ones (tests serving their own small file). */
  expected?: { size: number; md5: string };
  /** Called as bytes arrive (resumed bytes included). */
  onProgress?: (received: number, total: number) => void;
}

export interface FetchedWeights {
  name: PublishedWeightsName;
  path: string;
  url: string;
  size: number;
  md5: string;
  sha256: string;
  /** False when a complete, matching file was already there. */
  downloaded: boolean;
  /** Bytes taken from an interrupted earlier download (0 when it started afresh). */
  resumedFrom: number;
}

/**
 * Downloads `name` into `options.to` and checks the published size and MD5. The download streams into
 * `<file>.part`; only a complete, matching file is renamed into place. A file that is already there and
 * matches is kept (no download); an interrupted download is resumed with an HTTP range request when the
 * server allows it. A finished download of the wrong size or MD5 is deleted and refused (`InvalidWeights`);
 * a broken connection keeps the partial file for the next attempt (`TransientError`).
 */
export async function fetchPublishedWeights(name: PublishedWeightsName, options: FetchPublishedWeightsOptions): Promise<FetchedWeights> {
  if (!isPublishedWeightsName(name)) {
    throw new ValidationError(ErrorCode.InvalidRequest, `unknown weights ${JSON.stringify(name)}: expected ${Object.keys(PUBLISHED_WEIGHTS).join(' or ')}`);
  }
  const published = PUBLISHED_WEIGHTS[name];
  const expected = options.expected ?? { size: published.size, md5: published.md5 };
  const base = options.baseUrl ?? PUBLISHED_WEIGHTS_BASE_URL;
  const url = new URL(published.file, base.endsWith('/') ? base : `${base}/`).toString();
  const dir = path.resolve(options.to);
  const target = path.join(dir, published.file);
  const partial = `${target}.part`;
  await mkdir(dir, { recursive: true });

  const existing = await stat(target).catch(() => undefined);
  if (existing?.isFile() && existing.size === expected.size) {
    const digests = await digestFile(target);
    if (digests.md5 === expected.md5) {
      options.onProgress?.(expected.size, expected.size);
      return { name, path: target, url, size: expected.size, ...digests, downloaded: false, resumedFrom: 0 };
    }
  }

  const md5 = createHash('md5');
  const sha256 = createHash('sha256');
  let resumedFrom = (await stat(partial).catch(() => undefined))?.size ?? 0;
  if (resumedFrom >= expected.size) {
    await rm(partial, { force: true });
    resumedFrom = 0;
  }
  const fetchImpl = options.fetchImpl ?? fetch;
  let response: Response;
  try {
    response = await fetchImpl(url, resumedFrom > 0 ? { headers: { range: `bytes=${resumedFrom}-` } } : {});
  } catch (err) {
    throw new TransientError(ErrorCode.FetchFailed, `GET ${url} failed: ${describeError(err)}`, { cause: err });
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

  let received = resumedFrom;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      md5.update(chunk);
      sha256.update(chunk);
      received += chunk.length;
      options.onProgress?.(received, expected.size);
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
      `download of ${url} broke off after ${received} of ${expected.size} bytes (${describeError(err)}); ` +
        `the partial file ${partial} is kept: run the command again to resume`,
      { cause: err },
    );
  }

  const digests = { md5: md5.digest('hex'), sha256: sha256.digest('hex') };
  if (received !== expected.size || digests.md5 !== expected.md5) {
    await rm(partial, { force: true });
    throw new ValidationError(
      ErrorCode.InvalidWeights,
      `download of ${url} does not match the published file: got ${received} bytes with MD5 ${digests.md5}, ` +
        `expected ${expected.size} bytes with MD5 ${expected.md5} (${received < expected.size ? 'truncated' : 'corrupted'}); ` +
        'the download was deleted',
    );
  }
  await rename(partial, target);
  return { name, path: target, url, size: received, ...digests, downloaded: true, resumedFrom };
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
