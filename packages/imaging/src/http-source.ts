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
    const response = await get(current, agent, lookup, context.signal).catch((err: unknown) => {
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
    if (status === 404 || status === 410) {
      response.destroy();
      throw context.fail(ErrorCode.NotFound, `HTTP ${status}${hopNote(url, current)}`);
    }
    if (status < 200 || status > 299) {
      response.destroy();
      const text = response.statusMessage ? ` ${response.statusMessage}` : '';
      throw context.fail(ErrorCode.HttpError, `HTTP ${status}${text}${hopNote(url, current)}`);
    }

    const declared = Number(response.headers['content-length']);
    if (Number.isFinite(declared) && declared > context.maxBytes) {
      response.destroy();
      throw context.fail(ErrorCode.TooLarge, `Content-Length ${declared} is more than the limit of ${context.maxBytes} bytes`);
    }
    try {
      return await readLimited(response, context.maxBytes);
    } catch (err) {
      throw connectionError(err, url, current, context);
    }
  }
}

function get(
  url: URL,
  agent: http.Agent,
  lookup: LookupFunction | undefined,
  signal: AbortSignal,
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const client = url.protocol === 'https:' ? https : http;
    const request = client.get(url, { agent, headers: HEADERS, signal, ...(lookup ? { lookup } : {}) }, resolve);
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
