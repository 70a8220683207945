import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ManifestLine } from '@layertap/contracts';
import { findFreePort } from '@layertap/devservices';
import { BIN, Harness, SAMPLES } from './support/harness';
import { ImageServer, serve } from './support/image-server';

/**
 * `LAYERTAP_ALLOW_HOSTS` entries with a port or a CIDR range, against real image servers on loopback addresses
 * other than 127.0.0.1 (blocked by default as loopback): the worker fetches what the entries allow and nothing
 * else, and a list with an entry that cannot be parsed stops every process that reads it, at start.
 */
describe('LAYERTAP_ALLOW_HOSTS: host:port and CIDR entries', () => {
  const h = new Harness('allow-hosts');
  const a = new ImageServer('127.0.0.2'); // the port an entry names
  const b = new ImageServer('127.0.0.2'); // same address, another port
  const c = new ImageServer('127.0.0.3');
  const d = new ImageServer('127.0.0.5');
  const servers = [a, b, c, d];

  beforeAll(async () => {
    await h.start();
    const good = await readFile(path.join(SAMPLES, 'rocket.jpg'));
    for (const server of servers) await server.start().then((s) => s.route('/good.jpg', serve(good)));
  }, 60_000);
  afterAll(async () => {
    for (const server of servers) await server.close();
    await h.close();
  });

  /** Submits one sample per server, runs a worker with `allowHosts`, and returns each sample's outcome. */
  async function run(datasetId: string, allowHosts: string): Promise<Record<string, string>> {
    const list = path.join(h.tmp, `${datasetId}.jsonl`);
    const names = ['a', 'b', 'c', 'd'];
    await writeFile(list, servers.map((s, i) => JSON.stringify({ id: names[i], uri: `${s.origin}/good.jpg` })).join('\n') + '\n');
    const submit = await h.layertap(['submit', list, '--weights', 'random', '--layer', 'block1_pool', '--output', 's3://layertap/allow', '--image-size', '32', '--dataset-id', datasetId]);
    expect(submit.code).toBe(0);
    await h.runWorker([], { LAYERTAP_ALLOW_HOSTS: allowHosts });
    const manifest: ManifestLine[] = await h.manifest('layertap', 'allow', datasetId);
    return Object.fromEntries(manifest.map((l) => [l.id, l.status === 'ok' ? 'ok' : `${l.error?.code}: ${l.error?.message.replace(/^\S+: /, '')}`]));
  }

  const hits = () => servers.map((s) => s.hits('/good.jpg'));

  it('host:port allows that host on that port only', async () => {
    const before = hits();
    expect(await run('port', `127.0.0.2:${a.port}`)).toEqual({
      a: 'ok',
      b: 'address_blocked: refusing to connect: 127.0.0.2 is a loopback address (allowHosts or allowPrivateNetworks allow it)',
      c: 'address_blocked: refusing to connect: 127.0.0.3 is a loopback address (allowHosts or allowPrivateNetworks allow it)',
      d: 'address_blocked: refusing to connect: 127.0.0.5 is a loopback address (allowHosts or allowPrivateNetworks allow it)',
    });
    // Only the allowed server was connected to.
    expect(hits().map((n, i) => n - before[i]!)).toEqual([1, 0, 0, 0]);
  });

  it('a CIDR range allows every address in it, on any port', async () => {
    const before = hits();
    expect(await run('range', '127.0.0.2/31')).toEqual({
      a: 'ok',
      b: 'ok',
      c: 'ok',
      d: 'address_blocked: refusing to connect: 127.0.0.5 is a loopback address (allowHosts or allowPrivateNetworks allow it)',
    });
    expect(hits().map((n, i) => n - before[i]!)).toEqual([1, 1, 1, 0]);
  });

  it.each([
    ['127.0.0.2:99999', '"99999" is not a port (1-65535)'],
    ['10.0.0.0/33', 'not a CIDR range'],
    ['http://minio:9000', 'not a CIDR range'],
    ['minio, *.internal', '"*.internal" is not a host name'],
  ])('%j stops the worker and the dashboard at start with exit code 2, naming the entry', async (entries, why) => {
    const bad = entries.split(',').pop()!.trim();
    const expected = `LAYERTAP_ALLOW_HOSTS: invalid allow-list entry "${bad}": ${why}`;
    const forms = 'write a host name (images.internal), host:port (images.internal:8080), an IPv4 or IPv6 address (10.0.0.5, fd00::5), [IPv6]:port ([fd00::5]:8080) or a CIDR range (10.0.0.0/8, fd00::/8)';
    const worker = await h.run(BIN.worker, ['--exit-when-idle'], { LAYERTAP_ALLOW_HOSTS: entries }, 60_000);
    const dashboard = await h.run(BIN.dashboard, ['--port', String(await findFreePort())], {
      LAYERTAP_ALLOW_HOSTS: entries, LAYERTAP_DASHBOARD_USER: 'ops', LAYERTAP_DASHBOARD_PASSWORD: 'pw',
    }, 60_000);
    for (const [name, res] of [['layertap-worker', worker], ['layertap-dashboard', dashboard]] as const) {
      expect({ name, code: res.code }).toEqual({ name, code: 2 });
      // The worker's last words are a line of its JSON log; the dashboard's a line of text.
      const said = name === 'layertap-worker' ? (JSON.parse(res.stderr) as { msg: string }).msg : res.stderr;
      expect(said).toContain(name === 'layertap-worker' ? expected : `${name}: ${expected}`);
      expect(said).toContain(forms);
    }
  });
});
