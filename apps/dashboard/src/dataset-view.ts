import { PREPROCESSING } from '@layertap/contracts';
import { datasetStatus, type DatasetStatus, type FailureExample, type LayertapQueues } from '@layertap/queue';
import type { RatePoint } from './chart';
import { rateSeries, runTiming, type Completion, type RunTiming } from './throughput';

/**
 * What the dataset list shows (and `GET /api/datasets` returns): the status plus the latest run's timing (rate and
 * ETA while it goes on, duration and average once it ended: see `RunTiming`) and where outputs go.
 */
export interface DatasetSummary extends DatasetStatus, RunTiming {
  /** `<output>/<datasetId>/` */
  outputLocation: string;
  /** `random, seed N` or the weights URI. */
  weights: string;
}

/** What a dataset's page shows (and `GET /api/datasets/:id` returns). */
export interface DatasetDetail extends DatasetSummary {
  /** Images/s of the latest run over time, from its submission (0 then) to its end, or to now while it goes on. */
  throughput: RatePoint[];
  /** Up to a few failed samples per reason code. */
  failureExamples: Record<string, FailureExample[]>;
  /** The preprocessing and its constants, as dataset.json records them. */
  preprocessing: { mode: string; imageSize: number; reference: string; channelOrder: string; resize: string; crop: string; formula: string };
  runs: Array<{ run: number; submittedAt: string; samples: number }>;
}

export interface DatasetViewsOptions {
  queues: LayertapQueues;
  /** Failed samples shown per reason. Default 5. */
  examplesPerReason?: number;
  now?: () => number;
}

/** Reads what the pages and the JSON API show about datasets, from Redis. */
export class DatasetViews {
  private readonly now: () => number;

  constructor(private readonly options: DatasetViewsOptions) {
    this.now = options.now ?? Date.now;
  }

  private get queues(): LayertapQueues {
    return this.options.queues;
  }

  /**
   * Images/s of the latest run over time, from its submission (0 images/s then) to its end (or now while it goes
   * on): its chunk completions (`throughput()`), plus the last progress report of each chunk still running.
   */
  async throughput(summary: DatasetSummary): Promise<RatePoint[]> {
    const run = summary.config.run;
    const [points, reports] = await Promise.all([this.queues.store.throughput(summary.datasetId), this.queues.store.chunkProgress(summary.datasetId)]);
    const completions: Completion[] = [
      ...points.filter((p) => p.run === run).map((p) => ({ t: p.t, n: p.ok + p.failed })),
      ...reports.filter((c) => c.run === run && !c.final).map((c) => ({ t: c.updatedAt, n: c.ok + c.failed })),
    ];
    if (completions.length === 0) return [];
    const submitted = Date.parse(summary.config.submittedAt);
    const last = Math.max(...completions.map((c) => c.t));
    const end = summary.finishedAt ?? (summary.progress.finished ? last : Math.max(last, this.now()));
    const series = rateSeries(completions, submitted, end);
    return series.length ? [{ t: submitted, rate: 0 }, ...series] : [];
  }

  private summarise(status: DatasetStatus): DatasetSummary {
    const { config } = status;
    return {
      ...status,
      ...runTiming(status, this.now()),
      outputLocation: `${config.output.replace(/\/+$/, '')}/${config.datasetId}/`,
      weights: config.weights ?? `random, seed ${config.seed}`,
    };
  }

  /** The newest `limit` datasets. */
  async list(limit = 100): Promise<DatasetSummary[]> {
    const ids = await this.queues.store.list(limit);
    const statuses = await Promise.all(ids.map((id) => datasetStatus(this.queues, id)));
    return statuses.filter((s): s is DatasetStatus => s !== undefined).map((s) => this.summarise(s));
  }

  async summary(datasetId: string): Promise<DatasetSummary | undefined> {
    const status = await datasetStatus(this.queues, datasetId);
    return status && this.summarise(status);
  }

  async detail(datasetId: string): Promise<DatasetDetail | undefined> {
    const status = await datasetStatus(this.queues, datasetId);
    if (!status) return undefined;
    const summary = this.summarise(status);
    const [throughput, failureExamples, runs] = await Promise.all([
      this.throughput(summary),
      this.queues.store.failureExamples(datasetId, this.options.examplesPerReason ?? 5),
      this.queues.store.runs(datasetId),
    ]);
    const p = PREPROCESSING[status.config.preprocess];
    return {
      ...summary,
      throughput,
      failureExamples,
      preprocessing: {
        mode: status.config.preprocess,
        imageSize: status.config.imageSize,
        reference: p.reference,
        channelOrder: p.channelOrder,
        resize: p.resize.rule,
        crop: p.crop,
        formula: p.formula,
      },
      runs: runs.map((r) => ({ run: r.run, submittedAt: r.submittedAt, samples: r.totalSamples })),
    };
  }
}
