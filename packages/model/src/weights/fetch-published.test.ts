import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { ErrorCode, TransientError, ValidationError } from '@layertap/contracts';
import { PTH, rejection, serve, withTempDir, type TestServer } from '../testing/helpers';
import { cachedPublishedWeights, fetchPublishedWeights } from './fetch-published';
import { PUBLISHED_WEIGHTS, publishedUrl, publishedWeightsName } from './published-weights';
import { publishedWeightsSource } from './weights-env';

const NOTOP = PUBLISHED_WEIGHTS['keras-imagenet-notop'];
const NOTOP_PATH = new URL(NOTOP.url).pathname;
const TORCHVISION_PATH = '/models/vgg16-397923af.pth';
const payload = randomBytes(300_000);
const expected = { size: payload.length, md5: createHash('md5').update(payload).digest('hex') };
const checksums = { 'keras-imagenet-notop': expected };
const sha256 = createHash('sha256').update(payload).digest('hex');

/** A zip-format .pth whose sha256 starts with 397923af, and one (legacy format) whose sha256 does not. */
let genuine: Buffer;
let impostor: Buffer;

/**
 * `/<mode>/<published path>`: `ok` serves the files (with Range support), `corrupt` one flipped byte, `short` a
 * truncated copy, `drop` half then a reset, `wrong` a .pth that does not have torchvision's hash prefix.
 */
function handler(req: IncomingMessage, res: ServerResponse): void {
  const [, mode, ...rest] = (req.url ?? '').split('/');
  const file = `/${rest.join('/')}`;
  let body = file === NOTOP_PATH ? payload : file === TORCHVISION_PATH ? (mode === 'wrong' ? impostor : genuine) : undefined;
  if (!body) {
    res.writeHead(404).end();
    return;
  }
  if (mode === 'corrupt') {
    body = Buffer.from(body);
    body[1234] = body[1234]! ^ 0x01;
  } else if (mode === 'short') {
    body = body.subarray(0, 200_000);
  } else if (mode === 'drop') {
    res.writeHead(200, { 'content-length': body.length });
    // Break off only after the client has had time to read and store the half: a reset sent at once can
    // discard data still unread in the client's socket buffer, which would make the test flaky.
    res.write(body.subarray(0, 100_000), () => setTimeout(() => res.destroy(), 300));
    return;
  }
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (mode === 'ok' && range) {
    const start = Number(range[1]);
    res.writeHead(206, { 'content-length': body.length - start, 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` });
    res.end(body.subarray(start));
    return;
  }
  res.writeHead(200, { 'content-length': body.length }).end(body);
}

describe('published weights', () => {
  it('knows the published files: URLs, sizes and MD5s for Keras, the sha256 prefix for torchvision', () => {
    expect(PUBLISHED_WEIGHTS['keras-imagenet']).toMatchObject({
      url: 'https://storage.googleapis.com/tensorflow/keras-applications/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5',
      checksum: { size: 553467096, md5: '64373286793e3c8b2b4e3219cbf3544b' },
      trainedWith: 'caffe',
    });
    expect(NOTOP).toMatchObject({ file: 'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5', checksum: { size: 58889256, md5: '6d6bbae143d832006294945121d1f1fc' } });
    expect(PUBLISHED_WEIGHTS['torchvision-imagenet']).toMatchObject({
      url: 'https://download.pytorch.org/models/vgg16-397923af.pth',
      checksum: { sha256Prefix: '397923af' },
      trainedWith: 'torchvision',
    });
    // torchvision's check_hash takes the hash prefix from the file name: the table must agree with itself.
    expect(PUBLISHED_WEIGHTS['torchvision-imagenet'].file).toContain(PUBLISHED_WEIGHTS['torchvision-imagenet'].checksum.sha256Prefix);
  });

  it('reads names and the old aliases; anything else is not a name', () => {
    expect(publishedWeightsName('torchvision-imagenet')).toBe('torchvision-imagenet');
    expect(publishedWeightsName('keras-vgg16')).toBe('keras-imagenet');
    expect(publishedWeightsName('keras-vgg16-notop')).toBe('keras-imagenet-notop');
    expect(publishedWeightsName('./keras-imagenet')).toBeUndefined();
    expect(publishedWeightsName('random')).toBeUndefined();
  });

  it('maps published URLs onto a mirror, keeping their paths', () => {
    expect(publishedUrl('torchvision-imagenet')).toBe('https://download.pytorch.org/models/vgg16-397923af.pth');
    expect(publishedUrl('torchvision-imagenet', 'http://m.example:8080/w/')).toBe('http://m.example:8080/w/models/vgg16-397923af.pth');
    expect(publishedUrl('keras-imagenet', 'http://m.example')).toBe('http://m.example/tensorflow/keras-applications/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5');
  });

  it('reads the mirror settings from the environment, refusing what is malformed', () => {
    expect(publishedWeightsSource({})).toEqual({});
    expect(publishedWeightsSource({ LAYERTAP_WEIGHTS_MIRROR: 'http://m.example/w' })).toEqual({ mirror: 'http://m.example/w' });
    expect(
      publishedWeightsSource({ LAYERTAP_WEIGHTS_MIRROR: 'http://m', LAYERTAP_WEIGHTS_MIRROR_CHECKSUMS: '{"keras-vgg16": {"size": 3, "md5": "ABCDEF0123456789"}}' }),
    ).toEqual({ mirror: 'http://m', checksums: { 'keras-imagenet': { size: 3, md5: 'abcdef0123456789' } } });
    const cases: [NodeJS.ProcessEnv, string][] = [
      [{ LAYERTAP_WEIGHTS_MIRROR: 'ftp://m' }, 'must be an http(s):// base URL'],
      [{ LAYERTAP_WEIGHTS_MIRROR_CHECKSUMS: '{}' }, 'set LAYERTAP_WEIGHTS_MIRROR too'],
      [{ LAYERTAP_WEIGHTS_MIRROR: 'http://m', LAYERTAP_WEIGHTS_MIRROR_CHECKSUMS: '{"vgg19": {"md5": "00000000"}}' }, 'unknown weights "vgg19"'],
      [{ LAYERTAP_WEIGHTS_MIRROR: 'http://m', LAYERTAP_WEIGHTS_MIRROR_CHECKSUMS: '{"keras-imagenet": {"size": 3}}' }, 'gives no md5, sha256 or sha256Prefix'],
      [{ LAYERTAP_WEIGHTS_MIRROR: 'http://m', LAYERTAP_WEIGHTS_MIRROR_CHECKSUMS: 'nope' }, 'not JSON'],
    ];
    for (const [env, message] of cases) {
      let caught: unknown;
      try {
        publishedWeightsSource(env);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(ValidationError);
      expect((caught as Error).message).toContain(message);
    }
  });
});

describe('fetchPublishedWeights', () => {
  let server: TestServer;
  beforeAll(async () => {
    genuine = await readFile(path.join(PTH, 'vgg16-blocks1-2-seed11.zip.pth'));
    impostor = await readFile(path.join(PTH, 'vgg16-blocks1-2-seed11.legacy.pth'));
    server = await serve(handler);
  });
  afterAll(() => server.close());

  it('downloads into a directory, checks size and MD5, renames into place, and skips a complete file the next time', async () => {
    await withTempDir(async (dir) => {
      const progress: number[] = [];
      const result = await fetchPublishedWeights('keras-imagenet-notop', { to: dir, mirror: `${server.url}/ok`, checksums, onProgress: (n) => progress.push(n) });
      expect(result).toEqual({
        name: 'keras-imagenet-notop',
        path: path.join(dir, NOTOP.file),
        url: `${server.url}/ok${NOTOP_PATH}`,
        size: payload.length,
        md5: expected.md5,
        sha256,
        downloaded: true,
        resumedFrom: 0,
        cached: false,
        checksum: expected,
      });
      expect((await readFile(result.path)).equals(payload)).toBe(true);
      expect(await readdir(dir)).toEqual([NOTOP.file]);
      expect(progress.at(-1)).toBe(payload.length);

      const requests = server.requests.length;
      const again = await fetchPublishedWeights('keras-vgg16-notop', { to: dir, mirror: `${server.url}/ok/`, checksums });
      expect(again).toMatchObject({ name: 'keras-imagenet-notop', downloaded: false, sha256, path: result.path });
      expect(server.requests.length).toBe(requests);
    });
  });

  it('refuses a corrupted download (wrong MD5) and deletes it', async () => {
    await withTempDir(async (dir) => {
      const err = await rejection(fetchPublishedWeights('keras-imagenet-notop', { to: dir, mirror: `${server.url}/corrupt`, checksums }));
      expect(err).toBeInstanceOf(ValidationError);
      expect(err.code).toBe(ErrorCode.InvalidWeights);
      expect(err.message).toContain(`expected ${payload.length.toLocaleString('en-US')} bytes, MD5 ${expected.md5}`);
      expect(err.message).toContain('corrupted');
      expect(await readdir(dir)).toEqual([]);
    });
  });

  it('refuses a truncated download and deletes it', async () => {
    await withTempDir(async (dir) => {
      const err = await rejection(fetchPublishedWeights('keras-imagenet-notop', { to: dir, mirror: `${server.url}/short`, checksums }));
      expect(err.code).toBe(ErrorCode.InvalidWeights);
      expect(err.message).toContain('got 200,000 bytes (truncated)');
      expect(await readdir(dir)).toEqual([]);
    });
  });

  it('keeps a broken-off download and resumes it with a range request', async () => {
    await withTempDir(async (dir) => {
      const err = await rejection(fetchPublishedWeights('keras-imagenet-notop', { to: dir, mirror: `${server.url}/drop`, checksums }));
      expect(err).toBeInstanceOf(TransientError);
      expect(err.message).toContain('run the command again to resume');
      const partial = path.join(dir, `${NOTOP.file}.part`);
      const kept = (await stat(partial)).size;
      expect(kept).toBeGreaterThan(0);
      expect(kept).toBeLessThan(payload.length);

      const result = await fetchPublishedWeights('keras-imagenet-notop', { to: dir, mirror: `${server.url}/ok`, checksums });
      expect(result).toMatchObject({ downloaded: true, resumedFrom: kept, md5: expected.md5, sha256 });
      expect(server.requests.at(-1)).toEqual({ path: `/ok${NOTOP_PATH}`, range: `bytes=${kept}-` });
      expect((await readFile(result.path)).equals(payload)).toBe(true);
      expect(await readdir(dir)).toEqual([NOTOP.file]);
    });
  });

  it('replaces a damaged existing file, and reports HTTP errors', async () => {
    await withTempDir(async (dir) => {
      await writeFile(path.join(dir, NOTOP.file), Buffer.alloc(payload.length));
      const result = await fetchPublishedWeights('keras-imagenet-notop', { to: dir, mirror: `${server.url}/ok`, checksums });
      expect(result.downloaded).toBe(true);
      expect((await readFile(result.path)).equals(payload)).toBe(true);

      const missing = await rejection(fetchPublishedWeights('keras-imagenet', { to: dir, mirror: `${server.url}/ok`, checksums }));
      expect(missing.code).toBe(ErrorCode.HttpError);
      expect(missing.message).toContain('HTTP 404');
    });
  });

  it("checks torchvision's file by its published sha256 prefix, caches it by content, and finds it again by name without a request", async () => {
    await withTempDir(async (dir) => {
      const mirror = `${server.url}/ok`;
      expect(await cachedPublishedWeights('torchvision-imagenet', { cacheDir: dir, mirror })).toBeUndefined();
      const before = server.requests.length;
      const first = await fetchPublishedWeights('torchvision-imagenet', { cacheDir: dir, mirror });
      const contentHash = createHash('sha256').update(genuine).digest('hex');
      expect(contentHash.startsWith('397923af')).toBe(true);
      expect(first).toMatchObject({ downloaded: true, cached: true, sha256: contentHash, path: path.join(dir, `${contentHash}.pth`), size: genuine.length });
      expect(server.requests.slice(before)).toEqual([{ path: `/ok${TORCHVISION_PATH}` }]);
      expect((await readFile(first.path)).equals(genuine)).toBe(true);

      // Found by name (not by URL): another mirror path, still no request.
      const again = await fetchPublishedWeights('torchvision-imagenet', { cacheDir: dir, mirror: `${server.url}/elsewhere` });
      expect(again).toMatchObject({ downloaded: false, cached: true, path: first.path });
      expect(await cachedPublishedWeights('torchvision-imagenet', { cacheDir: dir, mirror })).toBe(first.path);
      expect(server.requests.length).toBe(before + 1);

      // A cached copy that changed is downloaded again.
      await writeFile(first.path, Buffer.alloc(genuine.length));
      const repaired = await fetchPublishedWeights('torchvision-imagenet', { cacheDir: dir, mirror });
      expect(repaired).toMatchObject({ downloaded: true, path: first.path });
      expect((await readFile(first.path)).equals(genuine)).toBe(true);
    });
  });

  it('refuses a torchvision download whose sha256 lacks the published prefix, and caches nothing', async () => {
    await withTempDir(async (dir) => {
      const err = await rejection(fetchPublishedWeights('torchvision-imagenet', { cacheDir: dir, mirror: `${server.url}/wrong` }));
      const impostorHash = createHash('sha256').update(impostor).digest('hex');
      expect(err).toBeInstanceOf(ValidationError);
      expect(err.code).toBe(ErrorCode.InvalidWeights);
      expect(err.message).toContain(`got sha256 ${impostorHash}; expected sha256 starting 397923af`);
      expect(await readdir(path.join(dir, 'downloads'))).toEqual([]);
      expect(await cachedPublishedWeights('torchvision-imagenet', { cacheDir: dir, mirror: `${server.url}/wrong` })).toBeUndefined();
    });
  });

  it('fails fast with the reason when nothing answers', async () => {
    await withTempDir(async (dir) => {
      const closed = await serve(handler);
      await closed.close();
      const err = await rejection(fetchPublishedWeights('torchvision-imagenet', { cacheDir: dir, mirror: closed.url }));
      expect(err).toBeInstanceOf(TransientError);
      expect(err.code).toBe(ErrorCode.FetchFailed);
      expect(err.message).toContain('ECONNREFUSED');
    });
  });
});
