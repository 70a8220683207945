import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { DeleteBucketCommand, ListBucketsCommand } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { findFreePort } from '@layertap/devservices';
import { BIN, Harness, SAMPLES, type RunResult, waitForHttp } from './support/harness';
import { dumpRedis } from './support/redis-dump';
import { redactUri } from '@layertap/imaging';

/** A secret nothing else contains: a label and 24 random hex digits. */
function secret(label: string): string {
  return `${label}${randomBytes(12).toString('hex')}`;
}

/** `user:password` as an HTTP Basic credential. */
function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
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
 * Credentials inside URIs (a weights URI and sample URIs with `user:password@` and signed query strings,
 * served by a local server that requires them) travel in job data, which workers need to fetch with, and
 * nowhere else: not in dataset.json, the manifest, shard metadata, the sample index, status (text and JSON),
 * the dashboard's pages and API (Bull Board's included), logs or the weights caches.
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
  /** Credentials inside URIs: allowed in job data (the worker fetches with them), nowhere else. */
  const uriSecrets = {
    weightsPassword: secret('weightspw'),
    weightsSig: secret('weightssig'),
    imagePassword: secret('imagepw'),
    imageAmzCredential: `AKIA${randomBytes(8).toString('hex').toUpperCase()}`,
    imageAmzSignature: secret('amzsig'),
    imageSig: secret('imagesig'),
    goneSig: secret('gonesig'),
    // Issue 18: parameter names the first rule set missed.
    imagePwd: secret('imagepwd'),
    imageJwt: secret('imagejwt'),
  };
  const dashboardUser = 'ops';
  const h = new Harness('secrets', {
    redis: { password: secrets.redisPassword },
    s3: { buckets: ['layertap', 'doomed'], credentials: { accessKeyId: secrets.s3AccessKeyId, secretAccessKey: secrets.s3SecretKey } },
  });
  /** Everything the run wrote that a person or another program could read, labelled by where it came from. */
  const written: Array<{ where: string; text: string; fetchable?: boolean }> = [];
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

  /**
   * The server behind the credentials: every path needs its Basic credential and its query parameter, else
   * 403. `authorized` counts the requests that had both (the worker and submit really used them).
   */
  const authorized = new Map<string, number>();
  let server: Server;
  let origin = '';
  const protectedRoutes = new Map<string, { auth: string; param: string; value: string; file?: string }>([
    ['/w/blocks1-2.safetensors', { auth: basic('wuser', uriSecrets.weightsPassword), param: 'sig', value: uriSecrets.weightsSig, file: path.join(__dirname, 'fixtures/parity/weights/vgg16-blocks1-2-seed11.torchvision.safetensors') }],
    ['/img/chelsea.jpg', { auth: basic('iuser', uriSecrets.imagePassword), param: 'X-Amz-Signature', value: uriSecrets.imageAmzSignature, file: path.join(SAMPLES, 'chelsea.jpg') }],
    ['/img/rocket.jpg', { auth: basic('iuser', uriSecrets.imagePassword), param: 'sig', value: uriSecrets.imageSig, file: path.join(SAMPLES, 'rocket.jpg') }],
    ['/img/gone.jpg', { auth: basic('iuser', uriSecrets.imagePassword), param: 'sig', value: uriSecrets.goneSig }],
  ]);
  const weightsUri = () => `http://wuser:${uriSecrets.weightsPassword}@${origin}/w/blocks1-2.safetensors?sig=${uriSecrets.weightsSig}`;
  const imageUris = () => ({
    chelsea: `http://iuser:${uriSecrets.imagePassword}@${origin}/img/chelsea.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${uriSecrets.imageAmzCredential}&X-Amz-Signature=${uriSecrets.imageAmzSignature}`,
    rocket: `http://iuser:${uriSecrets.imagePassword}@${origin}/img/rocket.jpg?size=large&pwd=${uriSecrets.imagePwd}&sig=${uriSecrets.imageSig}&jwt=${uriSecrets.imageJwt}`,
    gone: `http://iuser:${uriSecrets.imagePassword}@${origin}/img/gone.jpg?sig=${uriSecrets.goneSig}`,
  });

  beforeAll(async () => {
    await h.start();
    expect(h.services.redisUrl).toContain(encodeURIComponent(secrets.redisPassword)); // the password is in use
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      const route = protectedRoutes.get(url.pathname);
      if (!route || req.headers.authorization !== route.auth || url.searchParams.get(route.param) !== route.value) {
        res.writeHead(route ? 403 : 404).end();
        return;
      }
      authorized.set(url.pathname, (authorized.get(url.pathname) ?? 0) + 1);
      if (!route.file) return void res.writeHead(404).end();
      void readFile(route.file).then((body) => res.writeHead(200, { 'content-length': body.length }).end(body));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  }, 60_000);
  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve));
    await h.close();
  });

  it('runs datasets with failing samples and failing chunks, then finds no secret anywhere', async () => {
    // 1. A dataset with good images, a file that is not an image and a missing one.
    for (const name of ['chelsea.jpg', 'rocket.jpg']) await copyFile(path.join(SAMPLES, name), path.join(h.tmp, name));
    await writeFile(path.join(h.tmp, 'broken.jpg'), 'not a JPEG');
    const list = path.join(h.tmp, 'list.txt');
    await writeFile(list, ['chelsea.jpg', 'broken.jpg', 'missing.jpg', 'rocket.jpg'].join('\n') + '\n');
    const common = ['--layer', 'block1_pool', '--image-size', '32', '--batch-size', '2', '--chunk-size', '2'];
    expect((await cli(['submit', list, '--weights', 'random', ...common, '--output', 's3://layertap/out', '--dataset-id', 'mixed'])).code).toBe(0);
    await worker('mixed');
    const mixed = await h.manifest('layertap', 'out', 'mixed');
    expect(mixed.map((l) => l.error?.code ?? l.status).sort()).toEqual(['decode_failed', 'not_found', 'ok', 'ok']);

    // 1b. Weights and samples behind credentials in their URIs, stored as shards (their metadata names the
    // weights). Submit reads the weights' header (one range request), the worker downloads them into its cache.
    const uris = imageUris();
    const credsList = path.join(h.tmp, 'creds.jsonl');
    await writeFile(credsList, Object.entries(uris).map(([id, uri]) => JSON.stringify({ id, uri })).join('\n') + '\n');
    const caches = { submit: path.join(h.tmp, 'cache-submit'), worker: path.join(h.tmp, 'cache-worker') };
    for (const dir of Object.values(caches)) await mkdir(dir);
    const credsArgs = ['submit', credsList, '--weights', 'random', '--layer', 'block1_pool', '--image-size', '32', '--batch-size', '2', '--chunk-size', '2', '--format', 'shards'];
    const submitted = await cli([...credsArgs, '--weights', weightsUri(), '--output', 's3://layertap/out', '--dataset-id', 'creds', '--json'], { LAYERTAP_WEIGHTS_CACHE: caches.submit, LAYERTAP_ALLOW_HOSTS: '127.0.0.1' });
    expect(submitted.code).toBe(0);
    await worker('creds', { LAYERTAP_WEIGHTS_CACHE: caches.worker, LAYERTAP_ALLOW_HOSTS: '127.0.0.1' });
    // The credentials worked: submit read the weights, the worker downloaded them and fetched the images.
    expect(Object.fromEntries(authorized)).toEqual({ '/w/blocks1-2.safetensors': 2, '/img/chelsea.jpg': 1, '/img/rocket.jpg': 1, '/img/gone.jpg': 1 });
    const creds = await h.manifest('layertap', 'out', 'creds');
    const shown = (uri: string) => redactUri(uri, Number.POSITIVE_INFINITY);
    expect(creds.map((l) => [l.id, l.status, l.error?.code ?? null, l.uri]).sort()).toEqual([
      ['chelsea', 'ok', null, `http://${origin}/img/chelsea.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***&X-Amz-Signature=***`],
      ['gone', 'failed', 'not_found', `http://${origin}/img/gone.jpg?sig=***`],
      ['rocket', 'ok', null, `http://${origin}/img/rocket.jpg?size=large&pwd=***&sig=***&jwt=***`],
    ]);
    expect(creds.map((l) => l.uri).sort()).toEqual(Object.values(uris).map(shown).sort());
    const credsDoc = JSON.parse((await h.getObject('layertap', 'out/creds/dataset.json'))!.toString('utf8'));
    expect(credsDoc.model.weights.source).toBe(`http://${origin}/w/blocks1-2.safetensors?sig=***`);
    const credsStatus = JSON.parse((await cli(['status', 'creds', '--json'])).stdout);
    expect(credsStatus.config.weights).toBe(`http://${origin}/w/blocks1-2.safetensors?sig=***`);
    expect((await cli(['status', 'creds'])).stdout).toContain(`weights http://${origin}/w/blocks1-2.safetensors?sig=***`);
    for (const dir of Object.values(caches)) for (const { file, body } of await readTree(dir)) if (!file.endsWith('.safetensors')) written.push({ where: `weights cache ${file}`, text: body.toString('utf8') });

    // 2. Chunks that fail for good: S3 answers errors (the bucket is gone), then S3 is away.
    const failing = { LAYERTAP_CHUNK_ATTEMPTS: '1' };
    expect((await cli(['submit', list, '--weights', 'random', ...common, '--output', 's3://doomed/out', '--dataset-id', 'no-bucket'], failing)).code).toBe(0);
    await h.s3.send(new DeleteBucketCommand({ Bucket: 'doomed' }));
    await worker('bucket gone');
    expect((await cli(['submit', list, '--weights', 'random', ...common, '--output', 's3://layertap/out', '--dataset-id', 's3-away'], failing)).code).toBe(0);
    await h.services.s3Server.stop();
    try {
      await worker('S3 away');
      // A command that needs S3 while it is away.
      expect((await cli(['submit', list, '--weights', 'random', ...common, '--output', 's3://layertap/out', '--dataset-id', 'refused'])).code).not.toBe(0);
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
    expect((await cli(['submit', list, '--weights', 'random', ...common, '--output', 's3://no-such-bucket/out'])).code).toBe(2);
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
      // One wrong password per path below: more than the default limit of failed logins per minute.
      LAYERTAP_DASHBOARD_LOGIN_FAILURES: '100',
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
        '/datasets/creds',
        '/api/datasets/creds',
        '/api/datasets/creds/failures',
        '/datasets/creds/samples/chelsea',
        '/api/datasets/creds/samples/gone',
        `/api/lookup?q=${encodeURIComponent(uris.rocket)}`,
        '/queues/api/queues/chunks/creds~r0~c0',
        '/queues/api/queues/datasets/creds~r0',
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
      // Samples are still found by the URI they were submitted with (credentials and all), and shown without them.
      const lookup = await fetch(`${base}/api/lookup?q=${encodeURIComponent(uris.rocket)}`, { headers: auth });
      expect(((await lookup.json()) as { samples: unknown[] }).samples).toEqual([expect.objectContaining({ datasetId: 'creds', id: 'rocket', uri: shown(uris.rocket) })]);
      const found = await fetch(`${base}/datasets/creds/samples?q=${encodeURIComponent(uris.chelsea)}`, { headers: auth, redirect: 'manual' });
      expect({ status: found.status, location: found.headers.get('location') }).toEqual({ status: 303, location: '/datasets/creds/samples/chelsea' });
      // Bull Board shows a chunk job as a summary (dataset, run, chunk, sample count, first and last id): read
      // for real, it holds no sample URI at all, redacted or not.
      const job = written.find((w) => w.where === 'dashboard GET /queues/api/queues/chunks/creds~r0~c0 (auth)')!.text;
      expect(job).toMatch(/samples\\*"\s*:\s*\d+/);
      expect(job).not.toContain(`${origin}/img/chelsea.jpg`);
    } finally {
      dashboard.child.kill('SIGTERM');
      await dashboard.exited;
      written.push({ where: 'dashboard log', text: dashboard.output() });
    }

    // 5. Everything stored: every Redis key of every type, every S3 object, s3rver's files on disk.
    const redis = new Redis(h.services.redisUrl);
    try {
      const keys = await dumpRedis(redis);
      for (const k of keys) {
        // Job data (a hash field `data` of a job) and the run configurations that `retry` submits again carry
        // what workers fetch with: URI credentials are allowed there, every other secret is not.
        const isJob = k.type === 'hash' && new RegExp(`^${h.prefix}:(chunks|datasets):[^:]+$`).test(k.key);
        const isRuns = k.key === `${h.prefix}:ds:creds:runs`;
        const isData = (_: string, i: number) => i % 2 === 1 && k.values[i - 1] === 'data';
        const fetchable = isJob ? k.values.filter(isData) : isRuns ? k.values : [];
        const rest = isJob ? k.values.filter((v, i) => !isData(v, i)) : isRuns ? [] : k.values;
        written.push({ where: `redis ${k.type} ${k.key}`, text: [k.key, ...rest].join('\n') });
        for (const data of fetchable) written.push({ where: `redis ${k.key} (job data or run configuration)`, text: data, fetchable: true });
      }
      // The credentials travel in job data: the worker fetched with them.
      const jobData = written.filter((w) => w.fetchable).map((w) => w.text).join('\n');
      for (const value of Object.values(uriSecrets)) expect(jobData).toContain(value);
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
    const uriNeedles = new Set<string>();
    for (const [name, value] of Object.entries(uriSecrets)) {
      const core = value.replace(/^[a-z]+/, '').replace(/^AKIA/, '');
      for (const needle of [value, Buffer.from(value).toString('base64'), core.slice(0, 16)]) uriNeedles.add(needle);
      needles.push([name, value], [`${name} (base64)`, Buffer.from(value).toString('base64')], [`${name} (random part)`, core.slice(0, 16)]);
    }
    for (const [user, password] of [['wuser', uriSecrets.weightsPassword], ['iuser', uriSecrets.imagePassword]] as const) {
      const header = basic(user, password).slice('Basic '.length);
      uriNeedles.add(header);
      needles.push([`${user} basic-auth header`, header]);
    }
    const leaks: string[] = [];
    for (const { where, text, fetchable } of written) {
      for (const [name, needle] of needles) {
        if (fetchable && uriNeedles.has(needle)) continue;
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
