import { existsSync } from 'node:fs';
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { findFreePort } from '@layertap/devservices';
import { BIN, Harness, REPO, SAMPLES, waitForHttp } from './support/harness';

/** Debian's chromium (infra/bootstrap.sh installs it). */
const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.join(REPO, 'test-artifacts', 'dashboard-browser');
const USER = 'ops';
const PASSWORD = 'br0wser-Pa55';
const credentials = { LAYERTAP_DASHBOARD_USER: USER, LAYERTAP_DASHBOARD_PASSWORD: PASSWORD };
const auth = { authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` };
const PHOTOS = ['astronaut.jpg', 'camera.jpg', 'chelsea.jpg', 'coffee.jpg', 'hubble_deep_field.jpg', 'motorcycle_left.jpg', 'rocket.jpg'];

/** "12 / 60 done (2 failed)" -> 12 */
function doneOf(text: string | null): number {
  const m = /^(\d+) \/ (\d+) done/.exec(text ?? '');
  if (!m) throw new Error(`unexpected progress text ${JSON.stringify(text)}`);
  return Number(m[1]);
}

/** Polls `read` until `accept` holds for its value. */
async function until<T>(read: () => Promise<T>, accept: (value: T) => boolean, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (accept(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(value)})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('the dashboard in a real browser, with a dataset in flight', () => {
  const h = new Harness('dashbrowser');
  let browser: Browser;
  let dashboard: ReturnType<Harness['spawn']>;
  let base: string;
  let images: string;
  let shot = 0;

  async function screenshot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: path.join(ARTIFACTS, `${String(++shot).padStart(2, '0')}-${name}.png`), fullPage: true });
  }

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (infra/bootstrap.sh does, or apt-get install chromium)`);
    await h.start();
    await rm(ARTIFACTS, { recursive: true, force: true });
    await mkdir(ARTIFACTS, { recursive: true });
    // 28 real photos and two files that are not images.
    images = path.join(h.tmp, 'images');
    await mkdir(images);
    for (let copy = 0; copy < 4; copy++) {
      for (const photo of PHOTOS) await copyFile(path.join(SAMPLES, photo), path.join(images, `${copy}-${photo}`));
    }
    await writeFile(path.join(images, 'broken.jpg'), 'this is not a JPEG');
    await writeFile(path.join(images, 'notes.png'), 'not a PNG either');

    const port = await findFreePort();
    base = `http://127.0.0.1:${port}`;
    dashboard = h.spawn(BIN.dashboard, ['--port', String(port)], credentials);
    await waitForHttp(`${base}/healthz`);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    dashboard?.child.kill('SIGTERM');
    await dashboard?.exited;
    await h.close();
  });

  it('shows progress moving, a failed sample, and retries it from the page once the input is fixed', async () => {
    const submitted = await h.layertap([
      'submit', images, '--layer', 'block1_pool,block2_pool', '--output', 's3://layertap/out', '--image-size', '224',
      '--batch-size', '2', '--chunk-size', '4', '--dataset-id', 'browse',
    ]);
    expect(submitted.code).toBe(0);

    const context = await browser.newContext({ httpCredentials: { username: USER, password: PASSWORD }, viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const response = await page.goto(`${base}/`);
    expect(response?.status()).toBe(200);
    await expect(page.locator('tr[data-dataset="browse"] [data-field="progress"]').textContent()).resolves.toBe('0 / 30 done (0 failed)');
    await screenshot(page, 'datasets-queued');

    await page.click('a:text-is("browse")');
    await page.waitForURL(`${base}/datasets/browse`);
    await expect(page.locator('#output-location').textContent()).resolves.toBe('s3://layertap/out/browse/');
    const progress = page.locator('#progress-text');
    expect(await progress.textContent()).toBe('0 / 30 done (0 failed)');

    // A worker runs while the page watches: the text changes by itself (the page polls every 2 s).
    // The TF.js wasm engine keeps the run long enough on any machine for the page to see it move.
    const worker = h.spawn(BIN.worker, ['--exit-when-idle'], { LAYERTAP_ENGINE: 'tfjs' });
    const first = doneOf(await until(() => progress.textContent(), (t) => doneOf(t) > 0, 120_000, 'progress to start'));
    const second = doneOf(await until(() => progress.textContent(), (t) => doneOf(t) > first, 120_000, 'progress to move on'));
    expect(second).toBeGreaterThan(first);
    expect(second).toBeLessThanOrEqual(30);
    await screenshot(page, 'dataset-running');

    expect(await worker.exited).toBe(0);
    // The page reloads itself when the state changes (finishing, then done): wait for the page rendered done.
    await page.waitForFunction(() => (globalThis as unknown as { DATASET?: { state: string } }).DATASET?.state === 'done', undefined, { timeout: 30_000 });
    await expect(page.locator('h1 [data-field="state"]').textContent()).resolves.toBe('done');
    await expect(progress.textContent()).resolves.toBe('30 / 30 done (2 failed)');
    await expect(page.locator('table td code.error').allTextContents()).resolves.toEqual(['decode_failed']);
    await expect(page.locator('svg.chart path').count()).resolves.toBe(2);
    await screenshot(page, 'dataset-done');
    // The chart's data: 40 points over the run, images/s from the chunk completions (30 samples in all).
    const throughput = (await (await page.request.get(`${base}/api/datasets/browse/throughput`)).json()) as { run: number; points: Array<{ t: number; rate: number }> };
    expect(throughput.run).toBe(0);
    expect(throughput.points).toHaveLength(40);
    expect(Math.max(...throughput.points.map((p) => p.rate))).toBeGreaterThan(0);
    expect(throughput.points.every((p, i) => p.rate >= 0 && (i === 0 || p.t > throughput.points[i - 1]!.t))).toBe(true);

    await page.click('a:text-is("broken")');
    await page.waitForURL(`${base}/datasets/browse/samples/broken`);
    await expect(page.locator('#sample-status').textContent()).resolves.toBe('failed');
    await expect(page.locator('#error-code').textContent()).resolves.toBe('decode_failed');
    await expect(page.locator('#error-message').textContent()).resolves.toBe('cannot decode image: Input buffer contains unsupported image format');
    await screenshot(page, 'sample-failed');

    // Fix the input on disk, then retry from the page: run 1 takes both failed samples.
    await copyFile(path.join(SAMPLES, 'chelsea.jpg'), path.join(images, 'broken.jpg'));
    await page.click('button[name="retry"]');
    await page.waitForURL(/\/datasets\/browse\/samples\/broken\?done=retry/);
    await expect(page.locator('.notice').textContent()).resolves.toBe('Retrying 2 failed samples as run 1.');
    await screenshot(page, 'sample-retrying');

    // A worker runs the retry; the page, still open, reloads itself once run 1 is done.
    await h.runWorker();
    await page.waitForFunction(() => (globalThis as unknown as { DATASET?: { state: string; run: number } }).DATASET?.state === 'done', undefined, { timeout: 30_000 });
    await expect(page.locator('#sample-status').textContent()).resolves.toBe('ok');
    await expect(page.locator('#error-code').count()).resolves.toBe(0);
    const montage = page.locator('img#montage');
    await until(() => montage.evaluate((img) => (img as unknown as { complete: boolean; naturalWidth: number }).complete && (img as unknown as { naturalWidth: number }).naturalWidth), (w) => typeof w === 'number' && w > 400, 30_000, 'the montage');
    await screenshot(page, 'sample-ok-montage');

    // The dataset now has one failed sample (the other file is still not an image) and run 1 is done.
    await page.goto(`${base}/datasets/browse`);
    await expect(page.locator('#progress-text').textContent()).resolves.toBe('30 / 30 done (1 failed)');
    await screenshot(page, 'dataset-after-retry');

    // Lookup by URI from the header box.
    await page.fill('header input[name="q"]', path.join(images, 'notes.png'));
    await page.press('header input[name="q"]', 'Enter');
    await page.waitForURL(`${base}/datasets/browse/samples/notes`);
    await expect(page.locator('#error-code').textContent()).resolves.toBe('decode_failed');

    // Bull Board is still there, behind the same credentials, with both queues.
    await page.goto(`${base}/queues/queue/datasets?status=completed`);
    await page.waitForSelector('text=browse~r1', { timeout: 30_000 });
    await expect(page.locator('body').textContent()).resolves.toContain('chunks');
    await screenshot(page, 'bull-board');
    await context.close();

    // Without credentials (headless chromium shows no prompt, so ask through the context's request API).
    const anonymous = await browser.newContext();
    const refused = await anonymous.request.get(`${base}/datasets/browse`);
    expect(refused.status()).toBe(401);
    expect(refused.headers()['www-authenticate']).toMatch(/^Basic realm="layertap"/);
    await anonymous.close();
  });

  it('serves the same data as JSON, Prometheus metrics, and refuses cross-site and read-only writes', async () => {
    /** A gauge's value in the dashboard's /metrics. */
    const gauge = async (pattern: RegExp) => {
      const res = await fetch(`${base}/metrics`, { headers: auth });
      expect(res.status).toBe(200);
      const m = pattern.exec(await res.text());
      if (!m) throw new Error(`no ${pattern} in /metrics`);
      return Number(m[1]);
    };
    const completedChunks = /^layertap_queue_jobs\{queue="chunks",state="completed"\} (\d+)$/m;
    const chunksBefore = await gauge(completedChunks);
    const small = path.join(h.tmp, 'small');
    await mkdir(small);
    for (const photo of ['chelsea.jpg', 'rocket.jpg']) await copyFile(path.join(SAMPLES, photo), path.join(small, photo));
    await writeFile(path.join(small, 'bad.jpg'), 'nope');
    const submitted = await h.layertap(['submit', small, '--layer', 'features.4', '--output', 's3://layertap/out', '--image-size', '32', '--chunk-size', '2', '--dataset-id', 'api']);
    expect(submitted.code).toBe(0);
    await h.runWorker();

    const get = async (p: string) => {
      const res = await fetch(base + p, { headers: auth });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const detail = await get('/api/datasets/api');
    expect(detail.status).toBe(200);
    expect(detail.body).toMatchObject({
      datasetId: 'api',
      state: 'done',
      progress: { total: 3, ok: 2, failed: 1, pending: 0, failures: { decode_failed: 1 } },
      outputLocation: 's3://layertap/out/api/',
      weights: 'random, seed 0',
      preprocessing: { mode: 'torchvision', imageSize: 32, channelOrder: 'RGB' },
      etaSeconds: 0,
      runs: [{ run: 0, samples: 3 }],
    });
    expect((detail.body.failureExamples as Record<string, Array<{ id: string }>>).decode_failed?.map((e) => e.id)).toEqual(['bad']);

    const sample = await get('/api/datasets/api/samples/chelsea');
    expect(sample.body).toMatchObject({ datasetId: 'api', id: 'chelsea', status: 'ok', outputs: { 'features.4': 'api/features.4/chelsea.npy' } });
    const lookup = await get(`/api/lookup?q=${encodeURIComponent(path.join(small, 'bad.jpg'))}`);
    expect(lookup.body).toMatchObject({ datasets: [], samples: [{ datasetId: 'api', id: 'bad', status: 'failed', error: { code: 'decode_failed' } }] });
    expect((await get('/api/lookup?q=api')).body).toMatchObject({ datasets: ['api'] });
    expect((await get('/api/datasets/nope')).status).toBe(404);

    const png = await fetch(`${base}/datasets/api/samples/chelsea/montage.png?layer=features.4&size=32&channels=4`, { headers: auth });
    expect(png.status).toBe(200);
    expect(png.headers.get('content-type')).toBe('image/png');
    const npy = await fetch(`${base}/datasets/api/samples/chelsea/outputs/features.4`, { headers: auth });
    expect(Buffer.from(await npy.arrayBuffer()).subarray(1, 6).toString('latin1')).toBe('NUMPY');

    // Two more chunk jobs completed (3 samples in chunks of 2); Redis was readable.
    expect((await gauge(completedChunks)) - chunksBefore).toBe(2);
    expect(await gauge(/^layertap_queue_metrics_up (\d+)$/m)).toBe(1);
    expect(await gauge(/^layertap_datasets_in_progress (\d+)$/m)).toBe(0);
    expect((await fetch(`${base}/metrics`)).status).toBe(401);

    // A form posted from another site carries the browser's credentials: refused.
    const crossSite = await fetch(`${base}/datasets/api/retry`, { method: 'POST', headers: { ...auth, origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' } });
    expect(crossSite.status).toBe(403);
    // The API: retry runs the one failed sample as run 1.
    const retried = await fetch(`${base}/api/datasets/api/retry`, { method: 'POST', headers: auth });
    expect(retried.status).toBe(200);
    expect(await retried.json()).toEqual({ datasetId: 'api', run: 1, retried: 1, chunks: 1 });
    const again = await fetch(`${base}/api/datasets/api/retry`, { method: 'POST', headers: auth });
    expect(again.status).toBe(409);
    expect(await again.json()).toEqual({ error: 'dataset api is still running: retry once it has finished', code: 'invalid_request' });
    const cancelled = await fetch(`${base}/api/datasets/api/cancel`, { method: 'POST', headers: auth });
    expect(await cancelled.json()).toEqual({ datasetId: 'api', cancelled: true });
    expect((await get('/api/datasets/api')).body).toMatchObject({ state: 'cancelled', cancelled: true, config: { run: 1 } });
    await h.runWorker();

    const port = await findFreePort();
    const readOnly = h.spawn(BIN.dashboard, ['--port', String(port), '--read-only'], credentials);
    try {
      await waitForHttp(`http://127.0.0.1:${port}/healthz`);
      for (const action of ['cancel', 'retry']) {
        for (const prefix of ['/api/datasets', '/datasets']) {
          const res = await fetch(`http://127.0.0.1:${port}${prefix}/api/${action}`, { method: 'POST', headers: { ...auth, accept: 'application/json' } });
          expect([res.status, res.headers.get('allow')]).toEqual([405, 'GET, HEAD']);
        }
      }
      const pageHtml = await (await fetch(`http://127.0.0.1:${port}/datasets/api`, { headers: auth })).text();
      expect(pageHtml).toContain('read-only');
      expect(pageHtml).toMatch(/<button class="primary" type="submit" name="retry" disabled title="the dashboard is read-only">/);
    } finally {
      readOnly.child.kill('SIGTERM');
      await readOnly.exited;
    }
  });
});
