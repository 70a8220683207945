import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DevServices } from './dev-services';
import { sendCommands } from './resp';
import { S3Server } from './s3-server';

async function getText(client: S3Client, Bucket: string, Key: string): Promise<string | undefined> {
  const res = await client.send(new GetObjectCommand({ Bucket, Key }));
  return res.Body?.transformToString();
}

function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('S3Server', () => {
  it('serves put/get/list through the AWS SDK with its settings', async () => {
    const s3 = new S3Server();
    await s3.start();
    const client = s3.createClient();
    try {
      expect(s3.endpoint).toBe(`http://127.0.0.1:${s3.port}`);
      expect(s3.settings).toEqual({
        endpoint: s3.endpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
        forcePathStyle: true,
      });
      await client.send(new PutObjectCommand({ Bucket: 'layertap', Key: 'a/one.txt', Body: 'first' }));
      await client.send(new PutObjectCommand({ Bucket: 'layertap', Key: 'a/two.txt', Body: 'second' }));
      await client.send(new PutObjectCommand({ Bucket: 'layertap', Key: 'b/three.txt', Body: 'third' }));
      expect(await getText(client, 'layertap', 'a/two.txt')).toBe('second');
      const listed = await client.send(new ListObjectsV2Command({ Bucket: 'layertap', Prefix: 'a/' }));
      expect(listed.Contents?.map((o) => [o.Key, o.Size])).toEqual([
        ['a/one.txt', 5],
        ['a/two.txt', 6],
      ]);
    } finally {
      client.destroy();
      await s3.close();
    }
  });

  it('accepts a key pair of its own, given through the environment rather than the command line', async () => {
    const credentials = { accessKeyId: 'AKIDTESTONLY0001', secretAccessKey: 'secret-test-only-0001' };
    const s3 = new S3Server({ credentials });
    await s3.start();
    const client = s3.createClient();
    const stranger = new S3Client({ ...s3.settings, credentials: { accessKeyId: 'NOBODY', secretAccessKey: 'x' } });
    try {
      expect(s3.settings.credentials).toEqual(credentials);
      await client.send(new PutObjectCommand({ Bucket: 'layertap', Key: 'k.txt', Body: 'v' }));
      expect(await getText(client, 'layertap', 'k.txt')).toBe('v');
      await expect(stranger.send(new GetObjectCommand({ Bucket: 'layertap', Key: 'k.txt' }))).rejects.toMatchObject({ name: 'InvalidAccessKeyId' });
    } finally {
      stranger.destroy();
      client.destroy();
      await s3.close();
    }
  });

  it('creates the configured buckets, and more on request', async () => {
    const s3 = new S3Server({ buckets: ['first', 'second'] });
    await s3.start();
    const client = s3.createClient();
    try {
      await s3.createBucket('third');
      for (const Bucket of ['first', 'second', 'third']) {
        await client.send(new PutObjectCommand({ Bucket, Key: 'k', Body: Bucket }));
        expect(await getText(client, Bucket, 'k')).toBe(Bucket);
      }
      await expect(client.send(new PutObjectCommand({ Bucket: 'layertap', Key: 'k', Body: 'x' }))).rejects.toMatchObject({
        name: 'NoSuchBucket',
      });
    } finally {
      client.destroy();
      await s3.close();
    }
  });

  it('stop() makes it unreachable, start() brings it back on the same port with its objects', async () => {
    const s3 = new S3Server();
    await s3.start();
    // maxAttempts 1: the SDK would otherwise retry the refused connection.
    const client = s3.createClient();
    client.config.maxAttempts = async () => 1;
    try {
      const port = s3.port;
      await client.send(new PutObjectCommand({ Bucket: 'layertap', Key: 'kept', Body: 'still here' }));
      await s3.stop();
      expect(s3.running).toBe(false);
      await expect(getText(client, 'layertap', 'kept')).rejects.toThrow(/ECONNREFUSED/);
      await s3.start();
      expect(s3.port).toBe(port);
      expect(await getText(client, 'layertap', 'kept')).toBe('still here');
    } finally {
      client.destroy();
      await s3.close();
    }
  });

  it('returns truncated ListObjectsV2 pages with working continuation tokens', async () => {
    // In-process s3rver fails here on Node 17+ (DES tokens need OpenSSL's legacy provider).
    const s3 = new S3Server();
    await s3.start();
    const client = s3.createClient();
    try {
      for (const i of [1, 2, 3, 4, 5]) await client.send(new PutObjectCommand({ Bucket: 'layertap', Key: `p/${i}`, Body: 'x' }));
      const keys: string[] = [];
      let token: string | undefined;
      let pages = 0;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: 'layertap', Prefix: 'p/', MaxKeys: 2, ContinuationToken: token }));
        pages++;
        keys.push(...(page.Contents ?? []).map((o) => o.Key ?? ''));
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      expect(pages).toBe(3);
      expect(keys).toEqual(['p/1', 'p/2', 'p/3', 'p/4', 'p/5']);
    } finally {
      client.destroy();
      await s3.close();
    }
  });

  it('pause() leaves requests unanswered until resume()', async () => {
    const s3 = new S3Server();
    await s3.start();
    const client = new S3Client({ ...s3.settings, maxAttempts: 1, requestHandler: { socketTimeout: 300 } });
    try {
      await client.send(new PutObjectCommand({ Bucket: 'layertap', Key: 'k', Body: 'v' }));
      s3.pause();
      await expect(getText(client, 'layertap', 'k')).rejects.toThrow(/timed out|timeout/i);
      s3.resume();
      expect(await getText(client, 'layertap', 'k')).toBe('v');
    } finally {
      client.destroy();
      await s3.close();
    }
  });

  it('does not outlive a parent that is SIGKILLed', async () => {
    const script = `
      const swc = require(${JSON.stringify(require.resolve('@swc/core'))});
      require.extensions['.ts'] = (module, filename) => {
        const { code } = swc.transformFileSync(filename, {
          jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' },
        });
        module._compile(code, filename);
      };
      const { S3Server } = require(${JSON.stringify(require.resolve('./s3-server'))});
      const s3 = new S3Server();
      s3.start().then(() => console.log('PORT ' + s3.port));
    `;
    const parent = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      parent.stdout.setEncoding('utf8').on('data', (text: string) => {
        out += text;
        if (out.includes('\n')) resolve(out.trim());
      });
      parent.once('exit', (code) => reject(new Error(`child exited early with ${code}: ${out}`)));
    });
    const port = Number(/^PORT (\d+)$/.exec(line)?.[1]);
    expect(await isListening(port)).toBe(true);
    parent.kill('SIGKILL');
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && (await isListening(port))) await sleep(50);
    expect(await isListening(port)).toBe(false);
  });

  it('removes the temp directory it made on close, but not one it was given', async () => {
    const s3 = new S3Server();
    await s3.start();
    const dir = s3.directory ?? '';
    expect(existsSync(dir)).toBe(true);
    await s3.close();
    expect(existsSync(dir)).toBe(false);

    const given = await mkdtemp(join(tmpdir(), 'layertap-s3-given-'));
    const other = new S3Server({ directory: given });
    await other.start();
    expect(other.directory).toBe(given);
    await other.close();
    expect(existsSync(given)).toBe(true);
    await rm(given, { recursive: true });
  });
});

describe('DevServices', () => {
  it('starts Redis and S3 together and closes both', async () => {
    const services = await new DevServices().start();
    const client = services.s3Server.createClient();
    let redisPort = 0;
    try {
      redisPort = services.redisServer.port;
      expect(services.redisUrl).toBe(`redis://127.0.0.1:${redisPort}`);
      expect(await sendCommands(redisPort, [['PING']])).toEqual(['PONG']);
      expect(services.s3.endpoint).toBe(services.s3Server.endpoint);
      expect(services.s3.forcePathStyle).toBe(true);
      await client.send(new PutObjectCommand({ Bucket: 'layertap', Key: 'k', Body: 'v' }));
      expect(await getText(client, 'layertap', 'k')).toBe('v');
    } finally {
      client.destroy();
      await services.close();
    }
    expect(services.redisServer.running).toBe(false);
    expect(services.s3Server.running).toBe(false);
    await expect(sendCommands(redisPort, [['PING']])).rejects.toThrow(/ECONNREFUSED/);
  });

  it('closes the started service when the other fails to start', async () => {
    const services = new DevServices({ redis: { bin: '/nonexistent/redis-server' } });
    await expect(services.start()).rejects.toMatchObject({ code: 'redis_not_found' });
    expect(services.s3Server.running).toBe(false);
  });
});
