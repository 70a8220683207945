import { createHash } from 'node:crypto';
import { storedUri } from './redact-uri';

/** Longest id accepted, in UTF-8 bytes: ids become object keys and file names. */
export const MAX_ID_BYTES = 200;

const ID_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._@+=,-]*$/;

/**
 * Why `id` is not safe as an object key and a file name, or `undefined` when it is.
 * Allowed: letters, digits and `_ . @ + = , -`, not starting with `.` or `-`, at most 200 bytes.
 */
export function idProblem(id: string): string | undefined {
  if (id.length === 0) return 'is empty';
  if (Buffer.byteLength(id, 'utf8') > MAX_ID_BYTES) return `is longer than ${MAX_ID_BYTES} bytes`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(id)) return 'contains a control character';
  if (id.includes('/') || id.includes('\\')) return 'contains a path separator';
  if (id === '.' || id === '..') return `is '${id}'`;
  if (id.includes('..')) return "contains '..'";
  if (!ID_PATTERN.test(id)) return "may only contain letters, digits and '_ . @ + = , -', and must not start with '.' or '-'";
  return undefined;
}

export function isSafeId(id: string): boolean {
  return idProblem(id) === undefined;
}

/** A short, stable hex digest of a string (used to make derived ids unique). */
export function shortHash(text: string, length = 8): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length);
}

/**
 * A readable id derived from a URI or path: its file name without extension, with every character outside
 * the safe set replaced by `_`; never userinfo or a query value (where the path is empty, the host name).
 * Uniqueness within a dataset is the caller's job (see `assignSampleIds`).
 */
export function idFromUri(uri: string): string {
  // Userinfo is a credential: with an empty path the last segment would be the authority (issue 18).
  const withoutQuery = storedUri(uri)
    .replace(/[?#].*$/, '')
    .replace(/^([a-z][a-z0-9+.-]+:\/\/)[^/]*@/i, '$1');
  const base = withoutQuery.split(/[\\/]/).filter(Boolean).pop() ?? '';
  const stem = base.includes('.') ? base.slice(0, base.lastIndexOf('.')) : base;
  let id = stem.replace(/[^A-Za-z0-9._@+=,-]/g, '_').replace(/\.{2,}/g, '_').replace(/^[.-]+/, '');
  if (id.length === 0) id = 'sample';
  if (Buffer.byteLength(id) > MAX_ID_BYTES - 9) id = id.slice(0, MAX_ID_BYTES - 9);
  return id;
}

/**
 * Ids for a list of URIs whose manifest gave none: the readable stem, and where two URIs share a stem, each
 * of them gets `-<hash of its URI>` appended so ids stay unique and do not depend on the order of the list.
 */
export function assignSampleIds(uris: readonly string[]): string[] {
  const stems = uris.map(idFromUri);
  const counts = new Map<string, number>();
  for (const stem of stems) counts.set(stem, (counts.get(stem) ?? 0) + 1);
  return stems.map((stem, i) => ((counts.get(stem) ?? 0) > 1 ? `${stem}-${shortHash(uris[i] ?? '')}` : stem));
}
