// Reading byte ranges of a weights file without holding all of it: a 528 MB checkpoint is read storage by
// storage, each into its own buffer, never whole into a second copy.
import { open, type FileHandle } from 'node:fs/promises';

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
