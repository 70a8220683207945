import { ExitCode } from '@layertap/contracts';
import type { DatasetStatus } from '@layertap/queue';
import type { CliContext } from '../context';
import { formatStatus, waitForDataset } from '../progress';

/** Shows a live progress line (rewritten in place on a terminal) until the dataset finishes. */
export async function waitWithProgress(ctx: CliContext, datasetId: string, out: NodeJS.WriteStream = process.stderr): Promise<DatasetStatus> {
  const tty = out.isTTY === true;
  let lastPrinted = 0;
  let lastWorkers: number | undefined;
  let redisDown = false;
  // Ctrl-C stops the watching, not the dataset: say so, and how to watch or stop it, then exit 130.
  const interrupted = () => {
    out.write(
      `${tty ? '\n' : ''}layertap: interrupted: dataset ${datasetId} keeps running on the workers; ` +
        `watch it with \`layertap status ${datasetId} --watch\`, stop it with \`layertap cancel ${datasetId}\`\n`,
    );
    process.exit(ExitCode.Interrupted);
  };
  process.once('SIGINT', interrupted);
  const status = await waitForDataset(await ctx.queues(), datasetId, {
    onProgress: (s, line) => {
      redisDown = false;
      // Into a pipe: a line every 5 s, and at once when workers come or go.
      const workersChanged = (s.workers === 0) !== (lastWorkers === 0);
      lastWorkers = s.workers;
      if (tty) out.write(`\r\x1b[2K${line}`);
      else if (workersChanged || Date.now() - lastPrinted > 5_000) {
        out.write(`${line}\n`);
        lastPrinted = Date.now();
      }
    },
    onError: (err) => {
      if (!redisDown) out.write(`${tty ? '\n' : ''}waiting for Redis: ${err.message}\n`);
      redisDown = true;
    },
  }).finally(() => process.off('SIGINT', interrupted));
  if (tty) out.write('\n');
  return status;
}

export function printSummary(status: DatasetStatus, out: NodeJS.WriteStream = process.stdout): void {
  out.write(`${formatStatus(status)}\n`);
  out.write(`manifest  ${status.config.output}/${status.datasetId}/manifest.jsonl\n`);
}

/**
 * The exit code of a command that waited for a dataset (`--wait`, `status --watch`): 0 every sample ok, 3
 * finished with failed or cancelled samples, 4 stopped without finishing (see `ExitCode`).
 */
export function finalExitCode(status: DatasetStatus): number {
  if (status.state !== 'done') return ExitCode.DatasetFailed;
  return status.progress.failed > 0 ? ExitCode.FinishedWithFailures : ExitCode.Ok;
}
