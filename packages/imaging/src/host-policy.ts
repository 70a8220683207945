import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { classifyAddress } from './address-classifier';

export interface HostPolicyOptions {
  /** Allow loopback, private, link-local and other non-public addresses for every host. Default false. */
  allowPrivateNetworks?: boolean;
  /**
   * Host names or IP addresses (as written in URLs, e.g. `127.0.0.1`, `::1`, `minio.internal`) exempt from the
   * address check, for datasets served from the local network. Default none.
   */
  allowHosts?: readonly string[];
}

/** A connection refused because of where it would go; the message says which address and why. */
export class AddressBlockedError extends Error {
  override name = 'AddressBlockedError';
}

/** URL host names are lower-case, IDNA-encoded and IPv6 addresses are compressed: compare in that form. */
function canonicalHost(host: string): string {
  const bare = host.replace(/^\[|\]$/g, '');
  try {
    return new URL(`http://${isIP(bare) === 6 ? `[${bare}]` : bare}/`).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return bare.toLowerCase();
  }
}

/**
 * Decides which hosts an HTTP fetch may connect to. Public addresses are allowed; others only when
 * `allowPrivateNetworks` is set or the URL's host is in `allowHosts`. IP literals are checked before connecting;
 * names are checked on the addresses DNS returns, inside the socket's own lookup, so the address checked is the
 * address connected to (no window for DNS rebinding between check and connect).
 */
export class HostPolicy {
  private readonly allowPrivateNetworks: boolean;
  private readonly allowHosts: ReadonlySet<string>;

  constructor(options: HostPolicyOptions = {}) {
    this.allowPrivateNetworks = options.allowPrivateNetworks ?? false;
    this.allowHosts = new Set((options.allowHosts ?? []).map(canonicalHost));
  }

  /** True when connections to `hostname` skip the address check. */
  isExempt(hostname: string): boolean {
    return this.allowPrivateNetworks || this.allowHosts.has(canonicalHost(hostname));
  }

  /**
   * For a URL host: throws `AddressBlockedError` for a blocked IP literal, and returns the lookup function the
   * connection must use (`undefined`: Node's default).
   */
  lookupFor(hostname: string): LookupFunction | undefined {
    if (this.isExempt(hostname)) return undefined;
    const bare = hostname.replace(/^\[|\]$/g, '');
    if (isIP(bare) !== 0) {
      const kind = classifyAddress(bare);
      if (kind !== 'public') throw new AddressBlockedError(`${bare} is a ${kind} address`);
      return undefined;
    }
    return guardedLookup;
  }
}

/**
 * `dns.lookup` that fails with `AddressBlockedError` when any address of the name is not public. One public and
 * one private address for the same name is refused too: that is what a rebinding attack looks like.
 */
const guardedLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
    if (err) {
      callback(err, '');
      return;
    }
    for (const { address } of addresses) {
      const kind = classifyAddress(address);
      if (kind !== 'public') {
        callback(new AddressBlockedError(`${hostname} resolves to ${address}, a ${kind} address`), '');
        return;
      }
    }
    const first = addresses[0];
    if (options.all) callback(null, addresses);
    else if (first) callback(null, first.address, first.family);
    else callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), '');
  });
};
