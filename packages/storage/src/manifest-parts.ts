import { ManifestLine } from '@layertap/contracts';
import { partsPrefix, parsePartKey } from './keys';
import type { OutputWriter } from './output-writer';

export interface MergedParts {
  /** sample id -> its line from the latest run that wrote one, in first-seen order. */
  lines: Map<string, ManifestLine>;
  /** The part keys read, sorted (run, then chunk). */
  keys: string[];
  /** The highest run with a part, or -1 when there is none. */
  maxRun: number;
}

/** Parses line `lineNumber` (1-based) of `key`; a line that does not parse is a bug worth failing loudly on. */
export function parseManifestLine(key: string, lineNumber: number, text: string): ManifestLine {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${key}:${lineNumber} is not JSON: ${(err as Error).message}`);
  }
  const parsed = ManifestLine.safeParse(value);
  if (!parsed.success) throw new Error(`${key}:${lineNumber} is not a manifest line: ${parsed.error.message}`);
  return parsed.data;
}

/** Parses one part file (or a whole manifest held in memory). */
export function parsePart(key: string, body: string): ManifestLine[] {
  return body
    .split('\n')
    .filter((l) => l.trim().length > 0)
    .map((l, i) => parseManifestLine(key, i + 1, l));
}

/**
 * Reads every chunk part of a dataset and merges them: parts are applied in (run, chunk) order, so a sample
 * retried in a later run keeps exactly one line, the latest.
 */
export async function readManifestParts(writer: OutputWriter, datasetId: string): Promise<MergedParts> {
  const keys = (await writer.list(partsPrefix(datasetId))).filter((k) => parsePartKey(k) !== undefined).sort();
  const lines = new Map<string, ManifestLine>();
  let maxRun = -1;
  for (const key of keys) {
    maxRun = Math.max(maxRun, parsePartKey(key)?.run ?? -1);
    const body = await writer.get(key);
    if (!body) continue;
    for (const line of parsePart(key, body.toString('utf8'))) lines.set(line.id, line);
  }
  return { lines, keys, maxRun };
}
