import { createLogger } from '@layertap/config';
import { describeError, isLayertapError } from '@layertap/contracts';

/**
 * The worker's last words before it exits (a bad option, a failed start), as one line of its JSON log format,
 * so that a log collector parsing the worker's output as JSON lines reads them too. Secrets are redacted as in
 * every log line. Written to stderr, synchronously: the process exits next.
 */
export function writeFatalLine(msg: string, fields: Record<string, unknown> = {}, destination: NodeJS.WritableStream = process.stderr): void {
  createLogger({ name: 'layertap-worker', destination }).fatal(fields, msg);
}

/** The fatal line of an error that stopped the worker: its message, and its code when it has one. */
export function writeFatalError(err: unknown, exitCode: number, destination: NodeJS.WritableStream = process.stderr): void {
  writeFatalLine(describeError(err), { ...(isLayertapError(err) ? { code: err.code } : {}), exitCode }, destination);
}
