import { createHmac, randomBytes } from 'node:crypto';
import type { Request, RequestHandler } from 'express';
import { safeEqual } from './auth';

/*
 * Cross-site request forgery. A browser sends the dashboard's Basic credentials with every request to it,
 * including one another site makes it send: a form posted from that site, or from a sandboxed frame on it
 * (`Origin: null`). Writes are therefore checked, in one of two ways:
 *
 * - layertap's own forms (cancel, retry) carry a per-credential token (`FormTokens`). A token does not depend
 *   on headers that browsers leave out or blank for legitimate same-origin forms: no `Sec-Fetch-Site` on a
 *   plain-HTTP host that is not localhost, `Origin: null` under a no-referrer policy or privacy settings.
 *   Another site cannot learn it: it is only in this dashboard's pages, which other sites can neither read
 *   nor frame (frame-ancestors 'none').
 * - every other write (layertap's JSON API, Bull Board's API) is checked by origin (`crossSiteRefusal`):
 *   Bull Board's UI is third-party code that calls its API with fetch and cannot carry our token, but a
 *   browser always sends `Origin` with such a fetch, so a strict check costs it nothing. Scripts (curl) send
 *   no Origin: they pass as long as the request is not one an HTML form can make.
 */

/** Methods that change nothing. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The content types an HTML form can post, so any site can make a browser send them (no CORS preflight). */
const FORM_TYPES = new Set(['application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain']);

/** Where a request comes from, by what the browser says about it. */
export type RequestOrigin = 'same' | 'foreign' | 'opaque' | 'absent';

/**
 * `Sec-Fetch-Site` when the browser sends it (it decides: only `same-origin` is this dashboard); otherwise
 * `Origin` against the `Host` the request was sent to (a proxy in front must pass `Host` through, as the
 * Kubernetes ingress does); `opaque` for `Origin: null`, `absent` when neither header is there.
 */
export function requestOrigin(req: Request): RequestOrigin {
  const site = req.get('sec-fetch-site');
  if (site !== undefined) return site === 'same-origin' ? 'same' : 'foreign';
  const origin = req.get('origin');
  if (origin === undefined) return 'absent';
  if (origin === 'null') return 'opaque';
  let host: string | undefined;
  try {
    host = new URL(origin).host;
  } catch {
    return 'foreign';
  }
  return host === req.get('host')?.toLowerCase() ? 'same' : 'foreign';
}

function describeOrigin(req: Request): string {
  const site = req.get('sec-fetch-site');
  return site !== undefined ? `Sec-Fetch-Site: ${site}` : `Origin: ${req.get('origin') ?? '(none)'}`;
}

/**
 * Why a write without a form token must be refused as possibly cross-site, or `undefined` to let it through.
 * Refused: another site (`Sec-Fetch-Site` other than same-origin, a foreign `Origin`), an opaque origin
 * (`Origin: null`), and a form-shaped request (a POST with a form's content type) that says nothing about its
 * origin. A script's POST with JSON or no body, and PUT/PATCH/DELETE (which a browser sends to another origin
 * only after a CORS preflight this server never grants), pass without `Origin`.
 */
export function crossSiteRefusal(req: Request): string | undefined {
  if (SAFE_METHODS.has(req.method)) return undefined;
  switch (requestOrigin(req)) {
    case 'same':
      return undefined;
    case 'foreign':
      return `cross-site request refused (${describeOrigin(req)})`;
    case 'opaque':
      return 'cross-site request refused (Origin: null: a sandboxed frame, a local file or a redirect from another site)';
    case 'absent': {
      const type = (req.get('content-type') ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
      if (req.method !== 'POST' || !FORM_TYPES.has(type)) return undefined;
      return `cross-site request refused (a ${type} POST without Origin could come from any site; scripts: send JSON or an Origin header)`;
    }
  }
}

/**
 * Per-credential tokens for layertap's forms: an HMAC of the request's `Authorization` header under a key made
 * when the dashboard starts (Basic authentication has no session; the credentials are the session). A token
 * stops working when the password changes or the dashboard restarts: reloading the page gives a new one.
 */
export class FormTokens {
  private readonly key = randomBytes(32);

  /** The token for the forms of a page served to `req`'s credentials. */
  tokenFor(req: Request): string {
    return createHmac('sha256', this.key).update(req.get('authorization') ?? '').digest('base64url');
  }

  /**
   * Why a form post must be refused, or `undefined`: another site says it sent it (`Sec-Fetch-Site` or a
   * foreign `Origin`), or `token` (the form's field) is missing or not this credential's token. An opaque or
   * missing `Origin` is fine with the right token.
   */
  refusal(req: Request, token: unknown): string | undefined {
    if (requestOrigin(req) === 'foreign') return `cross-site request refused (${describeOrigin(req)})`;
    if (typeof token !== 'string' || !safeEqual(token, this.tokenFor(req))) {
      return 'the form has no valid token (forms from other sites are refused): reload the page and try again';
    }
    return undefined;
  }
}

/**
 * Bull Board's actions that delete jobs or change their data, on layertap's queues (the only ones it shows):
 * a chunk job removed that way takes its samples with it, and without the dataset's bookkeeping the dataset
 * would finish without them. Cleaning completed jobs (their parts are written) stays allowed.
 */
const DESTRUCTIVE = [
  /^\/api\/queues\/[^/]+\/(empty|obliterate)$/,
  /^\/api\/queues\/[^/]+\/clean\/(?!completed$)[^/]+$/,
  /^\/api\/queues\/[^/]+\/[^/]+\/(clean|remove-unprocessed-children|update-data)$/,
  /^\/api\/queues\/[^/]+\/job-schedulers\/[^/]+\/remove$/,
];

/** Why Bull Board may not do this to layertap's jobs, or `undefined`. `path` is relative to Bull Board's base. */
export function destructiveRefusal(method: string, path: string): string | undefined {
  if (SAFE_METHODS.has(method) || !DESTRUCTIVE.some((re) => re.test(path))) return undefined;
  return (
    "removing or changing layertap's jobs here would lose their samples without a trace: " +
    'stop a dataset with `layertap cancel <dataset>` (or its page\'s Cancel), drop it from Redis with `layertap forget <dataset>`'
  );
}

/**
 * Bull Board's writes: 405 in read-only mode (for every write route, pause and resume of all queues included),
 * else 403 for what `crossSiteRefusal` refuses, and 409 for what would lose samples (`destructiveRefusal`).
 * Answers as Bull Board's API does, in JSON.
 */
export function boardWriteGuard(readOnly: boolean): RequestHandler {
  return (req, res, next) => {
    if (SAFE_METHODS.has(req.method)) return next();
    if (readOnly) return void res.status(405).set('Allow', 'GET, HEAD').json({ error: 'the dashboard is read-only: Bull Board writes are disabled' });
    const refused = crossSiteRefusal(req);
    if (refused) return void res.status(403).json({ error: refused });
    const destructive = destructiveRefusal(req.method, req.path);
    if (destructive) return void res.status(409).json({ error: destructive });
    next();
  };
}
