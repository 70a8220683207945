import { ErrorCode, MAX_SHARD_BYTES, ValidationError, type Dtype } from '@layertap/contracts';
import { float32ToFloat16Bits } from './float16';
import { safetensorsByteLength, safetensorsHeader, writeTensorData, type SafetensorsDtype, type SafetensorsEntry } from './safetensors';

export interface ShardLayer {
  /** The layer spec as the user wrote it (second half of the tensor name). */
  spec: string;
  /** The stored shape of one sample's array (layout and pooling applied). */
  shape: number[];
}

export interface ShardBuilderOptions {
  /** The chunk's samples, in order: slot `i` is `sampleIds[i]`. */
  sampleIds: readonly string[];
  layers: readonly ShardLayer[];
  dtype: Dtype;
  /** `__metadata__` of the file (string values). */
  metadata: Record<string, string>;
}

export { MAX_SHARD_BYTES };

/** The tensor name of one sample's layer in a shard: `<sampleId>/<layerSpec>`. */
export function shardTensorName(sampleId: string, layerSpec: string): string {
  return `${sampleId}/${layerSpec}`;
}

const DTYPES: Record<Dtype, SafetensorsDtype> = { float32: 'F32', float16: 'F16' };

/**
 * Builds one chunk's safetensors shard in a single buffer reserved up front for every sample (header
 * included), so that memory stays at about the size of the shard: arrays are copied into their slot as
 * batches come back, and `finish()` closes the gaps of samples that failed and writes the header.
 */
export class ShardBuilder {
  private readonly sampleBytes: number;
  private readonly layerOffsets: Map<string, { offset: number; bytes: number; shape: number[] }>;
  private readonly reservedHeader: number;
  private readonly buffer: Buffer;
  /** slot -> layers stored */
  private readonly filled: Array<Set<string> | undefined>;
  private finished = false;

  constructor(private readonly options: ShardBuilderOptions) {
    const dtype = DTYPES[options.dtype];
    this.layerOffsets = new Map();
    let offset = 0;
    for (const layer of options.layers) {
      const bytes = safetensorsByteLength({ dtype, shape: layer.shape });
      this.layerOffsets.set(layer.spec, { offset, bytes, shape: layer.shape });
      offset += bytes;
    }
    this.sampleBytes = offset;
    this.reservedHeader = safetensorsHeader(this.entries(options.sampleIds.map((_, i) => i)), options.metadata).length;
    const total = this.reservedHeader + this.sampleBytes * options.sampleIds.length;
    if (total > MAX_SHARD_BYTES) {
      // Permanent: no retry makes the chunk smaller (the CLI refuses such chunk sizes at submit).
      throw new ValidationError(
        ErrorCode.InvalidRequest,
        `a shard of ${options.sampleIds.length} samples needs ${total} bytes, over ${MAX_SHARD_BYTES}: use a smaller chunk size`,
      );
    }
    this.buffer = Buffer.allocUnsafe(total);
    this.filled = new Array(options.sampleIds.length);
  }

  /** Bytes the builder holds (the whole reservation). */
  get reservedBytes(): number {
    return this.buffer.length;
  }

  /** Tensors stored so far. */
  get tensorCount(): number {
    return this.filled.reduce((n, s) => n + (s?.size ?? 0), 0);
  }

  /**
   * Stores sample `slot`'s array of `layerSpec`: float32 values (rounded here for a `float16` shard) or, for a
   * `float16` shard, float16 bits already.
   */
  set(slot: number, layerSpec: string, data: Float32Array | Uint16Array): void {
    if (this.finished) throw new Error('shard already finished');
    const layer = this.layerOffsets.get(layerSpec);
    if (!layer) throw new RangeError(`layer ${JSON.stringify(layerSpec)} is not in this shard`);
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.filled.length) throw new RangeError(`slot ${slot} is outside the chunk of ${this.filled.length}`);
    if (this.options.dtype === 'float32' && !(data instanceof Float32Array)) throw new TypeError('a float32 shard takes Float32Array values');
    const values = this.options.dtype === 'float16' && data instanceof Float32Array ? float32ToFloat16Bits(data) : data;
    if (values.byteLength !== layer.bytes) {
      throw new RangeError(`layer ${layerSpec}: ${data.length} values do not match shape ${JSON.stringify(layer.shape)}`);
    }
    writeTensorData(this.buffer, this.reservedHeader + slot * this.sampleBytes + layer.offset, values);
    (this.filled[slot] ??= new Set()).add(layerSpec);
  }

  private entries(slots: readonly number[]): SafetensorsEntry[] {
    const dtype = DTYPES[this.options.dtype];
    return slots.flatMap((slot) =>
      this.options.layers.map((layer) => ({ name: shardTensorName(this.options.sampleIds[slot] as string, layer.spec), dtype, shape: layer.shape })),
    );
  }

  /**
   * The shard holding every sample whose layers were all stored, in chunk order, or `undefined` when none
   * was. The returned buffer is a view of the builder's memory: write it, then drop the builder.
   */
  finish(): Buffer | undefined {
    this.finished = true;
    const complete = this.filled.flatMap((layers, slot) => (layers?.size === this.options.layers.length ? [slot] : []));
    if (complete.length === 0) return undefined;
    // Close the gaps: complete samples move down to consecutive slots (copyWithin handles the overlap).
    complete.forEach((slot, k) => {
      if (slot === k) return;
      const from = this.reservedHeader + slot * this.sampleBytes;
      this.buffer.copyWithin(this.reservedHeader + k * this.sampleBytes, from, from + this.sampleBytes);
    });
    const header = safetensorsHeader(this.entries(complete), this.options.metadata, this.reservedHeader);
    if (header.length !== this.reservedHeader) throw new Error('shard header outgrew its reservation');
    header.copy(this.buffer, 0);
    return this.buffer.subarray(0, this.reservedHeader + complete.length * this.sampleBytes);
  }
}
