// The inference process's settings: it inherits the worker's environment, and needs only the S3 settings
// (remote weights are fetched with them).
import { readCommonConfig, type S3Settings } from '@layertap/config';

export function childS3Settings(env: NodeJS.ProcessEnv = process.env): S3Settings {
  return readCommonConfig(env).s3;
}
