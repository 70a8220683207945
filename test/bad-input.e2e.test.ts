import { copyFile, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Queue } from 'bullmq';
import sharp from 'sharp';
import type { ManifestLine } from '@layertap/contracts';
import { Harness, SAMPLES } from './support/harness';
import { ImageServer, serve } from './support/image-server';
import { pngBomb } from './support/images';

/**
 * Bad input is a per-sample failure: one dataset mixes good images with every kind of bad URI, all in one
 * chunk, and each sample ends with its own manifest line and stable reason code while the rest of the chunk
 * goes on. Addresses outside 127.0.0.0/8 (169.254.169.254, 10.x, fc00::) must be refused by layertap before
 * any connection: the test never sends traffic anywhere but loopback.
 */
describe('bad input, per sample (the rest of the chunk goes on)', () => {
  const h = new Harness('bad-input');
  const server = new ImageServer();
  let root: string; // LAYERTAP_FILE_ROOTS
  let outside: string;
  let good: Buffer;
  let list: string;

  /** The worker's limits: small enough that the test's bad bodies hit them quickly. */
  const limits = () => ({
    LAYERTAP_FILE_ROOTS: root,
    LAYERTAP_ALLOW_HOSTS: '127.0.0.1',
    LAYERTAP_FETCH_TIMEOUT_MS: '1500',
    LAYERTAP_MAX_IMAGE_BYTES: String(64 * 1024),
    // LAYERTAP_MAX_PIXELS stays at its default (100 MP): the bomb claims 256 MP.
  });

  /** id -> [uri, expected status or failure code, what the message must say]. Filled in beforeAll. */
  let cases: Record<string, { uri: string; code: string; message?: RegExp }>;

  beforeAll(async () => {
    await h.start();
    await server.start();
    good = await readFile(path.join(SAMPLES, 'chelsea.jpg'));
    root = path.join(h.tmp, 'images');
    outside = path.join(h.tmp, 'elsewhere');
    await mkdir(root);
    await mkdir(outside);
    await copyFile(path.join(SAMPLES, 'rocket.jpg'), path.join(root, 'good.jpg'));
    await writeFile(path.join(root, 'big.jpg'), Buffer.alloc(100 * 1024, 0xff));
    await copyFile(path.join(SAMPLES, 'coffee.jpg'), path.join(outside, 'secret.jpg'));
    await symlink(path.join(outside, 'secret.jpg'), path.join(root, 'link.jpg'));

    const bomb = pngBomb(16_000, 16_000);
    // Really what it claims to be: a valid PNG of 256 MP in a few tens of kilobytes.
    const meta = await sharp(bomb).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 16_000, 16_000]);
    expect(bomb.length).toBeLessThan(64 * 1024);

    server
      .route('/good.jpg', serve(good))
      .route('/missing.jpg', (_req, res) => res.writeHead(404).end('not here'))
      .route('/error.jpg', (_req, res) => res.writeHead(500).end('boom'))
      .route('/hang.jpg', () => undefined) // never answers
      .route('/endless.jpg', (_req, res) => {
        res.writeHead(200, { 'content-type': 'image/jpeg' });
        res.write(good.subarray(0, 2));
        const timer = server.every(100, () => res.write(Buffer.from([0xff])));
        res.on('close', () => clearInterval(timer));
      })
      .route('/text.jpg', serve('this is not an image, it is text\n', 'image/jpeg'))
      .route('/truncated.jpg', serve(good.subarray(0, Math.floor(good.length / 2))))
      .route('/empty.jpg', serve(Buffer.alloc(0)))
      .route('/bomb.png', serve(bomb, 'image/png'))
      .route('/big.jpg', serve(Buffer.alloc(100 * 1024, 0xff)))
      .route('/big-chunked.jpg', (_req, res) => {
        res.writeHead(200, { 'content-type': 'image/jpeg' }); // no Content-Length: counted as it arrives
        for (let i = 0; i < 10; i++) res.write(Buffer.alloc(10 * 1024, 0xff));
        res.end();
      })
      .route('/redirect-good', (_req, res) => res.writeHead(302, { location: '/good.jpg' }).end())
      .route('/redirect-metadata', (_req, res) =>
        res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/iam/security-credentials/' }).end(),
      )
      .route('/redirect-localhost', (_req, res) => res.writeHead(302, { location: `http://localhost:${server.port}/good.jpg` }).end());

    const o = server.origin;
    const file = (p: string) => pathToFileURL(p).href;
    cases = {
      'good-http': { uri: `${o}/good.jpg`, code: 'ok' },
      'good-file': { uri: file(path.join(root, 'good.jpg')), code: 'ok' },
      'good-redirect': { uri: `${o}/redirect-good`, code: 'ok' },
      'not-found': { uri: `${o}/missing.jpg`, code: 'not_found', message: /: HTTP 404$/ },
      'server-error': { uri: `${o}/error.jpg`, code: 'http_error', message: /: HTTP 500 Internal Server Error$/ },
      'no-response': { uri: `${o}/hang.jpg`, code: 'timeout', message: /: no complete response within 1500 ms$/ },
      'endless-body': { uri: `${o}/endless.jpg`, code: 'timeout', message: /: no complete response within 1500 ms$/ },
      'not-an-image': { uri: `${o}/text.jpg`, code: 'decode_failed', message: /^cannot decode image: .*unsupported image format/ },
      truncated: { uri: `${o}/truncated.jpg`, code: 'decode_failed', message: /^cannot decode image: .*(premature end|truncated|corrupt)/i },
      'zero-bytes': { uri: `${o}/empty.jpg`, code: 'empty_file', message: /: empty \(0 bytes\)$/ },
      'decompression-bomb': { uri: `${o}/bomb.png`, code: 'pixel_limit', message: /^image is 16000x16000 \(256\.0 megapixels\), more than the limit of 100\.0 megapixels$/ },
      'too-large': { uri: `${o}/big.jpg`, code: 'too_large', message: /: Content-Length 102400 is more than the limit of 65536 bytes$/ },
      'too-large-chunked': { uri: `${o}/big-chunked.jpg`, code: 'too_large', message: /: more than 65536 bytes$/ },
      'too-large-file': { uri: file(path.join(root, 'big.jpg')), code: 'too_large', message: /: file is 102400 bytes, more than the limit of 65536$/ },
      ftp: { uri: `ftp://127.0.0.1:${server.port}/good.jpg`, code: 'unsupported_scheme', message: /: unsupported scheme 'ftp:'/ },
      'outside-roots': { uri: file(path.join(outside, 'secret.jpg')), code: 'path_not_allowed', message: /: path is outside the allowed roots$/ },
      'symlink-out': { uri: file(path.join(root, 'link.jpg')), code: 'path_not_allowed', message: /: path resolves \(through a symbolic link\) outside the allowed roots$/ },
      'loopback-by-name': { uri: `http://localhost:${server.port}/good.jpg`, code: 'address_blocked', message: /: refusing to connect: localhost resolves to (127\.0\.0\.1|::1), a loopback address/ },
      // Loopback in other spellings than the allowed '127.0.0.1': the allow-list is by host as written.
      'loopback-v6': { uri: `http://[::1]:${server.port}/good.jpg`, code: 'address_blocked', message: /: refusing to connect: ::1 is a loopback address/ },
      'other-loopback': { uri: `http://127.0.0.2:${server.port}/good.jpg`, code: 'address_blocked', message: /: refusing to connect: 127\.0\.0\.2 is a loopback address/ },
      'mapped-loopback': { uri: `http://[::ffff:127.0.0.1]:${server.port}/good.jpg`, code: 'address_blocked', message: /: refusing to connect: ::ffff:7f00:1 is a loopback address/ },
      unspecified: { uri: `http://0.0.0.0:${server.port}/good.jpg`, code: 'address_blocked', message: /: refusing to connect: 0\.0\.0\.0 is an? [a-z-]+ address/ },
      'cloud-metadata': { uri: 'http://169.254.169.254/latest/meta-data/', code: 'address_blocked', message: /: refusing to connect: 169\.254\.169\.254 is a link-local address/ },
      'private-10': { uri: 'http://10.1.2.3/image.jpg', code: 'address_blocked', message: /: refusing to connect: 10\.1\.2\.3 is a private address/ },
      'unique-local-v6': { uri: 'http://[fc00::1]/image.jpg', code: 'address_blocked', message: /: refusing to connect: fc00::1 is a unique-local address/ },
      'redirect-to-metadata': {
        uri: `${o}/redirect-metadata`,
        code: 'address_blocked',
        message: /: refusing to connect: 169\.254\.169\.254 is a link-local address \(after redirect to http:\/\/169\.254\.169\.254\/latest\/meta-data\/iam\/security-credentials\/\)/,
      },
      'redirect-to-localhost': { uri: `${o}/redirect-localhost`, code: 'address_blocked', message: /localhost resolves to .*loopback address \(after redirect to http:\/\/localhost:\d+\/good\.jpg\)/ },
    };
    list = path.join(h.tmp, 'bad.jsonl');
    await writeFile(list, Object.entries(cases).map(([id, c]) => JSON.stringify({ id, uri: c.uri })).join('\n') + '\n');
  }, 60_000);
  afterAll(async () => {
    await server.close();
    await h.close();
  });

  const byId = (manifest: ManifestLine[]) => new Map(manifest.map((l) => [l.id, l]));

  it('records each bad sample with its reason code and a readable message; the good ones are ok', async () => {
    const submit = await h.layertap(['submit', list, '--weights', 'random', '--layer', 'block1_pool', '--output', 's3://layertap/bad', '--image-size', '32', '--batch-size', '2', '--chunk-size', '64', '--dataset-id', 'bad']);
    expect(submit.stderr).toBe('');
    expect(submit.code).toBe(0);
    expect(submit.stdout).toContain(`submitted dataset bad: ${Object.keys(cases).length} samples in 1 chunks`);

    const log = await h.runWorker([], limits());
    expect(log.match(/"chunk started"/g)).toHaveLength(1);

    const manifest = await h.manifest('layertap', 'bad', 'bad');
    expect(manifest).toHaveLength(Object.keys(cases).length);
    const lines = byId(manifest);
    // Every sample's outcome at once (a readable diff when several are wrong).
    const outcome = (id: string) => (lines.get(id)?.status === 'ok' ? 'ok' : lines.get(id)?.error?.code);
    expect(Object.fromEntries(Object.keys(cases).map((id) => [id, outcome(id)]))).toEqual(Object.fromEntries(Object.entries(cases).map(([id, c]) => [id, c.code])));
    for (const [id, expected] of Object.entries(cases)) {
      const line = lines.get(id)!;
      expect({ id, uri: line.uri }).toEqual({ id, uri: expected.uri });
      if (expected.code === 'ok') {
        expect(line.error).toBeUndefined();
        expect(line.shape).toEqual({ block1_pool: [64, 16, 16] });
        expect((await h.npy('layertap', `bad/${line.outputs['block1_pool']}`)).shape).toEqual([64, 16, 16]);
      } else {
        expect(line.outputs).toEqual({});
        expect({ id, message: line.error!.message }).toEqual({ id, message: expect.stringMatching(expected.message!) });
        // Fetch failures name the URI they are about.
        if (!['decode_failed', 'pixel_limit'].includes(expected.code)) expect({ id, message: line.error!.message }).toEqual({ id, message: expect.stringContaining(`${expected.uri}: `) });
      }
    }
    // Only the good samples have arrays.
    const npys = (await h.listKeys('layertap', 'bad/bad/')).filter((k) => k.endsWith('.npy'));
    expect(npys).toEqual(['good-file', 'good-http', 'good-redirect'].map((id) => `bad/bad/block1_pool/${id}.npy`));

    // Nothing reached the server through another spelling of loopback (localhost, ::1, 127.0.0.2, 0.0.0.0,
    // ::ffff:127.0.0.1): each was refused before connecting.
    expect(server.requests.filter((r) => !r.host?.startsWith('127.0.0.1:'))).toEqual([]);
    expect(server.hits('/good.jpg')).toBe(2); // good-http and good-redirect
  });

  it('layertap status groups the failures by reason, as text and as JSON', async () => {
    const expected: Record<string, number> = {};
    for (const c of Object.values(cases)) if (c.code !== 'ok') expected[c.code] = (expected[c.code] ?? 0) + 1;
    expect(expected).toEqual({
      not_found: 1, http_error: 1, timeout: 2, decode_failed: 2, empty_file: 1, pixel_limit: 1, too_large: 3,
      unsupported_scheme: 1, path_not_allowed: 2, address_blocked: 10,
    });
    const failed = Object.values(expected).reduce((a, b) => a + b, 0);

    const json = await h.layertap(['status', 'bad', '--json']);
    expect(json.code).toBe(0);
    const status = JSON.parse(json.stdout);
    expect(status.state).toBe('done');
    expect(status.progress).toMatchObject({ total: failed + 3, ok: 3, failed, pending: 0 });
    expect(status.progress.failures).toEqual(expected);
    expect(status.chunks).toMatchObject({ total: 1, done: 1, failed: 0 });

    const human = await h.layertap(['status', 'bad']);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`samples   ${failed + 3} total: 3 ok, ${failed} failed, 0 pending`);
    expect(human.stdout).toContain('failures  by reason:');
    const reasons = human.stdout.split('\n').filter((l) => /^ {12}\S/.test(l)).map((l) => l.trim().split(/\s+/));
    expect(Object.fromEntries(reasons.map(([code, n]) => [code, Number(n)]))).toEqual(expected);
    // Most frequent first.
    expect(reasons[0]).toEqual(['address_blocked', '10']);

    const provenance = JSON.parse((await h.getObject('layertap', 'bad/bad/dataset.json'))!.toString());
    expect(provenance.counts).toMatchObject({ total: failed + 3, ok: 3, failed, failures: expected });
  });

  it('retry runs only the failed samples; the two fixed URLs become ok, the manifest keeps one line per sample', async () => {
    server.route('/missing.jpg', serve(good)).route('/error.jpg', serve(good));
    const goodHitsBefore = server.hits('/good.jpg');
    const before = await h.getObject('layertap', 'bad/bad/block1_pool/good-http.npy');
    const total = Object.keys(cases).length;

    const retry = await h.layertap(['retry', 'bad', '--json']);
    expect(retry.code).toBe(0);
    expect(JSON.parse(retry.stdout)).toMatchObject({ datasetId: 'bad', run: 1, retried: total - 3, chunks: 1 });
    await h.runWorker([], limits());

    const manifest = await h.manifest('layertap', 'bad', 'bad');
    expect(manifest).toHaveLength(total);
    expect(new Set(manifest.map((l) => l.id)).size).toBe(total);
    const lines = byId(manifest);
    for (const [id, expected] of Object.entries(cases)) {
      const line = lines.get(id)!;
      const want = id === 'not-found' || id === 'server-error' ? 'ok' : expected.code;
      expect({ id, code: line.status === 'ok' ? 'ok' : line.error?.code }).toEqual({ id, code: want });
    }
    expect((await h.npy('layertap', 'bad/bad/block1_pool/not-found.npy')).shape).toEqual([64, 16, 16]);
    expect((await h.npy('layertap', 'bad/bad/block1_pool/server-error.npy')).shape).toEqual([64, 16, 16]);
    // The good samples were not fetched or computed again.
    expect(server.hits('/good.jpg')).toBe(goodHitsBefore);
    expect(await h.getObject('layertap', 'bad/bad/block1_pool/good-http.npy')).toEqual(before);

    const status = JSON.parse((await h.layertap(['status', 'bad', '--json'])).stdout);
    expect(status.state).toBe('done');
    expect(status.progress).toMatchObject({ total, ok: 5, failed: total - 5 });
    expect(status.progress.failures.not_found).toBeUndefined();
    expect(status.progress.failures.http_error).toBeUndefined();
  });
});

/** Bad requests that test/cli-validation.e2e.test.ts does not cover. */
describe('more bad requests', () => {
  const h = new Harness('bad-requests');
  beforeAll(async () => {
    await h.start();
  }, 60_000);
  afterAll(async () => {
    await h.close();
  });

  it('an unwritable file:// output (a path under a regular file) is refused and nothing is enqueued', async () => {
    await writeFile(path.join(h.tmp, 'a-file'), 'a regular file\n');
    const output = pathToFileURL(path.join(h.tmp, 'a-file', 'out')).href;
    const res = await h.layertap(['submit', SAMPLES, '--weights', 'random', '--layer', 'block1_pool', '--output', output]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/invalid_output/);
    expect(res.stderr).toMatch(/a-file\/out: a part of the path is (not a directory|a file, not a directory)/);
    expect(await h.redis.keys(`${h.prefix}:*`)).toEqual([]);
  });

  it('a malformed job payload reaching a worker fails as unrecoverable, without retries', async () => {
    const out = path.join(h.tmp, 'junk-out');
    const chunks = new Queue('chunks', { connection: h.redis, prefix: h.prefix });
    try {
      // Junk, and an almost valid chunk whose sample id would escape the output directory: the worker
      // checks what it dequeues, whatever the producer did.
      await chunks.add('chunk', { hello: 'world', samples: 'not a list' }, { jobId: 'junk', attempts: 5, backoff: { type: 'fixed', delay: 100 } });
      const dataset = {
        datasetId: 'forged', output: pathToFileURL(out).href, layers: [{ spec: 'block1_pool', canonical: 'block1_pool', shape: [64, 112, 112] }],
        seed: 0, preprocess: 'torchvision', imageSize: 32, batchSize: 2, chunkSize: 2, dtype: 'float32', layout: 'chw',
        totalSamples: 1, submittedAt: new Date().toISOString(), run: 0,
      };
      const forged = { kind: 'chunk', dataset, chunk: 0, samples: [{ id: '../../escaped', uri: pathToFileURL(path.join(SAMPLES, 'rocket.jpg')).href }] };
      await chunks.add('chunk', forged, { jobId: 'forged', attempts: 5, backoff: { type: 'fixed', delay: 100 } });

      const log = await h.runWorker();
      for (const id of ['junk', 'forged']) {
        const job = (await chunks.getJob(id))!;
        expect({ id, state: await job.getState(), attemptsMade: job.attemptsMade }).toEqual({ id, state: 'failed', attemptsMade: 1 });
        expect(job.failedReason).toMatch(new RegExp(`^bad_payload: malformed chunk job ${id}: `));
      }
      expect((await chunks.getJob('junk'))!.failedReason).toMatch(/kind: .*; dataset: .*; .*samples: /);
      expect((await chunks.getJob('forged'))!.failedReason).toMatch(/samples\.0\.id: id "\.\.\/\.\.\/escaped"/);
      expect(log).not.toMatch(/"chunk started"/);
      // Nothing was written anywhere for the forged job.
      await expect(readdir(out)).rejects.toThrow(/ENOENT/);
      await expect(readdir(path.join(h.tmp, 'escaped'))).rejects.toThrow(/ENOENT/);
    } finally {
      await chunks.close();
    }
  });
});
