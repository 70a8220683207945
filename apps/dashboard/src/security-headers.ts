import type { RequestHandler } from 'express';

/**
 * The Content-Security-Policy of every response that does not set its own (layertap's pages set a stricter one
 * with a nonce for their inline script). Written for Bull Board's pages: its scripts, styles and
 * syntax-highlighting web worker come from /queues/static, its markup has inline styles, its `<base>` is
 * /queues/ and it reads its API with fetch. Nothing from other origins: its Google Fonts stylesheet is refused
 * (it falls back to system fonts), so no page tells a third party who looks at the queues.
 */
export const DEFAULT_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "worker-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * Headers for every response, Bull Board's and the 401 challenge included: the CSP above, no framing by any
 * site (`frame-ancestors` and, for older browsers, `X-Frame-Options`), no content sniffing, and no `Referer`
 * (which carries dataset ids and image URIs) to other origins.
 */
export function securityHeaders(): RequestHandler {
  return (_req, res, next) => {
    res.set({
      'Content-Security-Policy': DEFAULT_CSP,
      'X-Frame-Options': 'DENY',
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'same-origin',
    });
    next();
  };
}
