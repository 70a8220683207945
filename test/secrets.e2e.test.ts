import { randomBytes } from 'node:crypto';
import { copyFile, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DeleteBucketCommand, ListBucketsCommand } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { findFreePort } from '@layertap/devservices';
import { BIN, Harness, SAMPLES, type RunResult, waitForHttp } from './support/harness';
import { dumpRedis } from './support/redis-dump';

/** A secret nothing else contains: a label and 24 random hex digits. */
function secret(label: string): string {
  return `${label}${randomBytes(12).toString('hex')}`;
}

/** Every regular file under `dir`, recursively, with its contents. */
async function readTree(dir: string): Promise<Array<{ file: string; body: Buffer }>> {
  const out: Array<{ file: string; body: Buffer }> = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await readTree(file)));
    else if (entry.isFile()) out.push({ file, body: await readFile(file) });
  }
  return out;
}

/**
 * Credentials (S3 keys and session token, the Redis password, the dashboard password) never appear in
 * anything a run writes: CLI output, worker and dashboard logs (at LOG_LEVEL=trace), HTTP answers, every
 * Redis key of every type, every S3 object and s3rver's metadata files. The run includes failed samples,
 * failed chunks (S3 away, bucket gone) and failed commands, where credentials most often slip into messages.
 *
 * Limit: s3rver 3.7 does not verify SigV4 signatures, so a wrong secret key would not be noticed by the
 * server; the values are still unique and are what every process is given, which is what this test needs.
 */
describe('secrets never appear in logs, job data, manifests or error messages', () => {
  const secrets = {
    redisPassword: secret('redispw'),
    dashboardPassword: secret('dashpw'),
    s3AccessKeyId: `AKID${randomBytes(8).toString('hex').toUpperCase()}`,
    s3SecretKey: secret('s3secret'),
    s3SessionToken: secret('s3token'),
  };
  const dashboardUser = 'ops';
  const h = new Harness('secrets', {
    redis: { password: secrets.redisPassword },
    s3: { buckets: ['layertap', 'doomed'], credentials: { accessKeyId: secrets.s3AccessKeyId, secretAccessKey: secrets.s3SecretKey } },
  });
  /** Everything the run wrote that a person or another program could read, labelled by where it came from. */
  const written: Array<{ where: string; text: string }> = [];
  const env = { AWS_SESSION_TOKEN: secrets.s3SessionToken, LOG_LEVEL: 'trace' };

  const record = (where: string, res: RunResult) => {
    written.push({ where: `${where} (stdout)`, text: res.stdout }, { where: `${where} (stderr)`, text: res.stderr });
    return res;
  };
  const cli = async (args: string[], extra: Record<string, string> = {}) => record(`layertap ${args.join(' ')}`, await h.layertap(args, { ...env, ...extra }));
  const worker = async (label: string, extra: Record<string, string> = {}) => {
    const w = h.spawn(BIN.worker, ['--exit-when-idle'], { ...env, ...extra });
    const code = await w.exited;
    written.push({ where: `worker: ${label}`, text: w.output() });
    expect(code).toBe(0);
    return w.output();
  };

  beforeAll(async () => {
    await h.start();
    expect(h.services.redisUrl).toContain(encodeURIComponent(secrets.redisPassword)); // the password is in use
  }, 60_000);
  afterAll(() => h.close());

  it('runs datasets with failing samples and failing chunks, then finds no secret anywhere', async () => {
    // 1. A dataset with good images, a file that is not an image and a missing one.
    for (const name of ['chelsea.jpg', 'rocket.jpg']) await copyFile(path.join(SAMPLES, name), path.join(h.tmp, name));
    await writeFile(path.join(h.tmp, 'broken.jpg'), 'not a JPEG');
    const list = path.join(h.tmp, 'list.txt');
    await writeFile(list, ['chelsea.jpg', 'broken.jpg', 'missing.jpg', 'rocket.jpg'].join('\n') + '\n');
    const common = ['--layer', 'block1_pool', '--image-size', '32', '--batch-size', '2', '--chunk-size', '2'];
    expect((await cli(['submit', list, ...common, '--output', 's3://layertap/out', '--dataset-id', 'mixed'])).code).toBe(0);
    await worker('mixed');
    const mixed = await h.manifest('layertap', 'out', 'mixed');
    expect(mixed.map((l) => l.error?.code ?? l.status).sort()).toEqual(['decode_failed', 'not_found', 'ok', 'ok']);

    // 2. Chunks that fail for good: S3 answers errors (the bucket is gone), then S3 is away.
    const failing = { LAYERTAP_CHUNK_ATTEMPTS: '1' };
    expect((await cli(['submit', list, ...common, '--output', 's3://doomed/out', '--dataset-id', 'no-bucket'], failing)).code).toBe(0);
    await h.s3.send(new DeleteBucketCommand({ Bucket: 'doomed' }));
    await worker('bucket gone');
    expect((await cli(['submit', list, ...common, '--output', 's3://layertap/out', '--dataset-id', 's3-away'], failing)).code).toBe(0);
    await h.services.s3Server.stop();
    try {
      await worker('S3 away');
      // A command that needs S3 while it is away.
      expect((await cli(['submit', list, ...common, '--output', 's3://layertap/out', '--dataset-id', 'refused'])).code).not.toBe(0);
    } finally {
      await h.services.s3Server.start();
    }
    for (const id of ['no-bucket', 's3-away']) {
      const status = JSON.parse((await cli(['status', id, '--json'])).stdout);
      expect({ id, state: status.state, failedChunks: status.chunks.failed }).toEqual({ id, state: 'failed', failedChunks: 2 });
    }

    // 3. Status, retry, and commands that fail: a missing bucket, an unknown dataset, Redis not there.
    for (const id of ['mixed', 'no-bucket', 's3-away']) await cli(['status', id]);
    expect((await cli(['retry', 'mixed', '--json'])).code).toBe(0);
    await worker('retry');
    expect((await cli(['submit', list, ...common, '--output', 's3://no-such-bucket/out'])).code).toBe(2);
    expect((await cli(['status', 'nope'])).code).not.toBe(0);
    const deadPort = await findFreePort();
    const noRedis = await cli(['status', 'mixed'], { REDIS_URL: `redis://:${encodeURIComponent(secrets.redisPassword)}@127.0.0.1:${deadPort}` });
    expect(noRedis.code).not.toBe(0);
    expect(noRedis.stderr).toContain(`redis://:***@127.0.0.1:${deadPort}`);

    // 4. The dashboard, with its password, asked for everything it shows (failed jobs carry their errors).
    const port = await findFreePort();
    const dashboard = h.spawn(BIN.dashboard, ['--port', String(port)], {
      ...env,
      LAYERTAP_DASHBOARD_USER: dashboardUser,
      LAYERTAP_DASHBOARD_PASSWORD: secrets.dashboardPassword,
    });
    try {
      const base = `http://127.0.0.1:${port}`;
      await waitForHttp(`${base}/healthz`);
      const auth = { authorization: `Basic ${Buffer.from(`${dashboardUser}:${secrets.dashboardPassword}`).toString('base64')}` };
      const wrong = { authorization: `Basic ${Buffer.from(`${dashboardUser}:${secrets.dashboardPassword}x`).toString('base64')}` };
      const paths = [
        '/queues',
        '/api/datasets',
        '/api/datasets/mixed',
        '/api/datasets/no-bucket',
        '/queues/api/queues?activeQueue=chunks&status=failed',
        '/queues/api/queues?activeQueue=chunks&status=completed',
        '/queues/api/queues?activeQueue=datasets&status=completed',
        '/queues/api/queues?activeQueue=datasets&status=failed',
        '/queues/api/queues/datasets/no-bucket~r0/flow',
      ];
      for (const p of paths) {
        for (const [label, headers] of [['no auth', {}], ['wrong password', wrong], ['auth', auth]] as const) {
          const res = await fetch(base + p, { headers });
          expect({ p, label, status: res.status }).toEqual({ p, label, status: label === 'auth' ? 200 : 401 });
          written.push({ where: `dashboard GET ${p} (${label})`, text: JSON.stringify([...res.headers]) + (await res.text()) });
        }
      }
      // The failed chunks' reasons are what the dashboard shows: make sure they were really read.
      expect(written.find((w) => w.where.startsWith('dashboard GET /queues/api/queues?activeQueue=chunks&status=failed (auth)'))!.text).toMatch(/no-bucket~r0~c0/);
    } finally {
      dashboard.child.kill('SIGTERM');
      await dashboard.exited;
      written.push({ where: 'dashboard log', text: dashboard.output() });
    }

    // 5. Everything stored: every Redis key of every type, every S3 object, s3rver's files on disk.
    const redis = new Redis(h.services.redisUrl);
    try {
      const keys = await dumpRedis(redis);
      for (const k of keys) written.push({ where: `redis ${k.type} ${k.key}`, text: [k.key, ...k.values].join('\n') });
      // The dump read BullMQ's structures, not just strings.
      expect([...new Set(keys.map((k) => k.type))].sort()).toEqual(expect.arrayContaining(['hash', 'stream', 'zset']));
      expect(keys.some((k) => k.values.some((v) => /upload_failed|NoSuchBucket|ECONNREFUSED/i.test(v)))).toBe(true);
    } finally {
      redis.disconnect();
    }
    const buckets = (await h.s3.send(new ListBucketsCommand({}))).Buckets ?? [];
    for (const { Name } of buckets) {
      for (const key of await h.listKeys(Name!, '')) written.push({ where: `s3://${Name}/${key}`, text: (await h.getObject(Name!, key))!.toString('utf8') });
    }
    expect(written.filter((w) => w.where.startsWith('s3://layertap/out/mixed/manifest.jsonl'))).toHaveLength(1);
    for (const { file, body } of await readTree(h.services.s3Server.directory!)) written.push({ where: `s3rver file ${file}`, text: body.toString('latin1') });

    // 6. No secret, in any encoding a leak is likely to take.
    const needles: Array<[string, string]> = [];
    for (const [name, value] of Object.entries(secrets)) {
      needles.push([name, value], [`${name} (base64)`, Buffer.from(value).toString('base64')]);
      // The random part alone finds a truncated or reformatted leak.
      const core = value.replace(/^[a-z]+/, '');
      if (core.length >= 16) needles.push([`${name} (random part)`, core.slice(0, 16)]);
    }
    needles.push(['dashboard basic-auth header', Buffer.from(`${dashboardUser}:${secrets.dashboardPassword}`).toString('base64')]);
    const leaks: string[] = [];
    for (const { where, text } of written) {
      for (const [name, needle] of needles) {
        const at = text.indexOf(needle);
        if (at >= 0) leaks.push(`${name} in ${where}: ...${text.slice(Math.max(0, at - 80), at + needle.length + 40)}...`);
      }
    }
    expect(leaks).toEqual([]);
    // What was searched is substantial: the logs of every process, and failures with messages.
    expect(written.length).toBeGreaterThan(60);
    const all = written.map((w) => w.text).join('\n');
    for (const expected of ['"chunk started"', 'decode_failed', 'not_found', 'chunk 0 failed', 'cannot connect to Redis']) expect(all).toContain(expected);
  });
});
