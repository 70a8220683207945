/** Thrown by `readLimited` when a body grows past its limit; callers turn it into `TooLarge`. */
export class BodyTooLargeError extends Error {
  override name = 'BodyTooLargeError';
  constructor(readonly limit: number) {
    super(`body is larger than ${limit} bytes`);
  }
}

/**
 * Collects a byte stream into one Buffer, giving up (and, through the `for await`, destroying the stream) as
 * soon as more than `maxBytes` have arrived, so an endless or oversized body never sits in memory.
 */
export async function readLimited(stream: AsyncIterable<Uint8Array | string>, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    total += bytes.length;
    if (total > maxBytes) throw new BodyTooLargeError(maxBytes);
    chunks.push(bytes);
  }
  return Buffer.concat(chunks, total);
}
