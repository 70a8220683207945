import { createHash, randomBytes } from 'node:crypto';
import { DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { S3Server } from '@layertap/devservices';
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { resolveSource } from './source';

const BUCKET = 'source-test';
const sha8 = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 8);

describe('resolveSource: s3:// prefixes (real s3rver)', () => {
  let server: S3Server;
  let s3: S3Client;
  let prefix: string;

  beforeAll(async () => {
    server = new S3Server({ buckets: [BUCKET] });
    await server.start();
    s3 = server.createClient();
  });
  afterAll(async () => {
    s3?.destroy();
    await server?.close();
  });
  beforeEach(async () => {
    prefix = `run-${randomBytes(4).toString('hex')}`;
    const keys = ['photos/cats/001.jpg', 'photos/cats/002.PNG', 'photos/dogs/001.jpg', 'photos/README.txt', 'photos/dogs/meta.json', 'photos/top.webp', 'photos2/other.jpg'];
    for (const key of keys) await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${prefix}/${key}`, Body: 'x' }));
  });
  afterEach(async () => {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${prefix}/` }));
    const objects = (listed.Contents ?? []).map((o) => ({ Key: o.Key! }));
    if (objects.length) await s3.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: objects } }));
  });

  it('lists the images under a folder prefix, with ids from the path below it', async () => {
    const samples = await resolveSource(`s3://${BUCKET}/${prefix}/photos/`, { s3 });
    expect(samples).toEqual([
      { id: 'cats__001', uri: `s3://${BUCKET}/${prefix}/photos/cats/001.jpg` },
      { id: 'cats__002', uri: `s3://${BUCKET}/${prefix}/photos/cats/002.PNG` },
      { id: 'dogs__001', uri: `s3://${BUCKET}/${prefix}/photos/dogs/001.jpg` },
      { id: 'top', uri: `s3://${BUCKET}/${prefix}/photos/top.webp` },
    ]);
  });

  it('names ids from the last "/" of a prefix that ends inside a name', async () => {
    const samples = await resolveSource(`s3://${BUCKET}/${prefix}/photos/ca`, { s3 });
    expect(samples.map((s) => s.id)).toEqual(['cats__001', 'cats__002']);
  });

  it('takes the whole key for a prefix without a folder part, hashing stems that collide', async () => {
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${prefix}/photos/cats/001.png`, Body: 'x' }));
    const samples = await resolveSource(`s3://${BUCKET}/${prefix}`, { s3 });
    const base = `${prefix}__photos`;
    expect(samples.map((s) => s.id)).toEqual([
      `${base}__cats__001-${sha8(`${base}__cats__001.jpg`)}`,
      `${base}__cats__001-${sha8(`${base}__cats__001.png`)}`,
      `${base}__cats__002`,
      `${base}__dogs__001`,
      `${base}__top`,
      `${prefix}__photos2__other`,
    ]);
  });

  it('refuses a prefix without images as empty', async () => {
    const err = await resolveSource(`s3://${BUCKET}/${prefix}/nothing-here/`, { s3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).code).toBe(ErrorCode.EmptyManifest);
  });

  it('needs S3 settings for an s3:// source', async () => {
    const err = await resolveSource(`s3://${BUCKET}/${prefix}/`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).code).toBe(ErrorCode.InvalidSource);
    expect((err as ValidationError).message).toBe('s3:// sources need S3 settings');
  });

  it('refuses an s3:// source without a bucket', async () => {
    const err = await resolveSource('s3:///photos', { s3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).message).toBe('s3:///photos: expected s3://bucket/prefix');
  });
});
