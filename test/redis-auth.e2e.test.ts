import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { createTestCertificates, findFreePort, type TestCertificates } from '@layertap/devservices';
import { BIN, Harness, SAMPLES } from './support/harness';

const submitArgs = (id: string) => ['submit', SAMPLES, '--weights', 'random', '--layer', 'block1_pool', '--output', 's3://layertap/out', '--image-size', '32', '--chunk-size', '4', '--dataset-id', id];

/** A Redis URL with another password (or none) on the same server. */
function withPassword(url: string, password: string | undefined): string {
  const u = new URL(url);
  u.password = password === undefined ? '' : encodeURIComponent(password);
  return u.toString();
}

describe('Redis with a password', () => {
  const password = 'correct horse battery staple';
  const h = new Harness('redis-auth', { redis: { password } });
  beforeAll(() => h.start(), 60_000);
  afterAll(() => h.close());

  it('works end to end: submit, worker, status', async () => {
    expect(h.services.redisUrl).toMatch(/^redis:\/\/:correct%20horse%20battery%20staple@127\.0\.0\.1:\d+$/);
    const submit = await h.layertap(submitArgs('authed'));
    expect(submit.stderr).toBe('');
    expect(submit.code).toBe(0);
    const log = await h.runWorker();
    // The one redaction rule set drops userinfo from what is shown (the password never appears, nor a mask of it).
    expect(log).toContain('"redis":"redis://127.0.0.1:');
    const status = await h.layertap(['status', 'authed', '--json']);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ state: 'done', progress: { total: 7, ok: 7, failed: 0 } });
    const manifest = await h.manifest('layertap', 'out', 'authed');
    expect(manifest.map((l) => l.status)).toEqual(Array(7).fill('ok'));
    for (const text of [submit.stdout, log, status.stdout]) expect(text).not.toContain('battery');
  });

  it('a wrong or missing password: a clear error that names the server, never the passwords', async () => {
    const wrong = 'tr0ub4dor-and-3';
    for (const [label, url, reason] of [
      ['wrong password', withPassword(h.services.redisUrl, wrong), /WRONGPASS invalid username-password pair/],
      ['no password', withPassword(h.services.redisUrl, undefined), /NOAUTH Authentication required/],
    ] as const) {
      const port = new URL(url).port;
      const status = await h.layertap(['status', 'authed'], { REDIS_URL: url });
      expect({ label, code: status.code }).toEqual({ label, code: 1 });
      const shown = label === 'wrong password' ? `redis://:***@127.0.0.1:${port}` : `redis://127.0.0.1:${port}`;
      expect(status.stderr).toMatch(new RegExp(`^layertap: error \\[service_unavailable\\]: cannot connect to Redis at ${shown.replace(/[.*/]/g, '\\$&')}/?: `));
      expect(status.stderr).toMatch(reason);
      expect(status.stdout).toBe('');
      for (const secret of [password, encodeURIComponent(password), wrong]) expect(status.stderr).not.toContain(secret);
    }

    // The worker fails to start the same way (after its connection timeout), and exits non-zero.
    const started = Date.now();
    const worker = h.spawn(BIN.worker, ['--exit-when-idle'], { REDIS_URL: withPassword(h.services.redisUrl, wrong) });
    expect(await worker.exited).toBe(1);
    expect(Date.now() - started).toBeLessThan(30_000);
    // Its last line is a line of its JSON log, the URL without its userinfo as in every log line.
    const last = JSON.parse(worker.output().trim().split('\n').pop()!) as Record<string, unknown>;
    expect(last).toMatchObject({ level: 60, name: 'layertap-worker', exitCode: 1, msg: expect.stringMatching(/^cannot connect to Redis at redis:\/\/127\.0\.0\.1:\d+\/?: WRONGPASS/) });
    expect(worker.output()).not.toContain(wrong);
    expect(worker.output()).not.toContain('battery');
  });
});

/**
 * TLS: a redis-server that only speaks TLS (`tls-port`, plaintext port 0), with a CA and a certificate made
 * for the test; the processes reach it with `rediss://` and trust the CA through NODE_EXTRA_CA_CERTS.
 */
describe('Redis over TLS (rediss://)', () => {
  const password = 'tls-test-password';
  let dir: string;
  let certs: TestCertificates;
  let h: Harness;
  let tlsEnv: Record<string, string>;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lt-redis-tls-'));
    certs = await createTestCertificates(dir);
    h = new Harness('redis-tls', { redis: { password, tls: certs } });
    await h.start();
    tlsEnv = { NODE_EXTRA_CA_CERTS: certs.caFile };
  }, 60_000);
  afterAll(async () => {
    await h?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('runs a small dataset end to end over TLS: submit, worker, status, dashboard', async () => {
    expect(h.services.redisUrl).toMatch(/^rediss:\/\/:tls-test-password@127\.0\.0\.1:\d+$/);
    // The server has no plaintext port: everything below went over TLS.
    const redis = new Redis(h.services.redisUrl, { tls: { ca: await readFile(certs.caFile) } });
    try {
      expect(await redis.config('GET', 'port')).toEqual(['port', '0']);
      expect(await redis.config('GET', 'tls-port')).toEqual(['tls-port', new URL(h.services.redisUrl).port]);
    } finally {
      redis.disconnect();
    }

    const submit = await h.layertap(submitArgs('over-tls'), tlsEnv);
    expect(submit.stderr).toBe('');
    expect(submit.code).toBe(0);
    const log = await h.runWorker([], tlsEnv);
    expect(log).toContain('"redis":"rediss://127.0.0.1:');
    expect(log.match(/"chunk done"/g)).toHaveLength(2);
    const status = await h.layertap(['status', 'over-tls', '--json'], tlsEnv);
    expect(JSON.parse(status.stdout)).toMatchObject({ state: 'done', progress: { total: 7, ok: 7, failed: 0 }, chunks: { total: 2, done: 2 } });
    const manifest = await h.manifest('layertap', 'out', 'over-tls');
    expect(manifest).toHaveLength(7);
    expect(manifest.every((l) => l.status === 'ok')).toBe(true);
    expect((await h.npy('layertap', 'out/over-tls/block1_pool/chelsea.npy')).shape).toEqual([64, 16, 16]);

    const port = await findFreePort();
    const dashboard = h.spawn(BIN.dashboard, ['--port', String(port), '--insecure-no-auth'], tlsEnv);
    try {
      const base = `http://127.0.0.1:${port}`;
      await h.waitForOutput(dashboard.output, /listening|http:\/\/127\.0\.0\.1/i, 30_000);
      let body: { datasets: Array<{ datasetId: string; state: string; progress: { ok: number } }> } | undefined;
      for (let i = 0; i < 50 && !body; i++) {
        const res = await fetch(`${base}/api/datasets`).catch(() => undefined);
        if (res?.status === 200) body = (await res.json()) as typeof body;
        else await new Promise((r) => setTimeout(r, 200));
      }
      expect(body?.datasets.map((d) => [d.datasetId, d.state, d.progress.ok])).toEqual([['over-tls', 'done', 7]]);
    } finally {
      dashboard.child.kill('SIGTERM');
      await dashboard.exited;
    }
  });

  it('refuses a server whose CA is not trusted, and a plaintext client on the TLS port, with clear errors', async () => {
    const untrusted = await h.layertap(['status', 'over-tls']);
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toMatch(/cannot connect to Redis at rediss:\/\/:\*\*\*@127\.0\.0\.1:\d+\/?: .*(self-signed certificate|unable to verify|unable to get local issuer)/);
    expect(untrusted.stderr).not.toContain(password);

    const plaintext = await h.layertap(['status', 'over-tls'], { ...tlsEnv, REDIS_URL: h.services.redisUrl.replace(/^rediss:/, 'redis:') });
    expect(plaintext.code).toBe(1);
    expect(plaintext.stderr).toMatch(/cannot connect to Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/?: /);
    expect(plaintext.stderr).not.toContain(password);
  });
});
