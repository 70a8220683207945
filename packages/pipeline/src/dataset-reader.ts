import type { S3Client } from '@aws-sdk/client-s3';
import { ManifestLine } from '@layertap/contracts';

import type { Dtype } from '@layertap/contracts';
import {
  decodeNpy,
  decodeSafetensors,
  encodeNpy,
  float16BitsToFloat32,
  manifestKey,
  openOutput,
  parseOutputRef,
  readManifestParts,
  type OutputWriter,
} from '@layertap/storage';

/** A stored array: float32 values, or float16 bit patterns. */
export type StoredArray = { dtype: 'float32'; shape: number[]; data: Float32Array } | { dtype: 'float16'; shape: number[]; data: Uint16Array };

export interface OutputReadersOptions {
  /** Client for `s3://` outputs; the caller keeps owning it. */
  s3: S3Client;
}

/** One reader per output root, opened on first use and kept (they hold no connection of their own). */
export class OutputReaders {
  private readonly writers = new Map<string, OutputWriter>();

  constructor(private readonly options: OutputReadersOptions) {}

  for(uri: string): OutputWriter {
    let writer = this.writers.get(uri);
    if (!writer) {
      writer = openOutput(uri, { s3: this.options.s3 });
      this.writers.set(uri, writer);
    }
    return writer;
  }

  /**
   * The dataset's manifest lines: `manifest.jsonl` when `finished` (one object), else the chunk parts written so
   * far merged as the finalizer merges them. `undefined` when neither exists.
   */
  async manifest(output: string, datasetId: string, finished: boolean): Promise<ManifestLine[] | undefined> {
    const writer = this.for(output);
    const body = finished ? await writer.get(manifestKey(datasetId)) : undefined;
    if (body) {
      return body
        .toString('utf8')
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => ManifestLine.parse(JSON.parse(l)));
    }
    const parts = await readManifestParts(writer, datasetId);
    return parts.keys.length ? [...parts.lines.values()] : undefined;
  }

  /**
   * The array a manifest `outputs` value names: a `.npy` key, or `<shard key>#<tensor>` for `--format shards`
   * (the shard is read whole). `undefined` when the object or the tensor is gone.
   */
  async array(output: string, ref: string): Promise<StoredArray | undefined> {
    const { key, tensor } = parseOutputRef(ref);
    const body = await this.for(output).get(key);
    if (!body) return undefined;
    if (tensor === undefined) return decodeNpy(body);
    const found = decodeSafetensors(body).tensors.find((t) => t.name === tensor);
    if (!found) return undefined;
    return found.dtype === 'F16'
      ? { dtype: 'float16', shape: found.shape, data: found.data as Uint16Array }
      : { dtype: 'float32', shape: found.shape, data: found.data as Float32Array };
  }

  /** The array as float32 values (for montages). */
  async activation(output: string, ref: string): Promise<{ data: Float32Array; shape: number[] } | undefined> {
    const array = await this.array(output, ref);
    if (!array) return undefined;
    return { data: array.dtype === 'float16' ? float16BitsToFloat32(array.data) : array.data, shape: array.shape };
  }

  /** The array as a `.npy` file: the stored bytes for `.npy` outputs, re-encoded from a shard otherwise. */
  async npy(output: string, ref: string): Promise<Buffer | undefined> {
    const { tensor } = parseOutputRef(ref);
    if (tensor === undefined) return this.for(output).get(ref);
    const array = await this.array(output, ref);
    return array && encodeNpy(array.data, array.shape, array.dtype as Dtype);
  }

  async close(): Promise<void> {
    await Promise.all([...this.writers.values()].map((w) => w.close()));
    this.writers.clear();
  }
}
