import { InvalidArgumentError } from 'commander';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { BATCH_SIZE, BUILTIN_MODELS, CHUNK_SIZE, IMAGE_SIZE, type BuiltinModelName } from '@layertap/contracts';

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

/** `--model`: a built-in model's name, or the path or URI of an ONNX file. */
export type ModelChoice = { model: BuiltinModelName } | { model: 'onnx'; file: string };

/** Reads `--model`: `vgg16`, `resnet50`, or a path or URI ending in `.onnx`. */
export function modelOption(value: string): ModelChoice {
  const given = value.trim();
  if ((BUILTIN_MODELS as readonly string[]).includes(given)) return { model: given as BuiltinModelName };
  if (/\.onnx$/i.test(given.replace(/[?#].*$/, ''))) return { model: 'onnx', file: given };
  const lower = given.toLowerCase().replace(/[^a-z0-9]/g, '');
  const close = BUILTIN_MODELS.find((name) => name === lower || (lower.length >= 3 && name.startsWith(lower.slice(0, 3)) && given.length <= 12));
  throw new InvalidArgumentError(
    `${JSON.stringify(given.slice(0, 80))} is not a model: give ${BUILTIN_MODELS.join(' or ')}${close ? ` (did you mean ${close}?)` : ''}, or the path or URI of an .onnx file`,
  );
}

/** `--mean` / `--std`: three numbers, R, G, B, on the [0, 1] scale (`0.5,0.5,0.5`). */
export function channelTriple(flag: string, positive: boolean): (value: string) => [number, number, number] {
  return (value) => {
    const parts = value.split(',').map((p) => p.trim());
    const numbers = parts.map(Number);
    if (parts.length !== 3 || numbers.some((n, i) => parts[i] === '' || !Number.isFinite(n) || (positive && n <= 0))) {
      throw new InvalidArgumentError(`${flag} takes three ${positive ? 'positive ' : ''}numbers, R,G,B on the [0, 1] scale (e.g. 0.485,0.456,0.406), got ${JSON.stringify(value.slice(0, 60))}`);
    }
    return numbers as [number, number, number];
  };
}
