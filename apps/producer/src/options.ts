import { InvalidArgumentError } from 'commander';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { BATCH_SIZE, CHUNK_SIZE, IMAGE_SIZE } from '@layertap/contracts';

/** A parser of an integer flag within `[min, max]`, saying the range when a value is outside it. */
export function intIn(range: { min: number; max?: number }): (value: string) => number {
  const allowed = range.max === undefined ? `an integer from ${range.min} up` : `an integer from ${range.min} to ${range.max}`;
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || n < range.min || (range.max !== undefined && n > range.max)) {
      throw new InvalidArgumentError(`expected ${allowed}`);
    }
    return n;
  };
}

export const positiveInt = intIn({ min: 1 });
export const nonNegativeInt = intIn({ min: 0 });
export const imageSize = intIn(IMAGE_SIZE);
export const chunkSize = intIn(CHUNK_SIZE);

/** `--batch-size`: `auto`, or an integer within BATCH_SIZE. */
export function batchSize(value: string): number | 'auto' {
  if (value === 'auto') return 'auto';
  try {
    return intIn(BATCH_SIZE)(value);
  } catch {
    throw new InvalidArgumentError(`expected auto or an integer from ${BATCH_SIZE.min} to ${BATCH_SIZE.max}`);
  }
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** A retention: `<n>s|m|h|d` as seconds, or `forever` as undefined. */
export function parseRetention(value: string): number | undefined {
  if (value === 'forever') return undefined;
  const m = /^(\d+)([smhd])$/.exec(value.trim());
  const seconds = m ? Number(m[1]) * (UNITS[m[2] as string] as number) : 0;
  if (!(seconds > 0)) throw new InvalidArgumentError('expected a duration such as 90s, 12h or 30d, or forever');
  return seconds;
}

/** `--retention`, parsed by commander: `forever` stays a string so that it beats the environment's default. */
export function retentionOption(value: string): number | 'forever' {
  return parseRetention(value) ?? 'forever';
}

/**
 * `--output` as a URI: a relative path (`out`, `./data/out`) is made a file URI of the directory it names
 * from here, as sources and `export --to` take relative paths; URIs and absolute paths pass unchanged
 * (`parseOutputUri` checks them).
 */
export function outputUri(value: string, cwd = process.cwd()): string {
  if (value === '' || /^[a-z][a-z0-9+.-]*:/i.test(value) || value.startsWith('~') || path.isAbsolute(value)) return value;
  // Left as given for parseOutputUri to refuse with its own message.
  if (value.trim() !== value || [...value].some((c) => c.charCodeAt(0) < 0x20)) return value;
  return pathToFileURL(path.resolve(cwd, value)).href;
}
