import { randomBytes } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { ErrorCode, ValidationError, type Dtype, type Layout, type Pool } from '@layertap/contracts';
import { float16BitsToFloat32, float32ToFloat16Bits, parseOutputRef, StackedArrayWriter, type StackedFormat } from '@layertap/storage';
import { findLayer, type DatasetInfo, type DatasetLayer } from './dataset-info';
import type { DatasetReader, StoredArray } from './dataset-reader';
import { globalPool, pooledShape } from './global-pool';
import { readAhead } from './read-ahead';

export interface ExportLayerOptions {
  /** The layer: its spec or canonical name. */
  layer: string;
  /** The local file the stacked array goes to: `.npy` or `.safetensors` (see `exportPaths`). */
  to: string;
  /** Global spatial pooling of each (C,H,W) or (H,W,C) row to (C,), in the dataset's layout. Default `none`. */
  pool?: Pool;
  /** The exported dtype. Default: the dataset's (float16 stays float16). */
  dtype?: Dtype;
  /** `.npy` outputs read at once (shards are read one ahead, each once). Default 8. */
  concurrency?: number;
  /** Called after each row is written. */
  onProgress?: (progress: { rows: number; total: number; bytes: number; totalBytes: number }) => void;
}

export interface ExportResult {
  datasetId: string;
  /** The layer's spec. */
  layer: string;
  path: string;
  idsPath: string;
  format: StackedFormat;
  /** `[N, ...row shape]`. */
  shape: number[];
  dtype: Dtype;
  pool: Pool;
  bytes: number;
}

/** The stacked file's format, from its extension, and the ids file beside it (`out.npy` -> `out.ids.txt`). */
export function exportPaths(to: string): { format: StackedFormat; idsPath: string } {
  const ext = extname(to).toLowerCase();
  const format = ext === '.npy' ? 'npy' : ext === '.safetensors' ? 'safetensors' : undefined;
  if (!format) throw new ValidationError(ErrorCode.InvalidRequest, `--to ${JSON.stringify(to)}: give a .npy or .safetensors file`);
  return { format, idsPath: join(dirname(to), `${basename(to, extname(to))}.ids.txt`) };
}

/** Rows stored in shards, by shard key: where each goes in the stacked array and its tensor's name. */
type ShardRows = Map<string, { rows: number[]; tensors: string[] }>;

/** A text file written line by line to a temporary name, renamed into place when complete. */
class LinesFile {
  private readonly temp: string;
  private handle: FileHandle | undefined;
  private buffered: string[] = [];
  private size = 0;

  constructor(private readonly path: string) {
    this.temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.partial`);
  }

  async open(): Promise<void> {
    this.handle = await open(this.temp, 'wx');
  }

  async add(line: string): Promise<void> {
    this.buffered.push(line);
    this.size += line.length + 1;
    if (this.size >= 1 << 16) await this.flush();
  }

  async close(): Promise<void> {
    await this.flush();
    await this.handle?.close();
    this.handle = undefined;
    await rename(this.temp, this.path);
  }

  async abort(): Promise<void> {
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
    await unlink(this.temp).catch(() => undefined);
  }

  private async flush(): Promise<void> {
    if (this.buffered.length === 0) return;
    const text = this.buffered.map((l) => `${l}\n`).join('');
    this.buffered = [];
    this.size = 0;
    await this.handle?.write(text);
  }
}

/** One row as exported: pooled and in the exported dtype (the stored values untouched when neither changes). */
function exportedRow(array: StoredArray, layout: Layout, pool: Pool, dtype: Dtype): Float32Array | Uint16Array {
  if (pool === 'none' && array.dtype === dtype) return array.data;
  let values = array.dtype === 'float16' ? float16BitsToFloat32(array.data) : array.data;
  if (pool !== 'none') values = globalPool(values, array.shape, layout, pool).data;
  return dtype === 'float16' ? float32ToFloat16Bits(values) : values;
}

/** The `ok` lines' outputs of `layer`, in manifest order, with their row index (the order of the stacked array). */
async function* okRows(reader: DatasetReader, layer: DatasetLayer): AsyncGenerator<{ row: number; id: string; ref: string }> {
  let row = 0;
  for await (const line of reader.lines()) {
    if (line.status !== 'ok') continue;
    const ref = line.outputs[layer.spec];
    if (ref === undefined) throw new Error(`sample ${line.id} is ok but its manifest line has no ${layer.spec} output`);
    const shape = line.shape[layer.spec];
    if (shape && shape.join() !== layer.shape.join()) {
      throw new Error(`sample ${line.id}: its ${layer.spec} array has shape [${shape.join(', ')}], the dataset's is [${layer.shape.join(', ')}]`);
    }
    yield { row: row++, id: line.id, ref };
  }
}

/**
 * Writes the `ok` samples' arrays of one layer as one stacked `(N, ...)` array, in manifest order, with their
 * ids beside it (one per line, same order), with memory bounded by a few rows (or a shard), not by N.
 *
 * The manifest is streamed twice: first to count N (the header needs it), write the ids and group the rows
 * stored in shards by shard; then `.npy` outputs are read in manifest order (`concurrency` at once) and each
 * shard once, its rows written to their places. Nothing appears at `to` until every row is in.
 */
export async function exportLayer(reader: DatasetReader, info: DatasetInfo, options: ExportLayerOptions): Promise<ExportResult> {
  const { format, idsPath } = exportPaths(options.to);
  const layer = findLayer(info, options.layer);
  const pool = options.pool ?? 'none';
  const dtype = options.dtype ?? info.dtype;

  const ids = new LinesFile(idsPath);
  let writer: StackedArrayWriter | undefined;
  try {
    await ids.open();
    let total = 0;
    const shards: ShardRows = new Map();
    for await (const { row, id, ref } of okRows(reader, layer)) {
      await ids.add(id);
      total = row + 1;
      const { key, tensor } = parseOutputRef(ref);
      if (tensor === undefined) continue;
      let group = shards.get(key);
      if (!group) shards.set(key, (group = { rows: [], tensors: [] }));
      group.rows.push(row);
      group.tensors.push(tensor);
    }

    const rowShape = pooledShape(layer.shape, info.layout, pool);
    writer = new StackedArrayWriter({
      path: options.to,
      format,
      rows: total,
      rowShape,
      dtype,
      tensorName: layer.spec,
      metadata: { datasetId: info.datasetId, layer: layer.spec, canonical: layer.canonical, dtype, pool, layout: info.layout, ids: String(total), idsFile: basename(idsPath) },
    });
    await writer.open();
    const out = writer;
    const write = async (row: number, array: StoredArray | undefined, what: string) => {
      if (!array) throw new Error(`${what} is gone: the dataset's outputs changed or were removed`);
      if (array.shape.join() !== layer.shape.join()) throw new Error(`${what} has shape [${array.shape.join(', ')}], the dataset's is [${layer.shape.join(', ')}]`);
      await out.write(row, exportedRow(array, info.layout, pool, dtype));
      const rows = out.rowsWritten;
      options.onProgress?.({ rows, total, bytes: rows * out.rowBytes, totalBytes: total * out.rowBytes });
    };

    // `.npy` outputs, in manifest order (the stream again: N refs need not be held).
    const npyRows = async function* () {
      for await (const r of okRows(reader, layer)) {
        if (r.row >= total) throw new Error(`the manifest of ${info.datasetId} gained samples during the export: run it again`);
        if (parseOutputRef(r.ref).tensor === undefined) yield r;
      }
    };
    for await (const { row, ref, array } of readAhead(npyRows(), options.concurrency ?? 8, async (r) => ({ ...r, array: await reader.array(r.ref) }))) {
      await write(row, array, reader.urlFor(ref));
    }
    // Shards, each read once, the next one while this one's rows are written.
    const groups = readAhead(shards, 2, async ([key, group]) => ({ key, group, arrays: await reader.shard(key, group.tensors) }));
    for await (const { key, group, arrays } of groups) {
      if (!arrays) throw new Error(`${reader.urlFor(key)} is gone: the dataset's outputs changed or were removed`);
      for (const [i, row] of group.rows.entries()) await write(row, arrays.get(group.tensors[i] as string), `${reader.urlFor(key)}#${group.tensors[i]}`);
    }

    await writer.close();
    await ids.close();
    return { datasetId: info.datasetId, layer: layer.spec, path: options.to, idsPath, format, shape: [total, ...rowShape], dtype, pool, bytes: writer.byteLength };
  } catch (err) {
    await writer?.abort();
    await ids.abort();
    throw err;
  }
}
