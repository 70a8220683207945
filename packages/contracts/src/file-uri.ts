import { pathToFileURL } from 'node:url';

/**
 * `file://` URIs for paths held as raw bytes. Linux file names are bytes, not text: a name in Latin-1
 * (`caf\xe9.jpg`) has no UTF-8 spelling, and `pathToFileURL(name.toString())` would name a different file (with
 * U+FFFD in it) that can never be read. Such paths are percent-encoded byte by byte; UTF-8 paths keep the URI
 * `pathToFileURL` gives, so URIs of existing datasets do not change.
 */

/** Bytes kept as they are in a non-UTF-8 path's URI (RFC 3986 unreserved, plus `/`); all others are `%XX`. */
const KEPT = /[A-Za-z0-9\-._~/]/;

/** True when `bytes` is valid UTF-8 (decoding and encoding again gives the same bytes). */
export function isUtf8(bytes: Buffer): boolean {
  return Buffer.from(bytes.toString('utf8'), 'utf8').equals(bytes);
}

/** Path bytes percent-encoded byte by byte (`caf\xe9.jpg` -> `caf%E9.jpg`), whatever their encoding. */
export function percentEncodeBytes(path: Buffer): string {
  let encoded = '';
  for (const byte of path) {
    const ch = String.fromCharCode(byte);
    encoded += byte < 0x80 && KEPT.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return encoded;
}

/** The `file://` URI of an absolute path given as raw bytes. */
export function fileUriFromBytes(path: Buffer): string {
  return isUtf8(path) ? pathToFileURL(path.toString('utf8')).href : `file://${percentEncodeBytes(path)}`;
}

/** An error with the `code` Node's `fileURLToPath` gives, so callers handle both alike. */
function uriError(code: string, message: string): Error {
  return Object.assign(new TypeError(message), { code });
}

/**
 * The raw bytes of a `file://` URI's path (percent-escapes decoded to bytes, not to UTF-8 text). Throws like
 * `fileURLToPath`: a host other than `localhost` (`ERR_INVALID_FILE_URL_HOST`), an encoded `/` or NUL
 * (`ERR_INVALID_FILE_URL_PATH`).
 */
export function fileUriPath(uri: string): Buffer {
  const url = new URL(uri);
  if (url.protocol !== 'file:') throw uriError('ERR_INVALID_URL_SCHEME', 'the URL must be of scheme file');
  if (url.hostname !== '' && url.hostname !== 'localhost') throw uriError('ERR_INVALID_FILE_URL_HOST', 'file URL host must be "localhost" or empty');
  const pathname = url.pathname;
  if (/%2f|%00/i.test(pathname)) throw uriError('ERR_INVALID_FILE_URL_PATH', 'file URL path must not include encoded / or NUL characters');
  const bytes: number[] = [];
  for (let i = 0; i < pathname.length; i++) {
    const hex = pathname[i] === '%' ? pathname.slice(i + 1, i + 3) : '';
    if (/^[0-9a-f]{2}$/i.test(hex)) {
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else bytes.push(...Buffer.from(pathname[i] as string, 'utf8'));
  }
  return Buffer.from(bytes);
}

/** A path's bytes as printable text: UTF-8 as it is, each byte that is not part of valid UTF-8 as `\xNN`. */
export function pathText(path: Buffer): string {
  if (isUtf8(path)) return path.toString('utf8');
  let text = '';
  let i = 0;
  while (i < path.length) {
    const lead = path[i] as number;
    const length = lead < 0x80 ? 1 : lead >= 0xc2 && lead < 0xe0 ? 2 : lead >= 0xe0 && lead < 0xf0 ? 3 : lead >= 0xf0 && lead < 0xf5 ? 4 : 0;
    const sequence = length > 0 ? path.subarray(i, i + length) : undefined;
    if (sequence && sequence.length === length && isUtf8(sequence)) {
      text += sequence.toString('utf8');
      i += length;
    } else {
      text += `\\x${lead.toString(16).padStart(2, '0')}`;
      i++;
    }
  }
  return text;
}
