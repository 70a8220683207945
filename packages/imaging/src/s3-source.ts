import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ErrorCode, SampleError } from '@layertap/contracts';
import { parseContentRange, type RangeBytes } from './http-source';
import { BodyTooLargeError, readLimited } from './read-limited';
import type { SourceContext } from './source-context';

/**
 * Splits `s3://bucket/key`. The key is taken literally, as the AWS CLI does (no percent-decoding; `?` and `#`
 * are part of it). `undefined` when the bucket or the key is missing.
 */
export function parseS3Uri(uri: string): { bucket: string; key: string } | undefined {
  const match = /^s3:\/\/([^/]+)\/(.+)$/i.exec(uri);
  if (!match) return undefined;
  return { bucket: match[1] as string, key: match[2] as string };
}

interface S3ErrorShape {
  name?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

/** GETs an object; NoSuchKey / NoSuchBucket / 404 are `NotFound`, other S3 statuses `HttpError`. */
export async function readS3Source(uri: string, context: SourceContext, client: S3Client): Promise<Buffer> {
  const location = parseS3Uri(uri);
  if (!location) throw context.fail(ErrorCode.FetchFailed, 'invalid S3 URI, expected s3://bucket/key');

  let body: unknown;
  try {
    const output = await client.send(new GetObjectCommand({ Bucket: location.bucket, Key: location.key }), {
      abortSignal: context.signal,
    });
    body = output.Body;
    if (output.ContentLength !== undefined && output.ContentLength > context.maxBytes) {
      destroy(body);
      throw context.fail(
        ErrorCode.TooLarge,
        `object is ${output.ContentLength} bytes, more than the limit of ${context.maxBytes}`,
      );
    }
    if (!isAsyncIterable(body)) throw context.fail(ErrorCode.FetchFailed, 'S3 returned no readable body');
    return await readLimited(body, context.maxBytes);
  } catch (err) {
    throw s3Error(err, context);
  }
}

/**
 * GETs `length` bytes at `offset` of an object (GetObject with `Range`); the object's size comes from
 * `ContentRange` (or, for a range past the end, HeadObject). A store that ignores the range and sends the
 * whole object is read within `maxBytes` and returned whole (`offset` 0).
 */
export async function readS3Range(uri: string, offset: number, length: number, context: SourceContext, client: S3Client): Promise<RangeBytes> {
  const location = parseS3Uri(uri);
  if (!location) throw context.fail(ErrorCode.FetchFailed, 'invalid S3 URI, expected s3://bucket/key');
  let body: unknown;
  try {
    const output = await client.send(
      new GetObjectCommand({ Bucket: location.bucket, Key: location.key, Range: `bytes=${offset}-${offset + length - 1}` }),
      { abortSignal: context.signal },
    );
    body = output.Body;
    const range = parseContentRange(output.ContentRange);
    const limit = range ? Math.min(context.maxBytes, length) : context.maxBytes;
    if (output.ContentLength !== undefined && output.ContentLength > limit) {
      destroy(body);
      throw context.fail(ErrorCode.TooLarge, `object is ${output.ContentLength} bytes, more than the limit of ${limit}`);
    }
    if (!isAsyncIterable(body)) throw context.fail(ErrorCode.FetchFailed, 'S3 returned no readable body');
    const bytes = await readLimited(body, limit);
    if (!range) return { offset: 0, bytes, size: bytes.length };
    if (range.start !== offset) throw context.fail(ErrorCode.HttpError, `S3 answered ${output.ContentRange} for bytes ${offset}-${offset + length - 1}`);
    return { offset, bytes, size: range.size };
  } catch (err) {
    const shape = err as S3ErrorShape;
    if (shape.name === 'InvalidRange' || shape.$metadata?.httpStatusCode === 416) {
      // Past the end (an empty object): its size from HeadObject.
      try {
        const head = await client.send(new HeadObjectCommand({ Bucket: location.bucket, Key: location.key }), { abortSignal: context.signal });
        return { offset, bytes: Buffer.alloc(0), size: head.ContentLength ?? 0 };
      } catch (headErr) {
        throw s3Error(headErr, context);
      }
    }
    throw s3Error(err, context);
  }
}

function isAsyncIterable(value: unknown): value is AsyncIterable<Uint8Array> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

function destroy(body: unknown): void {
  const stream = body as { destroy?: () => void } | undefined;
  stream?.destroy?.();
}

function s3Error(err: unknown, context: SourceContext): unknown {
  if (err instanceof BodyTooLargeError || err instanceof SampleError) return err;
  if (err instanceof Error && err.name === 'AbortError') return err; // the fetcher decides: timeout or cancel
  const shape = err as S3ErrorShape;
  const status = shape.$metadata?.httpStatusCode;
  const name = shape.name ?? 'Error';
  if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) {
    return context.fail(ErrorCode.NotFound, name === 'NoSuchBucket' ? 'no such bucket' : 'no such key', err);
  }
  if (status !== undefined) {
    return context.fail(ErrorCode.HttpError, `S3 ${name} (HTTP ${status})`, err);
  }
  return context.fail(ErrorCode.FetchFailed, `S3 request failed: ${shape.message ?? name}`, err);
}
