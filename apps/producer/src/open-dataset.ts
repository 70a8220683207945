import path from 'node:path';
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { DatasetReader, infoFromConfig, type DatasetInfo } from '@layertap/datasets';
import type { LayertapQueues } from '@layertap/queue';
import { unknownDatasetError } from '@layertap/datasets';
import type { CliContext } from './context';

/** A dataset as the CLI's read commands name it: by id (through Redis), or by its output folder (no Redis). */
export interface OpenedDataset {
  reader: DatasetReader;
  info: DatasetInfo;
  /** Opened by id: the queues, for the store's sample index. */
  queues?: LayertapQueues;
}

/** Whether an argument names a dataset folder rather than a dataset id (ids never hold `/` or `:`). */
export function isDatasetLocation(arg: string): boolean {
  return arg.includes('/') || arg.includes(':');
}

/**
 * Opens a dataset by id, finding its output in Redis (its latest run's config), or by its folder
 * (`s3://bucket/prefix/<id>`, `file:///dir/<id>`, or a path), reading its `dataset.json` and never Redis.
 */
export async function openDataset(ctx: CliContext, dataset: string): Promise<OpenedDataset> {
  if (isDatasetLocation(dataset)) {
    const uri = /^[a-z][a-z0-9+.-]*:/i.test(dataset) ? dataset : path.resolve(dataset);
    const reader = DatasetReader.fromUri(uri, { s3: ctx.s3 });
    const info = await reader.info();
    if (!info) {
      throw new ValidationError(ErrorCode.InvalidRequest, `${reader.uri} has no dataset.json: not a finished layertap dataset folder (its layers, dtype and layout are read from there)`);
    }
    return { reader, info };
  }
  const queues = await ctx.queues();
  const config = await queues.store.latestRun(dataset);
  if (!config) throw unknownDatasetError(dataset);
  return { reader: new DatasetReader({ output: config.output, datasetId: dataset, s3: ctx.s3 }), info: infoFromConfig(config), queues };
}
