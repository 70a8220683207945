import { ErrorCode, LayertapError, TransientError, ValidationError } from '@layertap/contracts';
import { mapS3Error } from './s3-errors';

// Errors shaped as the AWS SDK v3 throws them (name, $metadata, code for network errors).
function sdkError(name: string, status?: number, message = 'x'): Error {
  return Object.assign(new Error(message), { name, $metadata: { httpStatusCode: status } });
}

const context = { action: 'write', url: 's3://b/p/k.npy', bucket: 'b', secrets: ['SECRETKEY123', 'AKIAEXAMPLE'] };

describe('mapS3Error', () => {
  it('maps a missing bucket, access and credential trouble to ValidationError', () => {
    const missing = mapS3Error(sdkError('NoSuchBucket', 404), context);
    expect(missing).toBeInstanceOf(ValidationError);
    expect(missing.code).toBe(ErrorCode.InvalidOutput);
    expect(missing.message).toBe('S3 bucket "b" does not exist (write s3://b/p/k.npy)');
    expect(mapS3Error(sdkError('AccessDenied', 403), context).message).toMatch(/^access denied on write s3:\/\/b\/p\/k\.npy/);
    expect(mapS3Error(sdkError('Unknown', 403), context)).toBeInstanceOf(ValidationError);
    expect(mapS3Error(sdkError('SignatureDoesNotMatch', 403), context).message).toMatch(/^S3 rejected the credentials \(SignatureDoesNotMatch\)/);
    expect(mapS3Error(sdkError('CredentialsProviderError'), context).message).toMatch(/no S3 credentials found/);
    expect(mapS3Error(new Error('Region is missing'), context).message).toMatch(/no S3 region configured/);
  });

  it('maps network trouble, throttling and 5xx to TransientError', () => {
    const refused = mapS3Error(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }), context);
    expect(refused).toBeInstanceOf(TransientError);
    expect(refused.code).toBe(ErrorCode.UploadFailed);
    expect(refused.message).toBe('cannot reach S3 for write s3://b/p/k.npy (ECONNREFUSED)');
    expect(mapS3Error(new Error('AWS SDK error wrapper for Error: read ECONNRESET'), context).message).toMatch(/\(ECONNRESET\)$/);
    expect(mapS3Error(sdkError('SlowDown', 503), context)).toBeInstanceOf(TransientError);
    expect(mapS3Error(sdkError('InternalError', 500), context).message).toBe('S3 write s3://b/p/k.npy failed: InternalError (HTTP 500)');
    expect(mapS3Error(sdkError('TimeoutError'), context)).toBeInstanceOf(TransientError);
  });

  it('keeps other errors as LayertapError, with credentials scrubbed from the text', () => {
    const err = mapS3Error(sdkError('WeirdError', 400, 'key AKIAEXAMPLE with SECRETKEY123 failed'), context);
    expect(err).toBeInstanceOf(LayertapError);
    expect(err).not.toBeInstanceOf(ValidationError);
    expect(err).not.toBeInstanceOf(TransientError);
    expect(err.message).toBe('S3 write s3://b/p/k.npy failed: WeirdError (HTTP 400): key *** with *** failed');
  });

  it('passes LayertapErrors through', () => {
    const original = new ValidationError(ErrorCode.InvalidOutput, 'bad key');
    expect(mapS3Error(original, context)).toBe(original);
  });
});
