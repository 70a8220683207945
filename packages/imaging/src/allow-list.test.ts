import { ErrorCode } from '@layertap/contracts';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ALLOW_ENTRY_FORMS, AllowList, AllowListError, parseAllowEntry } from './allow-list';
import { ImageFetcher } from './image-fetcher';

/** The entry in a readable shape: kind, then address/name/range as text, then the port. */
function shape(text: string): string {
  const e = parseAllowEntry(text);
  if (e.kind === 'range') return `range ${e.range[0].toString()}/${e.range[1]}`;
  const host = e.kind === 'name' ? e.name : e.address.toString();
  return `${e.kind} ${host}${e.port === undefined ? '' : ` port ${e.port}`}`;
}

function refusal(text: string): AllowListError {
  try {
    parseAllowEntry(text);
  } catch (err) {
    expect(err).toBeInstanceOf(AllowListError);
    return err as AllowListError;
  }
  throw new Error(`"${text}" was accepted`);
}

describe('parseAllowEntry', () => {
  it.each([
    ['images.internal', 'name images.internal'],
    ['Images.Internal.', 'name images.internal.'],
    ['minio', 'name minio'],
    ['minio_1.svc', 'name minio_1.svc'],
    ['minio:9000', 'name minio port 9000'],
    [' 127.0.0.2:9999 ', 'address 127.0.0.2 port 9999'],
    ['10.0.0.5', 'address 10.0.0.5'],
    ['::1', 'address ::1'],
    ['fd00:0:0::5', 'address fd00::5'],
    ['[fd00::5]', 'address fd00::5'],
    ['[::1]:8080', 'address ::1 port 8080'],
    ['10.0.0.0/8', 'range 10.0.0.0/8'],
    ['127.0.0.2/31', 'range 127.0.0.2/31'],
    ['fd00::/8', 'range fd00::/8'],
    ['192.168.1.7/32', 'range 192.168.1.7/32'],
  ])('%s is %s', (text, expected) => {
    expect(shape(text)).toBe(expected);
  });

  it.each([
    ['', 'empty'],
    ['127.0.0.2:99999', '"99999" is not a port (1-65535)'],
    ['127.0.0.2:0', '"0" is not a port (1-65535)'],
    ['minio:http', '"http" is not a port (1-65535)'],
    ['minio:', '"" is not a port (1-65535)'],
    ['http://minio:9000', 'not a CIDR range'],
    ['10.0.0.0/33', 'not a CIDR range'],
    ['10.0.0/8', 'not a CIDR range'],
    ['fd00::/129', 'not a CIDR range'],
    ['10.0.0.0/8:9000', 'not a CIDR range'],
    ['256.1.1.1', '"256.1.1.1" is not an IPv4 address'],
    ['127.1', '"127.1" is not an IPv4 address'],
    ['10.0.0', '"10.0.0" is not an IPv4 address'],
    ['*.internal', '"*.internal" is not a host name'],
    ['-minio', '"-minio" is not a host name'],
    ['minio..internal', '"minio..internal" is not a host name'],
    ['fd00::5:8080:', '"fd00::5:8080:" is not an IPv6 address'],
    ['fe80::1%eth0', '"fe80::1%eth0" is not an IPv6 address'],
    ['[fd00::5]:', '"" is not a port (1-65535)'],
    ['[minio]:80', '"minio" is not an IPv6 address'],
  ])('refuses %j: %s', (text, why) => {
    const err = refusal(text);
    expect(err.code).toBe(ErrorCode.InvalidRequest);
    expect(err.message).toContain(`invalid allow-list entry "${text.trim()}": ${why}`);
    // Every refusal lists what would have been accepted.
    expect(err.message.endsWith(`; write ${ALLOW_ENTRY_FORMS}`)).toBe(true);
  });

  it('AllowList.parse refuses the whole list for one bad entry, naming it', () => {
    expect(() => AllowList.parse(['minio', '10.0.0.0/8', 'bad entry'])).toThrow(/^invalid allow-list entry "bad entry": "bad entry" is not a host name; write /);
    expect(() => AllowList.parse(['minio:0'], 'LAYERTAP_ALLOW_HOSTS')).toThrow(/^LAYERTAP_ALLOW_HOSTS: invalid allow-list entry "minio:0": "0" is not a port/);
  });
});

describe('AllowList', () => {
  const list = AllowList.parse(['minio', 'images.internal:8080', '127.0.0.2:9999', '[::1]:7000', '10.1.0.0/16', 'fd00::/8']);

  it.each([
    ['minio', 80, true],
    ['minio', 9000, true],
    ['MINIO', 9000, true], // URL hosts are lower-case anyway
    ['images.internal', 8080, true],
    ['images.internal', 80, false],
    ['127.0.0.2', 9999, true],
    ['127.0.0.2', 18082, false], // the port of the entry is not dropped
    ['127.0.0.3', 9999, false],
    ['[::1]', 7000, true],
    ['[::1]', 7001, false],
    ['[0:0::1]', 7000, true], // compared as addresses
    ['10.1.200.3', 443, true],
    ['10.2.0.1', 443, false],
    ['[::ffff:10.1.0.9]', 80, true], // IPv4-mapped: the range of its IPv4 address
    ['[fd12::1]', 80, true],
    ['[fe80::1]', 80, false],
    ['10.1.0.1.nip.io', 80, false], // a name is not an address
  ])('host %s port %d: %s', (hostname, port, allowed) => {
    expect(list.allowsHost(hostname, port)).toBe(allowed);
  });

  it('only ranges allow the addresses a name resolves to', () => {
    expect(list.hasRanges).toBe(true);
    expect(['10.1.2.3', '::ffff:10.1.2.3', 'fd00::1', '127.0.0.2', '::1', '10.0.0.1', 'not-an-address'].map((a) => list.allowsAddress(a))).toEqual([
      true, true, true, false, false, false, false,
    ]);
    expect(AllowList.parse(['minio']).hasRanges).toBe(false);
  });
});

/** A real HTTP server on one loopback address that answers every request with its own address and port. */
async function serverOn(host: string): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer((req, res) => void res.end(`${host}:${(server.address() as AddressInfo).port}`));
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

describe('ImageFetcher with port and range entries (real servers on 127.0.0.2 and 127.0.0.3)', () => {
  const servers: http.Server[] = [];
  let a: number; // 127.0.0.2
  let b: number; // 127.0.0.2, another port
  let c: number; // 127.0.0.3

  beforeAll(async () => {
    for (const [host, set] of [['127.0.0.2', (p: number) => (a = p)], ['127.0.0.2', (p: number) => (b = p)], ['127.0.0.3', (p: number) => (c = p)]] as const) {
      const { server, port } = await serverOn(host);
      servers.push(server);
      set(port);
    }
  });
  afterAll(() => {
    for (const server of servers) server.close();
  });

  /** What each URL gives: the body, or the failure code. */
  async function outcomes(fetcher: ImageFetcher, urls: string[]): Promise<string[]> {
    const out = await Promise.all(urls.map((u) => fetcher.fetch(u).then((b) => b.toString(), (e: { code?: string }) => e.code ?? 'error')));
    fetcher.close();
    return out;
  }

  it('host:port allows that port only', async () => {
    const fetcher = new ImageFetcher({ allowHosts: [`127.0.0.2:${a}`] });
    expect(await outcomes(fetcher, [`http://127.0.0.2:${a}/x.jpg`, `http://127.0.0.2:${b}/x.jpg`, `http://127.0.0.3:${c}/x.jpg`])).toEqual([
      `127.0.0.2:${a}`, ErrorCode.AddressBlocked, ErrorCode.AddressBlocked,
    ]);
  });

  it('a CIDR range allows every address in it, on any port, literal or resolved', async () => {
    const fetcher = new ImageFetcher({ allowHosts: ['127.0.0.2/31'] });
    expect(await outcomes(fetcher, [`http://127.0.0.2:${a}/x.jpg`, `http://127.0.0.2:${b}/x.jpg`, `http://127.0.0.3:${c}/x.jpg`, `http://127.0.0.4:${c}/x.jpg`])).toEqual([
      `127.0.0.2:${a}`, `127.0.0.2:${b}`, `127.0.0.3:${c}`, ErrorCode.AddressBlocked,
    ]);
    // localhost resolves to 127.0.0.1 (and ::1): outside the range, refused; a range covering both allows it.
    expect(await outcomes(new ImageFetcher({ allowHosts: ['127.0.0.2/31'] }), [`http://localhost:${a}/x.jpg`])).toEqual([ErrorCode.AddressBlocked]);
    const local = await serverOn('127.0.0.1');
    try {
      expect(await outcomes(new ImageFetcher({ allowHosts: ['127.0.0.0/8', '::1/128'] }), [`http://localhost:${local.port}/x.jpg`])).toEqual([`127.0.0.1:${local.port}`]);
    } finally {
      local.server.close();
    }
  });

  it('refuses a list with an entry that cannot be parsed when the fetcher is made', () => {
    expect(() => new ImageFetcher({ allowHosts: ['127.0.0.2:99999'] })).toThrow(AllowListError);
  });
});
