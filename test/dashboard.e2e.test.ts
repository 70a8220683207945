import { request } from 'node:http';
import { createServer } from 'node:net';
import { findFreePort } from '@layertap/devservices';
import { BIN, Harness, SAMPLES, waitForHttp } from './support/harness';

describe('layertap-dashboard', () => {
  const h = new Harness('dash');
  const credentials = { LAYERTAP_DASHBOARD_USER: 'ops', LAYERTAP_DASHBOARD_PASSWORD: 's3cret-Pa55' };
  const auth = { authorization: `Basic ${Buffer.from('ops:s3cret-Pa55').toString('base64')}` };

  beforeAll(async () => {
    await h.start();
    const res = await h.layertap(['submit', SAMPLES, '--weights', 'random', '--layer', 'block1_pool', '--output', 's3://layertap/out', '--image-size', '32', '--chunk-size', '3', '--dataset-id', 'board']);
    expect(res.code).toBe(0);
  }, 60_000);
  afterAll(() => h.close());

  it('refuses to start without credentials unless --insecure-no-auth', async () => {
    const res = await h.run(BIN.dashboard, ['--port', String(await findFreePort())]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain('LAYERTAP_DASHBOARD_USER');
    expect(res.stderr).toContain('--insecure-no-auth');
  });

  it('answers 401 without credentials and lists the queues and the dataset flow with them', async () => {
    const port = await findFreePort();
    const server = h.spawn(BIN.dashboard, ['--port', String(port)], credentials);
    try {
      const base = `http://127.0.0.1:${port}`;
      await waitForHttp(`${base}/healthz`);
      for (const path of ['/queues', '/queues/api/queues', '/api/datasets']) {
        const res = await fetch(base + path);
        expect(res.status).toBe(401);
        expect(res.headers.get('www-authenticate')).toMatch(/^Basic/);
      }
      const wrong = await fetch(`${base}/queues/api/queues`, { headers: { authorization: `Basic ${Buffer.from('ops:nope').toString('base64')}` } });
      expect(wrong.status).toBe(401);

      const page = await fetch(`${base}/queues`, { headers: auth });
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('<div id="root">');

      const api = await fetch(`${base}/queues/api/queues?activeQueue=chunks&status=waiting`, { headers: auth });
      expect(api.status).toBe(200);
      const body = (await api.json()) as { queues: Array<{ name: string; counts: Record<string, number>; jobs: Array<{ id: string }> }> };
      const names = body.queues.map((q) => q.name).sort();
      expect(names).toEqual(['chunks', 'datasets']);
      const chunks = body.queues.find((q) => q.name === 'chunks')!;
      expect(chunks.counts.waiting).toBe(3); // 7 samples in chunks of 3
      expect(chunks.jobs.map((j) => j.id).sort()).toEqual(['board~r0~c0', 'board~r0~c1', 'board~r0~c2']);
      const datasets = body.queues.find((q) => q.name === 'datasets')!;
      expect(datasets.counts['waiting-children']).toBe(1);

      const flow = await fetch(`${base}/queues/api/queues/datasets/board~r0/flow`, { headers: auth });
      expect(flow.status).toBe(200);
      expect(JSON.stringify(await flow.json())).toContain('board~r0~c2');

      const list = await fetch(`${base}/api/datasets`, { headers: auth });
      const datasetsBody = (await list.json()) as { datasets: Array<{ datasetId: string; progress: { total: number } }> };
      expect(datasetsBody.datasets.map((d) => [d.datasetId, d.progress.total])).toEqual([['board', 7]]);
      // The password never appears in what the dashboard logs.
      expect(server.output()).not.toContain('s3cret-Pa55');
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });

  /** A request with a Host header of our choosing (fetch does not send one it is given). */
  function raw(port: number, method: string, path: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('answers only to its own host names, even without auth (DNS rebinding, issue 18)', async () => {
    const port = await findFreePort();
    const server = h.spawn(BIN.dashboard, ['--port', String(port), '--insecure-no-auth'], { LAYERTAP_DASHBOARD_ALLOWED_HOSTS: 'localhost,127.0.0.1,dash.internal' });
    try {
      await waitForHttp(`http://127.0.0.1:${port}/healthz`);
      const foreign = { host: `evil.example:${port}`, origin: `http://evil.example:${port}` };
      const pause = await raw(port, 'PUT', '/queues/api/queues/chunks/pause', foreign);
      expect(pause.status).toBe(421);
      expect(pause.body).toContain('LAYERTAP_DASHBOARD_ALLOWED_HOSTS');
      expect((await raw(port, 'GET', '/api/datasets', foreign)).status).toBe(421);
      expect(await h.redis.hexists(`${h.prefix}:chunks:meta`, 'paused')).toBe(0);
      const own = await raw(port, 'GET', '/api/datasets', { host: `dash.internal:${port}` });
      expect(own.status).toBe(200);
      expect(own.headers['cache-control']).toBe('no-store');
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });

  it('limits failed logins per client address: 429 with Retry-After and a log line (issue 18)', async () => {
    const port = await findFreePort();
    const server = h.spawn(BIN.dashboard, ['--port', String(port)], credentials);
    try {
      const base = `http://127.0.0.1:${port}`;
      await waitForHttp(`${base}/healthz`);
      const wrong = { authorization: `Basic ${Buffer.from('ops:guess').toString('base64')}` };
      const statuses: number[] = [];
      for (let i = 0; i < 12; i++) statuses.push((await fetch(`${base}/api/datasets`, { headers: wrong })).status);
      expect(statuses).toEqual([...Array<number>(10).fill(401), 429, 429]);
      // Blocked means blocked: the right password from this address waits for the window too.
      const blocked = await fetch(`${base}/api/datasets`, { headers: auth });
      expect(blocked.status).toBe(429);
      expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
      await h.waitForOutput(server.output, /too many failed logins/, 5_000);
      expect(server.output()).toMatch(/"client":"(::ffff:)?127\.0\.0\.1"/);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });

  it('serves metrics without the password on --metrics-port (beating the environment), and stops when it cannot', async () => {
    const [port, metricsPort, unused] = [await findFreePort(), await findFreePort(), await findFreePort()];
    const env = { ...credentials, LAYERTAP_DASHBOARD_METRICS_PORT: String(unused), LAYERTAP_DASHBOARD_METRICS_HOST: '127.0.0.1' };
    const server = h.spawn(BIN.dashboard, ['--port', String(port), '--metrics-port', String(metricsPort)], env);
    try {
      await waitForHttp(`http://127.0.0.1:${metricsPort}/healthz`);
      const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toMatch(/^layertap_queue_jobs\{queue="chunks",state="waiting"\} 3$/m);
      await expect(fetch(`http://127.0.0.1:${unused}/metrics`)).rejects.toThrow();
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
    // The port is taken: the dashboard says which and exits 1 rather than run without the metrics asked for.
    const taken = createServer().listen(metricsPort, '127.0.0.1');
    await new Promise((resolve) => taken.once('listening', resolve));
    try {
      const res = await h.run(BIN.dashboard, ['--port', String(port), '--metrics-port', String(metricsPort)], env);
      expect(res.code).toBe(1);
      expect(res.stderr).toContain(`the metrics listener (LAYERTAP_DASHBOARD_METRICS_PORT, --metrics-port) cannot listen on 127.0.0.1:${metricsPort}: listen EADDRINUSE`);
    } finally {
      taken.close();
    }
  });

  it('read-only mode answers 405 to writes', async () => {
    const port = await findFreePort();
    const server = h.spawn(BIN.dashboard, ['--port', String(port), '--read-only'], credentials);
    try {
      const base = `http://127.0.0.1:${port}`;
      await waitForHttp(`${base}/healthz`);
      const retry = await fetch(`${base}/queues/api/queues/chunks/retry/failed`, { method: 'PUT', headers: auth });
      expect(retry.status).toBe(405);
      const clean = await fetch(`${base}/queues/api/queues/chunks/clean/waiting`, { method: 'PUT', headers: auth });
      expect(clean.status).toBe(405);
      const read = await fetch(`${base}/queues/api/queues`, { headers: auth });
      expect(read.status).toBe(200);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });
});
