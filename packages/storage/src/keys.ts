import { ErrorCode, idProblem, ValidationError } from '@layertap/contracts';

// Every key is relative to the output root (`s3://bucket/prefix` or `file:///dir`).

/** The folder of chunk part files; the leading `_` keeps it apart from layer folders. */
export const PARTS_DIR = '_parts';
/** The folder of safetensors shards (`--format shards`). */
export const SHARDS_DIR = 'shards';
const RUN_DIGITS = 6;
const CHUNK_DIGITS = 9;
/** Names taken by layertap's own files inside a dataset folder. */
const RESERVED_NAMES = new Set(['manifest.jsonl', 'dataset.json', SHARDS_DIR]);

function assertId(what: string, id: string): void {
  const problem = idProblem(id);
  if (problem) throw new ValidationError(ErrorCode.InvalidId, `${what} ${JSON.stringify(id.slice(0, 60))} ${problem}`);
}

/** A layer spec names a folder, so it must be a safe id and must not collide with layertap's own names. */
function assertLayerSpec(spec: string): void {
  const problem =
    idProblem(spec) ?? (spec.startsWith('_') ? "starts with '_' (reserved)" : RESERVED_NAMES.has(spec) ? 'is a reserved name' : undefined);
  if (problem) {
    throw new ValidationError(ErrorCode.InvalidRequest, `layer spec ${JSON.stringify(spec.slice(0, 60))} cannot name an output folder: it ${problem}`);
  }
}

function pad(what: string, value: number, digits: number): string {
  if (!Number.isSafeInteger(value) || value < 0 || value >= 10 ** digits) {
    throw new RangeError(`${what} ${value} must be an integer from 0 to ${10 ** digits - 1}`);
  }
  return String(value).padStart(digits, '0');
}

/** `<datasetId>/` */
export function datasetPrefix(datasetId: string): string {
  assertId('dataset id', datasetId);
  return `${datasetId}/`;
}

/** `<datasetId>/<layerSpec>/<sampleId>.npy` */
export function sampleKey(datasetId: string, layerSpec: string, sampleId: string): string {
  assertId('dataset id', datasetId);
  assertLayerSpec(layerSpec);
  assertId('sample id', sampleId);
  return `${datasetId}/${layerSpec}/${sampleId}.npy`;
}

/** `<datasetId>/_parts/` */
export function partsPrefix(datasetId: string): string {
  return `${datasetPrefix(datasetId)}${PARTS_DIR}/`;
}

/** `<datasetId>/_parts/<run, 6 digits>-<chunk, 9 digits>.jsonl`: sorting the keys sorts by run, then chunk. */
export function partKey(datasetId: string, run: number, chunk: number): string {
  return `${partsPrefix(datasetId)}${pad('run', run, RUN_DIGITS)}-${pad('chunk', chunk, CHUNK_DIGITS)}.jsonl`;
}

const PART_KEY = new RegExp(`^([^/]+)/${PARTS_DIR}/(\\d{${RUN_DIGITS}})-(\\d{${CHUNK_DIGITS}})\\.jsonl$`);

/** The inverse of `partKey`; `undefined` for any other key. */
export function parsePartKey(key: string): { datasetId: string; run: number; chunk: number } | undefined {
  const match = PART_KEY.exec(key);
  if (!match) return undefined;
  const [, datasetId = '', run = '', chunk = ''] = match;
  return { datasetId, run: Number(run), chunk: Number(chunk) };
}

/** `<datasetId>/shards/<run, 6 digits>-<chunk, 9 digits>.safetensors`: one chunk's tensors (`--format shards`). */
export function shardKey(datasetId: string, run: number, chunk: number): string {
  return `${datasetPrefix(datasetId)}${SHARDS_DIR}/${pad('run', run, RUN_DIGITS)}-${pad('chunk', chunk, CHUNK_DIGITS)}.safetensors`;
}

/**
 * A manifest `outputs` value that points into a shard: `<shard key>#<tensor name>`. Keys never contain `#`
 * (ids cannot), so the last `#` splits it.
 */
export function shardOutputRef(key: string, tensorName: string): string {
  return `${key}#${tensorName}`;
}

/** Splits a manifest `outputs` value into the object key and, for shards, the tensor name. */
export function parseOutputRef(ref: string): { key: string; tensor?: string } {
  const hash = ref.indexOf('#');
  return hash < 0 ? { key: ref } : { key: ref.slice(0, hash), tensor: ref.slice(hash + 1) };
}

/** `<datasetId>/manifest.jsonl` */
export function manifestKey(datasetId: string): string {
  return `${datasetPrefix(datasetId)}manifest.jsonl`;
}

/** `<datasetId>/dataset.json` */
export function datasetKey(datasetId: string): string {
  return `${datasetPrefix(datasetId)}dataset.json`;
}
