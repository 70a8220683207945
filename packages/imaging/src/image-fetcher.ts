import { S3Client } from '@aws-sdk/client-s3';
import { ErrorCode, LayertapError, SampleError, fileUriPath, isUtf8, redactUri } from '@layertap/contracts';
import { realpath } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { resolve } from 'node:path';
import { readFileSource, type AllowedRoots } from './file-source';
import { HostPolicy } from './host-policy';
import { readHttpRange, readHttpSource, type RangeBytes } from './http-source';
import { BodyTooLargeError } from './read-limited';
import { readS3Range, readS3Source } from './s3-source';
import type { SourceContext } from './source-context';

export const DEFAULT_MAX_BYTES = 50 * 1024 * 1024;
export const DEFAULT_FETCH_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_REDIRECTS = 5;

export interface ImageFetcherOptions {
  /** Largest accepted body or file, in bytes; larger ones fail with `TooLarge`. Default 50 MiB. */
  maxBytes?: number;
  /** Time for a whole fetch (connect, redirects, body), in ms; then `Timeout`. Default 30 000. */
  timeoutMs?: number;
  /**
   * Directories local paths and `file://` URIs must lie in (after symbolic links are resolved); others fail
   * with `PathNotAllowed`. Default: any path.
   */
  allowedRoots?: readonly string[];
  /** Client for `s3://bucket/key` URIs. Default: an `S3Client` with the SDK's default configuration, made on first use. */
  s3?: S3Client;
  /** HTTP: allow loopback, private, link-local and other non-public addresses for every host. Default false. */
  allowPrivateNetworks?: boolean;
  /**
   * HTTP: hosts exempt from the address check: `minio.internal`, `minio.internal:9000` (that port only),
   * `127.0.0.1`, `[::1]:8080`, `10.0.0.0/8` (any address in the range). An entry that cannot be parsed throws
   * `AllowListError` here. Default none.
   */
  allowHosts?: readonly string[];
  /** HTTP: redirects followed before giving up with `FetchFailed`. Default 5. */
  maxRedirects?: number;
}

/**
 * Fetches the bytes of one image from a local path, `file://`, `http(s)://` or `s3://` URI, within size and
 * time limits.
 *
 * Every failure that concerns the one URI is a `SampleError` with a reason code and a message that starts with
 * the URI (credentials removed): `NotFound`, `HttpError`, `Timeout`, `TooLarge`, `EmptyFile`,
 * `UnsupportedScheme`, `PathNotAllowed`, `AddressBlocked`, `FetchFailed`. That includes failures that may be
 * transient (5xx, 429, connection resets, timeouts): one flaky URL fails its sample, not the chunk; the
 * manifest keeps the code, and a later retry of failed samples picks them up. Only cancellation through the
 * caller's `signal` is different: it throws a `LayertapError` with code `Cancelled`.
 */
export class ImageFetcher {
  private readonly maxBytes: number;
  private readonly timeoutMs: number;
  private readonly maxRedirects: number;
  private readonly policy: HostPolicy;
  private readonly roots: readonly string[] | undefined;
  private realRoots: Promise<readonly string[]> | undefined;
  private s3: S3Client | undefined;
  private readonly ownsS3: boolean;
  private readonly agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };

  constructor(options: ImageFetcherOptions = {}) {
    this.maxBytes = positiveInteger('maxBytes', options.maxBytes ?? DEFAULT_MAX_BYTES);
    this.timeoutMs = positiveInteger('timeoutMs', options.timeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS);
    this.maxRedirects = options.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
    if (!Number.isInteger(this.maxRedirects) || this.maxRedirects < 0) {
      throw new RangeError(`maxRedirects must be a non-negative integer, got ${this.maxRedirects}`);
    }
    this.policy = new HostPolicy({
      allowPrivateNetworks: options.allowPrivateNetworks ?? false,
      allowHosts: options.allowHosts ?? [],
    });
    this.roots = options.allowedRoots?.map((root) => resolve(root));
    this.s3 = options.s3;
    this.ownsS3 = options.s3 === undefined;
  }

  /** Fetches `uri`. `signal` cancels (the promise then rejects with a `Cancelled` LayertapError). */
  async fetch(uri: string, signal?: AbortSignal): Promise<Buffer> {
    return this.guarded(uri, signal, async (context) => {
      const bytes = await this.read(uri, context);
      if (bytes.length === 0) throw context.fail(ErrorCode.EmptyFile, 'empty (0 bytes)');
      return bytes;
    });
  }

  /** Runs one request of `uri` within the deadline and the caller's `signal`, turning failures into `SampleError`s. */
  private async guarded<T>(uri: string, signal: AbortSignal | undefined, work: (context: SourceContext) => Promise<T>): Promise<T> {
    const shown = redactUri(uri);
    if (signal?.aborted) throw cancelled(shown, signal.reason);

    // One controller aborted by the deadline or by the caller. (Not AbortSignal.any: the caller's signal lives
    // for a whole chunk, and a listener removed in `finally` cannot pile up on it.)
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.timeoutMs);
    const onCancel = () => controller.abort();
    signal?.addEventListener('abort', onCancel, { once: true });
    const context: SourceContext = {
      signal: controller.signal,
      maxBytes: this.maxBytes,
      fail: (code, message, cause) => new SampleError(code, `${shown}: ${message}`, cause === undefined ? undefined : { cause }),
    };
    try {
      return await work(context);
    } catch (err) {
      if (signal?.aborted) throw cancelled(shown, signal.reason);
      if (timedOut) {
        throw context.fail(ErrorCode.Timeout, `no complete response within ${this.timeoutMs} ms`);
      }
      if (err instanceof SampleError) throw err;
      if (err instanceof BodyTooLargeError) throw context.fail(ErrorCode.TooLarge, `more than ${this.maxBytes} bytes`);
      throw context.fail(ErrorCode.FetchFailed, err instanceof Error ? err.message : String(err), err);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onCancel);
    }
  }

  /**
   * `length` bytes at `offset` of an `http(s)://` (a `Range:` request) or `s3://` URI (GetObject with `Range`),
   * with the whole file's size, under the same address policy, limits and errors as `fetch`. A server that
   * ignores ranges sends the whole file: it comes back whole (`offset` 0), within `maxBytes`. Other schemes
   * are `UnsupportedScheme`.
   */
  async fetchRange(uri: string, offset: number, length: number, signal?: AbortSignal): Promise<RangeBytes> {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 1) {
      throw new RangeError(`fetchRange: bad range of ${length} bytes at ${offset}`);
    }
    return this.guarded(uri, signal, async (context) => {
      const scheme = uriScheme(uri);
      if (scheme === 'http' || scheme === 'https') {
        let url: URL;
        try {
          url = new URL(uri);
        } catch {
          throw context.fail(ErrorCode.FetchFailed, 'invalid URL');
        }
        return readHttpRange(url, offset, length, context, { policy: this.policy, maxRedirects: this.maxRedirects, agents: this.agents });
      }
      if (scheme === 's3') {
        this.s3 ??= new S3Client({});
        return readS3Range(uri, offset, length, context, this.s3);
      }
      throw context.fail(ErrorCode.UnsupportedScheme, `range requests take http://, https:// or s3://, not '${scheme ?? 'a path'}'`);
    });
  }

  /** Closes pooled HTTP connections, and the S3 client if this fetcher made it. */
  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
    if (this.ownsS3 && this.s3) {
      this.s3.destroy();
      this.s3 = undefined;
    }
  }

  private async read(uri: string, context: SourceContext): Promise<Buffer> {
    const scheme = uriScheme(uri);
    if (scheme === undefined) return readFileSource(uri, context, this.allowedRoots());
    switch (scheme) {
      case 'file': {
        let path: string | Buffer;
        try {
          // Raw bytes: a percent-encoded name need not be UTF-8 (`caf%E9.jpg`); UTF-8 paths go on as text.
          const bytes = fileUriPath(uri);
          path = isUtf8(bytes) ? bytes.toString('utf8') : bytes;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ERR_INVALID_FILE_URL_HOST') {
            throw context.fail(ErrorCode.UnsupportedScheme, 'file URIs with a host are not supported', err);
          }
          throw context.fail(ErrorCode.FetchFailed, `invalid file URI (${(err as Error).message})`, err);
        }
        return readFileSource(path, context, this.allowedRoots());
      }
      case 'http':
      case 'https': {
        let url: URL;
        try {
          url = new URL(uri);
        } catch {
          throw context.fail(ErrorCode.FetchFailed, 'invalid URL');
        }
        return readHttpSource(url, context, { policy: this.policy, maxRedirects: this.maxRedirects, agents: this.agents });
      }
      case 's3':
        this.s3 ??= new S3Client({});
        return readS3Source(uri, context, this.s3);
      default:
        throw context.fail(
          ErrorCode.UnsupportedScheme,
          `unsupported scheme '${scheme}:' (expected a path, file://, http://, https:// or s3://)`,
        );
    }
  }

  /** The allowed roots as given and with symbolic links resolved (once); `undefined` when any path is allowed. */
  private allowedRoots(): (() => Promise<AllowedRoots>) | undefined {
    const roots = this.roots;
    if (!roots) return undefined;
    return async () => {
      this.realRoots ??= Promise.all(roots.map((root) => realpath(root).catch(() => root)));
      return { given: roots, real: await this.realRoots };
    };
  }
}

/**
 * The lower-case scheme of a URI, or `undefined` for a local path. One-letter "schemes" are Windows drive
 * letters (C:\images\a.jpg), so paths.
 */
export function uriScheme(uri: string): string | undefined {
  const match = /^([a-z][a-z0-9+.-]+):/i.exec(uri);
  return match ? (match[1] as string).toLowerCase() : undefined;
}

function cancelled(shown: string, reason: unknown): LayertapError {
  return new LayertapError(ErrorCode.Cancelled, `${shown}: fetch cancelled`, { cause: reason });
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

/**
 * A fetcher for weights and model files, with limits sized for them. The address policy is the samples' (issue
 * 18: a weights URI redirecting to a loopback port reached Redis): private and loopback addresses, on any hop
 * of a redirect, only where `allowHosts` (`LAYERTAP_ALLOW_HOSTS`) lists them.
 */
export function createTrustedFetcher(options: Pick<ImageFetcherOptions, 's3' | 'allowHosts'> & { maxBytes?: number; timeoutMs?: number } = {}): ImageFetcher {
  return new ImageFetcher({
    allowHosts: options.allowHosts ?? [],
    maxBytes: options.maxBytes ?? 4 * 1024 ** 3,
    timeoutMs: options.timeoutMs ?? 60 * 60 * 1000,
    ...(options.s3 ? { s3: options.s3 } : {}),
  });
}
