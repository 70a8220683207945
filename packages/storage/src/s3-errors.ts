import { ErrorCode, LayertapError, TransientError, ValidationError } from '@layertap/contracts';

interface SdkErrorLike {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

const CREDENTIAL_ERRORS = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'InvalidClientTokenId',
]);
const ACCESS_ERRORS = new Set(['AccessDenied', 'AllAccessDisabled', 'AccountProblem', 'Forbidden']);
const TRANSIENT_ERRORS = new Set([
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'ServiceUnavailable',
  'InternalError',
  'NetworkingError',
]);
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNABORTED',
]);

export interface S3ErrorContext {
  /** What was being done, e.g. `write` (goes into the message). */
  action: string;
  /** The `s3://` URI concerned. */
  url: string;
  bucket: string;
  /** Strings that must never appear in a message (credentials we were given). */
  secrets?: readonly string[];
}

/**
 * The Node network error code of `e`: from `code`, or from the message when the SDK wrapped an error it did
 * not recognise as an Error (it does so for errors from another realm, e.g. under Jest) and kept only text.
 */
function networkErrorCode(e: SdkErrorLike): string | undefined {
  if (e.code && NETWORK_CODES.has(e.code)) return e.code;
  const match = /\b(E[A-Z_]+)\b/.exec(e.message ?? '');
  return match?.[1] && NETWORK_CODES.has(match[1]) ? match[1] : undefined;
}

function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret.length >= 4) out = out.split(secret).join('***');
  return out;
}

/**
 * An S3 SDK error (after the SDK's own retries) as a LayertapError that says what to fix: missing bucket,
 * access or credential trouble are `ValidationError` (retrying cannot help); network trouble, throttling and
 * 5xx are `TransientError`. Messages never carry credentials.
 */
export function mapS3Error(err: unknown, context: S3ErrorContext): LayertapError {
  if (err instanceof LayertapError) return err;
  const e = (err ?? {}) as SdkErrorLike;
  const name = e.name ?? 'Error';
  const status = e.$metadata?.httpStatusCode;
  const where = `${context.action} ${context.url}`;
  const secrets = context.secrets ?? [];
  const options = { cause: err };

  if (name === 'NoSuchBucket') {
    return new ValidationError(ErrorCode.InvalidOutput, `S3 bucket "${context.bucket}" does not exist (${where})`, options);
  }
  if (CREDENTIAL_ERRORS.has(name)) {
    return new ValidationError(ErrorCode.InvalidOutput, `S3 rejected the credentials (${name}) on ${where}: check the access key, secret and region`, options);
  }
  if (ACCESS_ERRORS.has(name) || status === 403) {
    return new ValidationError(ErrorCode.InvalidOutput, `access denied on ${where}: the credentials may not write to this bucket/prefix (check the IAM or bucket policy)`, options);
  }
  if (name === 'CredentialsProviderError') {
    return new ValidationError(
      ErrorCode.InvalidOutput,
      `no S3 credentials found for ${where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or use an instance role`,
      options,
    );
  }
  if (/region is missing/i.test(e.message ?? '')) {
    return new ValidationError(ErrorCode.InvalidOutput, `no S3 region configured for ${where}: set AWS_REGION`, options);
  }
  const networkCode = networkErrorCode(e);
  if (networkCode) {
    return new TransientError(ErrorCode.UploadFailed, `cannot reach S3 for ${where} (${networkCode})`, options);
  }
  if (TRANSIENT_ERRORS.has(name) || (status !== undefined && (status >= 500 || status === 429))) {
    return new TransientError(ErrorCode.UploadFailed, `S3 ${where} failed: ${name}${status ? ` (HTTP ${status})` : ''}`, options);
  }
  const detail = redact(e.message ?? String(err), secrets);
  return new LayertapError(ErrorCode.UploadFailed, `S3 ${where} failed: ${name}${status ? ` (HTTP ${status})` : ''}: ${detail}`, options);
}
