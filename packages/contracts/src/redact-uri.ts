/** Query parameters whose values are credentials (presigned S3/GCS/Azure URLs, API tokens). */
const SECRET_PARAM = /sig|signature|token|credential|secret|password|passwd|auth|key/i;

/**
 * A URI safe to put in a message or log line: userinfo (`user:pass@`) removed and the values of query
 * parameters that look like credentials (`X-Amz-Signature`, `sig`, `token`, `api_key`, ...) replaced by `***`.
 * Text that does not parse as a URL (a file path) is returned unchanged; long values are shortened.
 */
export function redactUri(uri: string, maxLength = 300): string {
  let text = uri;
  // Userinfo needs an `@` and parameters a `?`: most URIs have neither and need no parsing.
  if ((uri.includes('@') || uri.includes('?')) && /^[a-z][a-z0-9+.-]+:\/\//i.test(uri)) {
    try {
      const url = new URL(uri);
      let changed = url.username !== '' || url.password !== '';
      url.username = '';
      url.password = '';
      if (url.search) {
        const query = url.search
          .slice(1)
          .split('&')
          .map((pair) => {
            const eq = pair.indexOf('=');
            const name = eq < 0 ? pair : pair.slice(0, eq);
            if (eq < 0 || !SECRET_PARAM.test(decodeURIComponentSafe(name))) return pair;
            changed = true;
            return `${name}=***`;
          })
          .join('&');
        url.search = `?${query}`;
      }
      // Leave URIs without secrets exactly as written (URL would re-encode them).
      if (changed) text = url.toString();
    } catch {
      // Not a valid URL: still strip anything that looks like userinfo.
      text = uri.replace(/^([a-z][a-z0-9+.-]+:\/\/)[^/]*@/i, '$1');
    }
  }
  return text.length > maxLength ? `${text.slice(0, maxLength - 3)}...` : text;
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
