// Where a weights URI's bytes come from: local files as they are, remote ones (http(s)://, s3://) through a
// caller-supplied fetch function into an on-disk cache keyed by content hash.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, ValidationError, storedUri } from '@layertap/contracts';

/**
 * Downloads a remote weights file (`http(s)://` or `s3://`) whole. The worker and the CLI supply one (with
 * their S3 client and network policy); the model package itself never touches the network.
 */
export type FetchBytes = (uri: string) => Promise<Uint8Array>;

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;

/** `http`, `https`, `s3`, `file`, or undefined for a plain path. */
export function uriScheme(uri: string): string | undefined {
  return SCHEME.exec(uri)?.[1]?.toLowerCase();
}

export function isRemoteUri(uri: string): boolean {
  const scheme = uriScheme(uri);
  return scheme === 'http' || scheme === 'https' || scheme === 's3';
}

/** The local path of a plain path or `file://` URI; throws for other schemes. */
export function localPath(uri: string): string {
  const scheme = uriScheme(uri);
  if (scheme === undefined) return path.resolve(uri);
  if (scheme === 'file') return fileURLToPath(uri);
  throw new ValidationError(
    ErrorCode.UnsupportedScheme,
    `unsupported weights URI scheme "${scheme}://" (expected a local path, file://, http(s):// or s3://)`,
  );
}

/**
 * A URI fit for logs and provenance: no user:password, no query string (presigned URLs carry secrets); other
 * schemes without userinfo or credential parameters (`storedUri`).
 */
export function displayUri(uri: string): string {
  const scheme = uriScheme(uri);
  if (scheme !== 'http' && scheme !== 'https') return storedUri(uri);
  try {
    const url = new URL(uri);
    url.username = '';
    url.password = '';
    const query = url.search ? '?…' : '';
    url.search = '';
    url.hash = '';
    return `${url.toString()}${query}`;
  } catch {
    return uri.replace(/\?.*$/, '?…');
  }
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** sha256 of a file, streamed (a 553 MB .h5 is not read into memory for it). */
export function sha256OfFile(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}

/** A remote file's local copy. */
export interface CachedFile {
  path: string;
  sha256: string;
  /** The bytes, when they were just downloaded (saves reading them back). */
  bytes?: Uint8Array;
  downloaded: boolean;
}

interface IndexEntry {
  uri: string;
  sha256: string;
  file: string;
  size: number;
}

/**
 * The on-disk cache of remote weights: `<dir>/<sha256>.<ext>` holds the bytes, `<dir>/index/<sha256 of the
 * URI>.json` says which file a URI gave. Files are written under a temporary name and renamed, so concurrent
 * processes never see a partial file; the worst a race costs is a second download. Entries are trusted by
 * URI (weights files are immutable in practice): the file's hash is checked on every load, and a copy that
 * no longer matches is downloaded again.
 */
export class WeightsCache {
  constructor(readonly dir: string) {}

  private indexPath(uri: string): string {
    return path.join(this.dir, 'index', `${sha256Hex(Buffer.from(uri, 'utf8'))}.json`);
  }

  /** The cached copy of `uri`, if there is one whose size still matches. */
  async lookup(uri: string): Promise<{ path: string; sha256: string } | undefined> {
    let entry: IndexEntry;
    try {
      entry = JSON.parse(await readFile(this.indexPath(uri), 'utf8')) as IndexEntry;
    } catch {
      return undefined;
    }
    const file = path.join(this.dir, path.basename(entry.file));
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile() || info.size !== entry.size) return undefined;
    return { path: file, sha256: entry.sha256 };
  }

  /** Stores downloaded bytes under their hash and records the URI. */
  async store(uri: string, bytes: Uint8Array, ext: string): Promise<CachedFile> {
    const sha256 = sha256Hex(bytes);
    const name = `${sha256}.${ext}`;
    const file = path.join(this.dir, name);
    await mkdir(path.join(this.dir, 'index'), { recursive: true });
    const existing = await stat(file).catch(() => undefined);
    if (existing?.size !== bytes.length) await atomicWrite(file, bytes);
    const entry: IndexEntry = { uri: displayUri(uri), sha256, file: name, size: bytes.length };
    await atomicWrite(this.indexPath(uri), `${JSON.stringify(entry)}\n`);
    return { path: file, sha256, bytes, downloaded: true };
  }

  /**
   * Moves a checked download (a file in this cache's directory tree) into place under its hash and records it
   * under `uri` (a URI or any other stable key, such as a published weights name).
   */
  async adopt(uri: string, file: string, sha256: string, ext: string): Promise<CachedFile> {
    const name = `${sha256}.${ext}`;
    const target = path.join(this.dir, name);
    const { size } = await stat(file);
    await mkdir(path.join(this.dir, 'index'), { recursive: true });
    const existing = await stat(target).catch(() => undefined);
    if (existing?.size === size) await rm(file, { force: true });
    else await rename(file, target);
    const entry: IndexEntry = { uri: displayUri(uri), sha256, file: name, size };
    await atomicWrite(this.indexPath(uri), `${JSON.stringify(entry)}\n`);
    return { path: target, sha256, downloaded: true };
  }

  /** Forgets a URI whose cached copy turned out to be damaged. */
  async forget(uri: string, file?: string): Promise<void> {
    await rm(this.indexPath(uri), { force: true });
    if (file) await rm(file, { force: true });
  }
}

async function atomicWrite(file: string, data: Uint8Array | string): Promise<void> {
  const temp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(temp, data);
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/**
 * Returns a local copy of a remote URI: from the cache, or downloaded with `fetchBytes` and cached. `ext`
 * names the cached file from its first bytes.
 */
export async function fetchThroughCache(
  uri: string,
  fetchBytes: FetchBytes | undefined,
  cache: WeightsCache,
  ext: (bytes: Uint8Array) => string,
): Promise<CachedFile> {
  const hit = await cache.lookup(uri);
  if (hit) {
    if ((await sha256OfFile(hit.path)) === hit.sha256) return { ...hit, downloaded: false };
    await cache.forget(uri, hit.path);
  }
  if (!fetchBytes) {
    throw new ValidationError(
      ErrorCode.UnsupportedScheme,
      `cannot download weights from ${displayUri(uri)}: no fetch function was given (pass options.fetchBytes ` +
        'for http(s):// and s3:// URIs), and the file is not in the weights cache',
    );
  }
  const bytes = await fetchBytes(uri);
  if (bytes.length === 0) throw new ValidationError(ErrorCode.InvalidWeights, `${displayUri(uri)} is empty`);
  return cache.store(uri, bytes, ext(bytes));
}
