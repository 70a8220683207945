import pino, { type Logger } from 'pino';

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

/** Removes the password from a Redis or HTTP URL so it can be shown. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
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
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? process.stdout,
  );
}
