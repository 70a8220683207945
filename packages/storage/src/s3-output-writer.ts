import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { bucketNameProblem } from './output-uri';
import { assertListPrefix, assertOutputKey, bodyBuffer, bodyLength, contentTypeFor, TEMP_PREFIX, type ObjectBody, type OutputWriter, type PutOptions } from './output-writer';
import { mapS3Error } from './s3-errors';

const MiB = 1024 * 1024;
/** S3 refuses multipart parts below 5 MiB (except the last). */
const MIN_PART_BYTES = 5 * MiB;

/** How to build an S3 client; every field falls back to the AWS SDK's own resolution (env, profile, role). */
export interface S3ClientSettings {
  /** Custom endpoint (s3rver, MinIO, ...). Default: AWS. */
  endpoint?: string;
  /** Default: the SDK's resolution (`AWS_REGION`, profile), or `us-east-1` when an endpoint is given. */
  region?: string;
  /** Default: the SDK's credential chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Path-style URLs (`endpoint/bucket/key`), needed by most local endpoints. Default: `false`. */
  forcePathStyle?: boolean;
  /** Attempts per request, with the SDK's backoff for network errors, throttling and 5xx. Default: 5. */
  maxAttempts?: number;
  /** Time to establish a connection. Default: 5 000 ms. */
  connectionTimeoutMs?: number;
  /** Socket inactivity after which a request fails (and is retried): catches a hung endpoint. Default: 60 000 ms. */
  socketTimeoutMs?: number;
}

/** An S3 client from settings; the caller owns it (`destroy()`). */
export function createS3Client(settings: S3ClientSettings = {}): S3Client {
  const custom = settings.endpoint !== undefined;
  const region = settings.region ?? (custom ? 'us-east-1' : undefined);
  return new S3Client({
    ...(custom ? { endpoint: settings.endpoint } : {}),
    ...(region ? { region } : {}),
    ...(settings.credentials ? { credentials: settings.credentials } : {}),
    forcePathStyle: settings.forcePathStyle ?? false,
    maxAttempts: settings.maxAttempts ?? 5,
    requestHandler: {
      connectionTimeout: settings.connectionTimeoutMs ?? 5000,
      socketTimeout: settings.socketTimeoutMs ?? 60_000,
    },
    // S3-compatible servers (s3rver, older MinIO) mishandle the SDK's default CRC checksums and aws-chunked
    // bodies; AWS itself keeps the default integrity checks.
    ...(custom ? { requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' } : {}),
  });
}

/** The CRC32 of parts written one after the other, base64 as S3's `x-amz-checksum-crc32` wants it. */
export function crc32Base64(parts: readonly Buffer[]): string {
  let crc = 0;
  for (const part of parts) crc = crc32(part, crc);
  const out = Buffer.alloc(4);
  out.writeUInt32BE(crc >>> 0);
  return out.toString('base64');
}

/** The parts of a body, carried through the SDK's middleware until each attempt turns them into a stream. */
class PartsBody {
  constructor(readonly parts: readonly Buffer[]) {}
}

/**
 * Runs once per attempt: sends a copy of the request whose body is a new stream over the parts, leaving the
 * request the retry middleware holds as it was (with a stream there, it would not retry).
 */
function freshPartsStream<A extends { request: unknown }, R>(next: (args: A) => Promise<R>): (args: A) => Promise<R> {
  return async (args) => {
    const request = args.request as { body?: unknown };
    if (!(request.body instanceof PartsBody)) return next(args);
    const body = Readable.from(request.body.parts, { objectMode: false });
    const copy = Object.assign(Object.create(Object.getPrototypeOf(request) as object) as object, request, { body });
    return next({ ...args, request: copy });
  };
}

export function isS3Client(value: unknown): value is S3Client {
  return typeof (value as S3Client | undefined)?.send === 'function' && typeof (value as S3Client).destroy === 'function';
}

export interface S3OutputWriterOptions {
  bucket: string;
  /** Key prefix of the root, without leading or trailing `/`. Default: the bucket root. */
  prefix?: string;
  /** A client (kept open by `close()`: the caller owns it) or settings for one this writer makes and closes. */
  client?: S3Client | S3ClientSettings;
  /** Bodies larger than this go through a multipart upload. Default: 16 MiB. */
  multipartThresholdBytes?: number;
  /** Part size of multipart uploads, at least 5 MiB. Default: 8 MiB. */
  partSizeBytes?: number;
  /** Parts uploaded at once. Default: 4. */
  multipartConcurrency?: number;
  /** `MaxKeys` per list request (S3 caps it at 1000). Default: 1000. */
  listPageSize?: number;
}

/** Writes outputs as S3 objects under `s3://bucket/prefix`. */
export class S3OutputWriter implements OutputWriter {
  readonly uri: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly client: S3Client;
  private readonly ownsClient: boolean;
  private readonly secrets: string[];
  private readonly multipartThreshold: number;
  private readonly partSize: number;
  private readonly concurrency: number;
  private readonly pageSize: number;

  constructor(options: S3OutputWriterOptions) {
    const bucketProblem = bucketNameProblem(options.bucket);
    if (bucketProblem) throw new ValidationError(ErrorCode.InvalidOutput, bucketProblem);
    const prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
    if (prefix) assertOutputKey(prefix);
    this.bucket = options.bucket;
    this.prefix = prefix;
    this.uri = prefix ? `s3://${this.bucket}/${prefix}` : `s3://${this.bucket}`;
    if (isS3Client(options.client)) {
      this.client = options.client;
      this.ownsClient = false;
      this.secrets = [];
    } else {
      this.client = createS3Client(options.client);
      this.ownsClient = true;
      const credentials = options.client?.credentials;
      this.secrets = credentials ? [credentials.secretAccessKey, credentials.accessKeyId, credentials.sessionToken ?? ''] : [];
    }
    this.multipartThreshold = options.multipartThresholdBytes ?? 16 * MiB;
    this.partSize = Math.max(MIN_PART_BYTES, options.partSizeBytes ?? 8 * MiB);
    this.concurrency = Math.max(1, options.multipartConcurrency ?? 4);
    this.pageSize = Math.min(1000, Math.max(1, options.listPageSize ?? 1000));
  }

  async put(key: string, body: ObjectBody, options: PutOptions = {}): Promise<void> {
    const Key = this.objectKey(key);
    const ContentType = options.contentType ?? contentTypeFor(key);
    const length = bodyLength(body);
    try {
      if (length > this.multipartThreshold) {
        const params = { Bucket: this.bucket, Key, Body: bodyBuffer(body), ContentType };
        // lib-storage aborts the multipart upload on failure (leavePartsOnError: false), so no parts linger.
        await new Upload({ client: this.client, params, partSize: this.partSize, queueSize: this.concurrency, leavePartsOnError: false }).done();
      } else if (Array.isArray(body)) {
        await this.putParts(Key, body as readonly Buffer[], length, ContentType);
      } else {
        await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: body as Buffer | string, ContentType, ContentLength: length }));
      }
    } catch (err) {
      throw this.mapError(err, 'write', key);
    }
  }

  /**
   * A body in parts (an .npy header and its values) sent as they are, without joining them into one buffer.
   * The SDK never retries a request whose body is a stream, so the command carries a `PartsBody` placeholder
   * and a middleware after the retry middleware hands each attempt its own stream over the same parts. Where
   * the client sends checksums (AWS's default), the CRC32 is computed over the parts here and sent as a header,
   * so the SDK neither hashes a joined copy nor switches to aws-chunked encoding. The SigV4 signature then covers
   * `UNSIGNED-PAYLOAD` instead of a SHA-256 of the body (most of the CPU this saves): on AWS the CRC32 is the
   * integrity check, as for the SDK's own streaming uploads; custom endpoints, which get no checksums (see
   * `createS3Client`), rely on TCP/TLS alone for these bodies.
   */
  private async putParts(Key: string, parts: readonly Buffer[], length: number, ContentType: string): Promise<void> {
    const checksum = (await this.client.config.requestChecksumCalculation()) === 'WHEN_SUPPORTED' ? { ChecksumCRC32: crc32Base64(parts) } : {};
    // Not a stream, a string or bytes: the SDK passes it through untouched (and does not sign its content).
    const Body = new PartsBody(parts) as unknown as Readable;
    const command = new PutObjectCommand({ Bucket: this.bucket, Key, Body, ContentType, ContentLength: length, ...checksum });
    command.middlewareStack.addRelativeTo(freshPartsStream, { name: 'layertapFreshPartsStream', relation: 'after', toMiddleware: 'retryMiddleware' });
    await this.client.send(command);
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
      if (!res.Body) return Buffer.alloc(0);
      const bytes = await res.Body.transformToByteArray();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      if ((err as Error).name === 'NoSuchKey') return undefined;
      throw this.mapError(err, 'read', key);
    }
  }

  async read(key: string): Promise<Readable | undefined> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
      if (!res.Body) return Readable.from([]);
      // In Node the SDK's body is a Readable (an IncomingMessage, or a checksum stream over one).
      return res.Body instanceof Readable ? res.Body : Readable.from(res.Body as AsyncIterable<Uint8Array>);
    } catch (err) {
      if ((err as Error).name === 'NoSuchKey') return undefined;
      throw this.mapError(err, 'read', key);
    }
  }

  async head(key: string, length: number): Promise<Buffer | undefined> {
    if (length <= 0) return Buffer.alloc(0);
    try {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key), Range: `bytes=0-${length - 1}` }),
      );
      if (!res.Body) return Buffer.alloc(0);
      const bytes = Buffer.from(await res.Body.transformToByteArray());
      // A server that ignores Range sends everything: keep the promise of `length` bytes at most.
      return bytes.subarray(0, length);
    } catch (err) {
      if ((err as Error).name === 'NoSuchKey') return undefined;
      if ((err as Error).name === 'InvalidRange') return Buffer.alloc(0);
      throw this.mapError(err, 'read', key);
    }
  }

  async exists(key: string, expectedSize?: number): Promise<boolean> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
      return expectedSize === undefined || res.ContentLength === expectedSize;
    } catch (err) {
      // HEAD responses have no body, so a missing key and a missing bucket both arrive as a bare 404.
      if ((err as Error).name === 'NotFound' || (err as Error).name === 'NoSuchKey') return false;
      throw this.mapError(err, 'check', key);
    }
  }

  async list(prefix: string): Promise<string[]> {
    assertListPrefix(prefix);
    const root = this.rootPrefix();
    const keys: string[] = [];
    let token: string | undefined;
    try {
      do {
        const page = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: root + prefix, MaxKeys: this.pageSize, ContinuationToken: token }),
        );
        for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key.slice(root.length));
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
      throw this.mapError(err, 'list', prefix);
    }
    return keys;
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
    } catch (err) {
      throw this.mapError(err, 'delete', key);
    }
  }

  urlFor(key: string): string {
    return `s3://${this.bucket}/${this.objectKey(key)}`;
  }

  async checkWritable(): Promise<void> {
    const Key = `${this.rootPrefix()}${TEMP_PREFIX}write-check-${randomBytes(6).toString('hex')}`;
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: 'layertap write check\n' }));
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }));
    } catch (err) {
      throw mapS3Error(err, { action: 'write to', url: this.uri, bucket: this.bucket, secrets: this.secrets });
    }
  }

  async close(): Promise<void> {
    if (this.ownsClient) this.client.destroy();
  }

  private rootPrefix(): string {
    return this.prefix ? `${this.prefix}/` : '';
  }

  private objectKey(key: string): string {
    assertOutputKey(key);
    return this.rootPrefix() + key;
  }

  private mapError(err: unknown, action: string, key: string) {
    const url = key === '' ? this.uri : `${this.uri}/${key}`;
    return mapS3Error(err, { action, url, bucket: this.bucket, secrets: this.secrets });
  }
}
