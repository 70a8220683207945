import { StringDecoder } from 'node:string_decoder';
import type { S3Client } from '@aws-sdk/client-s3';
import { DatasetDocument, ErrorCode, ValidationError, formatIssues, type ManifestLine, type Sample } from '@layertap/contracts';
import {
  datasetKey,
  datasetPrefix,
  decodeNpy,
  decodeSafetensors,
  encodeNpy,
  float16BitsToFloat32,
  manifestKey,
  openOutput,
  parseDatasetUri,
  parseManifestLine,
  parseOutputRef,
  parsePart,
  parsePartKey,
  partsPrefix,
  readManifestParts,
  type NpyArray,
  type OutputWriter,
  type S3ClientSettings,
  type SafetensorsTensor,
} from '@layertap/storage';
import { infoFromDocument, type DatasetInfo } from './dataset-info';

/** A stored array: float32 values, or float16 bit patterns. */
export type StoredArray = NpyArray;

export interface DatasetReaderOptions {
  /** The output root the dataset was written under, as its config names it: `s3://bucket/prefix` or `file:///dir`. */
  output: string;
  datasetId: string;
  /** For `s3://` outputs: a client (the caller keeps owning it) or settings for one. Default: the AWS SDK's own resolution. */
  s3?: S3Client | S3ClientSettings;
  /** Where the objects are read from. Default: `openOutput(output, { s3 })`, released by `close()`. */
  store?: OutputWriter;
}

/** Lines of a `.jsonl` object as they stream in: memory holds a chunk of the object, never all of it. */
async function* streamedLines(key: string, body: AsyncIterable<Buffer>): AsyncGenerator<ManifestLine> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  let lineNumber = 0;
  for await (const chunk of body) {
    const lines = (rest + decoder.write(chunk)).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) {
      lineNumber++;
      if (line.trim()) yield parseManifestLine(key, lineNumber, line);
    }
  }
  rest += decoder.end();
  if (rest.trim()) yield parseManifestLine(key, lineNumber + 1, rest);
}

function fromTensor(tensor: SafetensorsTensor): StoredArray {
  return tensor.dtype === 'F16'
    ? { dtype: 'float16', shape: tensor.shape, data: tensor.data as Uint16Array }
    : { dtype: 'float32', shape: tensor.shape, data: tensor.data as Float32Array };
}

/**
 * The reading side of one dataset's outputs: its manifest (streamed, or whole), failed samples, `dataset.json`,
 * and the arrays the manifest points to, from `.npy` files or safetensors shards, on S3 or a local directory.
 * Needs no Redis: `DatasetReader.fromUri('s3://bucket/prefix/<datasetId>')` opens a dataset from its folder.
 */
export class DatasetReader {
  readonly output: string;
  readonly datasetId: string;
  private readonly store: OutputWriter;
  private readonly ownsStore: boolean;

  /** The dataset in a folder (`s3://bucket/prefix/<datasetId>`, `file:///dir/<datasetId>`): its id is the last segment. */
  static fromUri(datasetUri: string, options: Pick<DatasetReaderOptions, 's3'> = {}): DatasetReader {
    return new DatasetReader({ ...parseDatasetUri(datasetUri), ...options });
  }

  constructor(options: DatasetReaderOptions) {
    datasetPrefix(options.datasetId); // throws on an unsafe id
    this.output = options.output;
    this.datasetId = options.datasetId;
    this.store = options.store ?? openOutput(options.output, options.s3 ? { s3: options.s3 } : {});
    this.ownsStore = options.store === undefined;
  }

  /** The dataset folder's URI. */
  get uri(): string {
    return this.store.urlFor(this.datasetId);
  }

  /** The full URI of a key (relative to the output root), for messages. */
  urlFor(key: string): string {
    return this.store.urlFor(key);
  }

  /** `dataset.json`, or `undefined` before the first run finished. A file that is not one throws. */
  async dataset(): Promise<DatasetDocument | undefined> {
    const key = datasetKey(this.datasetId);
    const body = await this.store.get(key);
    if (!body) return undefined;
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch (err) {
      throw new ValidationError(ErrorCode.InvalidRequest, `${this.urlFor(key)} is not JSON: ${(err as Error).message}`);
    }
    const parsed = DatasetDocument.safeParse(value);
    if (!parsed.success) throw new ValidationError(ErrorCode.InvalidRequest, `${this.urlFor(key)} is not a layertap dataset.json: ${formatIssues(parsed.error)}`);
    return parsed.data;
  }

  /** Layers (with their stored shapes), dtype, layout and preprocessing, from `dataset.json`. */
  async info(): Promise<DatasetInfo | undefined> {
    const doc = await this.dataset();
    return doc && infoFromDocument(doc);
  }

  /**
   * The manifest's lines, streamed: `manifest.jsonl` once written, else the chunk parts written so far,
   * merged as the finalizer merges them. Nothing when neither exists.
   */
  async *lines(): AsyncGenerator<ManifestLine> {
    const source = await this.manifestSource();
    if (source) yield* source;
  }

  /** The manifest's lines all at once (see `lines()`); `undefined` when there is neither manifest nor part. */
  async manifest(): Promise<ManifestLine[] | undefined> {
    const source = await this.manifestSource();
    if (!source) return undefined;
    const lines: ManifestLine[] = [];
    for await (const line of source) lines.push(line);
    return lines;
  }

  /** The samples that failed (cancelled ones too: they fail with reason `cancelled`), in manifest order. */
  async failedSamples(): Promise<Sample[]> {
    const source = await this.manifestSource();
    if (!source) throw new ValidationError(ErrorCode.InvalidRequest, `dataset ${this.datasetId} has no manifest yet: wait for it to finish`);
    const failed: Sample[] = [];
    for await (const line of source) if (line.status === 'failed') failed.push({ id: line.id, uri: line.uri });
    return failed;
  }

  /**
   * The array a manifest `outputs` value names: a `.npy` key, or `<shard key>#<tensor>` for `--format shards`
   * (the shard is read whole). `undefined` when the object or the tensor is gone.
   */
  async array(ref: string): Promise<StoredArray | undefined> {
    const { key, tensor } = parseOutputRef(ref);
    if (tensor === undefined) {
      const body = await this.store.get(key);
      return body && decodeNpy(body);
    }
    return (await this.shard(key, [tensor]))?.get(tensor);
  }

  /**
   * Tensors of one shard, read once: those named in `tensors` (every one when omitted), by tensor name.
   * `undefined` when the shard is gone.
   */
  async shard(key: string, tensors?: Iterable<string>): Promise<Map<string, StoredArray> | undefined> {
    const body = await this.store.get(key);
    if (!body) return undefined;
    const decoded = decodeSafetensors(body, tensors && new Set(tensors));
    return new Map(decoded.tensors.map((t) => [t.name, fromTensor(t)]));
  }

  /** The array as float32 values (for montages). */
  async activation(ref: string): Promise<{ data: Float32Array; shape: number[] } | undefined> {
    const array = await this.array(ref);
    if (!array) return undefined;
    return { data: array.dtype === 'float16' ? float16BitsToFloat32(array.data) : array.data, shape: array.shape };
  }

  /** The array as a `.npy` file: the stored bytes for `.npy` outputs, re-encoded from a shard otherwise. */
  async npy(ref: string): Promise<Buffer | undefined> {
    if (parseOutputRef(ref).tensor === undefined) return this.store.get(ref);
    const array = await this.array(ref);
    return array && encodeNpy(array.data, array.shape, array.dtype);
  }

  /** Releases the store the reader opened (an S3 client it made); nothing to do when given a client or a store. */
  async close(): Promise<void> {
    if (this.ownsStore) await this.store.close();
  }

  /** `manifest.jsonl` as a stream of lines, else the parts; `undefined` when neither exists. */
  private async manifestSource(): Promise<AsyncIterable<ManifestLine> | undefined> {
    const key = manifestKey(this.datasetId);
    const body = await this.store.read(key);
    if (body) return streamedLines(key, body);
    const parts = (await this.store.list(partsPrefix(this.datasetId))).filter((k) => parsePartKey(k) !== undefined).sort();
    return parts.length ? this.partLines(parts) : undefined;
  }

  /**
   * The parts' lines. Within one run every sample has one line in one part, so they stream part by part;
   * after a retry a later run's line replaces the earlier one in place, which needs them all merged first.
   */
  private async *partLines(keys: string[]): AsyncGenerator<ManifestLine> {
    if (new Set(keys.map((k) => parsePartKey(k)?.run)).size > 1) {
      yield* (await readManifestParts(this.store, this.datasetId)).lines.values();
      return;
    }
    for (const key of keys) {
      const body = await this.store.get(key);
      if (body) yield* parsePart(key, body.toString('utf8'));
    }
  }
}
