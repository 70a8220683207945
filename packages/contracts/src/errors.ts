/**
 * Stable reason codes. They appear in manifests, `layertap status` and the dashboard, and scripts match on
 * them: never rename one, only add.
 */
export const ErrorCode = {
  // Per-sample failures (the rest of the chunk goes on).
  NotFound: 'not_found',
  HttpError: 'http_error',
  Timeout: 'timeout',
  TooLarge: 'too_large',
  EmptyFile: 'empty_file',
  UnsupportedScheme: 'unsupported_scheme',
  PathNotAllowed: 'path_not_allowed',
  AddressBlocked: 'address_blocked',
  FetchFailed: 'fetch_failed',
  DecodeFailed: 'decode_failed',
  PixelLimit: 'pixel_limit',
  // Chunk-level failures.
  UploadFailed: 'upload_failed',
  InferenceFailed: 'inference_failed',
  TensorLeak: 'tensor_leak',
  ChunkFailed: 'chunk_failed',
  Cancelled: 'cancelled',
  BadPayload: 'bad_payload',
  // Request validation (producer side).
  InvalidRequest: 'invalid_request',
  UnknownLayer: 'unknown_layer',
  InvalidOutput: 'invalid_output',
  InvalidSource: 'invalid_source',
  InvalidId: 'invalid_id',
  DuplicateId: 'duplicate_id',
  EmptyManifest: 'empty_manifest',
  InvalidWeights: 'invalid_weights',
  /** A model file (--model path.onnx) that is not a model layertap can read or feed. */
  InvalidModel: 'invalid_model',
  // Environment.
  ServiceUnavailable: 'service_unavailable',
  BackendUnavailable: 'backend_unavailable',
  /** The engine failed while running a batch (a kernel error, a lost device): the worker's fault, not the sample's. */
  EngineFault: 'engine_fault',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Base class of every error layertap throws on purpose: a stable `code` and a message a person can act on. */
export class LayertapError extends Error {
  override name = 'LayertapError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A request that can never succeed as written (bad layer, bad output URI, bad ids, ...). Not retried. */
export class ValidationError extends LayertapError {
  override name = 'ValidationError';
}

/** One sample could not be turned into activations; the rest of its chunk goes on. */
export class SampleError extends LayertapError {
  override name = 'SampleError';
}

/** Transient trouble (network, S3 5xx, Redis): worth retrying with backoff. */
export class TransientError extends LayertapError {
  override name = 'TransientError';
}

/**
 * The engine broke while it ran a batch (a kernel error, a lost GPU device, wrong results found by a check):
 * nothing is wrong with the samples. The chunk is released without spending an attempt, and after repeated
 * faults the worker moves to the next engine.
 */
export class EngineFault extends LayertapError {
  override name = 'EngineFault';
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.EngineFault, message, options);
  }
}

export function isLayertapError(err: unknown): err is LayertapError {
  return err instanceof LayertapError;
}

/** A one-line description of any thrown value, for manifests and logs. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
