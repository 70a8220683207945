import { open, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, LayertapError, ValidationError } from '@layertap/contracts';

/** How long one probe of a source or an output may take before the submission gives up. */
export const PROBE_TIMEOUT_MS = 30_000;

/**
 * `work`, or a `service_unavailable` error once `ms` have passed. The work itself cannot be stopped (a stuck
 * file system call holds its thread), so a command that gets this error should exit rather than wait.
 */
export function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new LayertapError(ErrorCode.ServiceUnavailable, `${what}: no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/**
 * Checks that a local source can be read at all, within `timeoutMs`, before it is read whole: a regular file
 * gives its first byte, a directory its first entries. Anything else (a FIFO, a device, a socket) would block
 * or never end and is refused. `s3://` sources are bounded by the S3 client's timeouts.
 */
export async function probeSource(source: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<void> {
  if (source.startsWith('s3://')) return;
  const local = source.startsWith('file://') ? fileURLToPath(source) : path.resolve(source);
  await withDeadline(probeLocal(source, local), timeoutMs, `reading source ${source}`);
}

async function probeLocal(source: string, local: string): Promise<void> {
  const info = await stat(local).catch(() => undefined);
  // A missing path is reported by the source reader, with the usual message.
  if (!info) return;
  if (info.isDirectory()) {
    await readdir(local);
    return;
  }
  if (!info.isFile()) {
    throw new ValidationError(ErrorCode.InvalidSource, `source ${source} is not a regular file or a directory (a FIFO, device or socket cannot be read as a list of images)`);
  }
  const handle = await open(local, 'r');
  try {
    await handle.read(Buffer.alloc(1), 0, 1, 0);
  } finally {
    await handle.close();
  }
}
