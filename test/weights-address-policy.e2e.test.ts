import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import path from 'node:path';
import { Harness, REPO, SAMPLES } from './support/harness';

/**
 * Weights URIs get the samples' address policy (issue 18: `--weights http://127.0.0.1:PORT/redir?to=...`
 * was followed to any loopback port, and Redis logged "Possible SECURITY ATTACK"): loopback and private
 * hosts only where LAYERTAP_ALLOW_HOSTS lists them, on every hop of a redirect.
 */
describe('weights URIs and the address policy', () => {
  const h = new Harness('wpolicy');
  let web: Server;
  let webPort: number;
  let bait: TcpServer;
  let baitPort: number;
  let baitConnections = 0;

  beforeAll(async () => {
    await h.start();
    const weights = await readFile(path.join(REPO, 'test/fixtures/parity/weights/vgg16-blocks1-2-seed11.torchvision.safetensors'));
    web = createHttpServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/redir') {
        res.writeHead(302, { location: url.searchParams.get('to') ?? '/' }).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': weights.length }).end(weights);
    });
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    webPort = (web.address() as AddressInfo).port;
    // Stands for Redis or any other loopback service a redirect could aim at.
    bait = createTcpServer((socket) => {
      baitConnections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => bait.listen(0, '127.0.0.1', resolve));
    baitPort = (bait.address() as AddressInfo).port;
  }, 60_000);
  afterAll(async () => {
    await new Promise((resolve) => web?.close(resolve));
    await new Promise((resolve) => bait?.close(resolve));
    await h.close();
  });

  const submit = (weights: string, env: Record<string, string> = {}) =>
    h.layertap(['submit', SAMPLES, '--weights', weights, '--layer', 'block1_pool', '--output', 's3://layertap/wp', '--image-size', '32', '--preprocess', 'torchvision'], env);

  it('refuses a loopback weights URI that LAYERTAP_ALLOW_HOSTS does not list, with exit 2 and one line', async () => {
    const res = await submit(`http://127.0.0.1:${webPort}/w.safetensors`);
    expect(res.code).toBe(2);
    expect(res.stderr.trim().split('\n')).toEqual([
      `layertap: error [address_blocked]: --weights http://127.0.0.1:${webPort}/w.safetensors: refusing to connect: 127.0.0.1 is a loopback address (list the host in LAYERTAP_ALLOW_HOSTS to allow it)`,
    ]);
  });

  it('refuses a redirect from an allowed host to another loopback port, which is never connected to', async () => {
    const res = await submit(`http://127.0.0.1:${webPort}/redir?to=http://127.0.0.1:${baitPort}/`, { LAYERTAP_ALLOW_HOSTS: `127.0.0.1:${webPort}` });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('refusing to connect');
    expect(baitConnections).toBe(0);
  });

  it('reads weights from a loopback host LAYERTAP_ALLOW_HOSTS lists', async () => {
    const res = await submit(`http://127.0.0.1:${webPort}/w.safetensors`, { LAYERTAP_ALLOW_HOSTS: `127.0.0.1:${webPort}` });
    expect(res.stderr).not.toContain('refusing');
    expect(res.code).toBe(0);
  });
});
