import type { Readable } from 'node:stream';
import { ErrorCode, ValidationError } from '@layertap/contracts';

export interface PutOptions {
  /** MIME type stored with the object (S3 only). Default: from the key's extension (see `contentTypeFor`). */
  contentType?: string;
}

/**
 * Where a dataset's outputs go. Keys are relative to the writer's root (`uri`), `/`-separated, as made by
 * `sampleKey`, `partKey`, ...; a key that could escape the root is refused with `ValidationError`.
 * Permanent trouble (missing bucket, access denied, unwritable directory) throws `ValidationError`
 * (`invalid_output`); trouble worth retrying throws `TransientError` (`upload_failed`).
 */
/** An object's bytes: one buffer, text (UTF-8), or buffers written one after the other (an `.npy` header and its data). */
export type ObjectBody = Buffer | string | readonly Buffer[];

/** The size of a body in bytes. */
export function bodyLength(body: ObjectBody): number {
  if (typeof body === 'string') return Buffer.byteLength(body);
  if (Buffer.isBuffer(body)) return body.length;
  return (body as readonly Buffer[]).reduce((n, b) => n + b.length, 0);
}

/** A body as one buffer (copied together when given in parts). */
export function bodyBuffer(body: ObjectBody): Buffer {
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (Buffer.isBuffer(body)) return body;
  return Buffer.concat(body as readonly Buffer[]);
}

export interface OutputWriter {
  /** The root, as `s3://bucket/prefix` or `file:///dir`. */
  readonly uri: string;
  /** Writes the whole object; a reader never sees a partial one. Replaces an existing object. */
  put(key: string, body: ObjectBody, options?: PutOptions): Promise<void>;
  /** The object's bytes, or `undefined` when there is none. */
  get(key: string): Promise<Buffer | undefined>;
  /**
   * The object's bytes as a stream, for objects too large to hold at once (a million-line manifest), or
   * `undefined` when there is none. Reading it to the end or destroying it releases what it holds.
   */
  read(key: string): Promise<Readable | undefined>;
  /** The first `length` bytes of the object (fewer if it is shorter), or `undefined` when there is none. */
  head(key: string, length: number): Promise<Buffer | undefined>;
  /** Whether the object exists and, when `expectedSize` is given, has exactly that many bytes. */
  exists(key: string, expectedSize?: number): Promise<boolean>;
  /** Every key starting with `prefix` (a plain string prefix, as in S3), sorted, relative to the root. */
  list(prefix: string): Promise<string[]>;
  /** Deletes the object; no error when there is none. */
  delete(key: string): Promise<void>;
  /** The full URI of `key`, for messages. */
  urlFor(key: string): string;
  /** Writes and deletes a probe object; throws a clear error when the root cannot be written. */
  checkWritable(): Promise<void>;
  /** Releases what the writer owns (an S3 client it made). */
  close(): Promise<void>;
}

/** Segments starting with this are the file writer's temporary files; no key may use it. */
export const TEMP_PREFIX = '.layertap-tmp-';

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

function segmentProblem(segment: string): string | undefined {
  if (segment === '.' || segment === '..') return `has a '${segment}' segment`;
  if (segment.startsWith(TEMP_PREFIX)) return `uses the reserved name prefix '${TEMP_PREFIX}'`;
  return undefined;
}

/** Why `key` is not a safe relative key, or `undefined`. */
export function outputKeyProblem(key: string): string | undefined {
  if (key.length === 0) return 'is empty';
  if (Buffer.byteLength(key) > 1024) return 'is longer than 1024 bytes';
  if (CONTROL.test(key)) return 'contains a control character';
  if (key.includes('\\')) return "contains '\\'";
  if (key.startsWith('/')) return "starts with '/'";
  if (key.endsWith('/')) return "ends with '/'";
  if (key.includes('//')) return "has an empty segment ('//')";
  for (const segment of key.split('/')) {
    const problem = segmentProblem(segment);
    if (problem) return problem;
  }
  return undefined;
}

/** Throws `ValidationError` unless `key` is a safe relative key. */
export function assertOutputKey(key: string): void {
  const problem = outputKeyProblem(key);
  if (problem) throw new ValidationError(ErrorCode.InvalidOutput, `invalid output key ${JSON.stringify(key.slice(0, 200))}: it ${problem}`);
}

/** Throws `ValidationError` unless `prefix` is `''` or a prefix of safe keys (it may end with `/`). */
export function assertListPrefix(prefix: string): void {
  if (prefix === '') return;
  const problem = outputKeyProblem(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
  if (problem) throw new ValidationError(ErrorCode.InvalidOutput, `invalid list prefix ${JSON.stringify(prefix.slice(0, 200))}: it ${problem}`);
}

const CONTENT_TYPES: Record<string, string> = {
  '.npy': 'application/octet-stream',
  '.json': 'application/json',
  '.jsonl': 'application/x-ndjson',
  '.txt': 'text/plain; charset=utf-8',
};

/** The default content type for a key, from its extension. */
export function contentTypeFor(key: string): string {
  const dot = key.lastIndexOf('.');
  return (dot > key.lastIndexOf('/') && CONTENT_TYPES[key.slice(dot)]) || 'application/octet-stream';
}
