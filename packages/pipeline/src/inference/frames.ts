// The framed binary channel between the worker and its inference process: batches of pixels go there and
// activations come back as raw bytes on a socket pair, not through `child_process` IPC, whose V8 serialiser
// costs several copies and hundreds of CPU-ms per batch of activations. A frame is
//
//   u32 LE header length | header (JSON, utf8) | payload segments back to back
//
// where the header says the segments' byte lengths (`sizes`). Each segment arrives in its own buffer of
// exactly its size (offset 0, so it can be transferred to a thread or viewed as any typed array): the only
// copy in this process is from the socket's read buffer into it.
import type { Readable, Writable } from 'node:stream';

/** What every frame header carries: the byte length of each payload segment. */
export interface FrameHeader {
  sizes: number[];
}

/** One received frame: its header and one buffer per segment. */
export interface Frame<H extends FrameHeader> {
  header: H;
  segments: Buffer[];
}

const EMPTY = Buffer.alloc(0);

/**
 * Buffers of the sizes a channel receives again and again (each batch's activations), kept for reuse: fresh
 * memory costs page faults on every first touch (measured here: ~40 CPU-ms for a 25.7 MB batch, more than
 * copying it), and large short-lived buffers drive the garbage collector. A buffer is given back only when
 * nothing reads it any more; the pool holds at most `maxBytes` of free buffers.
 */
export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  private freeBytes = 0;

  constructor(private readonly maxBytes = 256 * 1024 * 1024) {}

  /** A buffer of exactly `size` bytes, of its own (offset 0, not Node's shared pool), contents undefined. */
  take(size: number): Buffer {
    const list = this.free.get(size);
    const reused = list?.pop();
    if (reused) {
      this.freeBytes -= size;
      return reused;
    }
    return Buffer.allocUnsafeSlow(size);
  }

  /** Gives `buffer` back for reuse: the caller must not touch it again. */
  give(buffer: Buffer | Uint8Array): void {
    const size = buffer.byteLength;
    if (size === 0 || size > this.maxBytes || buffer.byteOffset !== 0 || buffer.buffer.byteLength !== size) return;
    // Sizes no longer asked for (an earlier dataset's) make room first; then, if still full, this one is dropped.
    for (const [other, list] of this.free) {
      if (this.freeBytes + size <= this.maxBytes) break;
      if (other === size) continue;
      this.freeBytes -= other * list.length;
      this.free.delete(other);
    }
    if (this.freeBytes + size > this.maxBytes) return;
    const list = this.free.get(size) ?? [];
    if (!this.free.has(size)) this.free.set(size, list);
    list.push(Buffer.isBuffer(buffer) ? buffer : Buffer.from(buffer.buffer, 0, size));
    this.freeBytes += size;
  }

  /** Bytes held for reuse. */
  get heldBytes(): number {
    return this.freeBytes;
  }
}

/** Largest header accepted: headers are a few hundred bytes; anything larger is a broken stream. */
const MAX_HEADER_BYTES = 16 * 1024 * 1024;

/**
 * Writes one frame: the header, then each segment's bytes as they are (no copy in JS: the socket writes from
 * the segments' memory, which must not change until `written` is called, after the last byte left).
 */
export function writeFrame(stream: Writable, header: FrameHeader, segments: readonly ArrayBufferView[], written?: (err?: Error | null) => void): boolean {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.allocUnsafe(4 + json.length);
  prefix.writeUInt32LE(json.length, 0);
  json.copy(prefix, 4);
  const parts = [prefix, ...segments.filter((s) => s.byteLength > 0).map((s) => Buffer.from(s.buffer, s.byteOffset, s.byteLength))];
  stream.cork();
  let ok = true;
  // Writes complete in order: the last one's callback comes after every byte of the frame left.
  parts.forEach((part, i) => (ok = i === parts.length - 1 && written ? stream.write(part, written) : stream.write(part)));
  stream.uncork();
  return ok;
}

/**
 * Reads frames from a byte stream and calls `onFrame` for each. `onError` is told once when the stream breaks
 * the format (the reader then stops: the other side is broken and is dealt with by its owner).
 */
export class FrameReader<H extends FrameHeader> {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private header: H | undefined;
  private headerLength = -1;
  private segments: Buffer[] = [];
  private segment = 0;
  private filled = 0;
  private broken = false;

  /**
   * `allocate`: where a segment of `size` bytes is received; it must return a buffer of exactly that length at
   * offset 0 of its own memory (a `BufferPool`'s). Default: a new one each time.
   */
  constructor(
    private readonly onFrame: (frame: Frame<H>) => void,
    private readonly onError: (err: Error) => void = () => undefined,
    private readonly allocate: (size: number) => Buffer = (size) => Buffer.allocUnsafeSlow(size),
  ) {}

  /** Reads `stream` until it ends. */
  attach(stream: Readable): this {
    stream.on('data', (chunk: Buffer) => this.push(chunk));
    return this;
  }

  push(chunk: Buffer): void {
    if (this.broken) return;
    let at = 0;
    while (at < chunk.length && !this.broken) {
      if (this.header) {
        // Payload: straight into the segment's own buffer.
        const target = this.segments[this.segment] as Buffer;
        const n = Math.min(target.length - this.filled, chunk.length - at);
        chunk.copy(target, this.filled, at, at + n);
        this.filled += n;
        at += n;
        if (this.filled === target.length) this.nextSegment();
        continue;
      }
      // Header length, then header: small, gathered across chunks.
      const want = this.headerLength < 0 ? 4 : this.headerLength;
      const n = Math.min(want - this.pendingBytes, chunk.length - at);
      this.pending.push(chunk.subarray(at, at + n));
      this.pendingBytes += n;
      at += n;
      if (this.pendingBytes < want) continue;
      const bytes = this.pending.length === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
      if (this.headerLength < 0) {
        this.headerLength = bytes.readUInt32LE(0);
        if (this.headerLength === 0 || this.headerLength > MAX_HEADER_BYTES) this.fail(`a frame header of ${this.headerLength} bytes`);
        continue;
      }
      this.headerLength = -1;
      this.startFrame(bytes);
    }
  }

  private startFrame(json: Buffer): void {
    let header: H;
    try {
      header = JSON.parse(json.toString('utf8')) as H;
    } catch {
      this.fail('a frame header that is not JSON');
      return;
    }
    const sizes = header.sizes;
    if (!Array.isArray(sizes) || !sizes.every((s) => Number.isSafeInteger(s) && s >= 0)) {
      this.fail('a frame header without valid segment sizes');
      return;
    }
    this.header = header;
    this.segments = sizes.map((s) => (s === 0 ? EMPTY : this.allocate(s)));
    this.segment = 0;
    this.filled = 0;
    this.skipEmpty();
  }

  private nextSegment(): void {
    this.segment++;
    this.filled = 0;
    this.skipEmpty();
  }

  /** Passes over empty segments; delivers the frame once every segment is full. */
  private skipEmpty(): void {
    while (this.segment < this.segments.length && (this.segments[this.segment] as Buffer).length === 0) this.segment++;
    if (this.segment < this.segments.length) return;
    const frame = { header: this.header as H, segments: this.segments };
    this.header = undefined;
    this.segments = [];
    this.onFrame(frame);
  }

  private fail(what: string): void {
    this.broken = true;
    this.onError(new Error(`inference channel: ${what}`));
  }
}
