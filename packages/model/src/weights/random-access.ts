// Reading byte ranges of a weights file without holding all of it: a 528 MB checkpoint is read storage by
// storage, each into its own buffer, never whole into a second copy.
import { open, type FileHandle } from 'node:fs/promises';
import { ErrorCode, LayertapError } from '@layertap/contracts';
import { displayUri } from './weights-cache';

export interface RandomAccess {
  readonly size: number;
  /**
   * `length` bytes at `offset`. From a file: a fresh buffer of its own (byteOffset 0, so typed-array views of
   * it are aligned). From memory: a view of the bytes, not a copy.
   */
  read(offset: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** Bytes already in memory (a download). */
export function memoryAccess(bytes: Uint8Array): RandomAccess {
  return {
    size: bytes.length,
    read: async (offset, length) => {
      if (offset < 0 || offset + length > bytes.length) throw new RangeError(`read of ${length} bytes at ${offset} outside ${bytes.length}`);
      return bytes.subarray(offset, offset + length);
    },
    close: async () => undefined,
  };
}

/** A local file, read with positional reads. */
export async function fileAccess(file: string): Promise<RandomAccess> {
  const handle: FileHandle = await open(file, 'r');
  const { size } = await handle.stat();
  return {
    size,
    read: async (offset, length) => {
      if (offset < 0 || offset + length > size) throw new RangeError(`read of ${length} bytes at ${offset} outside ${size}`);
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(out, done, length - done, offset + done);
        if (bytesRead === 0) throw new RangeError(`${file} ended at ${offset + done} of ${size} bytes`);
        done += bytesRead;
      }
      return out;
    },
    close: () => handle.close(),
  };
}

/**
 * Reads `length` bytes at `offset` of a remote file (an HTTP `Range:` request, S3 GetObject with `Range`),
 * answering where the bytes start and the whole file's size. A server that ignores ranges answers with the
 * whole file (`offset` 0, every byte).
 */
export type FetchRange = (uri: string, offset: number, length: number) => Promise<{ offset: number; bytes: Uint8Array; size: number }>;

/** What a `remoteAccess` has fetched so far. */
export interface RemoteAccessStats {
  requests: number;
  bytes: number;
}

/** The first read of a remote file: its format's first bytes, a small safetensors header or pickle, and its size. */
const FIRST_READ = 64 * 1024;

/**
 * A remote file read by ranges through `fetchRange`, only the ranges asked for (each fetched once: a read inside
 * one already fetched is served from it). Opening fetches the first 64 KiB, which also gives the size. A server
 * that ignores ranges sends the whole file on that first request: it is then read from memory.
 */
export async function remoteAccess(uri: string, fetchRange: FetchRange, stats: RemoteAccessStats = { requests: 0, bytes: 0 }): Promise<RandomAccess & { stats: RemoteAccessStats }> {
  const fetched: Array<{ offset: number; bytes: Uint8Array }> = [];
  const get = async (offset: number, length: number) => {
    const got = await fetchRange(uri, offset, length);
    stats.requests++;
    stats.bytes += got.bytes.length;
    fetched.push({ offset: got.offset, bytes: got.bytes });
    return got;
  };
  const first = await get(0, FIRST_READ);
  const size = first.size;
  return {
    size,
    stats,
    read: async (offset, length) => {
      if (offset < 0 || offset + length > size) throw new RangeError(`read of ${length} bytes at ${offset} outside ${size}`);
      if (length === 0) return new Uint8Array(0);
      const held = fetched.find((f) => f.offset <= offset && offset + length <= f.offset + f.bytes.length);
      const from = held ?? (await get(offset, length));
      const start = offset - from.offset;
      if (start < 0 || start + length > from.bytes.length) {
        // A server that answered short, or a file that changed between requests.
        throw new LayertapError(ErrorCode.FetchFailed, `${displayUri(uri)}: asked for ${length} bytes at ${offset}, got ${from.bytes.length} at ${from.offset} of ${size}`);
      }
      // A fresh buffer of its own (aligned views), as `fileAccess` gives.
      return from.bytes.slice(start, start + length);
    },
    close: async () => {
      fetched.length = 0;
    },
  };
}
