export { FileOutputWriter, type FileOutputWriterOptions } from './file-output-writer';
export * from './formats';
export {
  datasetKey,
  datasetPrefix,
  manifestKey,
  parseOutputRef,
  parsePartKey,
  partKey,
  partsPrefix,
  PARTS_DIR,
  sampleKey,
  shardKey,
  shardOutputRef,
  SHARDS_DIR,
} from './keys';
export { openOutput, type OpenOutputOptions } from './open-output';
export { bucketNameProblem, parseDatasetUri, parseOutputUri, type OutputLocation } from './output-uri';
export {
  assertListPrefix,
  assertOutputKey,
  bodyBuffer,
  bodyLength,
  contentTypeFor,
  outputKeyProblem,
  type ObjectBody,
  type OutputWriter,
  type PutOptions,
} from './output-writer';
export { mapS3Error, type S3ErrorContext } from './s3-errors';
export { createS3Client, isS3Client, S3OutputWriter, type S3ClientSettings, type S3OutputWriterOptions } from './s3-output-writer';
export { sampleArray, type BatchLayout, type SampleArray } from './sample-array';
export { parseManifestLine, parsePart, readManifestParts, type MergedParts } from './manifest-parts';
export { MAX_SHARD_BYTES, ShardBuilder, shardTensorName, type ShardBuilderOptions, type ShardLayer } from './shard-builder';
export { StackedArrayWriter, type StackedArrayWriterOptions, type StackedFormat } from './stacked-array-writer';
