import { networkInterfaces, hostname } from 'node:os';
import type { RequestHandler } from 'express';

/** Host names every dashboard answers to: loopback, by name and address. */
const LOCAL_NAMES = ['localhost', '127.0.0.1', '::1'];

/** `Host` header value -> its host name in lower case, without port or IPv6 brackets. */
export function hostOf(header: string): string {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') < 0 ? undefined : h.indexOf(']'));
  const colon = h.indexOf(':');
  // More than one colon and no brackets: an IPv6 address without a port.
  if (colon >= 0 && h.indexOf(':', colon + 1) >= 0) return h;
  return colon < 0 ? h : h.slice(0, colon);
}

/**
 * The host names the dashboard answers to by default: the listen address and the loopback names; when it
 * listens on every address (0.0.0.0, ::), this machine's interface addresses and host name too.
 */
export function defaultAllowedHosts(listenHost: string): string[] {
  const names = new Set([...LOCAL_NAMES, hostOf(listenHost)]);
  if (['0.0.0.0', '::', ''].includes(hostOf(listenHost))) {
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) names.add(hostOf(a.address));
    names.add(hostname().toLowerCase());
  }
  return [...names];
}

/**
 * Refuses requests whose `Host` header names no allowed host (421), before authentication: a page rebound
 * by DNS to the dashboard's address sends its own host name, so it reads and writes nothing (DNS rebinding
 * defeats same-origin checks, and `--insecure-no-auth` leaves no password in the way). `*` allows any host.
 */
export function hostGuard(allowed: readonly string[]): RequestHandler {
  const any = allowed.includes('*');
  const names = new Set(allowed.map(hostOf));
  return (req, res, next) => {
    const host = req.headers.host;
    if (any || (host !== undefined && names.has(hostOf(host)))) return next();
    res
      .status(421)
      .type('text/plain')
      .send(`host ${JSON.stringify(host ?? '')} is not one this dashboard answers to (add it to LAYERTAP_DASHBOARD_ALLOWED_HOSTS)\n`);
  };
}
