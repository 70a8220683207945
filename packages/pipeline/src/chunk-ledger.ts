import type { Logger } from '@layertap/config';
import { storedUri, type ChunkJob, type ChunkResult, type ManifestLine } from '@layertap/contracts';
import type { ChunkMetrics, Stage } from './metrics';

/** Milliseconds per stage, summed over a chunk (stages overlap, so the sum exceeds the wall time). */
export type StageTimes = Record<Stage, number>;

export function emptyStageTimes(): StageTimes {
  return { fetch: 0, decode: 0, preprocess: 0, transfer: 0, inference: 0, readback: 0, encode: 0, write: 0 };
}

/**
 * Bookkeeping of one chunk's samples: each ends with exactly one manifest line. A line's `uri` is the sample's
 * URI without credentials (`storedUri`): lines go to the outputs and the sample index.
 */
export class ChunkLedger {
  readonly lines: Array<ManifestLine | undefined>;
  readonly stages = emptyStageTimes();
  maxBatchMs = 0;
  batches = 0;
  /** Memory after the last batch: tensors alive in the inference process and both processes' RSS. */
  memory: NonNullable<ChunkResult['memory']> | undefined;
  /** Samples whose outputs an earlier attempt had already stored. */
  skipped = 0;
  ok = 0;
  failed = 0;
  readonly failures: Record<string, number> = {};

  constructor(
    private readonly job: ChunkJob,
    private readonly log: Logger,
    private readonly metrics?: ChunkMetrics,
  ) {
    this.lines = new Array(job.samples.length);
  }

  /** Adds `ms` to a stage and tells the metrics. */
  stage(stage: Stage, ms: number): void {
    this.stages[stage] += ms;
    this.metrics?.stage(stage, ms / 1000);
  }

  /** Records a failed sample; each is logged with its id and reason (the logger carries dataset and chunk). */
  fail(index: number, code: string, message: string, options: { quiet?: boolean } = {}): void {
    const sample = this.job.samples[index];
    if (!sample || this.lines[index]) return;
    this.lines[index] = { id: sample.id, uri: storedUri(sample.uri), status: 'failed', error: { code, message }, outputs: {}, shape: {}, dtype: this.job.dataset.dtype };
    this.failed++;
    this.failures[code] = (this.failures[code] ?? 0) + 1;
    this.metrics?.sample('failed', code);
    if (!options.quiet) this.log.info({ sampleId: sample.id, code, err: message }, 'sample failed');
  }

  succeed(index: number, outputs: Record<string, string>, shape: Record<string, number[]>): void {
    const sample = this.job.samples[index];
    if (!sample || this.lines[index]) return;
    this.lines[index] = { id: sample.id, uri: storedUri(sample.uri), status: 'ok', outputs, shape, dtype: this.job.dataset.dtype };
    this.ok++;
    this.metrics?.sample('ok');
  }

  /**
   * Every sample without a line yet fails with `code` (cancellation): one log line for all of them, with
   * their count, rather than one per sample.
   */
  failRest(code: string, message: string): void {
    let count = 0;
    for (let i = 0; i < this.lines.length; i++) {
      if (this.lines[i]) continue;
      this.fail(i, code, message, { quiet: true });
      count++;
    }
    if (count > 0) this.log.info({ code, samples: count }, 'samples not run');
  }

  /** The lines of every sample (call once each has one). */
  all(): ManifestLine[] {
    return this.lines.filter((l): l is ManifestLine => l !== undefined);
  }

  toJsonl(): string {
    return this.lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
  }

  /** What the chunk result reports of the time spent. */
  timings(): NonNullable<ChunkResult['timings']> {
    const s = this.stages;
    return {
      inferenceMs: s.inference,
      readbackMs: s.readback,
      maxBatchMs: this.maxBatchMs,
      batches: this.batches,
      fetchMs: s.fetch,
      decodeMs: s.decode,
      preprocessMs: s.preprocess,
      transferMs: s.transfer,
      encodeMs: s.encode,
      writeMs: s.write,
    };
  }
}
