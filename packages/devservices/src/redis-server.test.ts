import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { DevServiceErrorCode } from './errors';
import { findFreePort } from './free-port';
import { RedisServer } from './redis-server';
import { createTestCertificates } from './tls-certificates';
import { RespError, sendCommands } from './resp';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitUntil(check: () => boolean, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await sleep(25);
  }
  return check();
}

describe('findFreePort', () => {
  it('returns a port that can be bound', async () => {
    const port = await findFreePort();
    expect(port).toBeGreaterThan(0);
    const server = createServer();
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
    await new Promise((resolve) => server.close(resolve));
  });
});

describe('RedisServer', () => {
  it('runs a real redis-server with noeviction and no persistence, and answers PING/SET/GET', async () => {
    const redis = new RedisServer();
    await redis.start();
    try {
      expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
      const replies = await sendCommands(redis.port, [
        ['PING'],
        ['SET', 'greeting', 'héllo'],
        ['GET', 'greeting'],
        ['GET', 'missing'],
        ['CONFIG', 'GET', 'maxmemory-policy'],
        ['CONFIG', 'GET', 'save'],
        ['CONFIG', 'GET', 'appendonly'],
        ['CONFIG', 'GET', 'bind'],
      ]);
      expect(replies).toEqual([
        'PONG',
        'OK',
        'héllo',
        null,
        ['maxmemory-policy', 'noeviction'],
        ['save', ''],
        ['appendonly', 'no'],
        ['bind', '127.0.0.1'],
      ]);
    } finally {
      await redis.close();
    }
    expect(redis.running).toBe(false);
    await expect(sendCommands(redis.port, [['PING']])).rejects.toThrow(/ECONNREFUSED/);
  });

  it('requires the password when one is set and puts it in the URL', async () => {
    const redis = new RedisServer({ password: 'p@ss "word"' });
    await redis.start();
    try {
      expect(redis.url).toBe(`redis://:${encodeURIComponent('p@ss "word"')}@127.0.0.1:${redis.port}`);
      const [unauthenticated] = await sendCommands(redis.port, [['PING']]);
      expect(unauthenticated).toBeInstanceOf(RespError);
      expect((unauthenticated as RespError).message).toMatch(/^NOAUTH/);
      expect(await sendCommands(redis.port, [['AUTH', 'p@ss "word"'], ['PING']])).toEqual(['OK', 'PONG']);
    } finally {
      await redis.close();
    }
  });

  it('serves TLS only with `tls`: certificates verified against the CA, no plaintext port', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'devservices-tls-'));
    try {
      const certs = await createTestCertificates(dir);
      const redis = new RedisServer({ password: 'tls pass', tls: certs });
      await redis.start();
      try {
        expect(redis.url).toBe(`rediss://:tls%20pass@127.0.0.1:${redis.port}`);
        const ca = await readFile(certs.caFile);
        expect(await sendCommands(redis.port, [['AUTH', 'tls pass'], ['CONFIG', 'GET', 'port'], ['CONFIG', 'GET', 'tls-port']], { tls: { ca } })).toEqual([
          'OK',
          ['port', '0'],
          ['tls-port', String(redis.port)],
        ]);
        // Plaintext on the TLS port gets no RESP reply; an unknown CA is refused by the client.
        await expect(sendCommands(redis.port, [['PING']], { timeoutMs: 1000 })).rejects.toThrow();
        await expect(sendCommands(redis.port, [['PING']], { tls: { ca: await readFile(join(dir, 'server.crt')) } })).rejects.toThrow(
          /self-signed certificate|unable to (verify|get issuer)/,
        );
      } finally {
        await redis.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('restarts on the same port, empty (nothing persisted)', async () => {
    const redis = new RedisServer();
    await redis.start();
    try {
      const { port, pid } = redis;
      await sendCommands(port, [['SET', 'k', 'v']]);
      await redis.stop();
      expect(redis.running).toBe(false);
      expect(isAlive(pid ?? 0)).toBe(false);
      await expect(sendCommands(port, [['PING']])).rejects.toThrow(/ECONNREFUSED/);
      await redis.start();
      expect(redis.port).toBe(port);
      expect(redis.pid).not.toBe(pid);
      expect(await sendCommands(port, [['GET', 'k']])).toEqual([null]);
      await redis.restart();
      expect(redis.port).toBe(port);
      expect(await sendCommands(port, [['PING']])).toEqual(['PONG']);
    } finally {
      await redis.close();
    }
  });

  it('pause() freezes the server and resume() brings it back; stop() works while paused', async () => {
    const redis = new RedisServer();
    await redis.start();
    try {
      redis.pause();
      await expect(sendCommands(redis.port, [['PING']], { timeoutMs: 300 })).rejects.toThrow(/no reply/);
      redis.resume();
      expect(await sendCommands(redis.port, [['PING']])).toEqual(['PONG']);
      redis.pause();
      const started = Date.now();
      await redis.stop();
      expect(Date.now() - started).toBeLessThan(4000);
    } finally {
      await redis.close();
    }
  });

  it('uses the given port', async () => {
    const port = await findFreePort();
    const redis = new RedisServer({ port });
    await redis.start();
    try {
      expect(redis.port).toBe(port);
      expect(await sendCommands(port, [['PING']])).toEqual(['PONG']);
    } finally {
      await redis.close();
    }
  });

  it('fails with the log when the port is taken by someone else', async () => {
    const blocker = createServer((socket) => socket.destroy());
    const port = await findFreePort();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    const redis = new RedisServer({ port });
    try {
      const err = await redis.start().catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'DevServiceError', code: DevServiceErrorCode.StartFailed });
      expect((err as Error).message).toMatch(/exited with code 1 before accepting connections/);
      expect((err as Error).message).toMatch(/Address already in use/);
      expect(redis.running).toBe(false);
    } finally {
      await redis.close();
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it('explains how to get redis-server when the binary is missing', async () => {
    const redis = new RedisServer({ bin: '/nonexistent/redis-server' });
    const err = await redis.start().catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'DevServiceError', code: DevServiceErrorCode.RedisNotFound });
    expect((err as Error).message).toContain('redis-server not found');
    expect((err as Error).message).toContain('apt-get install redis-server');
    expect((err as Error).message).toContain('REDIS_URL');
    await redis.close();
  });

  it('removes the temp dir it made on close', async () => {
    const redis = new RedisServer();
    await redis.start();
    const [dirReply] = await sendCommands(redis.port, [['CONFIG', 'GET', 'dir']]);
    const dir = (dirReply as string[])[1] ?? '';
    expect(existsSync(dir)).toBe(true);
    await redis.close();
    expect(existsSync(dir)).toBe(false);
  });

  it('does not outlive a parent that is SIGKILLed', async () => {
    // A child Node process starts a server and gets SIGKILL: no 'exit' handler runs there, the watchdog must act.
    const script = `
      const swc = require(${JSON.stringify(require.resolve('@swc/core'))});
      require.extensions['.ts'] = (module, filename) => {
        const { code } = swc.transformFileSync(filename, {
          jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' },
        });
        module._compile(code, filename);
      };
      const { RedisServer } = require(${JSON.stringify(require.resolve('./redis-server'))});
      const redis = new RedisServer();
      redis.start().then(() => console.log('PID ' + redis.pid + ' PORT ' + redis.port));
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
    const [, pid, port] = /^PID (\d+) PORT (\d+)$/.exec(line) ?? [];
    expect(await sendCommands(Number(port), [['PING']])).toEqual(['PONG']);
    expect(isAlive(Number(pid))).toBe(true);
    parent.kill('SIGKILL');
    expect(await waitUntil(() => !isAlive(Number(pid)))).toBe(true);
  });
});
