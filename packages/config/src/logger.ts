import pino, { type Logger } from 'pino';
import { redactText, redactUri } from '@layertap/contracts';

export type { Logger } from 'pino';

/** Paths whose values never reach a log line, whatever logs them. */
export const REDACTED_PATHS = [
  'password',
  '*.password',
  '*.*.password',
  '*.*.credentials',
  '*.*.sessionToken',
  '*.*.authorization',
  'secretAccessKey',
  '*.secretAccessKey',
  '*.*.secretAccessKey',
  'accessKeyId',
  '*.accessKeyId',
  '*.*.accessKeyId',
  'sessionToken',
  '*.sessionToken',
  'credentials',
  '*.credentials',
  'authorization',
  '*.authorization',
  'headers.authorization',
];

/** Removes the password and credential-like query values from a Redis or HTTP URL so it can be shown. */
export function redactUrl(url: string): string {
  try {
    new URL(url);
    return redactUri(url, Number.POSITIVE_INFINITY, { userinfo: 'mask' });
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}

/** Every string in a log object with the URIs in it redacted (sample URIs, REDIS_URL, error messages). */
function redactStrings(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactText(value);
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redactStrings(v, depth + 1));
  if (value instanceof Error) {
    // A copy of the same class (pino's err serializer names it), message and stack redacted.
    const copy = Object.create(Object.getPrototypeOf(value) as object) as Error;
    Object.assign(copy, redactStrings({ ...value }, depth + 1));
    Object.defineProperty(copy, 'message', { value: redactText(value.message), enumerable: false });
    Object.defineProperty(copy, 'stack', { value: value.stack ? redactText(value.stack) : undefined, enumerable: false });
    return copy;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = redactStrings(v, depth + 1);
  return out;
}

export interface LoggerOptions {
  name: string;
  level?: string;
  /** Where JSON lines go; default stdout. */
  destination?: NodeJS.WritableStream;
}

/** A structured JSON logger with secrets redacted. Passed to the parts that log, never imported globally. */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      name: options.name,
      level: options.level ?? 'info',
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      // Whatever logs a URI (a failed sample, a connection error), its credentials never reach the line.
      formatters: { log: (object) => redactStrings(object) as Record<string, unknown> },
      hooks: {
        logMethod(args, method) {
          method.apply(this, args.map((a) => (typeof a === 'string' ? redactText(a) : a)) as Parameters<typeof method>);
        },
      },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? process.stdout,
  );
}
