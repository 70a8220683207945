import { randomBytes } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { Dtype } from '@layertap/contracts';
import { npyHeader, shapeSize } from './npy';
import { safetensorsHeader, type SafetensorsDtype } from './safetensors';

export type StackedFormat = 'npy' | 'safetensors';

export interface StackedArrayWriterOptions {
  /** The file to write; it appears only once every row is in (`close()`), never half written. */
  path: string;
  format: StackedFormat;
  /** N: the rows the file holds. */
  rows: number;
  /** The shape of one row; the file holds `(rows, ...rowShape)`. */
  rowShape: readonly number[];
  dtype: Dtype;
  /** safetensors: the tensor's name. Default `data`. */
  tensorName?: string;
  /** safetensors: `__metadata__` (string values). */
  metadata?: Record<string, string>;
}

const ITEM_BYTES: Record<Dtype, number> = { float32: 4, float16: 2 };
const SAFETENSORS_DTYPE: Record<Dtype, SafetensorsDtype> = { float32: 'F32', float16: 'F16' };
const HOST_IS_BIG_ENDIAN = endianness() === 'BE';

/** The bytes of `data` as stored (little-endian): a view, or a swapped copy on a big-endian host. */
function littleEndian(data: Float32Array | Uint16Array): Buffer {
  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (!HOST_IS_BIG_ENDIAN) return view;
  const copy = Buffer.from(view);
  return data instanceof Float32Array ? copy.swap32() : copy.swap16();
}

/**
 * Writes one `(N, ...)` array to a local `.npy` or safetensors file as its rows arrive, so that memory holds a
 * row, not the array: the header (N is known up front) is written first, then each row at its place. Rows
 * may come in any order; `close()` checks that every one came, then renames the file into place.
 */
export class StackedArrayWriter {
  readonly rowBytes: number;
  private readonly temp: string;
  private handle: FileHandle | undefined;
  private dataStart = 0;
  private readonly written: Uint8Array;
  private count = 0;

  constructor(private readonly options: StackedArrayWriterOptions) {
    if (!Number.isSafeInteger(options.rows) || options.rows < 0) throw new RangeError(`rows must be a non-negative integer, got ${options.rows}`);
    this.rowBytes = shapeSize(options.rowShape) * ITEM_BYTES[options.dtype];
    this.written = new Uint8Array(options.rows);
    this.temp = join(dirname(options.path), `.${basename(options.path)}.${randomBytes(6).toString('hex')}.partial`);
  }

  /** The whole file's size in bytes (header included). */
  get byteLength(): number {
    return this.dataStart + this.rowBytes * this.options.rows;
  }

  /** Creates the file beside `path` and writes its header. */
  async open(): Promise<void> {
    const { format, rows, rowShape, dtype } = this.options;
    const shape = [rows, ...rowShape];
    const header =
      format === 'npy'
        ? npyHeader(shape, dtype)
        : safetensorsHeader([{ name: this.options.tensorName ?? 'data', dtype: SAFETENSORS_DTYPE[dtype], shape }], this.options.metadata ?? {});
    this.handle = await open(this.temp, 'wx');
    await this.handle.write(header, 0, header.length, 0);
    this.dataStart = header.length;
    // Sized now: the file is complete in length even where rows are still to come.
    await this.handle.truncate(this.byteLength);
  }

  /** Writes row `index`: float32 values, or float16 bit patterns for a float16 file. */
  async write(index: number, data: Float32Array | Uint16Array): Promise<void> {
    const handle = this.handle;
    if (!handle) throw new Error('StackedArrayWriter: open() it first');
    if (!Number.isInteger(index) || index < 0 || index >= this.options.rows) throw new RangeError(`row ${index} is outside 0..${this.options.rows - 1}`);
    if ((this.options.dtype === 'float32') !== data instanceof Float32Array) throw new TypeError(`a ${this.options.dtype} row must be a ${this.options.dtype === 'float32' ? 'Float32Array' : 'Uint16Array of float16 bits'}`);
    const bytes = littleEndian(data);
    if (bytes.length !== this.rowBytes) throw new RangeError(`row ${index} has ${bytes.length} bytes, expected ${this.rowBytes} (shape ${JSON.stringify(this.options.rowShape)})`);
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, this.dataStart + index * this.rowBytes + done);
      done += bytesWritten;
    }
    if (this.written[index] === 0) this.count++;
    this.written[index] = 1;
  }

  /** Rows written so far. */
  get rowsWritten(): number {
    return this.count;
  }

  /** Checks that every row was written and moves the file to `path` (replacing what was there). */
  async close(): Promise<void> {
    if (this.count !== this.options.rows) {
      const missing = this.written.indexOf(0);
      throw new Error(`${this.options.path}: ${this.options.rows - this.count} of ${this.options.rows} rows were never written (first: row ${missing})`);
    }
    await this.handle?.close();
    this.handle = undefined;
    await rename(this.temp, this.options.path);
  }

  /** Removes the unfinished file. */
  async abort(): Promise<void> {
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
    await unlink(this.temp).catch(() => undefined);
  }
}
