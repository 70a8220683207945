import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { LoginLimiter } from './login-limit';

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Compares secrets in constant time (hashing first so lengths do not leak). */
export function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/**
 * HTTP Basic authentication for every route; answers 401 with a challenge otherwise. With a `limiter`, wrong
 * credentials count against the client's address and past its limit it gets 429 (a request without
 * credentials, a browser's first, is no failed login).
 */
export function basicAuth(user: string, password: string, realm = 'layertap', limiter?: LoginLimiter): RequestHandler {
  return (req, res, next) => {
    const client = req.socket.remoteAddress ?? 'unknown';
    const wait = limiter?.retryAfter(client) ?? 0;
    if (wait > 0) {
      res.set('Retry-After', String(wait));
      res.status(429).type('text/plain').send(`too many failed logins from this address: try again in ${wait} s\n`);
      return;
    }
    const header = req.headers.authorization ?? '';
    const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header);
    if (m?.[1]) {
      const decoded = Buffer.from(m[1], 'base64').toString('utf8');
      const sep = decoded.indexOf(':');
      if (sep >= 0 && safeEqual(decoded.slice(0, sep), user) && safeEqual(decoded.slice(sep + 1), password)) return next();
    }
    if (header !== '') limiter?.fail(client);
    res.set('WWW-Authenticate', `Basic realm="${realm}", charset="UTF-8"`);
    res.status(401).type('text/plain').send('authentication required\n');
  };
}
