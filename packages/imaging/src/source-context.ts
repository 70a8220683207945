import type { ErrorCode, SampleError } from '@layertap/contracts';

/** What every source gets for one fetch. */
export interface SourceContext {
  /** Aborts on the fetch's deadline or the caller's signal. */
  signal: AbortSignal;
  maxBytes: number;
  /** A `SampleError` whose message starts with the (redacted) URI. */
  fail(code: ErrorCode, message: string, cause?: unknown): SampleError;
}
