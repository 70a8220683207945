import { GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { ErrorCode, TransientError, ValidationError } from '@layertap/contracts';
import { S3Server } from '@layertap/devservices';
import { randomBytes } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { crc32 } from 'node:zlib';
import { describeOutputWriterContract } from './__tests__/output-writer-contract';
import { openOutput } from './open-output';
import { crc32Base64, createS3Client, S3OutputWriter } from './s3-output-writer';

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

interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/**
 * An HTTP proxy in front of the s3rver that answers the first PUT of each key containing `flaky` with a 503
 * SlowDown (as S3 does under load) and forwards everything else; it records what reached it.
 */
async function startFlakyProxy(target: number): Promise<{ server: Server; port: number; seen: SeenRequest[] }> {
  const seen: SeenRequest[] = [];
  const failed = new Set<string>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = req.url ?? '/';
      seen.push({ method: req.method ?? '', url, headers: req.headers, body });
      if (req.method === 'PUT' && url.includes('flaky') && !failed.has(url)) {
        failed.add(url);
        res.writeHead(503, { 'content-type': 'application/xml' });
        res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>');
        return;
      }
      const forward = httpRequest({ host: '127.0.0.1', port: target, method: req.method, path: url, headers: req.headers }, (upstream) => {
        res.writeHead(upstream.statusCode ?? 502, upstream.headers);
        upstream.pipe(res);
      });
      forward.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, seen };
}

describe('S3OutputWriter bodies in parts', () => {
  const header = Buffer.from("\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", 'latin1');
  const values = Buffer.from(new Float32Array(Array.from({ length: 3 * 4 * 1000 }, (_, i) => i / 7)).buffer);
  const whole = Buffer.concat([header, values]);
  let proxy: Awaited<ReturnType<typeof startFlakyProxy>>;

  beforeAll(async () => {
    proxy = await startFlakyProxy(server.port);
  });
  afterAll(async () => {
    await new Promise((resolve) => proxy.server.close(resolve));
  });

  it('computes the CRC32 of parts as of their concatenation, in S3\'s base64', () => {
    expect(crc32Base64([Buffer.from('1234'), Buffer.from('56789')])).toBe('y/Q5Jg=='); // CRC32("123456789") = 0xCBF43926
    expect(crc32Base64([header, values])).toBe(crc32Base64([whole]));
    expect(crc32Base64([])).toBe('AAAAAA==');
  });

  it('sends the parts again, whole, when a PUT is retried after a 503', async () => {
    const prefix = freshPrefix();
    const writer = new S3OutputWriter({ bucket: 'layertap', prefix, client: { ...server.settings, endpoint: `http://127.0.0.1:${proxy.port}` } });
    await writer.put('ds/features.9/flaky-0001.npy', [header, values]);
    const puts = proxy.seen.filter((r) => r.method === 'PUT' && r.url.includes(`${prefix}/ds/features.9/flaky-0001.npy`));
    expect(puts).toHaveLength(2);
    for (const put of puts) {
      expect(put.body.equals(whole)).toBe(true);
      expect(put.headers['content-length']).toBe(String(whole.length));
    }
    expect((await writer.get('ds/features.9/flaky-0001.npy'))?.equals(whole)).toBe(true);
    await writer.close();
  });

  it("sends the parts' CRC32 as a header, unchunked, where the client asks for checksums", async () => {
    const prefix = freshPrefix();
    const { credentials, region } = server.settings;
    const checked = new S3Client({ endpoint: `http://127.0.0.1:${proxy.port}`, region, credentials, forcePathStyle: true, requestChecksumCalculation: 'WHEN_SUPPORTED' });
    const writer = new S3OutputWriter({ bucket: 'layertap', prefix, client: checked });
    await writer.put('ds/features.9/flaky-0002.npy', [header, values]);
    const puts = proxy.seen.filter((r) => r.method === 'PUT' && r.url.includes(`${prefix}/ds/features.9/flaky-0002.npy`));
    expect(puts).toHaveLength(2);
    const expected = Buffer.alloc(4);
    expected.writeUInt32BE(crc32(whole) >>> 0);
    for (const put of puts) {
      expect(put.headers['x-amz-checksum-crc32']).toBe(expected.toString('base64'));
      expect(put.headers['content-encoding']).toBeUndefined();
      expect(put.body.equals(whole)).toBe(true);
    }
    expect((await writer.get('ds/features.9/flaky-0002.npy'))?.equals(whole)).toBe(true);
    checked.destroy();
  });
});

