import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { ErrorCode, TransientError, ValidationError } from '@layertap/contracts';
import { rejection, serve, withTempDir, type TestServer } from './__tests__/helpers';
import { PUBLISHED_WEIGHTS, fetchPublishedWeights } from './fetch-published';

const FILE = PUBLISHED_WEIGHTS['keras-vgg16-notop'].file;
const payload = randomBytes(300_000);
const expected = { size: payload.length, md5: createHash('md5').update(payload).digest('hex') };
const sha256 = createHash('sha256').update(payload).digest('hex');

/** /ok serves the file (with Range support), /corrupt one flipped byte, /short a truncated copy, /drop half then a reset. */
function handler(req: IncomingMessage, res: ServerResponse): void {
  const [, mode, name] = (req.url ?? '').split('/');
  if (name !== FILE) {
    res.writeHead(404).end();
    return;
  }
  let body = payload;
  if (mode === 'corrupt') {
    body = Buffer.from(payload);
    body[1234] = body[1234]! ^ 0x01;
  } else if (mode === 'short') {
    body = payload.subarray(0, 200_000);
  } else if (mode === 'drop') {
    res.writeHead(200, { 'content-length': payload.length });
    // Break off only after the client has had time to read and store the half: a reset sent at once can
    // discard data still unread in the client's socket buffer, which would make the test flaky.
    res.write(payload.subarray(0, 100_000), () => setTimeout(() => res.destroy(), 300));
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

describe('fetchPublishedWeights', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await serve(handler);
  });
  afterAll(() => server.close());

  it('knows the published files, sizes and MD5s', () => {
    expect(PUBLISHED_WEIGHTS['keras-vgg16']).toEqual({ file: 'vgg16_weights_tf_dim_ordering_tf_kernels.h5', size: 553467096, md5: '64373286793e3c8b2b4e3219cbf3544b' });
    expect(PUBLISHED_WEIGHTS['keras-vgg16-notop']).toEqual({ file: 'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5', size: 58889256, md5: '6d6bbae143d832006294945121d1f1fc' });
  });

  it('downloads, checks size and MD5, renames into place, and skips a complete file the next time', async () => {
    await withTempDir(async (dir) => {
      const progress: number[] = [];
      const result = await fetchPublishedWeights('keras-vgg16-notop', { to: dir, baseUrl: `${server.url}/ok/`, expected, onProgress: (n) => progress.push(n) });
      expect(result).toEqual({
        name: 'keras-vgg16-notop',
        path: path.join(dir, FILE),
        url: `${server.url}/ok/${FILE}`,
        size: payload.length,
        md5: expected.md5,
        sha256,
        downloaded: true,
        resumedFrom: 0,
      });
      expect((await readFile(result.path)).equals(payload)).toBe(true);
      expect(await readdir(dir)).toEqual([FILE]);
      expect(progress.at(-1)).toBe(payload.length);

      const requests = server.requests.length;
      const again = await fetchPublishedWeights('keras-vgg16-notop', { to: dir, baseUrl: `${server.url}/ok`, expected });
      expect(again).toMatchObject({ downloaded: false, sha256, path: result.path });
      expect(server.requests.length).toBe(requests);
    });
  });

  it('refuses a corrupted download (wrong MD5) and deletes it', async () => {
    await withTempDir(async (dir) => {
      const err = await rejection(fetchPublishedWeights('keras-vgg16-notop', { to: dir, baseUrl: `${server.url}/corrupt/`, expected }));
      expect(err).toBeInstanceOf(ValidationError);
      expect(err.code).toBe(ErrorCode.InvalidWeights);
      expect(err.message).toContain(`expected ${payload.length} bytes with MD5 ${expected.md5}`);
      expect(err.message).toContain('corrupted');
      expect(await readdir(dir)).toEqual([]);
    });
  });

  it('refuses a truncated download and deletes it', async () => {
    await withTempDir(async (dir) => {
      const err = await rejection(fetchPublishedWeights('keras-vgg16-notop', { to: dir, baseUrl: `${server.url}/short/`, expected }));
      expect(err.code).toBe(ErrorCode.InvalidWeights);
      expect(err.message).toContain(`got 200000 bytes`);
      expect(err.message).toContain('truncated');
      expect(await readdir(dir)).toEqual([]);
    });
  });

  it('keeps a broken-off download and resumes it with a range request', async () => {
    await withTempDir(async (dir) => {
      const err = await rejection(fetchPublishedWeights('keras-vgg16-notop', { to: dir, baseUrl: `${server.url}/drop/`, expected }));
      expect(err).toBeInstanceOf(TransientError);
      expect(err.message).toContain('run the command again to resume');
      const partial = path.join(dir, `${FILE}.part`);
      const kept = (await stat(partial)).size;
      expect(kept).toBeGreaterThan(0);
      expect(kept).toBeLessThan(payload.length);

      const result = await fetchPublishedWeights('keras-vgg16-notop', { to: dir, baseUrl: `${server.url}/ok/`, expected });
      expect(result).toMatchObject({ downloaded: true, resumedFrom: kept, md5: expected.md5, sha256 });
      expect(server.requests.at(-1)).toEqual({ path: `/ok/${FILE}`, range: `bytes=${kept}-` });
      expect((await readFile(result.path)).equals(payload)).toBe(true);
      expect(await readdir(dir)).toEqual([FILE]);
    });
  });

  it('replaces a damaged existing file, and reports HTTP errors', async () => {
    await withTempDir(async (dir) => {
      await writeFile(path.join(dir, FILE), Buffer.alloc(payload.length));
      const result = await fetchPublishedWeights('keras-vgg16-notop', { to: dir, baseUrl: `${server.url}/ok/`, expected });
      expect(result.downloaded).toBe(true);
      expect((await readFile(result.path)).equals(payload)).toBe(true);

      const missing = await rejection(fetchPublishedWeights('keras-vgg16', { to: dir, baseUrl: `${server.url}/ok/`, expected }));
      expect(missing.code).toBe(ErrorCode.HttpError);
      expect(missing.message).toContain('HTTP 404');
    });
  });
});
