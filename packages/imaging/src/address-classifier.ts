import { isIP } from 'node:net';

/**
 * What kind of network an IP address belongs to. Everything but `public` is refused by default when fetching
 * over HTTP: a dataset URL must not reach the worker's own machine, its private network or the cloud metadata
 * service (169.254.169.254, fd00:ec2::254).
 */
export type AddressClass =
  | 'public'
  | 'unspecified' // 0.0.0.0/8, ::
  | 'loopback' // 127.0.0.0/8, ::1
  | 'private' // 10/8, 172.16/12, 192.168/16, fec0::/10 (deprecated site-local), 64:ff9b:1::/48
  | 'shared' // 100.64.0.0/10, carrier-grade NAT
  | 'link-local' // 169.254.0.0/16 (incl. cloud metadata), fe80::/10
  | 'unique-local' // fc00::/7 (incl. AWS' fd00:ec2::254)
  | 'multicast' // 224.0.0.0/4, ff00::/8
  | 'reserved' // documentation, benchmarking, protocol assignments, 240/4, broadcast, discard, Teredo
  | 'invalid'; // not an IP address

interface V4Range {
  base: number;
  bits: number;
  kind: AddressClass;
}

function v4(cidr: string, kind: AddressClass): V4Range {
  const [address = '', bits = '32'] = cidr.split('/');
  return { base: parseIPv4(address) ?? 0, bits: Number(bits), kind };
}

const IPV4_RANGES: readonly V4Range[] = [
  v4('0.0.0.0/8', 'unspecified'),
  v4('10.0.0.0/8', 'private'),
  v4('100.64.0.0/10', 'shared'),
  v4('127.0.0.0/8', 'loopback'),
  v4('169.254.0.0/16', 'link-local'),
  v4('172.16.0.0/12', 'private'),
  v4('192.0.0.0/24', 'reserved'),
  v4('192.0.2.0/24', 'reserved'),
  v4('192.88.99.0/24', 'reserved'),
  v4('192.168.0.0/16', 'private'),
  v4('198.18.0.0/15', 'reserved'),
  v4('198.51.100.0/24', 'reserved'),
  v4('203.0.113.0/24', 'reserved'),
  v4('224.0.0.0/4', 'multicast'),
  v4('240.0.0.0/4', 'reserved'), // includes 255.255.255.255
];

/** Dotted-quad IPv4 to an unsigned 32-bit number; `undefined` if it is not exactly four decimal octets. */
export function parseIPv4(address: string): number | undefined {
  const parts = address.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

/** IPv6 text (with `::`, an embedded dotted quad, or a `%zone`) to eight 16-bit groups; `undefined` if invalid. */
export function parseIPv6(address: string): number[] | undefined {
  let text = address.replace(/^\[|\]$/g, '');
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  if (isIP(text) !== 6) return undefined;

  // A trailing dotted quad (::ffff:1.2.3.4) is the last two groups.
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    const embedded = parseIPv4(text.slice(lastColon + 1));
    if (embedded === undefined) return undefined;
    tail = [embedded >>> 16, embedded & 0xffff];
    text = text.slice(0, lastColon + 1);
    if (!text.endsWith('::')) text = text.slice(0, -1);
  }

  const groupsWanted = 8 - tail.length;
  const [head = '', rest] = text.split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const left = parse(head);
  let groups: number[];
  if (rest === undefined) {
    groups = left;
  } else {
    const right = parse(rest);
    groups = [...left, ...new Array<number>(groupsWanted - left.length - right.length).fill(0), ...right];
  }
  groups = [...groups, ...tail];
  if (groups.length !== 8 || groups.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff)) return undefined;
  return groups;
}

export function classifyIPv4(address: number): AddressClass {
  for (const range of IPV4_RANGES) {
    const size = 2 ** (32 - range.bits);
    if (address >= range.base && address < range.base + size) return range.kind;
  }
  return 'public';
}

function embeddedV4(high: number, low: number): number {
  return high * 65536 + low;
}

export function classifyIPv6(groups: readonly number[]): AddressClass {
  const g = (i: number): number => groups[i] ?? 0;
  const zeroUpTo = (n: number): boolean => groups.slice(0, n).every((x) => x === 0);

  if (zeroUpTo(8)) return 'unspecified';
  if (zeroUpTo(7) && g(7) === 1) return 'loopback';
  // ::ffff:a.b.c.d (IPv4-mapped) and the deprecated ::a.b.c.d (IPv4-compatible): the IPv4 address decides.
  if (zeroUpTo(5) && (g(5) === 0xffff || g(5) === 0)) return classifyIPv4(embeddedV4(g(6), g(7)));
  // 64:ff9b::/96, NAT64 well-known prefix: traffic goes to the embedded IPv4 address.
  if (g(0) === 0x64 && g(1) === 0xff9b && g(2) === 0 && g(3) === 0 && g(4) === 0 && g(5) === 0) {
    return classifyIPv4(embeddedV4(g(6), g(7)));
  }
  if (g(0) === 0x64 && g(1) === 0xff9b && g(2) === 1) return 'private'; // 64:ff9b:1::/48, local-use NAT64
  // 2002::/16, 6to4: the IPv4 address is in groups 1-2.
  if (g(0) === 0x2002) return classifyIPv4(embeddedV4(g(1), g(2)));
  if (g(0) === 0x2001 && g(1) === 0) return 'reserved'; // 2001::/32 Teredo (tunnels to an obfuscated IPv4)
  if (g(0) === 0x2001 && g(1) === 0xdb8) return 'reserved'; // documentation
  if (g(0) === 0x0100 && g(1) === 0 && g(2) === 0 && g(3) === 0) return 'reserved'; // 100::/64 discard
  if ((g(0) & 0xfe00) === 0xfc00) return 'unique-local';
  if ((g(0) & 0xffc0) === 0xfe80) return 'link-local';
  if ((g(0) & 0xffc0) === 0xfec0) return 'private';
  if ((g(0) & 0xff00) === 0xff00) return 'multicast';
  return 'public';
}

/** Classifies an IPv4 or IPv6 address given as text (IPv6 may be bracketed or carry a `%zone`). */
export function classifyAddress(address: string): AddressClass {
  const v4address = parseIPv4(address);
  if (v4address !== undefined) return classifyIPv4(v4address);
  const groups = parseIPv6(address);
  if (groups !== undefined) return classifyIPv6(groups);
  return 'invalid';
}

/** True for every address that is not on the public internet (and for text that is not an address at all). */
export function isBlockedAddress(address: string): boolean {
  return classifyAddress(address) !== 'public';
}
