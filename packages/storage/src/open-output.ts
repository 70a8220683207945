import type { S3Client } from '@aws-sdk/client-s3';
import { FileOutputWriter } from './file-output-writer';
import type { OutputWriter } from './output-writer';
import { parseOutputUri } from './output-uri';
import { S3OutputWriter, type S3ClientSettings, type S3OutputWriterOptions } from './s3-output-writer';

export interface OpenOutputOptions extends Pick<
  S3OutputWriterOptions,
  'multipartThresholdBytes' | 'partSizeBytes' | 'multipartConcurrency' | 'listPageSize'
> {
  /** For `s3://` outputs: a client (the caller keeps owning it) or settings. Default: the SDK's defaults. */
  s3?: S3Client | S3ClientSettings;
}

/** The writer for an output URI (`s3://bucket/prefix`, `file:///dir` or `/dir`); throws on an invalid URI. */
export function openOutput(uri: string, options: OpenOutputOptions = {}): OutputWriter {
  const location = parseOutputUri(uri);
  if (location.kind === 'file') return new FileOutputWriter({ dir: location.dir });
  const { s3, ...tuning } = options;
  return new S3OutputWriter({ ...tuning, bucket: location.bucket, prefix: location.prefix, client: s3 });
}
