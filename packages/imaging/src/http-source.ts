import { ErrorCode, SampleError, redactUri } from '@layertap/contracts';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { AddressBlockedError, type HostPolicy } from './host-policy';
import { BodyTooLargeError, readLimited } from './read-limited';
import type { SourceContext } from './source-context';

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

const HEADERS = {
  'user-agent': 'layertap-imaging',
  accept: 'image/*,*/*;q=0.8',
  // Bodies are counted against maxBytes as they arrive: no transparent decompression.
  'accept-encoding': 'identity',
};

export interface HttpSourceOptions {
  policy: HostPolicy;
  maxRedirects: number;
  /**
   * The fetcher's own connection pools. A pooled socket is reused without a new lookup, so pools must not be
   * shared with code that applies another host policy.
   */
  agents: { http: http.Agent; https: https.Agent };
}

/**
 * GETs an http(s) URL, following up to `maxRedirects` redirects; every hop must be http(s) and pass the host
 * policy again. 404 and 410 are `NotFound`, other non-2xx statuses `HttpError` with the status in the message.
 */
export async function readHttpSource(url: URL, context: SourceContext, options: HttpSourceOptions): Promise<Buffer> {
  const { response, current } = await openHttp(url, context, options, {});
  refuseDeclaredOverLimit(response, context);
  try {
    return await readLimited(response, context.maxBytes);
  } catch (err) {
    throw connectionError(err, url, current, context);
  }
}

/** Bytes of a file from `offset`, and the whole file's size: what a range request answered. */
export interface RangeBytes {
  /** Where `bytes` start in the file: `offset` as asked, or 0 when the server sent the whole file. */
  offset: number;
  bytes: Buffer;
  /** The whole file's size. */
  size: number;
}

/**
 * GETs `length` bytes at `offset` of an http(s) URL with a `Range:` header, through the same redirects and
 * host policy as `readHttpSource`. The size comes from `Content-Range`. A server that ignores ranges (200)
 * sends the whole body, which is read within `maxBytes` and returned whole (`offset` 0).
 */
export async function readHttpRange(url: URL, offset: number, length: number, context: SourceContext, options: HttpSourceOptions): Promise<RangeBytes> {
  const { response, current } = await openHttp(url, context, options, { range: `bytes=${offset}-${offset + length - 1}` }, [416]);
  const status = response.statusCode ?? 0;
  const contentRange = response.headers['content-range'];
  if (status === 416) {
    response.destroy();
    const total = /^bytes \*\/(\d+)$/.exec(contentRange ?? '')?.[1];
    if (total === undefined) throw context.fail(ErrorCode.HttpError, `HTTP 416 for bytes ${offset}-${offset + length - 1} without the file's size${hopNote(url, current)}`);
    return { offset, bytes: Buffer.alloc(0), size: Number(total) };
  }
  let size: number | undefined;
  let start = 0;
  if (status === 206) {
    const range = parseContentRange(contentRange);
    if (!range) {
      response.destroy();
      throw context.fail(ErrorCode.HttpError, `HTTP 206 with Content-Range ${JSON.stringify(contentRange ?? null)} (expected bytes a-b/size)${hopNote(url, current)}`);
    }
    ({ start, size } = range);
    if (start !== offset) {
      response.destroy();
      throw context.fail(ErrorCode.HttpError, `HTTP 206 for bytes ${offset}-${offset + length - 1} answered ${contentRange}${hopNote(url, current)}`);
    }
  } else refuseDeclaredOverLimit(response, context);
  let bytes: Buffer;
  try {
    bytes = await readLimited(response, status === 206 ? Math.min(context.maxBytes, length) : context.maxBytes);
  } catch (err) {
    throw connectionError(err, url, current, context);
  }
  return { offset: start, bytes, size: size ?? bytes.length };
}

/** `Content-Range: bytes a-b/size` (what a 206 answer, or S3's ContentRange, carries); undefined otherwise. */
export function parseContentRange(value: string | undefined): { start: number; end: number; size: number } | undefined {
  const match = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(value ?? '');
  return match ? { start: Number(match[1]), end: Number(match[2]), size: Number(match[3]) } : undefined;
}

/** A body whose Content-Length is over `maxBytes` is refused before it is read. */
function refuseDeclaredOverLimit(response: IncomingMessage, context: SourceContext): void {
  const declared = Number(response.headers['content-length']);
  if (Number.isFinite(declared) && declared > context.maxBytes) {
    response.destroy();
    throw context.fail(ErrorCode.TooLarge, `Content-Length ${declared} is more than the limit of ${context.maxBytes} bytes`);
  }
}

/**
 * Sends a GET, following up to `maxRedirects` redirects; every hop must be http(s) and pass the host policy
 * again. Returns the 2xx response (or one of `alsoAccept`); 404 and 410 are `NotFound`, other statuses
 * `HttpError` with the status in the message.
 */
async function openHttp(
  url: URL,
  context: SourceContext,
  options: HttpSourceOptions,
  extraHeaders: Record<string, string>,
  alsoAccept: readonly number[] = [],
): Promise<{ response: IncomingMessage; current: URL }> {
  let current = url;
  for (let redirects = 0; ; redirects++) {
    if (current.protocol !== 'http:' && current.protocol !== 'https:') {
      throw context.fail(ErrorCode.UnsupportedScheme, `redirected to unsupported scheme '${current.protocol}'`);
    }
    let lookup: LookupFunction | undefined;
    try {
      lookup = options.policy.lookupFor(current.hostname, effectivePort(current));
    } catch (err) {
      if (err instanceof AddressBlockedError) throw blockedError(err, url, current, context);
      throw err;
    }

    const agent = current.protocol === 'https:' ? options.agents.https : options.agents.http;
    const response = await get(current, agent, lookup, context.signal, extraHeaders).catch((err: unknown) => {
      throw connectionError(err, url, current, context);
    });
    const status = response.statusCode ?? 0;

    if (REDIRECT_STATUSES.has(status)) {
      response.destroy();
      const location = response.headers.location;
      if (!location) throw context.fail(ErrorCode.HttpError, `HTTP ${status} redirect without a Location header`);
      if (redirects >= options.maxRedirects) {
        throw context.fail(ErrorCode.FetchFailed, `more than ${options.maxRedirects} redirects`);
      }
      try {
        current = new URL(location, current);
      } catch {
        throw context.fail(ErrorCode.FetchFailed, `HTTP ${status} redirect to an invalid URL`);
      }
      continue;
    }
    if (alsoAccept.includes(status)) return { response, current };
    if (status === 404 || status === 410) {
      response.destroy();
      throw context.fail(ErrorCode.NotFound, `HTTP ${status}${hopNote(url, current)}`);
    }
    if (status < 200 || status > 299) {
      response.destroy();
      const text = response.statusMessage ? ` ${response.statusMessage}` : '';
      throw context.fail(ErrorCode.HttpError, `HTTP ${status}${text}${hopNote(url, current)}`);
    }
    return { response, current };
  }
}

function get(
  url: URL,
  agent: http.Agent,
  lookup: LookupFunction | undefined,
  signal: AbortSignal,
  extraHeaders: Record<string, string> = {},
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const client = url.protocol === 'https:' ? https : http;
    const request = client.get(url, { agent, headers: { ...HEADERS, ...extraHeaders }, signal, ...(lookup ? { lookup } : {}) }, resolve);
    request.on('error', reject);
  });
}

/** The port a URL connects to: its own, or its scheme's default (the allow-list may name ports). */
function effectivePort(url: URL): number {
  return url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
}

/** Where the final hop went, when redirects took the request elsewhere. */
function hopNote(original: URL, current: URL): string {
  return current.href === original.href ? '' : ` (after redirect to ${redactUri(current.href)})`;
}

function blockedError(err: AddressBlockedError, original: URL, current: URL, context: SourceContext): SampleError {
  return context.fail(
    ErrorCode.AddressBlocked,
    `refusing to connect: ${err.message}${hopNote(original, current)} (allowHosts or allowPrivateNetworks allow it)`,
  );
}

/** Network failures are per-sample `FetchFailed` (with the errno code), never chunk failures. */
function connectionError(err: unknown, original: URL, current: URL, context: SourceContext): unknown {
  if (err instanceof SampleError || err instanceof BodyTooLargeError) return err;
  if (err instanceof AddressBlockedError) return blockedError(err, original, current, context);
  if (err instanceof Error && err.name === 'AbortError') return err; // the fetcher decides: timeout or cancel
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const reason =
    code === 'ENOTFOUND' ? `cannot resolve host ${current.hostname}` :
    code === 'ECONNREFUSED' ? 'connection refused' :
    code === 'ECONNRESET' ? 'connection reset' :
    err instanceof Error ? err.message : String(err);
  const codeNote = code && !reason.includes(code) ? ` (${code})` : '';
  return context.fail(ErrorCode.FetchFailed, `${reason}${codeNote}${hopNote(original, current)}`, err);
}
