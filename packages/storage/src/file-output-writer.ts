import { randomBytes } from 'node:crypto';
import { open, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { LayertapError } from '@layertap/contracts';
import { mapFsError } from './fs-errors';
import { makeDirectory } from './make-directory';
import { assertListPrefix, assertOutputKey, TEMP_PREFIX, type ObjectBody, type OutputWriter, type PutOptions } from './output-writer';
import { parseOutputUri } from './output-uri';

export interface FileOutputWriterOptions {
  /** The root directory: an absolute path or a `file:///` URI. It is created on the first write. */
  dir: string;
}

/** Codes that mean "there is nothing there" for reads. */
const ABSENT = new Set(['ENOENT', 'ENOTDIR', 'EISDIR']);

/** Writes a new file (refusing to overwrite), a body in parts with one `writev` call where it can. */
async function writeWhole(path: string, body: ObjectBody): Promise<void> {
  if (typeof body === 'string' || Buffer.isBuffer(body)) return writeFile(path, body, { flag: 'wx' });
  const handle = await open(path, 'wx');
  try {
    let parts = (body as readonly Buffer[]).filter((b) => b.length > 0);
    while (parts.length > 0) {
      const { bytesWritten } = await handle.writev(parts);
      // A short write (rare, for very large bodies): go on from where it stopped.
      let left = bytesWritten;
      while (parts.length > 0 && left >= (parts[0] as Buffer).length) left -= (parts.shift() as Buffer).length;
      if (left > 0 && parts.length > 0) parts = [(parts[0] as Buffer).subarray(left), ...parts.slice(1)];
    }
  } finally {
    await handle.close();
  }
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Writes outputs as files under a root directory. Each put writes a temp file in the target's directory and
 * renames it into place, so a crash never leaves a partial file under a real key. There is no fsync: after
 * a power loss a file may be short, which `exists(key, expectedSize)` catches, and fsync per sample is slow.
 */
export class FileOutputWriter implements OutputWriter {
  readonly uri: string;
  /** Absolute root directory. */
  readonly dir: string;
  /** Directories this writer made or found: a `mkdir -p` per object costs more than the object's write. */
  private readonly made = new Set<string>();

  constructor(options: FileOutputWriterOptions) {
    const location = parseOutputUri(options.dir);
    if (location.kind !== 'file') throw new TypeError(`FileOutputWriter needs a directory, got ${location.uri}`);
    this.dir = location.dir;
    this.uri = location.uri;
  }

  async put(key: string, body: ObjectBody, _options?: PutOptions): Promise<void> {
    const path = this.pathOf(key);
    const dir = dirname(path);
    const temp = join(dir, `${TEMP_PREFIX}${randomBytes(6).toString('hex')}`);
    try {
      if (!this.made.has(dir)) {
        await makeDirectory(dir);
        this.made.add(dir);
      }
      try {
        await writeWhole(temp, body);
      } catch (err) {
        // The directory went away since (removed by hand): make it again, once.
        if (errnoCode(err) !== 'ENOENT') throw err;
        await makeDirectory(dir);
        await writeWhole(temp, body);
      }
      await rename(temp, path);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      if (err instanceof LayertapError) throw err;
      throw mapFsError(err, 'write', path);
    }
  }

  async get(key: string): Promise<Buffer | undefined> {
    const path = this.pathOf(key);
    try {
      return await readFile(path);
    } catch (err) {
      if (ABSENT.has(errnoCode(err) ?? '')) return undefined;
      throw mapFsError(err, 'read', path);
    }
  }

  async read(key: string): Promise<Readable | undefined> {
    const path = this.pathOf(key);
    try {
      // Opened here so that a missing file answers `undefined` rather than failing the stream later.
      const handle = await open(path, 'r');
      return handle.createReadStream();
    } catch (err) {
      if (ABSENT.has(errnoCode(err) ?? '')) return undefined;
      throw mapFsError(err, 'read', path);
    }
  }

  async head(key: string, length: number): Promise<Buffer | undefined> {
    const path = this.pathOf(key);
    let handle;
    try {
      handle = await open(path, 'r');
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, 0);
      return buffer.subarray(0, bytesRead);
    } catch (err) {
      if (ABSENT.has(errnoCode(err) ?? '')) return undefined;
      throw mapFsError(err, 'read', path);
    } finally {
      await handle?.close();
    }
  }

  async exists(key: string, expectedSize?: number): Promise<boolean> {
    const path = this.pathOf(key);
    try {
      const info = await stat(path);
      return info.isFile() && (expectedSize === undefined || info.size === expectedSize);
    } catch (err) {
      if (ABSENT.has(errnoCode(err) ?? '')) return false;
      throw mapFsError(err, 'check', path);
    }
  }

  async list(prefix: string): Promise<string[]> {
    assertListPrefix(prefix);
    // Walk only the directory the prefix points into, then filter by the full string prefix.
    const slash = prefix.lastIndexOf('/');
    const base = slash < 0 ? '' : prefix.slice(0, slash + 1);
    const keys: string[] = [];
    await this.walk(base, prefix, keys);
    return keys.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    try {
      await unlink(path);
    } catch (err) {
      if (ABSENT.has(errnoCode(err) ?? '')) return;
      throw mapFsError(err, 'delete', path);
    }
  }

  urlFor(key: string): string {
    return pathToFileURL(this.pathOf(key)).href;
  }

  async checkWritable(): Promise<void> {
    const probe = join(this.dir, `${TEMP_PREFIX}write-check-${randomBytes(6).toString('hex')}`);
    try {
      await makeDirectory(this.dir);
      await writeFile(probe, 'layertap write check\n', { flag: 'wx' });
      await unlink(probe);
    } catch (err) {
      await unlink(probe).catch(() => undefined);
      if (err instanceof LayertapError) throw err;
      throw mapFsError(err, 'write to output directory', this.dir);
    }
  }

  async close(): Promise<void> {
    // Nothing held open.
  }

  private pathOf(key: string): string {
    assertOutputKey(key);
    const path = join(this.dir, ...key.split('/'));
    // Defence in depth: assertOutputKey already refuses every key that could leave the root.
    if (!path.startsWith(this.dir.endsWith(sep) ? this.dir : this.dir + sep)) throw new TypeError(`key ${key} escapes ${this.dir}`);
    return path;
  }

  private async walk(relativeDir: string, prefix: string, keys: string[]): Promise<void> {
    const absolute = relativeDir ? join(this.dir, ...relativeDir.slice(0, -1).split('/')) : this.dir;
    let entries;
    try {
      entries = await readdir(absolute, { withFileTypes: true });
    } catch (err) {
      if (ABSENT.has(errnoCode(err) ?? '')) return;
      throw mapFsError(err, 'list', absolute);
    }
    for (const entry of entries) {
      if (entry.name.startsWith(TEMP_PREFIX)) continue;
      const key = relativeDir + entry.name;
      if (entry.isDirectory()) {
        // Descend only where keys with this prefix can be.
        const dirKey = `${key}/`;
        if (dirKey.startsWith(prefix) || prefix.startsWith(dirKey)) await this.walk(dirKey, prefix, keys);
      } else if (entry.isFile() && key.startsWith(prefix)) {
        keys.push(key);
      }
    }
  }
}
