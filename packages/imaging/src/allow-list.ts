import ipaddr from 'ipaddr.js';
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { parseAddress, type IpAddress } from './address-classifier';

/** The forms an allow-list entry may take, for error messages and docs. */
export const ALLOW_ENTRY_FORMS =
  'a host name (images.internal), host:port (images.internal:8080), an IPv4 or IPv6 address (10.0.0.5, fd00::5), ' +
  '[IPv6]:port ([fd00::5]:8080) or a CIDR range (10.0.0.0/8, fd00::/8)';

/** An allow-list entry that cannot be parsed; the message names the entry and the accepted forms. */
export class AllowListError extends ValidationError {
  override name = 'AllowListError';
}

/**
 * One parsed entry. A `host` entry matches the host of a URL as written (a name, or an address compared as an
 * address), on any port or on `port` only. A `range` entry matches any address in it: an address written in
 * the URL or one a name resolves to.
 */
export type AllowEntry =
  | { kind: 'name'; name: string; port?: number }
  | { kind: 'address'; address: IpAddress; port?: number }
  | { kind: 'range'; range: [IpAddress, number] };

// RFC 1123 labels (and `_`, which internal DNS names use); an optional trailing dot.
const HOST_NAME = /^(?=.{1,253}\.?$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/i;

function refuse(entry: string, why: string): AllowListError {
  return new AllowListError(ErrorCode.InvalidRequest, `invalid allow-list entry "${entry}": ${why}; write ${ALLOW_ENTRY_FORMS}`);
}

function parsePort(entry: string, text: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 1 && port <= 65535)) throw refuse(entry, `"${text}" is not a port (1-65535)`);
  return port;
}

function parseRange(entry: string): AllowEntry {
  const valid = ipaddr.IPv4.isValidCIDRFourPartDecimal(entry) || (ipaddr.IPv6.isValidCIDR(entry) && !entry.includes('%'));
  if (!valid) throw refuse(entry, 'not a CIDR range (an IPv4 or IPv6 address, "/", a prefix length up to 32 or 128)');
  return { kind: 'range', range: ipaddr.parseCIDR(entry) };
}

/** An IPv4 address or a host name (without a port). */
function parseHost(entry: string, host: string, port: number | undefined): AllowEntry {
  const withPort = port === undefined ? {} : { port };
  if (/^[\d.]+$/.test(host)) {
    if (!ipaddr.IPv4.isValidFourPartDecimal(host)) throw refuse(entry, `"${host}" is not an IPv4 address (four decimal numbers 0-255)`);
    return { kind: 'address', address: ipaddr.IPv4.parse(host), ...withPort };
  }
  if (!HOST_NAME.test(host)) throw refuse(entry, `"${host}" is not a host name`);
  return { kind: 'name', name: host.toLowerCase(), ...withPort };
}

function parseIPv6(entry: string, text: string, port: number | undefined): AllowEntry {
  // URLs cannot carry a zone (`%eth0`), so an entry with one could never match.
  if (!ipaddr.IPv6.isValid(text) || text.includes('%')) throw refuse(entry, `"${text}" is not an IPv6 address`);
  return { kind: 'address', address: ipaddr.IPv6.parse(text), ...(port === undefined ? {} : { port }) };
}

/** Parses one entry, or throws `AllowListError` naming it and the accepted forms. */
export function parseAllowEntry(text: string): AllowEntry {
  const entry = text.trim();
  if (!entry) throw refuse(text, 'empty');
  if (entry.includes('/')) return parseRange(entry);
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(entry);
  if (bracketed) return parseIPv6(entry, bracketed[1] ?? '', bracketed[2] === undefined ? undefined : parsePort(entry, bracketed[2]));
  const colons = entry.split(':').length - 1;
  if (colons > 1) return parseIPv6(entry, entry, undefined);
  if (colons === 1) {
    const [host = '', port = ''] = entry.split(':');
    return parseHost(entry, host, parsePort(entry, port));
  }
  return parseHost(entry, entry, undefined);
}

/** IPv4-mapped IPv6 (::ffff:10.0.0.5) as the IPv4 address it is, so that IPv4 ranges contain it. */
function unmapped(address: IpAddress): IpAddress {
  return address instanceof ipaddr.IPv6 && address.isIPv4MappedAddress() ? address.toIPv4Address() : address;
}

function sameAddress(a: IpAddress, b: IpAddress): boolean {
  return a.kind() === b.kind() && a.toNormalizedString() === b.toNormalizedString();
}

/**
 * Hosts and ranges exempt from the private-address check of HTTP fetches (`LAYERTAP_ALLOW_HOSTS`). Every entry
 * is parsed up front: a list with an entry that cannot be parsed is refused whole, never partly applied.
 */
export class AllowList {
  private constructor(private readonly entries: readonly AllowEntry[]) {}

  /**
   * Parses `entries` (each trimmed), or throws `AllowListError` for the first bad one; `setting` (such as
   * `LAYERTAP_ALLOW_HOSTS`) starts the message when given.
   */
  static parse(entries: readonly string[], setting?: string): AllowList {
    try {
      return new AllowList(entries.map(parseAllowEntry));
    } catch (err) {
      if (setting && err instanceof AllowListError) throw new AllowListError(err.code, `${setting}: ${err.message}`);
      throw err;
    }
  }

  /** Whether the list has CIDR ranges, which also apply to the addresses names resolve to. */
  get hasRanges(): boolean {
    return this.entries.some((e) => e.kind === 'range');
  }

  /**
   * Whether a URL's host (as `URL.hostname` gives it: IPv6 in brackets) on `port` (the URL's port, or the
   * scheme's default) is allowed by a host entry, or, for an address, by a range.
   */
  allowsHost(hostname: string, port: number): boolean {
    const address = parseAddress(hostname);
    const name = hostname.toLowerCase();
    return this.entries.some((e) => {
      if (e.kind === 'range') return address !== undefined && this.inRange(address, e.range);
      if (e.port !== undefined && e.port !== port) return false;
      return e.kind === 'name' ? address === undefined && e.name === name : address !== undefined && sameAddress(address, e.address);
    });
  }

  /** Whether an address a name resolved to lies in one of the ranges. */
  allowsAddress(text: string): boolean {
    const address = parseAddress(text);
    return address !== undefined && this.entries.some((e) => e.kind === 'range' && this.inRange(address, e.range));
  }

  private inRange(address: IpAddress, range: [IpAddress, number]): boolean {
    return [address, unmapped(address)].some((a) => a.kind() === range[0].kind() && a.match(range));
  }
}
