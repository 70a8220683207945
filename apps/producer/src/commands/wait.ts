import type { DatasetStatus } from '@layertap/queue';
import type { CliContext } from '../context';
import { formatStatus, waitForDataset } from '../progress';

/** Shows a live progress line (rewritten in place on a terminal) until the dataset finishes. */
export async function waitWithProgress(ctx: CliContext, datasetId: string, out: NodeJS.WriteStream = process.stderr): Promise<DatasetStatus> {
  const tty = out.isTTY === true;
  let lastPrinted = 0;
  let redisDown = false;
  const status = await waitForDataset(await ctx.queues(), datasetId, {
    onProgress: (_s, line) => {
      redisDown = false;
      if (tty) out.write(`\r\x1b[2K${line}`);
      else if (Date.now() - lastPrinted > 5_000) {
        out.write(`${line}\n`);
        lastPrinted = Date.now();
      }
    },
    onError: (err) => {
      if (!redisDown) out.write(`${tty ? '\n' : ''}waiting for Redis: ${err.message}\n`);
      redisDown = true;
    },
  });
  if (tty) out.write('\n');
  return status;
}

export function printSummary(status: DatasetStatus, out: NodeJS.WriteStream = process.stdout): void {
  out.write(`${formatStatus(status)}\n`);
  out.write(`manifest  ${status.config.output}/${status.datasetId}/manifest.jsonl\n`);
}
