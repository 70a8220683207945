import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { classifyIp, parseAddress } from './address-classifier';
import { AllowList } from './allow-list';

export interface HostPolicyOptions {
  /** Allow loopback, private, link-local and other non-public addresses for every host. Default false. */
  allowPrivateNetworks?: boolean;
  /**
   * Entries exempt from the address check, for datasets served from the local network: host names or IP
   * addresses as written in URLs (`minio.internal`, `127.0.0.1`, `::1`), optionally with a port
   * (`minio.internal:9000`, `[::1]:8080`: that port only), or CIDR ranges (`10.0.0.0/8`: any address in it,
   * also one a name resolves to). An entry that cannot be parsed throws `AllowListError`. Default none.
   */
  allowHosts?: readonly string[];
}

/** A connection refused because of where it would go; the message says which address and why. */
export class AddressBlockedError extends Error {
  override name = 'AddressBlockedError';
}

/**
 * Decides which hosts an HTTP fetch may connect to. Public addresses are allowed; others only when
 * `allowPrivateNetworks` is set or the allow-list allows the URL's host and port (or the address). IP literals
 * are checked before connecting; names are checked on the addresses DNS returns, inside the socket's own lookup,
 * so the address checked is the address connected to (no window for DNS rebinding between check and connect).
 */
export class HostPolicy {
  private readonly allowPrivateNetworks: boolean;
  private readonly allowList: AllowList;
  private readonly lookup: LookupFunction;

  constructor(options: HostPolicyOptions = {}) {
    this.allowPrivateNetworks = options.allowPrivateNetworks ?? false;
    this.allowList = AllowList.parse(options.allowHosts ?? []);
    this.lookup = guardedLookup(this.allowList.hasRanges ? (address) => this.allowList.allowsAddress(address) : () => false);
  }

  /** True when connections to `hostname` on `port` skip the address check. */
  isExempt(hostname: string, port: number): boolean {
    return this.allowPrivateNetworks || this.allowList.allowsHost(hostname, port);
  }

  /**
   * For a URL's host and port (the scheme's default when the URL has none): throws `AddressBlockedError` for a
   * blocked IP literal, and returns the lookup function the connection must use (`undefined`: Node's default).
   */
  lookupFor(hostname: string, port: number): LookupFunction | undefined {
    if (this.isExempt(hostname, port)) return undefined;
    const address = parseAddress(hostname);
    if (address) {
      const kind = classifyIp(address);
      if (kind !== 'public') throw new AddressBlockedError(`${hostname.replace(/^\[|\]$/g, '')} is a ${kind} address`);
      return undefined;
    }
    return this.lookup;
  }
}

/**
 * `dns.lookup` that fails with `AddressBlockedError` when any address of the name is neither public nor
 * `allowed`. One public and one private address for the same name is refused too: that is what a rebinding
 * attack looks like.
 */
function guardedLookup(allowed: (address: string) => boolean): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) {
        callback(err, '');
        return;
      }
      for (const { address } of addresses) {
        const parsed = parseAddress(address);
        const kind = parsed ? classifyIp(parsed) : 'invalid';
        if (kind !== 'public' && !allowed(address)) {
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
}
