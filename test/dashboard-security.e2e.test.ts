import { existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { chromium, type Browser, type BrowserContext, type Page, type Response } from 'playwright-core';
import { findFreePort } from '@layertap/devservices';
import { BIN, Harness, SAMPLES, waitForHttp } from './support/harness';

/**
 * The dashboard against another site, in Debian's chromium. The dashboard is reached as
 * `http://dashboard.test:PORT` and the other site as `http://attacker.test:PORT` (chromium maps both names to
 * loopback addresses): neither is localhost nor HTTPS, so chromium sends no `Sec-Fetch-*` headers, as for a
 * dashboard on an intranet host. The victim is logged in to the dashboard; the other site only serves pages.
 */
const CHROMIUM = '/usr/bin/chromium';
const USER = 'ops';
const PASSWORD = 'csrf-Pa55';
// The browser reaches the dashboard as dashboard.test (mapped to 127.0.0.1): a host name it must answer to.
const ALLOWED = { LAYERTAP_DASHBOARD_ALLOWED_HOSTS: 'dashboard.test,127.0.0.1' };
const credentials = { LAYERTAP_DASHBOARD_USER: USER, LAYERTAP_DASHBOARD_PASSWORD: PASSWORD, ...ALLOWED };
const auth = { authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` };
const ATTACKER_ADDRESS = '127.0.0.2';

/** A site on another origin: `/` serves whatever page the test sets. */
class OtherSite {
  page = '';
  private readonly server = http.createServer((_req, res) => void res.writeHead(200, { 'content-type': 'text/html' }).end(this.page));

  async start(): Promise<number> {
    await new Promise<void>((resolve, reject) => this.server.once('error', reject).listen(0, ATTACKER_ADDRESS, resolve));
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const escapeAttr = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

/**
 * A page of the other site with a form that submits itself to the dashboard as soon as it loads, as a top-level
 * navigation (so the browser sends the credentials it holds for the dashboard). `sandboxed` puts the form in a
 * sandboxed iframe: its origin is opaque, so the browser sends `Origin: null`.
 */
function autoSubmit(action: string, fields: Record<string, string>, options: { sandboxed: boolean; enctype?: string }): string {
  const inputs = Object.entries(fields).map(([name, value]) => `<input type="hidden" name="${escapeAttr(name)}" value="${escapeAttr(value)}">`).join('');
  const form = `<form method="post" target="_top" action="${action}"${options.enctype ? ` enctype="${options.enctype}"` : ''}>${inputs}</form><script>document.forms[0].submit()</script>`;
  return options.sandboxed ? `<iframe sandbox="allow-forms allow-scripts allow-top-navigation" srcdoc="${escapeAttr(form)}"></iframe>` : form;
}

describe('the dashboard against another site, in a real browser', () => {
  const h = new Harness('dashsec');
  const site = new OtherSite();
  let browser: Browser;
  let context: BrowserContext;
  let redis: Redis;
  let chunks: Queue;
  let dashboard: ReturnType<Harness['spawn']>;
  let dash: string; // http://dashboard.test:PORT
  let other: string; // http://attacker.test:PORT

  const statusOf = async (id: string) => JSON.parse((await h.layertap(['status', id, '--json'])).stdout) as { state: string; cancelled: boolean };

  /** Opens the other site's page and waits for the dashboard's answer to the POST it makes the browser send to `path`. */
  async function visitOtherSite(page: Page, html: string, path: string): Promise<Response> {
    site.page = html;
    const answered = page.waitForResponse((r) => r.url() === `${dash}${path}` && r.request().method() === 'POST');
    // The page navigates away as it loads (its form posts to the dashboard as a top-level navigation).
    await page.goto(`${other}/`, { waitUntil: 'commit' });
    const response = await answered;
    await page.waitForURL((url) => url.origin === dash); // the answer (or where it redirected) is shown
    return response;
  }

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (infra/bootstrap.sh does, or apt-get install chromium)`);
    await h.start();
    redis = new Redis(h.services.redisUrl, { maxRetriesPerRequest: null });
    chunks = new Queue('chunks', { connection: redis, prefix: h.prefix });
    // Three datasets in flight (no worker runs in this file).
    for (const id of ['victim', 'mine', 'framed']) {
      const res = await h.layertap(['submit', SAMPLES, '--weights', 'random', '--layer', 'block1_pool', '--output', 's3://layertap/out', '--image-size', '32', '--chunk-size', '4', '--dataset-id', id]);
      expect(res.code).toBe(0);
    }
    const port = await findFreePort();
    dash = `http://dashboard.test:${port}`;
    dashboard = h.spawn(BIN.dashboard, ['--port', String(port)], credentials);
    await waitForHttp(`http://127.0.0.1:${port}/healthz`);
    other = `http://attacker.test:${await site.start()}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', `--host-resolver-rules=MAP dashboard.test 127.0.0.1, MAP attacker.test ${ATTACKER_ADDRESS}`],
    });
    context = await browser.newContext({ httpCredentials: { username: USER, password: PASSWORD } });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    dashboard?.child.kill('SIGTERM');
    await dashboard?.exited;
    await site.close();
    await chunks?.close();
    redis?.disconnect();
    await h.close();
  });

  it('a form in a sandboxed frame on another site (Origin: null) cannot cancel a dataset; the Cancel button on the dataset page can', async () => {
    const page = await context.newPage();
    // The victim has the dashboard open (the browser holds the credentials).
    expect((await page.goto(`${dash}/datasets/victim`))?.status()).toBe(200);

    const forged = await visitOtherSite(page, autoSubmit(`${dash}/datasets/victim/cancel`, { back: '/datasets/victim' }, { sandboxed: true }), '/datasets/victim/cancel');
    // What the browser sent is the attack the issue describes: credentials, Origin: null, no Sec-Fetch-Site.
    const sent = await forged.request().allHeaders();
    expect([sent.origin, sent['sec-fetch-site'], sent.authorization]).toEqual(['null', undefined, auth.authorization]);
    expect(forged.status()).toBe(403);
    await expect(page.locator('main').textContent()).resolves.toContain('the form has no valid token (forms from other sites are refused): reload the page and try again');
    // A plain form on the other site (its own origin in Origin) is refused too.
    const plain = await visitOtherSite(page, autoSubmit(`${dash}/datasets/victim/cancel`, {}, { sandboxed: false }), '/datasets/victim/cancel');
    expect([(await plain.request().allHeaders()).origin, plain.status()]).toEqual([other, 403]);
    await expect(page.locator('main').textContent()).resolves.toContain(`cross-site request refused (Origin: ${other})`);
    await expect(statusOf('victim')).resolves.toMatchObject({ state: 'running', cancelled: false });

    // The dashboard's own page still cancels (same origin; its form carries the page's token).
    await page.goto(`${dash}/datasets/mine`);
    await page.click('button[name="cancel"]');
    await page.waitForURL(`${dash}/datasets/mine?done=cancel`);
    await expect(page.locator('.notice').textContent()).resolves.toBe('Cancel requested: workers stop after their current batch; samples not run are recorded as cancelled.');
    await expect(statusOf('mine')).resolves.toMatchObject({ state: 'cancelled', cancelled: true });
    await expect(statusOf('victim')).resolves.toMatchObject({ cancelled: false });
    await page.close();
  });

  it("Bull Board's write API refuses another site's text/plain forms; Bull Board's own buttons still pause, resume and add jobs", async () => {
    const page = await context.newPage();
    const jobsBefore = await chunks.getJobCountByTypes('waiting', 'delayed', 'prioritized', 'waiting-children', 'active', 'completed', 'failed');
    // A text/plain form (a body type any site can post without a preflight): Bull Board's API used to add an
    // empty job for it.
    const body = { '{"name":"forged","data":{},"x":"': '"}' };
    for (const sandboxed of [false, true]) {
      const forged = await visitOtherSite(page, autoSubmit(`${dash}/queues/api/queues/chunks/add`, body, { sandboxed, enctype: 'text/plain' }), '/queues/api/queues/chunks/add');
      const origin = sandboxed ? 'null' : other;
      expect([(await forged.request().allHeaders()).origin, forged.status()]).toEqual([origin, 403]);
      expect(((await forged.json()) as { error: string }).error).toMatch(`cross-site request refused (Origin: ${origin}`);
    }
    expect(await chunks.getJobCountByTypes('waiting', 'delayed', 'prioritized', 'waiting-children', 'active', 'completed', 'failed')).toBe(jobsBefore);

    // Bull Board's UI, same origin: its buttons call its API with fetch.
    await page.goto(`${dash}/queues/queue/chunks`);
    // The queue's actions menu (pause or resume, add a job, ...).
    const queueMenu = page.locator('button[aria-haspopup="menu"]').first();
    await page.waitForSelector('text=WAITING');
    expect(await chunks.isPaused()).toBe(false);
    await queueMenu.click();
    await page.getByRole('menuitem', { name: /pause/i }).click();
    const paused = page.waitForResponse((r) => r.url() === `${dash}/queues/api/queues/chunks/pause`);
    await page.getByRole('button', { name: 'Confirm' }).click();
    expect((await paused).status()).toBe(200);
    expect(await chunks.isPaused()).toBe(true);
    await queueMenu.click();
    await page.getByRole('menuitem', { name: /resume/i }).click();
    const resumed = page.waitForResponse((r) => r.url() === `${dash}/queues/api/queues/chunks/resume`);
    await page.getByRole('button', { name: 'Confirm' }).click();
    expect((await resumed).status()).toBe(200);
    expect(await chunks.isPaused()).toBe(false);

    await queueMenu.click();
    await page.getByRole('menuitem', { name: /add/i }).click();
    await page.fill('#job-name', 'added-in-the-ui');
    const added = page.waitForResponse((r) => r.url() === `${dash}/queues/api/queues/chunks/add`);
    await page.getByRole('button', { name: 'Add' }).click();
    expect((await added).status()).toBe(200);
    const waiting = await chunks.getJobs(['waiting']);
    const mine = waiting.filter((j) => j.name === 'added-in-the-ui');
    expect(mine.map((j) => j.data)).toEqual([{}]);
    await mine[0]!.remove();
    await page.close();
  });

  it('in read-only mode every Bull Board write answers 405, pause and resume included, and Redis is unchanged', async () => {
    const port = await findFreePort();
    const readOnly = h.spawn(BIN.dashboard, ['--port', String(port), '--read-only'], credentials);
    try {
      await waitForHttp(`http://127.0.0.1:${port}/healthz`);
      const page = await context.newPage();
      await page.goto(`http://dashboard.test:${port}/queues/queue/chunks`);
      // From Bull Board's own page (same origin), as its buttons would send them.
      const answers = await page.evaluate(async () => {
        const send = async (method: string, path: string) => {
          const res = await fetch(path, { method, headers: { 'content-type': 'application/json' }, body: method === 'POST' ? '{"name":"x","data":{}}' : null });
          return `${method} ${path} ${res.status} ${res.headers.get('allow')}`;
        };
        return [
          await send('PUT', '/queues/api/queues/pause'),
          await send('PUT', '/queues/api/queues/resume'),
          await send('PUT', '/queues/api/queues/chunks/pause'),
          await send('POST', '/queues/api/queues/chunks/add'),
          await send('PUT', '/queues/api/queues/chunks/clean/waiting'),
        ];
      });
      expect(answers).toEqual([
        'PUT /queues/api/queues/pause 405 GET, HEAD',
        'PUT /queues/api/queues/resume 405 GET, HEAD',
        'PUT /queues/api/queues/chunks/pause 405 GET, HEAD',
        'POST /queues/api/queues/chunks/add 405 GET, HEAD',
        'PUT /queues/api/queues/chunks/clean/waiting 405 GET, HEAD',
      ]);
      expect(await chunks.isPaused()).toBe(false);
      expect((await chunks.getJobs(['waiting'])).filter((j) => j.name === 'x')).toEqual([]);
      await page.close();
    } finally {
      readOnly.child.kill('SIGTERM');
      await readOnly.exited;
    }
  });

  it('another site cannot frame Bull Board or a dataset page; every response forbids framing and sends a CSP', async () => {
    // Another site frames Bull Board and a dataset page of a dashboard without a password (the browser sends no
    // credentials to a frame of another site): the browser shows neither.
    const openPort = await findFreePort();
    const open = h.spawn(BIN.dashboard, ['--port', String(openPort), '--insecure-no-auth'], ALLOWED);
    try {
      await waitForHttp(`http://127.0.0.1:${openPort}/healthz`);
      const page = await context.newPage();
      const framedPaths = ['/queues/queue/chunks', '/datasets/framed'];
      site.page = framedPaths.map((p) => `<iframe src="http://dashboard.test:${openPort}${p}"></iframe>`).join('');
      const loaded = framedPaths.map((p) => page.waitForResponse(`http://dashboard.test:${openPort}${p}`));
      await page.goto(`${other}/`);
      expect(await Promise.all(loaded.map(async (r) => (await r).status()))).toEqual([200, 200]);
      await page.waitForTimeout(1000);
      const frames = page.frames().filter((f) => f !== page.mainFrame());
      // A frame that was allowed to render holds the page's markup (Bull Board's root, the dataset's id).
      const rendered = await Promise.all(frames.map(async (f) => /id="root"|data-field="state"/.test(await f.content())));
      expect(rendered).toEqual([false, false]);
      await page.close();
    } finally {
      open.child.kill('SIGTERM');
      await open.exited;
    }

    // The headers themselves, on every kind of response: Bull Board's pages, static files and API, layertap's
    // pages and errors, the 401 challenge and a 404.
    const local = dash.replace('dashboard.test', '127.0.0.1');
    const anonymous = await fetch(`${local}/queues`);
    const responses: Array<[string, number, string | null, string | null]> = [['/queues (401)', anonymous.status, anonymous.headers.get('x-frame-options'), anonymous.headers.get('content-security-policy')]];
    for (const path of ['/queues', '/queues/queue/chunks', '/queues/static/favicon-32x32.png', '/queues/api/queues', '/', '/datasets/framed', '/datasets/nope', '/no-such-page']) {
      const res = await fetch(`${local}${path}`, { headers: { ...auth, accept: 'text/html' } });
      responses.push([path, res.status, res.headers.get('x-frame-options'), res.headers.get('content-security-policy')]);
    }
    for (const [path, status, frameOptions, csp] of responses) {
      expect({ path, status, frameOptions }).toEqual({ path, status, frameOptions: 'DENY' });
      expect({ path, csp }).toEqual({ path, csp: expect.stringMatching(/(^|; )frame-ancestors 'none'(;|$)/) });
      expect({ path, csp }).toEqual({ path, csp: expect.stringMatching(/^default-src 'none'; /) });
    }
    expect(responses.map(([path, status]) => [path, status])).toEqual([
      ['/queues (401)', 401], ['/queues', 200], ['/queues/queue/chunks', 200], ['/queues/static/favicon-32x32.png', 200], ['/queues/api/queues', 200],
      ['/', 200], ['/datasets/framed', 200], ['/datasets/nope', 404], ['/no-such-page', 404],
    ]);

    // Bull Board's UI runs under its CSP: the only thing refused is Google's font stylesheet.
    const board = await context.newPage();
    const refused: string[] = [];
    board.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy/.test(m.text())) refused.push(m.text());
    });
    await board.goto(`${dash}/queues/queue/chunks`);
    await board.waitForSelector('text=WAITING');
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.filter((text) => !text.includes('https://fonts.googleapis.com/'))).toEqual([]);
    await board.close();
  });
});
