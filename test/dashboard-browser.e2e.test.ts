import { existsSync } from 'node:fs';
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { CreateBucketCommand, DeleteBucketCommand } from '@aws-sdk/client-s3';
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

/** "took 1m05s", "failed after 12s", "2h03m" -> seconds (the dashboard's duration format, to the second or minute). */
function secondsOf(text: string | null): number {
  const m = /(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text ?? '');
  if (!m || !m[0]) throw new Error(`unexpected duration text ${JSON.stringify(text)}`);
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
}

/** What the dataset API says about a dataset's timing and engines. */
interface DatasetJson {
  state: string;
  rate: number;
  etaSeconds: number | null;
  finishedAt: number | null;
  durationSeconds: number | null;
  averageRate: number | null;
  progress: { total: number; ok: number; failed: number; pending: number };
  config: { submittedAt: string; totalSamples: number; preprocess: string; preprocessReason?: string; format: string };
  engines: Array<{ engine: string; backend: string; device: { description: string }; warnings: string[] }>;
}

/** The browser page's document, typed for the few reads the tests make (the tests compile without the DOM library). */
type PageDocument = { body: { innerText: string }; documentElement: { scrollHeight: number } };

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
  const h = new Harness('dashbrowser', { s3: { buckets: ['layertap', 'doomed'] } });
  let browser: Browser;
  let dashboard: ReturnType<Harness['spawn']>;
  let base: string;
  let images: string;
  let shot = 0;
  let metricsPort: number;
  /** The 'browse' dataset's browser context and page, shared by the steps that follow it from submit to retry. */
  let context: BrowserContext;
  let page: Page;
  let worker: ReturnType<Harness['spawn']>;
  /** When its submit started and its worker exited (ms since the epoch): bounds for the duration shown. */
  let submitStarted: number;
  let submitEnded: number;
  let workerExited: number;
  /** When the test saw 'browse' with progress, and running still. */
  let progressSeen: number;

  const api = async <T = DatasetJson>(p: string): Promise<T> => {
    const res = await fetch(base + p, { headers: auth });
    expect(res.status).toBe(200);
    return (await res.json()) as T;
  };

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
    metricsPort = await findFreePort();
    dashboard = h.spawn(BIN.dashboard, ['--port', String(port)], { ...credentials, LAYERTAP_DASHBOARD_METRICS_PORT: String(metricsPort), LAYERTAP_DASHBOARD_METRICS_HOST: '127.0.0.1' });
    await waitForHttp(`${base}/healthz`);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  }, 120_000);

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    dashboard?.child.kill('SIGTERM');
    await dashboard?.exited;
    await h.close();
  });

  it('shows a running dataset moving: progress, images/s and ETA in the list and on its page, and the engine that runs it', async () => {
    submitStarted = Date.now();
    const submitted = await h.layertap([
      'submit', images, '--weights', 'random', '--layer', 'block1_pool,block4_pool', '--output', 's3://layertap/out', '--image-size', '224',
      '--batch-size', '2', '--chunk-size', '4', '--dataset-id', 'browse',
    ]);
    submitEnded = Date.now();
    expect(submitted.code).toBe(0);

    context = await browser.newContext({ httpCredentials: { username: USER, password: PASSWORD }, viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
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
    // The TF.js wasm engine, on one core, down to block4_pool, keeps the run going for a while (about 30 s here).
    worker = h.spawn(BIN.worker, ['--exit-when-idle'], { LAYERTAP_ENGINE: 'tfjs', LAYERTAP_BACKEND: 'wasm' });
    void worker.exited.then(() => (workerExited = Date.now()));
    const first = doneOf(await until(() => progress.textContent(), (t) => doneOf(t) > 0, 120_000, 'progress to start'));
    progressSeen = Date.now();

    // Rendered afresh while it runs: images/s above 0 and an ETA, on the page and in the list.
    await page.reload();
    const rate = await page.locator('[data-field="rate"]').textContent();
    expect(rate).toMatch(/^\d+\.\d img\/s$/);
    expect(parseFloat(rate!)).toBeGreaterThan(0);
    expect(await page.locator('[data-field="eta"]').textContent()).toMatch(/^\d+(s|m\d\ds)$/);
    await expect(page.locator('[data-field="duration"]').count()).resolves.toBe(0);
    // The engine shows as soon as a worker has loaded the model: engine / backend, the device.
    const running = await api('/api/datasets/browse');
    expect(running.state).toBe('running');
    expect(running.finishedAt).toBeNull();
    expect(running.engines.map((e) => `${e.engine}/${e.backend}`)).toEqual(['tfjs/wasm']);
    await expect(page.locator('#engines').textContent()).resolves.toContain(`tfjs / wasm on ${running.engines[0]!.device.description}`);
    // The workers connected to the chunk queue: the one just started.
    await expect(page.locator('[data-field="workers"]').textContent()).resolves.toBe('1');
    await screenshot(page, 'dataset-running');

    const list = await context.newPage();
    await list.goto(`${base}/`);
    const row = list.locator('tr[data-dataset="browse"]');
    await expect(row.getAttribute('data-state')).resolves.toBe('running');
    expect(doneOf(await row.locator('[data-field="progress"]').textContent())).toBeGreaterThan(0);
    expect(await row.locator('td.rate').textContent()).toMatch(/^\d+\.\d img\/s$/);
    expect(parseFloat((await row.locator('td.rate').textContent())!)).toBeGreaterThan(0);
    expect(await row.locator('td.time').textContent()).toMatch(/^ETA \d+(s|m\d\ds)$/);
    await screenshot(list, 'datasets-running');
    await list.close();

    const second = doneOf(await until(() => progress.textContent(), (t) => doneOf(t) > first, 120_000, 'progress to move on'));
    expect(second).toBeGreaterThan(first);
    expect(second).toBeLessThanOrEqual(30);
  });

  it('shows a finished dataset with its duration and average images/s, no ETA, and a chart of the whole run', async () => {
    expect(await worker.exited).toBe(0);
    const progress = page.locator('#progress-text');
    // The page reloads itself when the state changes (finishing, then done): wait for the page rendered done.
    await page.waitForFunction(() => (globalThis as unknown as { DATASET?: { state: string } }).DATASET?.state === 'done', undefined, { timeout: 30_000 });
    await expect(page.locator('h1 [data-field="state"]').textContent()).resolves.toBe('done');
    await expect(progress.textContent()).resolves.toBe('30 / 30 done (2 failed)');
    await expect(page.locator('table td code.error').allTextContents()).resolves.toEqual(['decode_failed']);
    await expect(page.locator('svg.chart path').count()).resolves.toBe(2);
    await screenshot(page, 'dataset-done');

    // Duration: from submission to the manifest written; the average: the run's 30 samples over it.
    const done = await api('/api/datasets/browse');
    const submittedAt = Date.parse(done.config.submittedAt);
    expect(submittedAt).toBeGreaterThanOrEqual(submitStarted - 1000);
    expect(submittedAt).toBeLessThanOrEqual(submitEnded);
    expect(done.finishedAt).toBeLessThanOrEqual(workerExited);
    expect(done.durationSeconds).toBeCloseTo((done.finishedAt! - submittedAt) / 1000, 3);
    expect(done.finishedAt).toBeGreaterThan(progressSeen);
    expect(done.averageRate).toBeCloseTo(30 / done.durationSeconds!, 6);
    expect([done.rate, done.etaSeconds]).toEqual([0, null]);
    const duration = await page.locator('[data-field="duration"]').textContent();
    expect(duration).toMatch(/^\d+(s|m\d\ds)$/);
    expect(Math.abs(secondsOf(duration) - done.durationSeconds!)).toBeLessThanOrEqual(0.5);
    await expect(page.locator('[data-field="average"]').textContent()).resolves.toBe(`${done.averageRate!.toFixed(1)} img/s`);
    await expect(page.locator('[data-field="eta"]').count()).resolves.toBe(0);
    await expect(page.locator('[data-field="rate"]').count()).resolves.toBe(0);
    expect(await page.locator('.stats').textContent()).not.toContain('ETA');

    // The chart: from the submission (0 images/s then) to the finish, its y axis labelled 0 < half < max.
    const throughput = await api<{ run: number; points: Array<{ t: number; rate: number }> }>('/api/datasets/browse/throughput');
    expect(throughput.run).toBe(0);
    expect(throughput.points).toHaveLength(41);
    expect(throughput.points[0]).toEqual({ t: submittedAt, rate: 0 });
    expect(throughput.points.at(-1)!.t).toBe(done.finishedAt);
    expect(Math.max(...throughput.points.map((p) => p.rate))).toBeGreaterThan(0);
    expect(throughput.points.every((p, i) => p.rate >= 0 && (i === 0 || p.t > throughput.points[i - 1]!.t))).toBe(true);
    const ticks = (await page.locator('svg.chart text.y-tick').allTextContents()).map(Number).sort((a, b) => a - b);
    expect(ticks).toHaveLength(3);
    expect(ticks[0]).toBe(0);
    expect(ticks[1]).toBeCloseTo(ticks[2]! / 2, 9);
    expect(ticks[2]).toBeGreaterThanOrEqual(Math.max(...throughput.points.map((p) => p.rate)));
    const clock = (t: number) => new Date(t).toISOString().slice(11, 19);
    await expect(page.locator('svg.chart text.x-start').textContent()).resolves.toBe(clock(submittedAt));
    await expect(page.locator('svg.chart text.x-end').textContent()).resolves.toBe(`${clock(done.finishedAt!)} UTC`);

    // In the list: the same duration and average, no ETA.
    const list = await context.newPage();
    await list.goto(`${base}/`);
    const row = list.locator('tr[data-dataset="browse"]');
    await expect(row.locator('td.time').textContent()).resolves.toBe(`took ${duration}`);
    await expect(row.locator('td.rate').textContent()).resolves.toBe(`${done.averageRate!.toFixed(1)} img/s avg`);
    await expect(row.locator('[data-field="eta"]').count()).resolves.toBe(0);
    expect(await row.textContent()).not.toContain('ETA');
    await screenshot(list, 'datasets-done');
    await list.close();
  });

  it("shows the dataset's engine, backend and device, format, weights and preprocessing, on its page and in its JSON", async () => {
    const d = await api('/api/datasets/browse');
    expect(d.engines).toHaveLength(1);
    const [engine] = d.engines;
    expect([engine!.engine, engine!.backend]).toEqual(['tfjs', 'wasm']);
    expect(engine!.device.description).toMatch(/\(1 thread\)$/);
    expect(d.config.format).toBe('npy');
    expect(d.config.preprocessReason).toBeTruthy();
    await expect(page.locator('#engines').textContent()).resolves.toBe(`tfjs / wasm on ${engine!.device.description}`);
    await expect(page.locator('#format').textContent()).resolves.toBe('npy: one .npy file per sample and layer');
    await expect(page.locator('#weights').textContent()).resolves.toBe('random, seed 0');
    const preprocessing = await page.locator('#preprocessing').textContent();
    expect(preprocessing).toContain('torchvision at 224px, RGB');
    expect(preprocessing).toContain(`why: ${d.config.preprocessReason}`);
  });

  it("labels a sample page's actions as the dataset's, and retries from there once the input is fixed", async () => {
    await page.click('a:text-is("broken")');
    await page.waitForURL(`${base}/datasets/browse/samples/broken`);
    await expect(page.locator('#sample-status').textContent()).resolves.toBe('failed');
    await expect(page.locator('#error-code').textContent()).resolves.toBe('decode_failed');
    await expect(page.locator('#error-message').textContent()).resolves.toBe('cannot decode image: Input buffer contains unsupported image format');
    // The actions act on the whole dataset, and say so; none sits beside the sample's own status.
    await expect(page.locator('h1 button').count()).resolves.toBe(0);
    await expect(page.locator('#dataset-actions h2').textContent()).resolves.toBe('Dataset actions (all samples of browse, not only this one)');
    await expect(page.locator('#dataset-actions button[name="cancel"]').textContent()).resolves.toBe('Cancel the whole dataset');
    await expect(page.locator('#dataset-actions button[name="retry"]').textContent()).resolves.toBe("Retry the dataset's 2 failed samples");
    await expect(page.locator('#dataset-actions button[name="cancel"]').isDisabled()).resolves.toBe(true);
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

    // The dataset now has one failed sample (the other file is still not an image) and run 1 is done:
    // its duration and average are run 1's (2 samples).
    await page.goto(`${base}/datasets/browse`);
    await expect(page.locator('#progress-text').textContent()).resolves.toBe('30 / 30 done (1 failed)');
    const after = await api('/api/datasets/browse');
    expect(after.averageRate).toBeCloseTo(2 / after.durationSeconds!, 6);
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

    // Without credentials (headless chromium shows no prompt, so ask through the context's request API).
    const anonymous = await browser.newContext();
    const refused = await anonymous.request.get(`${base}/datasets/browse`);
    expect(refused.status()).toBe(401);
    expect(refused.headers()['www-authenticate']).toMatch(/^Basic realm="layertap"/);
    await anonymous.close();
  });

  it('shows a failed dataset (its chunks failed for good) with when it failed and no ETA', async () => {
    const photos = path.join(h.tmp, 'doomed');
    await mkdir(photos);
    for (const photo of ['chelsea.jpg', 'rocket.jpg', 'coffee.jpg']) await copyFile(path.join(SAMPLES, photo), path.join(photos, photo));
    const once = { LAYERTAP_CHUNK_ATTEMPTS: '1' };
    const submitted = await h.layertap(['submit', photos, '--weights', 'random', '--layer', 'features.4', '--output', 's3://doomed/out', '--image-size', '32', '--chunk-size', '2', '--dataset-id', 'doomed'], once);
    expect(submitted.code).toBe(0);
    // The bucket goes away before a worker runs: every write fails, the chunks and then the dataset fail for good.
    await h.s3.send(new DeleteBucketCommand({ Bucket: 'doomed' }));
    try {
      await h.runWorker([], { LAYERTAP_ENGINE: 'onnx', LAYERTAP_BACKEND: 'cpu' });
    } finally {
      await h.s3.send(new CreateBucketCommand({ Bucket: 'doomed' }));
    }
    const failed = await api('/api/datasets/doomed');
    expect(failed.state).toBe('failed');
    expect(failed.etaSeconds).toBeNull();
    expect(failed.rate).toBe(0);
    expect(failed.durationSeconds).toBeCloseTo((failed.finishedAt! - Date.parse(failed.config.submittedAt)) / 1000, 3);
    expect(failed.durationSeconds).toBeGreaterThan(0);

    const view = await context.newPage();
    await view.goto(`${base}/`);
    const row = view.locator('tr[data-dataset="doomed"]');
    await expect(row.locator('[data-field="state"]').textContent()).resolves.toBe('failed');
    const after = await row.locator('td.time').textContent();
    expect(after).toMatch(/^failed after \d+(s|m\d\ds)$/);
    expect(Math.abs(secondsOf(after) - failed.durationSeconds!)).toBeLessThanOrEqual(0.5);
    await expect(row.locator('[data-field="eta"]').count()).resolves.toBe(0);
    expect(await row.textContent()).not.toContain('ETA');
    await expect(row.locator('td.rate').textContent()).resolves.toBe(failed.averageRate === null ? '--' : `${failed.averageRate.toFixed(1)} img/s avg`);
    await screenshot(view, 'datasets-with-failed');

    await view.click('a:text-is("doomed")');
    await view.waitForURL(`${base}/datasets/doomed`);
    await expect(view.locator('h1 [data-field="state"]').textContent()).resolves.toBe('failed');
    await expect(view.locator('[data-field="eta"]').count()).resolves.toBe(0);
    expect(await view.locator('.stats').textContent()).not.toContain('ETA');
    await expect(view.locator('[data-field="duration"]').textContent()).resolves.toBe(after!.replace('failed after ', ''));
    await expect(view.locator('.stats').textContent()).resolves.toContain('failed after');
    // Why: the chunks' failures, each naming its chunk, why the dataset stopped, and what to do next.
    expect((await view.locator('p.error').allTextContents()).sort()).toEqual([
      expect.stringMatching(/^chunk 0 \(doomed~r0~c0\) failed: invalid_output: S3 bucket "doomed" does not exist/),
      expect.stringMatching(/^chunk 1 \(doomed~r0~c1\) failed: invalid_output: S3 bucket "doomed" does not exist/),
      expect.stringMatching(/^stopped: writing the manifest failed: S3 bucket "doomed" does not exist/),
    ]);
    await expect(view.locator('[data-field="next"]').textContent()).resolves.toMatch(/^next: fix the cause above, then `layertap retry doomed`/);
    await screenshot(view, 'dataset-failed');
    await view.close();
  });

  it('serves Prometheus metrics on their own port without the password, only /metrics and /healthz', async () => {
    const metrics = `http://127.0.0.1:${metricsPort}`;
    const open = await fetch(`${metrics}/metrics`);
    expect(open.status).toBe(200);
    expect(open.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await open.text();
    const completed = /^layertap_queue_jobs\{queue="chunks",state="completed"\} (\d+)$/m;
    // The same registry as the authenticated /metrics: 8 chunks of browse, 1 of its retry (2 of doomed failed).
    expect(Number(completed.exec(text)?.[1])).toBe(9);
    expect(text).toMatch(/^layertap_queue_jobs\{queue="chunks",state="failed"\} 2$/m);
    expect(text).toMatch(/^layertap_queue_metrics_up 1$/m);
    const behindAuth = await (await fetch(`${base}/metrics`, { headers: auth })).text();
    expect(Number(completed.exec(behindAuth)?.[1])).toBe(9);
    expect((await fetch(`${metrics}/healthz`)).status).toBe(200);
    // Nothing else: no pages, no API, no Bull Board, no writes.
    for (const p of ['/', '/api/datasets', '/datasets/browse', '/queues', '/queues/api/queues']) expect([p, (await fetch(metrics + p)).status]).toEqual([p, 404]);
    expect((await fetch(`${metrics}/metrics`, { method: 'POST' })).status).toBe(405);
    // The dashboard's own /metrics still needs the password.
    expect((await fetch(`${base}/metrics`)).status).toBe(401);
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
    const submitted = await h.layertap(['submit', small, '--weights', 'random', '--layer', 'features.4', '--output', 's3://layertap/out', '--image-size', '32', '--chunk-size', '2', '--dataset-id', 'api']);
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
      etaSeconds: null,
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
    // As `layertap cancel`: a running dataset is asked to stop (one that had stopped would be closed now).
    expect(await cancelled.json()).toEqual({ datasetId: 'api', cancelled: true, action: 'requested' });
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

  it("serves /favicon.ico, and shows chunk jobs in Bull Board as a summary, not every sample's URI", async () => {
    const icon = await fetch(`${base}/favicon.ico`);
    expect(icon.status).toBe(200);
    expect(icon.headers.get('content-type')).toBe('image/x-icon');
    expect(Buffer.from(await icon.arrayBuffer()).subarray(0, 6)).toEqual(Buffer.from([0, 0, 1, 0, 1, 0]));

    // 'browse' ran 30 samples in chunks of 4: its chunk 0 is a completed job, as Bull Board's API gives it.
    const res = await fetch(`${base}/queues/api/queues/chunks/${encodeURIComponent('browse~r0~c0')}`, { headers: auth });
    expect(res.status).toBe(200);
    const { job } = (await res.json()) as { job: { id: string; data: unknown } };
    expect(job.data).toEqual({ dataset: 'browse', run: 0, chunk: 0, samples: 4, first: expect.any(String), last: expect.any(String), layers: ['block1_pool', 'block4_pool'] });

    const board = await context.newPage();
    await board.goto(`${base}/queues/queue/chunks/${encodeURIComponent('browse~r0~c0')}`);
    // Bull Board's job page opens on its Data tab: the summary, highlighted as JSON.
    await board.waitForFunction(() => /samples:\s*4,/.test((globalThis as unknown as { document: PageDocument }).document.body.innerText), undefined, { timeout: 30_000 }).catch(async (err: unknown) => {
      await screenshot(board, 'bull-board-chunk-job-missing');
      throw err;
    });
    const text = await board.evaluate(() => (globalThis as unknown as { document: PageDocument }).document.body.innerText);
    expect(text).toMatch(/dataset:\s*"browse",/);
    expect(text).not.toContain('file://');
    // The job's page fits a screen or two (the raw data of a chunk of 64 made it 7,000 px tall).
    expect(await board.evaluate(() => (globalThis as unknown as { document: PageDocument }).document.documentElement.scrollHeight)).toBeLessThan(2_000);
    await screenshot(board, 'bull-board-chunk-job');
    await board.close();
  });

  it('shows samples a cancel stopped as cancelled, not failed: an orange segment of the bar, a legend entry and a count', async () => {
    const few = path.join(h.tmp, 'few');
    await mkdir(few);
    for (const photo of ['chelsea.jpg', 'rocket.jpg', 'coffee.jpg']) await copyFile(path.join(SAMPLES, photo), path.join(few, photo));
    await writeFile(path.join(few, 'bad.jpg'), 'nope');
    // Cancelled before a worker ran it: every sample, the broken one too, is cancelled, none failed.
    const submitted = await h.layertap(['submit', few, '--weights', 'random', '--layer', 'features.4', '--output', 's3://layertap/out', '--image-size', '32', '--chunk-size', '1', '--dataset-id', 'stopped']);
    expect(submitted.code).toBe(0);
    const cancel = await fetch(`${base}/api/datasets/stopped/cancel`, { method: 'POST', headers: auth });
    expect(await cancel.json()).toEqual({ datasetId: 'stopped', cancelled: true, action: 'requested' });
    await h.runWorker();
    const json = await api('/api/datasets/stopped');
    expect(json.progress).toMatchObject({ total: 4, ok: 0, failed: 4, pending: 0, failures: { cancelled: 4 } });

    const own = await browser.newContext({ httpCredentials: { username: USER, password: PASSWORD }, viewport: { width: 1280, height: 900 } });
    const stopped = await own.newPage();
    await stopped.goto(`${base}/datasets/stopped`);
    await expect(stopped.locator('#progress-text').textContent()).resolves.toBe('4 / 4 done (0 failed, 4 cancelled)');
    await expect(stopped.locator('.stats [data-field="failed"]').textContent()).resolves.toBe('0');
    await expect(stopped.locator('.stats [data-field="cancelled"]').textContent()).resolves.toBe('4');
    const bar = stopped.locator('.card .bar[data-field="bar"]');
    await expect(bar.getAttribute('title')).resolves.toBe('0 ok, 0 failed, 4 cancelled of 4');
    type Box = { width: number } | null;
    const width = async (cls: string) => ((await bar.locator(`.${cls}`).boundingBox()) as Box)?.width ?? 0;
    const whole = ((await bar.boundingBox()) as Box)!.width;
    expect(await width('failed')).toBe(0);
    expect(await width('cancelled')).toBeCloseTo(whole, 0);
    // Orange (--orange), not the failed red, in the bar and in the legend.
    const colour = (selector: string) => stopped.locator(selector).first().evaluate((el) => (globalThis as unknown as { getComputedStyle: (e: unknown) => { backgroundColor: string } }).getComputedStyle(el).backgroundColor);
    await expect(colour('.bar .cancelled')).resolves.toBe('rgb(200, 106, 18)');
    await expect(colour('.legend i.cancelled')).resolves.toBe('rgb(200, 106, 18)');
    await expect(colour('.legend i.failed')).resolves.toBe('rgb(200, 55, 45)');
    await expect(stopped.locator('.legend').textContent()).resolves.toBe('okfailedcancelledpending');
    // The page refreshes itself from the JSON every 2 s: its script keeps the counts apart too.
    const fields = '#progress-text, .stats [data-field="failed"], .stats [data-field="cancelled"]';
    await stopped.locator(fields).evaluateAll((els) => els.forEach((el) => ((el as { textContent: string }).textContent = 'stale')));
    await until(() => stopped.locator(fields).allTextContents(), (t) => !t.includes('stale'), 10_000, 'the page to refresh itself');
    await expect(stopped.locator(fields).allTextContents()).resolves.toEqual(['4 / 4 done (0 failed, 4 cancelled)', '0', '4']);
    await screenshot(stopped, 'dataset-cancelled');
    await own.close();
  });
});
