/**
 * The one rule set for names whose values are credentials: query parameters of sample, weights and Redis URLs
 * (presigned S3/GCS/Azure URLs, API tokens, `?password=` of a Redis URL, `?pwd=`, `?jwt=`, ...).
 */
const SECRET_NAME = /sig|signature|token|credential|secret|pass|pwd|auth|key|jwt|session|bearer|cookie|private/i;

/** Whether a query parameter (or field) named `name` holds a credential under layertap's one rule set. */
export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(decodeURIComponentSafe(name));
}

export interface RedactUriOptions {
  /**
   * `remove` (default) drops `user:pass@` whole (a bare `token@` is a credential too); `mask` keeps the user
   * name and shows a password as `***` (for Redis URLs, where showing that a password is set helps).
   */
  userinfo?: 'remove' | 'mask';
}

/**
 * A URI safe to put in a message or log line: userinfo (`user:pass@`) removed and the values of query
 * parameters that look like credentials (`X-Amz-Signature`, `sig`, `token`, `api_key`, `pwd`, `jwt`, ...)
 * replaced by `***`. Text that does not parse as a URL (a file path) is returned unchanged; long values are
 * shortened.
 */
export function redactUri(uri: string, maxLength = 300, options: RedactUriOptions = {}): string {
  let text = uri;
  // Userinfo needs an `@` and parameters a `?`: most URIs have neither and need no parsing.
  if ((uri.includes('@') || uri.includes('?')) && /^[a-z][a-z0-9+.-]+:\/\//i.test(uri)) {
    try {
      const url = new URL(uri);
      let changed = false;
      if (options.userinfo === 'mask') {
        if (url.password !== '') {
          url.password = '***';
          changed = true;
        }
      } else if (url.username !== '' || url.password !== '') {
        url.username = '';
        url.password = '';
        changed = true;
      }
      if (url.search) {
        const query = url.search
          .slice(1)
          .split('&')
          .map((pair) => {
            const eq = pair.indexOf('=');
            const name = eq < 0 ? pair : pair.slice(0, eq);
            if (eq < 0 || !isSecretName(name)) return pair;
            changed = true;
            return `${name}=***`;
          })
          .join('&');
        url.search = `?${query}`;
      }
      // Leave URIs without secrets exactly as written (URL would re-encode them).
      if (changed) text = url.toString();
    } catch {
      // Not a valid URL: still strip anything that looks like userinfo, and secret-looking parameters.
      text = uri
        .replace(/^([a-z][a-z0-9+.-]+:\/\/)[^/]*@/i, options.userinfo === 'mask' ? '$1***@' : '$1')
        .replace(/([?&;]([^=&#\s]*)=)[^&#\s]*/g, (all, head: string, name: string) => (isSecretName(name) ? `${head}***` : all));
    }
  }
  return text.length > maxLength ? `${text.slice(0, maxLength - 3)}...` : text;
}

/**
 * Free text (an error message, a log line) with every URI in it redacted as `storedUri` does: for messages
 * that libraries build from a URL they were given (ioredis' ENOENT, fetch errors).
 */
export function redactText(text: string): string {
  if (!text.includes('://')) return text;
  return text.replace(/[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]+/gi, (uri) => storedUri(uri));
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * The form of a sample or weights URI that outputs store and operators see (manifests, dataset.json, shard
 * metadata, the sample index, status, the dashboard): `redactUri`, never shortened, so that it still tells
 * samples apart. Idempotent, and a URI without credentials comes back exactly as written. The URI as given
 * travels only in job data, which workers need to fetch with.
 */
export function storedUri(uri: string): string {
  return redactUri(uri, Number.POSITIVE_INFINITY);
}

/**
 * A copy of a JSON value with every string that is a URI with credentials replaced by its `storedUri` (for
 * showing job data, e.g. in Bull Board). Other values are returned as they are.
 */
export function redactUris<T>(value: T): T {
  if (typeof value === 'string') return storedUri(value) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => redactUris(v)) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, redactUris(v)])) as T;
  }
  return value;
}
