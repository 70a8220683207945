import { S3Client } from '@aws-sdk/client-s3';
import { ErrorCode, LayertapError, SampleError } from '@layertap/contracts';
import { execFileSync } from 'node:child_process';
import { getEventListeners } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ImageFetcher, uriScheme } from './image-fetcher';

const IMAGE = Buffer.from('\x89PNG pretend image bytes, 40 of them....', 'latin1');
/** A "weights file" read by ranges: 3000 bytes, byte i = i % 251. */
const RANGED = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251));

async function failure(promise: Promise<unknown>): Promise<SampleError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SampleError);
  return err as SampleError;
}

/** A real HTTP server on 127.0.0.1 with one route per behaviour under test. */
function startServer(): Promise<{ server: http.Server; base: string; requests: string[] }> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push(url.pathname);
    const port = (server.address() as AddressInfo).port;
    switch (url.pathname) {
      case '/ok.png':
        res.writeHead(200, { 'content-type': 'image/png', 'content-length': IMAGE.length });
        res.end(IMAGE);
        return;
      case '/auth.png':
        if (req.headers.authorization !== `Basic ${Buffer.from('alice:s3cret').toString('base64')}`) {
          res.writeHead(401);
          res.end();
          return;
        }
        res.end(IMAGE);
        return;
      case '/missing.png':
        res.writeHead(404);
        res.end('not here');
        return;
      case '/gone.png':
        res.writeHead(410);
        res.end();
        return;
      case '/error.png':
        res.writeHead(500, 'Internal Server Error');
        res.end('oops');
        return;
      case '/busy.png':
        res.writeHead(503, 'Service Unavailable', { 'retry-after': '5' });
        res.end();
        return;
      case '/ranged.bin':
      case '/redirect-to-ranged': {
        if (url.pathname === '/redirect-to-ranged') {
          res.writeHead(302, { location: '/ranged.bin' });
          res.end();
          return;
        }
        // A static file server: ranges answered with 206 and Content-Range, past the end with 416.
        const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
        requests.push(`range ${req.headers.range ?? 'none'}`);
        if (!range) {
          res.writeHead(200, { 'content-length': RANGED.length });
          res.end(RANGED);
          return;
        }
        const start = Number(range[1]);
        if (start >= RANGED.length) {
          res.writeHead(416, { 'content-range': `bytes */${RANGED.length}` });
          res.end();
          return;
        }
        const end = Math.min(Number(range[2]), RANGED.length - 1);
        res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${RANGED.length}`, 'content-length': end + 1 - start });
        res.end(RANGED.subarray(start, end + 1));
        return;
      }
      case '/redirect':
        res.writeHead(302, { location: '/ok.png' });
        res.end();
        return;
      case '/chain': {
        const left = Number(url.searchParams.get('n') ?? 0);
        res.writeHead(left > 0 ? 301 : 200, left > 0 ? { location: `/chain?n=${left - 1}` } : {});
        res.end(left > 0 ? undefined : IMAGE);
        return;
      }
      case '/redirect-to-localhost':
        res.writeHead(307, { location: `http://localhost:${port}/ok.png` });
        res.end();
        return;
      case '/redirect-to-metadata':
        res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' });
        res.end();
        return;
      case '/redirect-to-file':
        res.writeHead(302, { location: 'file:///etc/passwd' });
        res.end();
        return;
      case '/redirect-without-location':
        res.writeHead(302);
        res.end();
        return;
      case '/hang':
        return; // never answers
      case '/slow-body': {
        res.writeHead(200, { 'content-type': 'image/jpeg' });
        const timer = setInterval(() => res.write('x'), 20);
        res.on('close', () => clearInterval(timer));
        return;
      }
      case '/declared-big':
        res.writeHead(200, { 'content-length': 10_000 });
        res.end(Buffer.alloc(10_000));
        return;
      case '/endless': {
        res.writeHead(200); // chunked, no length: only counting can stop it
        const chunk = Buffer.alloc(64 * 1024, 1);
        const pump = () => {
          while (res.write(chunk));
        };
        res.on('drain', pump);
        pump();
        return;
      }
      case '/empty':
        res.writeHead(200, { 'content-length': 0 });
        res.end();
        return;
      case '/reset':
        res.writeHead(200, { 'content-length': 1000 });
        res.write(Buffer.alloc(100));
        setTimeout(() => req.socket.destroy(), 10);
        return;
      default:
        res.writeHead(404);
        res.end();
    }
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({ server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests });
    });
  });
}

describe('ImageFetcher over HTTP (real server on 127.0.0.1)', () => {
  let server: http.Server;
  let base: string;
  let requests: string[];
  const fetcher = new ImageFetcher({ allowHosts: ['127.0.0.1'], maxBytes: 5000, timeoutMs: 400 });

  beforeAll(async () => {
    ({ server, base, requests } = await startServer());
  });
  afterAll(async () => {
    fetcher.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('200: returns the body', async () => {
    expect(await fetcher.fetch(`${base}/ok.png`)).toEqual(IMAGE);
  });

  it('404 and 410 are NotFound', async () => {
    for (const path of ['/missing.png', '/gone.png']) {
      const err = await failure(fetcher.fetch(`${base}${path}`));
      expect(err.code).toBe(ErrorCode.NotFound);
      expect(err.message).toMatch(new RegExp(`^${base}${path}: HTTP 4(04|10)$`));
    }
  });

  it('500 and 503 are HttpError with the status (per sample, not retried)', async () => {
    const err = await failure(fetcher.fetch(`${base}/error.png`));
    expect(err.code).toBe(ErrorCode.HttpError);
    expect(err.message).toBe(`${base}/error.png: HTTP 500 Internal Server Error`);
    expect((await failure(fetcher.fetch(`${base}/busy.png`))).message).toMatch(/HTTP 503 Service Unavailable$/);
  });

  it('follows redirects', async () => {
    expect(await fetcher.fetch(`${base}/redirect`)).toEqual(IMAGE);
    expect(await fetcher.fetch(`${base}/chain?n=5`)).toEqual(IMAGE);
  });

  it('gives up after maxRedirects', async () => {
    const err = await failure(fetcher.fetch(`${base}/chain?n=6`));
    expect(err.code).toBe(ErrorCode.FetchFailed);
    expect(err.message).toMatch(/more than 5 redirects/);
    const strict = new ImageFetcher({ allowHosts: ['127.0.0.1'], maxRedirects: 0 });
    expect((await failure(strict.fetch(`${base}/redirect`))).message).toMatch(/more than 0 redirects/);
    strict.close();
  });

  it('checks every redirect target again: other hosts, the metadata service, other schemes', async () => {
    const toLocalhost = await failure(fetcher.fetch(`${base}/redirect-to-localhost`));
    expect(toLocalhost.code).toBe(ErrorCode.AddressBlocked);
    expect(toLocalhost.message).toMatch(/localhost resolves to (127\.0\.0\.1|::1), a loopback address \(after redirect to http:\/\/localhost:\d+\/ok\.png\)/);

    const toMetadata = await failure(fetcher.fetch(`${base}/redirect-to-metadata`));
    expect(toMetadata.code).toBe(ErrorCode.AddressBlocked);
    expect(toMetadata.message).toMatch(/169\.254\.169\.254 is a link-local address/);

    const toFile = await failure(fetcher.fetch(`${base}/redirect-to-file`));
    expect(toFile.code).toBe(ErrorCode.UnsupportedScheme);
    expect(toFile.message).toMatch(/redirected to unsupported scheme 'file:'/);

    expect((await failure(fetcher.fetch(`${base}/redirect-without-location`))).code).toBe(ErrorCode.HttpError);
  });

  it('times out when the server never answers', async () => {
    const started = Date.now();
    const err = await failure(fetcher.fetch(`${base}/hang`));
    expect(err.code).toBe(ErrorCode.Timeout);
    expect(err.message).toBe(`${base}/hang: no complete response within 400 ms`);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('times out on a slow body that never ends, even though bytes keep arriving', async () => {
    const err = await failure(fetcher.fetch(`${base}/slow-body`));
    expect(err.code).toBe(ErrorCode.Timeout);
  });

  it('refuses a declared Content-Length over maxBytes without reading the body', async () => {
    const err = await failure(fetcher.fetch(`${base}/declared-big`));
    expect(err.code).toBe(ErrorCode.TooLarge);
    expect(err.message).toMatch(/Content-Length 10000 is more than the limit of 5000 bytes/);
  });

  it('stops an endless body as soon as it passes maxBytes', async () => {
    const err = await failure(fetcher.fetch(`${base}/endless`));
    expect(err.code).toBe(ErrorCode.TooLarge);
  });

  it('zero bytes are EmptyFile', async () => {
    expect((await failure(fetcher.fetch(`${base}/empty`))).code).toBe(ErrorCode.EmptyFile);
  });

  it('a connection dropped mid-body is FetchFailed', async () => {
    const err = await failure(fetcher.fetch(`${base}/reset`));
    expect(err.code).toBe(ErrorCode.FetchFailed);
    expect(err.message).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/reset: /);
  });

  it('a refused connection is FetchFailed', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const err = await failure(fetcher.fetch(`http://127.0.0.1:${port}/x.png`));
    expect(err.code).toBe(ErrorCode.FetchFailed);
    expect(err.message).toBe(`http://127.0.0.1:${port}/x.png: connection refused (ECONNREFUSED)`);
  });

  it('sends userinfo as Basic auth but never puts it in messages', async () => {
    const withAuth = `${base.replace('http://', 'http://alice:s3cret@')}`;
    expect(await fetcher.fetch(`${withAuth}/auth.png`)).toEqual(IMAGE);
    const err = await failure(fetcher.fetch(`${withAuth}/missing.png?X-Amz-Signature=abc123`));
    expect(err.message).toBe(`${base}/missing.png?X-Amz-Signature=***: HTTP 404`);
    expect(err.message).not.toMatch(/s3cret|alice|abc123/);
  });

  it('cancellation through the signal is a Cancelled LayertapError, not a sample failure', async () => {
    const controller = new AbortController();
    const pending = fetcher.fetch(`${base}/hang`, controller.signal);
    setTimeout(() => controller.abort(), 20);
    const err = await pending.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LayertapError);
    expect(err).not.toBeInstanceOf(SampleError);
    expect((err as LayertapError).code).toBe(ErrorCode.Cancelled);
  });

  it('leaves no listener behind on a long-lived caller signal', async () => {
    const chunkSignal = new AbortController().signal;
    for (const path of ['/ok.png', '/missing.png', '/hang']) await fetcher.fetch(`${base}${path}`, chunkSignal).catch(() => undefined);
    expect(getEventListeners(chunkSignal, 'abort')).toHaveLength(0);
  });

  it('fetchRange: the bytes asked for and the whole size (Range: / Content-Range), through redirects; a server that ignores ranges sends the file whole', async () => {
    expect(await fetcher.fetchRange(`${base}/ranged.bin`, 100, 50)).toEqual({ offset: 100, bytes: RANGED.subarray(100, 150), size: 3000 });
    expect(requests.at(-1)).toBe('range bytes=100-149');
    // Past the end of a file shorter than asked: what there is.
    expect(await fetcher.fetchRange(`${base}/redirect-to-ranged`, 2990, 64)).toEqual({ offset: 2990, bytes: RANGED.subarray(2990), size: 3000 });
    expect(await fetcher.fetchRange(`${base}/ranged.bin`, 5000, 10)).toEqual({ offset: 5000, bytes: Buffer.alloc(0), size: 3000 });
    // No range support: the whole body (within maxBytes), from offset 0.
    expect(await fetcher.fetchRange(`${base}/ok.png`, 10, 5)).toEqual({ offset: 0, bytes: IMAGE, size: IMAGE.length });
    expect((await failure(fetcher.fetchRange(`${base}/missing.png`, 0, 10))).code).toBe(ErrorCode.NotFound);
    expect((await failure(fetcher.fetchRange(`${base}/declared-big`, 0, 10))).code).toBe(ErrorCode.TooLarge);
    expect((await failure(fetcher.fetchRange('/etc/hostname', 0, 10))).code).toBe(ErrorCode.UnsupportedScheme);
  });

  describe('without allowHosts', () => {
    const strict = new ImageFetcher({ timeoutMs: 2000 });
    afterAll(() => strict.close());

    it('fetchRange keeps the address policy: a loopback host is refused before any request', async () => {
      const before = requests.length;
      expect((await failure(strict.fetchRange(`${base}/ranged.bin`, 0, 10))).code).toBe(ErrorCode.AddressBlocked);
      expect(requests.length).toBe(before);
    });

    it('refuses loopback addresses, literal or resolved, before any request is sent', async () => {
      const before = requests.length;
      const literal = await failure(strict.fetch(`${base}/ok.png`));
      expect(literal.code).toBe(ErrorCode.AddressBlocked);
      expect(literal.message).toMatch(/refusing to connect: 127\.0\.0\.1 is a loopback address/);

      const named = await failure(strict.fetch(`${base.replace('127.0.0.1', 'localhost')}/ok.png`));
      expect(named.code).toBe(ErrorCode.AddressBlocked);
      expect(named.message).toMatch(/localhost resolves to .*, a loopback address/);

      for (const uri of ['http://[::1]/a.png', 'http://169.254.169.254/latest', 'http://10.0.0.8/a.png', 'http://2130706433/a.png']) {
        expect((await failure(strict.fetch(uri))).code).toBe(ErrorCode.AddressBlocked);
      }
      expect(requests.length).toBe(before);
    });

    it('allowPrivateNetworks lets them through', async () => {
      const open = new ImageFetcher({ allowPrivateNetworks: true });
      expect(await open.fetch(`${base}/ok.png`)).toEqual(IMAGE);
      expect(await open.fetch(`${base.replace('127.0.0.1', 'localhost')}/ok.png`)).toEqual(IMAGE);
      open.close();
    });

    it("does not reuse another fetcher's pooled connection to skip the check", async () => {
      const open = new ImageFetcher({ allowPrivateNetworks: true });
      const url = `${base.replace('127.0.0.1', 'localhost')}/ok.png`;
      expect(await open.fetch(url)).toEqual(IMAGE); // leaves a keep-alive socket to localhost in open's pool
      expect((await failure(strict.fetch(url))).code).toBe(ErrorCode.AddressBlocked);
      open.close();
    });
  });
});

describe('ImageFetcher on local files', () => {
  let dir: string;
  let root: string;
  let outside: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'layertap-fetch-'));
    root = join(dir, 'root');
    outside = join(dir, 'outside');
    mkdirSync(join(root, 'sub'), { recursive: true });
    mkdirSync(outside);
    writeFileSync(join(root, 'sub', 'a b.png'), IMAGE);
    writeFileSync(join(root, 'empty.png'), '');
    writeFileSync(join(root, 'big.png'), Buffer.alloc(6000));
    writeFileSync(join(outside, 'secret.png'), IMAGE);
    symlinkSync(join(outside, 'secret.png'), join(root, 'link.png'));
    symlinkSync(outside, join(root, 'linked-dir'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const restricted = () => new ImageFetcher({ allowedRoots: [root], maxBytes: 5000 });

  it('reads absolute paths, relative paths and file:// URIs inside the allowed roots', async () => {
    const fetcher = restricted();
    const path = join(root, 'sub', 'a b.png');
    expect(await fetcher.fetch(path)).toEqual(IMAGE);
    expect(await fetcher.fetch(relative(process.cwd(), path))).toEqual(IMAGE);
    expect(await fetcher.fetch(pathToFileURL(path).href)).toEqual(IMAGE); // file:///.../a%20b.png
    expect(await fetcher.fetch(`${root}/sub/../sub/a b.png`)).toEqual(IMAGE);
  });

  it('reads a file whose name is not UTF-8 from its percent-encoded URI, inside the roots and not outside', async () => {
    const latin1 = (folder: string) => Buffer.concat([Buffer.from(`${folder}/`), Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x2e, 0x70, 0x6e, 0x67])]); // caf\xe9.png
    writeFileSync(latin1(root), IMAGE);
    writeFileSync(latin1(outside), IMAGE);
    expect(await restricted().fetch(`${pathToFileURL(root).href}/caf%E9.png`)).toEqual(IMAGE);
    expect((await failure(restricted().fetch(`${pathToFileURL(root).href}/../outside/caf%E9.png`))).code).toBe(ErrorCode.PathNotAllowed);
    expect((await failure(restricted().fetch(`${pathToFileURL(root).href}/caf%E8.png`))).code).toBe(ErrorCode.NotFound);
  });

  it('refuses paths outside the roots, also through .. and symbolic links', async () => {
    const fetcher = restricted();
    for (const path of [
      join(outside, 'secret.png'),
      `${root}/../outside/secret.png`,
      join(root, 'link.png'),
      join(root, 'linked-dir', 'secret.png'),
      pathToFileURL(join(outside, 'secret.png')).href,
      '/etc/passwd',
    ]) {
      const err = await failure(fetcher.fetch(path));
      expect({ path, code: err.code }).toEqual({ path, code: ErrorCode.PathNotAllowed });
    }
    // A missing file outside the roots is refused, not "not found": no probing of the file system.
    expect((await failure(fetcher.fetch(join(outside, 'nope.png')))).code).toBe(ErrorCode.PathNotAllowed);
  });

  it('any path is allowed without allowedRoots', async () => {
    expect(await new ImageFetcher().fetch(join(outside, 'secret.png'))).toEqual(IMAGE);
  });

  it('missing files are NotFound, empty ones EmptyFile, big ones TooLarge', async () => {
    const fetcher = restricted();
    const missing = await failure(fetcher.fetch(join(root, 'nope.png')));
    expect(missing.code).toBe(ErrorCode.NotFound);
    expect(missing.message).toBe(`${join(root, 'nope.png')}: no such file`);
    expect((await failure(fetcher.fetch(join(root, 'empty.png')))).code).toBe(ErrorCode.EmptyFile);
    const big = await failure(fetcher.fetch(join(root, 'big.png')));
    expect(big.code).toBe(ErrorCode.TooLarge);
    expect(big.message).toMatch(/file is 6000 bytes, more than the limit of 5000/);
  });

  it('directories, devices and FIFOs are not read', async () => {
    expect((await failure(restricted().fetch(join(root, 'sub')))).message).toMatch(/is a directory$/);
    const any = new ImageFetcher({ timeoutMs: 2000 });
    expect((await failure(any.fetch('/dev/zero'))).message).toMatch(/is not a regular file$/);
    const fifo = join(root, 'pipe');
    execFileSync('mkfifo', [fifo]); // would block a plain open() until a writer appears
    const err = await failure(any.fetch(fifo));
    expect(err.code).toBe(ErrorCode.FetchFailed);
    expect(err.message).toMatch(/is not a regular file$/);
  });

  it('file URIs with a host are UnsupportedScheme', async () => {
    expect((await failure(new ImageFetcher().fetch('file://fileserver/share/a.png'))).code).toBe(ErrorCode.UnsupportedScheme);
  });
});

describe('ImageFetcher schemes', () => {
  it.each(['ftp://example.com/a.png', 'data:image/png;base64,iVBORw0KGgo=', 'gopher://x/1', 'javascript:alert(1)'])(
    '%s is UnsupportedScheme',
    async (uri) => {
      const err = await failure(new ImageFetcher().fetch(uri));
      expect(err.code).toBe(ErrorCode.UnsupportedScheme);
      expect(err.message).toMatch(/unsupported scheme/);
    },
  );

  it('tells schemes from paths (Windows drive letters are paths)', () => {
    expect(uriScheme('HTTPS://x/y')).toBe('https');
    expect(uriScheme('s3://b/k')).toBe('s3');
    expect(uriScheme('/data/a.png')).toBeUndefined();
    expect(uriScheme('images/a.png')).toBeUndefined();
    expect(uriScheme('C:\\images\\a.png')).toBeUndefined();
  });

  it('s3 URIs without a key are FetchFailed', async () => {
    const err = await failure(new ImageFetcher({ s3: new S3Client({ region: 'us-east-1' }) }).fetch('s3://bucket-only'));
    expect(err.code).toBe(ErrorCode.FetchFailed);
    expect(err.message).toBe('s3://bucket-only: invalid S3 URI, expected s3://bucket/key');
  });

  // A live S3 test (GetObject from the s3rver in @layertap/devservices) belongs to the end-to-end tests.
  it('an unreachable S3 endpoint is FetchFailed (real client, closed port)', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const s3 = new S3Client({
      endpoint: `http://127.0.0.1:${port}`,
      region: 'us-east-1',
      forcePathStyle: true,
      maxAttempts: 1,
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    const err = await failure(new ImageFetcher({ s3 }).fetch('s3://bucket/images/a.png'));
    expect(err.code).toBe(ErrorCode.FetchFailed);
    expect(err.message).toMatch(/^s3:\/\/bucket\/images\/a\.png: S3 request failed: /);
    s3.destroy();
  });

  it('refuses invalid options', () => {
    expect(() => new ImageFetcher({ maxBytes: 0 })).toThrow(RangeError);
    expect(() => new ImageFetcher({ timeoutMs: -1 })).toThrow(RangeError);
    expect(() => new ImageFetcher({ maxRedirects: 1.5 })).toThrow(RangeError);
  });
});
