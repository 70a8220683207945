import ipaddr from 'ipaddr.js';

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

export type IpAddress = ipaddr.IPv4 | ipaddr.IPv6;

// Our own table rather than ipaddr.js' `range()` names: these classes are what the refusal messages say, and
// the table is the policy (first match wins).
const IPV4_RANGES = ranges((cidr) => ipaddr.IPv4.parseCIDR(cidr), [
  ['0.0.0.0/8', 'unspecified'],
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'shared'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'reserved'],
  ['192.0.2.0/24', 'reserved'],
  ['192.88.99.0/24', 'reserved'],
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'reserved'],
  ['198.51.100.0/24', 'reserved'],
  ['203.0.113.0/24', 'reserved'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved'], // includes 255.255.255.255
]);

const IPV6_RANGES = ranges((cidr) => ipaddr.IPv6.parseCIDR(cidr), [
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['64:ff9b:1::/48', 'private'], // local-use NAT64
  ['2001::/32', 'reserved'], // Teredo (tunnels to an obfuscated IPv4)
  ['2001:db8::/32', 'reserved'], // documentation
  ['100::/64', 'reserved'], // discard
  ['fc00::/7', 'unique-local'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'private'], // deprecated site-local
  ['ff00::/8', 'multicast'],
]);

/** IPv6 ranges that carry an IPv4 address, which then decides: where in the eight groups it sits. */
const IPV4_CARRIERS: ReadonlyArray<{ range: [ipaddr.IPv6, number]; groups: [number, number] }> = [
  { range: ipaddr.IPv6.parseCIDR('::ffff:0:0/96'), groups: [6, 7] }, // IPv4-mapped
  { range: ipaddr.IPv6.parseCIDR('::/96'), groups: [6, 7] }, // deprecated IPv4-compatible
  { range: ipaddr.IPv6.parseCIDR('64:ff9b::/96'), groups: [6, 7] }, // NAT64 well-known prefix
  { range: ipaddr.IPv6.parseCIDR('2002::/16'), groups: [1, 2] }, // 6to4
];

function ranges<T extends IpAddress>(parse: (cidr: string) => [T, number], table: ReadonlyArray<[string, AddressClass]>) {
  return table.map(([cidr, kind]) => ({ range: parse(cidr), kind }));
}

/**
 * An IP address as URLs and DNS answers write it: a dotted quad (exactly four decimal octets; no `127.1` or
 * `0x7f.1` forms), or IPv6 text, optionally in brackets or with a `%zone`. `undefined` for anything else.
 */
export function parseAddress(text: string): IpAddress | undefined {
  const bare = /^\[(.*)\]$/.exec(text)?.[1] ?? text;
  if (ipaddr.IPv4.isValidFourPartDecimal(bare)) return ipaddr.IPv4.parse(bare);
  if (ipaddr.IPv6.isValid(bare)) return ipaddr.IPv6.parse(bare);
  return undefined;
}

function classifyIPv4(address: ipaddr.IPv4): AddressClass {
  return IPV4_RANGES.find(({ range }) => address.match(range))?.kind ?? 'public';
}

function classifyIPv6(address: ipaddr.IPv6): AddressClass {
  // Exact addresses first (:: and ::1 also lie in the IPv4-compatible ::/96).
  const exact = IPV6_RANGES.find(({ range }) => range[1] === 128 && address.match(range));
  if (exact) return exact.kind;
  const carrier = IPV4_CARRIERS.find(({ range }) => address.match(range));
  if (carrier) {
    const [high, low] = carrier.groups.map((i) => address.parts[i] ?? 0) as [number, number];
    return classifyIPv4(new ipaddr.IPv4([high >> 8, high & 0xff, low >> 8, low & 0xff]));
  }
  return IPV6_RANGES.find(({ range }) => address.match(range))?.kind ?? 'public';
}

/** Classifies a parsed address; IPv4 hidden in IPv6 (mapped, compatible, NAT64, 6to4) is judged as that IPv4. */
export function classifyIp(address: IpAddress): AddressClass {
  return address.kind() === 'ipv4' ? classifyIPv4(address as ipaddr.IPv4) : classifyIPv6(address as ipaddr.IPv6);
}

/** Classifies an IPv4 or IPv6 address given as text (IPv6 may be bracketed or carry a `%zone`). */
export function classifyAddress(address: string): AddressClass {
  const parsed = parseAddress(address);
  return parsed ? classifyIp(parsed) : 'invalid';
}

/** True for every address that is not on the public internet (and for text that is not an address at all). */
export function isBlockedAddress(address: string): boolean {
  return classifyAddress(address) !== 'public';
}
