import { GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, type S3Client } from '@aws-sdk/client-s3';
import { ErrorCode, TransientError, ValidationError } from '@layertap/contracts';
import { S3Server } from '@layertap/devservices';
import { randomBytes } from 'node:crypto';
import { describeOutputWriterContract } from './__tests__/output-writer-contract';
import { openOutput } from './open-output';
import { createS3Client, S3OutputWriter } from './s3-output-writer';

const server = new S3Server({ buckets: ['layertap'] });
let client: S3Client;

beforeAll(async () => {
  await server.start();
  client = createS3Client(server.settings);
});
afterAll(async () => {
  client.destroy();
  await server.close();
});

/** Each test writes under its own prefix of the shared bucket. */
function freshPrefix(): string {
  return `t-${randomBytes(6).toString('hex')}`;
}

/** Counts the commands a client sends, by name (observes a real client; nothing is stubbed). */
function countCommands(target: S3Client): Map<string, number> {
  const counts = new Map<string, number>();
  target.middlewareStack.add(
    (next, context) => async (args) => {
      const name = context.commandName ?? '?';
      counts.set(name, (counts.get(name) ?? 0) + 1);
      return next(args);
    },
    { step: 'initialize', name: `count-${randomBytes(4).toString('hex')}` },
  );
  return counts;
}

describeOutputWriterContract('S3OutputWriter', {
  makeWriter: async (options) => new S3OutputWriter({ bucket: 'layertap', prefix: freshPrefix(), client: server.settings, ...options }),
  makeUnwritable: async () => new S3OutputWriter({ bucket: 'no-such-bucket', prefix: 'out', client: server.settings }),
  unwritableMessage: /^S3 bucket "no-such-bucket" does not exist \(write to s3:\/\/no-such-bucket\/out\)$/,
});

describe('S3OutputWriter', () => {
  it('pages through ListObjectsV2 with continuation tokens', async () => {
    const writer = new S3OutputWriter({ bucket: 'layertap', prefix: freshPrefix(), client, listPageSize: 10 });
    await Promise.all(Array.from({ length: 25 }, (_, i) => writer.put(`ds/_parts/${String(i).padStart(2, '0')}.jsonl`, '')));
    const counts = countCommands(client);
    const keys = await writer.list('ds/_parts/');
    expect(keys).toHaveLength(25);
    expect(keys[0]).toBe('ds/_parts/00.jsonl');
    expect(keys[24]).toBe('ds/_parts/24.jsonl');
    expect(counts.get('ListObjectsV2Command')).toBe(3);
  });

  it('uses PutObject up to the threshold and a multipart upload above it', async () => {
    const own = createS3Client(server.settings);
    const counts = countCommands(own);
    const prefix = freshPrefix();
    const writer = new S3OutputWriter({ bucket: 'layertap', prefix, client: own, multipartThresholdBytes: 6 * 1024 * 1024, partSizeBytes: 5 * 1024 * 1024 });
    await writer.put('small.npy', Buffer.alloc(6 * 1024 * 1024, 1));
    expect(counts.get('PutObjectCommand')).toBe(1);
    expect(counts.get('CreateMultipartUploadCommand')).toBeUndefined();
    await writer.put('large.npy', Buffer.alloc(12 * 1024 * 1024, 2));
    expect(counts.get('CreateMultipartUploadCommand')).toBe(1);
    expect(counts.get('UploadPartCommand')).toBe(3);
    expect(counts.get('CompleteMultipartUploadCommand')).toBe(1);
    const head = await own.send(new HeadObjectCommand({ Bucket: 'layertap', Key: `${prefix}/large.npy` }));
    expect(head.ContentLength).toBe(12 * 1024 * 1024);
    const pending = await own.send(new ListMultipartUploadsCommand({ Bucket: 'layertap', Prefix: prefix })).catch(() => undefined);
    expect(pending?.Uploads ?? []).toEqual([]);
    own.destroy();
  });

  it('stores objects under the prefix with a content type from the extension', async () => {
    const prefix = freshPrefix();
    const writer = new S3OutputWriter({ bucket: 'layertap', prefix, client });
    await writer.put('ds/manifest.jsonl', '{}\n');
    await writer.put('ds/l/a.npy', Buffer.alloc(4));
    await writer.put('ds/custom.bin', 'x', { contentType: 'text/x-custom' });
    const types = await Promise.all(
      ['ds/manifest.jsonl', 'ds/l/a.npy', 'ds/custom.bin'].map(async (key) => {
        const res = await client.send(new GetObjectCommand({ Bucket: 'layertap', Key: `${prefix}/${key}` }));
        await res.Body?.transformToByteArray();
        return res.ContentType;
      }),
    );
    expect(types).toEqual(['application/x-ndjson', 'application/octet-stream', 'text/x-custom']);
    expect(writer.uri).toBe(`s3://layertap/${prefix}`);
    expect(writer.urlFor('ds/l/a.npy')).toBe(`s3://layertap/${prefix}/ds/l/a.npy`);
  });

  it('keeps writers with different prefixes apart, and works at the bucket root', async () => {
    await server.createBucket('rooted');
    const a = new S3OutputWriter({ bucket: 'rooted', prefix: 'a', client });
    const b = new S3OutputWriter({ bucket: 'rooted', prefix: 'a/b', client });
    const root = new S3OutputWriter({ bucket: 'rooted', client });
    await a.put('x.json', 'a');
    await b.put('x.json', 'b');
    expect(await a.list('')).toEqual(['b/x.json', 'x.json']);
    expect(await b.list('')).toEqual(['x.json']);
    expect(await root.list('')).toEqual(['a/b/x.json', 'a/x.json']);
    expect((await root.get('a/b/x.json'))?.toString()).toBe('b');
    expect(root.uri).toBe('s3://rooted');
  });

  it('fails with TransientError while S3 is unreachable and works again once it is back', async () => {
    const writer = new S3OutputWriter({
      bucket: 'layertap',
      prefix: freshPrefix(),
      client: { ...server.settings, maxAttempts: 2, connectionTimeoutMs: 1000 },
    });
    try {
      await writer.put('before.json', '1');
      await server.stop();
      const err = await writer.put('during.json', '2').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TransientError);
      expect(err).toMatchObject({ code: ErrorCode.UploadFailed });
      expect((err as Error).message).toMatch(/^cannot reach S3 for write s3:\/\/layertap\/t-[0-9a-f]+\/during\.json \(E[A-Z]+\)$/);
      await server.start();
      await writer.put('after.json', '3');
      expect(await writer.list('')).toEqual(['after.json', 'before.json']);
    } finally {
      await server.start();
      await writer.close();
    }
  });

  it('reports bad credentials clearly without leaking them', async () => {
    const secret = 'sEcReT-do-not-print';
    const writer = new S3OutputWriter({
      bucket: 'layertap',
      client: { ...server.settings, credentials: { accessKeyId: 'AKIAWRONGKEY123', secretAccessKey: secret } },
    });
    const err = await writer.checkWritable().catch((e: unknown) => e);
    await writer.close();
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toBe('S3 rejected the credentials (InvalidAccessKeyId) on write to s3://layertap: check the access key, secret and region');
    expect((err as Error).message).not.toContain(secret);
    expect((err as Error).message).not.toContain('AKIAWRONGKEY123');
  });

  it('refuses an invalid bucket name at construction', () => {
    expect(() => new S3OutputWriter({ bucket: 'Bad_Bucket', client })).toThrow(ValidationError);
  });

  it('is what openOutput returns for s3:// URIs; a client passed in stays open', async () => {
    const writer = openOutput('s3://layertap/via-open/', { s3: client });
    expect(writer).toBeInstanceOf(S3OutputWriter);
    expect(writer.uri).toBe('s3://layertap/via-open');
    await writer.put('k.json', '{}');
    await writer.close();
    // The shared client still works: the writer did not destroy what it does not own.
    const res = await client.send(new GetObjectCommand({ Bucket: 'layertap', Key: 'via-open/k.json' }));
    expect(await res.Body?.transformToString()).toBe('{}');
  });
});
