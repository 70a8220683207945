import { ErrorCode, SampleError } from '@layertap/contracts';
import { constants, type Stats } from 'node:fs';
import { open, realpath, stat as fsStat } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { BodyTooLargeError, readLimited } from './read-limited';
import type { SourceContext } from './source-context';

/** True when `path` is `root` itself or below it (both absolute and normalised). */
export function isInside(path: string, root: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

/** `isInside` for a path of raw bytes (absolute and normalised, from a `file://` URI): a byte-wise prefix. */
function isInsideBytes(path: Buffer, root: string): boolean {
  const prefix = Buffer.from(root.endsWith(sep) ? root : `${root}${sep}`);
  return path.equals(Buffer.from(root)) || path.subarray(0, prefix.length).equals(prefix);
}

function inside(path: string | Buffer, roots: readonly string[]): boolean {
  return roots.some((root) => (typeof path === 'string' ? isInside(path, root) : isInsideBytes(path, root)));
}

export interface AllowedRoots {
  /** As configured (absolute). */
  given: readonly string[];
  /** The same with symbolic links resolved. */
  real: readonly string[];
}

/**
 * Reads a local file. With `allowedRoots`, the path must lie inside one of them both as written and after
 * symbolic links are resolved (a link inside a root pointing elsewhere is refused). Only regular files are read
 * (no FIFOs or devices that could block or never end). A `Buffer` path is the raw bytes of an absolute path
 * whose name is not UTF-8.
 */
export async function readFileSource(
  path: string | Buffer,
  context: SourceContext,
  allowedRoots: (() => Promise<AllowedRoots>) | undefined,
): Promise<Buffer> {
  const absolute = typeof path === 'string' ? resolve(path) : path;
  const roots = allowedRoots ? await allowedRoots() : undefined;
  // Checked before touching the file system, so refused paths do not reveal whether they exist.
  if (roots && !inside(absolute, [...roots.given, ...roots.real])) {
    throw context.fail(ErrorCode.PathNotAllowed, 'path is outside the allowed roots');
  }

  // Links matter only against roots: without them, the path is opened as written (a realpath per image costs
  // a third of a millisecond of CPU).
  let real = absolute;
  if (roots) {
    try {
      real = typeof absolute === 'string' ? await realpath(absolute) : await realpath(absolute, { encoding: 'buffer' });
    } catch (err) {
      throw fileError(err, context);
    }
  }
  if (roots && !inside(real, roots.real)) {
    throw context.fail(ErrorCode.PathNotAllowed, 'path resolves (through a symbolic link) outside the allowed roots');
  }

  // Checked before opening too: opening a FIFO for reading would block until a writer appears.
  let stat;
  try {
    stat = await fsStat(real);
  } catch (err) {
    throw fileError(err, context);
  }
  checkRegularFile(stat, context);

  let handle;
  try {
    handle = await open(real, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw fileError(err, context);
  }
  try {
    checkRegularFile(await handle.stat(), context); // the path may have been swapped since
    const stream = handle.createReadStream({ signal: context.signal, autoClose: false });
    return await readLimited(stream, context.maxBytes);
  } catch (err) {
    if (err instanceof SampleError || err instanceof BodyTooLargeError) throw err;
    throw fileError(err, context);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

function checkRegularFile(stat: Stats, context: SourceContext): void {
  if (stat.isDirectory()) throw context.fail(ErrorCode.FetchFailed, 'is a directory');
  if (!stat.isFile()) throw context.fail(ErrorCode.FetchFailed, 'is not a regular file');
  if (stat.size > context.maxBytes) {
    throw context.fail(ErrorCode.TooLarge, `file is ${stat.size} bytes, more than the limit of ${context.maxBytes}`);
  }
}

function fileError(err: unknown, context: SourceContext): SampleError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return context.fail(ErrorCode.NotFound, 'no such file', err);
  if (code === 'EACCES' || code === 'EPERM') return context.fail(ErrorCode.FetchFailed, 'permission denied', err);
  return context.fail(ErrorCode.FetchFailed, `cannot read file (${code ?? (err instanceof Error ? err.message : String(err))})`, err);
}
