// Submit reads weights headers only (issue 17): a 59 MB weights file over HTTP and on S3 (real s3rver) is
// checked from its header by range requests through the trusted fetcher, under the same address policy.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { S3Server } from '@layertap/devservices';
import { encodeSafetensors } from '@layertap/storage/formats';
import { prepareSubmission, type SubmitOptions } from './plan';
import { TempDir } from './__tests__/temp-dir';

const MB = 1024 * 1024;

/** torchvision's VGG16 convolutions (features.0 .. features.28), zeros: 58.9 MB of float32. */
function vgg16Features(): Buffer {
  const widths = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'] as const;
  const tensors: { name: string; dtype: 'F32'; shape: number[]; data: Float32Array }[] = [];
  let index = 0;
  let channels = 3;
  for (const width of widths) {
    if (width === 'M') {
      index += 1;
      continue;
    }
    tensors.push({ name: `features.${index}.weight`, dtype: 'F32', shape: [width, channels, 3, 3], data: new Float32Array(width * channels * 9) });
    tensors.push({ name: `features.${index}.bias`, dtype: 'F32', shape: [width], data: new Float32Array(width) });
    channels = width;
    index += 2;
  }
  return encodeSafetensors(tensors);
}

describe('prepareSubmission reads a remote weights file\'s header only', () => {
  let tmp: TempDir;
  let big: Buffer;
  let http: Server;
  let url: string;
  const served = { bytes: 0, requests: 0, ranges: 0 };
  let s3Server: S3Server;
  let s3: S3Client;

  const options = (weights: string): SubmitOptions => ({
    source: tmp.path('imgs'),
    layers: ['block5_pool'],
    output: pathToFileURL(tmp.path('out')).href,
    imageSize: 224,
    batchSize: 8,
    chunkSize: 64,
    dtype: 'float32',
    layout: 'chw',
    pool: 'none',
    weights,
    seed: 0,
  });

  beforeAll(async () => {
    big = vgg16Features();
    http = createServer((req, res) => {
      served.requests++;
      const body = req.url === '/big.safetensors' ? big : req.url === '/cut.safetensors' ? big.subarray(0, big.length - 4096) : undefined;
      if (!body) return void res.writeHead(404).end();
      const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      if (!range) {
        served.bytes += body.length;
        return void res.writeHead(200, { 'content-length': body.length }).end(body);
      }
      served.ranges++;
      const start = Number(range[1]);
      const end = Math.min(Number(range[2]), body.length - 1);
      served.bytes += end + 1 - start;
      res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${body.length}`, 'content-length': end + 1 - start }).end(body.subarray(start, end + 1));
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    s3Server = new S3Server({ buckets: ['weights'] });
    await s3Server.start();
    s3 = s3Server.createClient();
    await s3.send(new PutObjectCommand({ Bucket: 'weights', Key: 'big.safetensors', Body: big }));
  });
  afterAll(async () => {
    await new Promise((resolve) => http?.close(resolve));
    s3?.destroy();
    await s3Server?.close();
  });
  beforeEach(async () => {
    tmp = await TempDir.create();
    await tmp.files({ 'imgs/a.jpg': 'x' });
    process.env.LAYERTAP_WEIGHTS_CACHE = tmp.path('cache');
  });
  afterEach(async () => {
    delete process.env.LAYERTAP_WEIGHTS_CACHE;
    await tmp.remove();
  });

  it('over HTTP: under 1 MB of range requests for a 59 MB file; the description claims no sha256', async () => {
    expect(big.length).toBeGreaterThan(50 * MB);
    const before = { ...served };
    const weightsStats = { requests: 0, bytes: 0 };
    const started = Date.now();
    const prepared = await prepareSubmission(options(`${url}/big.safetensors`), { s3, allowHosts: ['127.0.0.1'], weightsStats });
    process.stdout.write(`HTTP: ${served.bytes - before.bytes} bytes in ${served.ranges - before.ranges} range requests, ${Date.now() - started} ms\n`);
    expect(served.bytes - before.bytes).toBeLessThan(1 * MB);
    expect(served.requests - before.requests).toBe(served.ranges - before.ranges);
    expect(weightsStats.bytes).toBe(served.bytes - before.bytes);
    expect(prepared.weightsDescription).toBe(`${url}/big.safetensors (safetensors, torchvision keys; header checked)`);
    expect(prepared.config).toMatchObject({ weights: `${url}/big.safetensors`, preprocess: 'torchvision' });
  });

  it('over HTTP: a truncated file is refused; a host the address policy blocks is exit 2 without a request', async () => {
    const cut = await prepareSubmission(options(`${url}/cut.safetensors`), { s3, allowHosts: ['127.0.0.1'] }).catch((e: unknown) => e);
    expect(cut).toBeInstanceOf(ValidationError);
    expect((cut as ValidationError).code).toBe(ErrorCode.InvalidWeights);
    expect((cut as ValidationError).message).toContain('runs past the end of the file');

    const before = served.requests;
    const blocked = await prepareSubmission(options(`${url}/big.safetensors`), { s3 }).catch((e: unknown) => e);
    expect(blocked).toBeInstanceOf(ValidationError);
    expect((blocked as ValidationError).code).toBe(ErrorCode.AddressBlocked);
    expect((blocked as ValidationError).message).toContain('(list the host in LAYERTAP_ALLOW_HOSTS to allow it)');
    expect(served.requests).toBe(before);
  });

  it('on S3 (s3rver answers GetObject with Range): under 1 MB read', async () => {
    const weightsStats = { requests: 0, bytes: 0 };
    const started = Date.now();
    const prepared = await prepareSubmission(options('s3://weights/big.safetensors'), { s3, weightsStats });
    process.stdout.write(`S3: ${weightsStats.bytes} bytes in ${weightsStats.requests} range requests, ${Date.now() - started} ms\n`);
    expect(weightsStats.requests).toBeGreaterThan(0);
    expect(weightsStats.bytes).toBeLessThan(1 * MB);
    expect(prepared.weightsDescription).toBe('s3://weights/big.safetensors (safetensors, torchvision keys; header checked)');
  });
});
