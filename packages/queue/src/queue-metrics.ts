import type { LayertapQueues } from './queues';

/** The BullMQ job states reported per queue. */
export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'completed', 'failed'] as const;
export type QueueState = (typeof QUEUE_STATES)[number];

/** States of a dataset parent job whose run is not finished. */
const IN_PROGRESS: readonly QueueState[] = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children'];

export interface QueueDepths {
  /** queue name (`chunks`, `datasets`) -> state -> jobs. */
  queues: Record<string, Record<QueueState, number>>;
  /** Dataset runs whose parent job is not completed or failed yet. */
  datasetsInProgress: number;
}

/** Jobs per state in both queues: one `getJobCounts` per queue (a few Redis commands, no SCAN). */
export async function queueDepths(queues: LayertapQueues): Promise<QueueDepths> {
  const [chunks, datasets] = await Promise.all([queues.chunks.getJobCounts(...QUEUE_STATES), queues.datasets.getJobCounts(...QUEUE_STATES)]);
  const normalize = (counts: Record<string, number>) =>
    Object.fromEntries(QUEUE_STATES.map((s) => [s, counts[s] ?? 0])) as Record<QueueState, number>;
  const d = normalize(datasets);
  return {
    queues: { [queues.chunks.name]: normalize(chunks), [queues.datasets.name]: d },
    datasetsInProgress: IN_PROGRESS.reduce((n, s) => n + d[s], 0),
  };
}

/** The part of prom-client's `Gauge` that `createQueueMetrics` uses: pass `Gauge` from `prom-client`. */
export interface GaugeLike {
  set(labels: Record<string, string>, value: number): void;
  set(value: number): void;
  reset(): void;
}
export interface GaugeClass<R extends object = object> {
  new (config: { name: string; help: string; labelNames?: readonly string[]; registers?: R[]; collect?: () => void | Promise<void> }): GaugeLike;
}

export interface QueueMetricsOptions<R extends object = object> {
  /** The prom-client `Registry` to register the gauges in (one per process; not the global one in tests). */
  registry: R;
  /** prom-client's `Gauge` class (this package does not depend on prom-client). */
  Gauge: GaugeClass<R>;
  /** Metric name prefix. Default `layertap_`. */
  prefix?: string;
  /**
   * How long a scrape waits for Redis before it reports `queue_metrics_up 0` (default 3000 ms): a worker's
   * connection waits for Redis to come back rather than failing, and a scrape must not hang meanwhile.
   */
  timeoutMs?: number;
}

/** `promise`, or `undefined` when it rejects or takes longer than `ms`. */
function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    timer.unref();
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      () => {
        clearTimeout(timer);
        resolve(undefined);
      },
    );
  });
}

/**
 * Registers gauges sampled from Redis on every scrape:
 * - `layertap_queue_jobs{queue,state}`: jobs per BullMQ state in the `chunks` and `datasets` queues;
 * - `layertap_datasets_in_progress`: dataset runs not yet finished;
 * - `layertap_queue_metrics_up`: 1 when the last sample could be read from Redis, 0 when it could not (the
 *   other two then have no value rather than a stale one).
 * One scrape reads Redis once, however many of the gauges it collects.
 */
export function createQueueMetrics<R extends object>(queues: LayertapQueues, options: QueueMetricsOptions<R>): void {
  const prefix = options.prefix ?? 'layertap_';
  const registers = [options.registry];
  let pending: { at: number; value: Promise<QueueDepths | undefined> } | undefined;
  const sample = (): Promise<QueueDepths | undefined> => {
    // Gauges collected in one scrape share one read.
    if (!pending || Date.now() - pending.at > 250) {
      pending = { at: Date.now(), value: within(queueDepths(queues), options.timeoutMs ?? 3_000) };
    }
    return pending.value;
  };
  const jobs: GaugeLike = new options.Gauge({
    name: `${prefix}queue_jobs`,
    help: 'Jobs per state in the layertap queues (sampled from Redis at scrape time)',
    labelNames: ['queue', 'state'],
    registers,
    collect: async () => {
      const depths = await sample();
      jobs.reset();
      if (!depths) return;
      for (const [queue, states] of Object.entries(depths.queues)) {
        for (const [state, n] of Object.entries(states)) jobs.set({ queue, state }, n);
      }
    },
  });
  const inProgress: GaugeLike = new options.Gauge({
    name: `${prefix}datasets_in_progress`,
    help: 'Dataset runs whose parent job has not completed or failed yet',
    registers,
    collect: async () => {
      const depths = await sample();
      inProgress.reset();
      if (depths) inProgress.set(depths.datasetsInProgress);
    },
  });
  const up: GaugeLike = new options.Gauge({
    name: `${prefix}queue_metrics_up`,
    help: '1 when the queue metrics could be read from Redis at the last scrape, else 0',
    registers,
    collect: async (): Promise<void> => up.set((await sample()) ? 1 : 0),
  });
}
