import type { Redis } from 'ioredis';
import { ChunkResult, DatasetConfig, DatasetResult } from '@layertap/contracts';

/** Progress of one chunk as its worker last reported it. */
export interface ChunkProgress {
  run: number;
  chunk: number;
  ok: number;
  failed: number;
  failures: Record<string, number>;
  /** true once the chunk job returned. */
  final: boolean;
  updatedAt: number;
}

export interface DatasetProgress {
  total: number;
  ok: number;
  failed: number;
  pending: number;
  failures: Record<string, number>;
  run: number;
  startedAt?: number;
  updatedAt?: number;
  /** true once the latest run's manifest is written. */
  finished: boolean;
}

/**
 * Dataset state that outlives BullMQ jobs: the submitted configuration of every run, per-chunk progress,
 * the final result and the cancel flag. Keys live under the queue prefix: `<prefix>:ds:<id>:*`.
 */
export class DatasetStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key(datasetId: string, part: string): string {
    return `${this.prefix}:ds:${datasetId}:${part}`;
  }

  /** Records a run's configuration and indexes the dataset (newest first in `list`). */
  async saveRun(config: DatasetConfig): Promise<void> {
    await this.redis
      .multi()
      .hset(this.key(config.datasetId, 'runs'), String(config.run), JSON.stringify(config))
      .zadd(`${this.prefix}:datasets`, Date.parse(config.submittedAt) || Date.now(), config.datasetId)
      .del(this.key(config.datasetId, 'cancelled'))
      .exec();
  }

  /** Every run's configuration, oldest first. */
  async runs(datasetId: string): Promise<DatasetConfig[]> {
    const all = await this.redis.hgetall(this.key(datasetId, 'runs'));
    return Object.values(all)
      .map((v) => DatasetConfig.parse(JSON.parse(v)))
      .sort((a, b) => a.run - b.run);
  }

  async latestRun(datasetId: string): Promise<DatasetConfig | undefined> {
    return (await this.runs(datasetId)).at(-1);
  }

  /** Dataset ids, newest first. */
  async list(limit = 100): Promise<string[]> {
    return this.redis.zrevrange(`${this.prefix}:datasets`, 0, limit - 1);
  }

  /** Overwrites the chunk's progress: a retried chunk replaces, never adds to, what it reported before. */
  async setChunkProgress(datasetId: string, progress: Omit<ChunkProgress, 'updatedAt'>): Promise<void> {
    const value: ChunkProgress = { ...progress, updatedAt: Date.now() };
    await this.redis
      .multi()
      .hset(this.key(datasetId, 'chunks'), `${progress.run}:${progress.chunk}`, JSON.stringify(value))
      .hsetnx(this.key(datasetId, 'times'), `started:${progress.run}`, String(Date.now()))
      .exec();
  }

  /** Records a chunk job's final result. */
  async setChunkResult(datasetId: string, result: ChunkResult): Promise<void> {
    const { run, chunk, ok, failed, failures } = result;
    await this.setChunkProgress(datasetId, { run, chunk, ok, failed, failures, final: true });
  }

  async chunkProgress(datasetId: string): Promise<ChunkProgress[]> {
    const all = await this.redis.hvals(this.key(datasetId, 'chunks'));
    return all.map((v) => JSON.parse(v) as ChunkProgress);
  }

  async setResult(datasetId: string, run: number, result: DatasetResult): Promise<void> {
    await this.redis.hset(this.key(datasetId, 'results'), String(run), JSON.stringify({ ...result, finishedAt: Date.now() }));
  }

  async results(datasetId: string): Promise<Map<number, DatasetResult & { finishedAt: number }>> {
    const all = await this.redis.hgetall(this.key(datasetId, 'results'));
    return new Map(Object.entries(all).map(([run, v]) => [Number(run), JSON.parse(v)]));
  }

  async cancel(datasetId: string): Promise<void> {
    await this.redis.set(this.key(datasetId, 'cancelled'), String(Date.now()));
  }

  async isCancelled(datasetId: string): Promise<boolean> {
    return (await this.redis.exists(this.key(datasetId, 'cancelled'))) === 1;
  }

  /**
   * Overall progress. A finished run's counts come from its merged manifest (exact). While a run is going
   * they come from its chunks' reports; a retry run re-processes failed samples, so until it finishes its
   * samples count as pending rather than failed, and the failures by reason are that run's.
   */
  async progress(datasetId: string): Promise<DatasetProgress | undefined> {
    const runs = await this.runs(datasetId);
    const first = runs[0];
    const latest = runs.at(-1);
    if (!first || !latest) return undefined;
    const total = first.totalSamples;
    const [chunks, times, results] = await Promise.all([
      this.chunkProgress(datasetId),
      this.redis.hgetall(this.key(datasetId, 'times')),
      this.results(datasetId),
    ]);
    const live = chunks.filter((c) => c.run === latest.run);
    const started = times[`started:${latest.run}`];
    const updatedAt = live.reduce((m, c) => Math.max(m, c.updatedAt), 0) || undefined;
    const base = {
      total,
      run: latest.run,
      ...(started ? { startedAt: Number(started) } : {}),
      ...(updatedAt ? { updatedAt } : {}),
    };
    const finished = results.get(latest.run);
    if (finished) {
      return { ...base, ok: finished.ok, failed: finished.failed, pending: 0, failures: finished.failures, finished: true };
    }
    let ok = 0;
    let failed = 0;
    const failures: Record<string, number> = {};
    for (const c of live) {
      ok += c.ok;
      failed += c.failed;
      for (const [code, n] of Object.entries(c.failures)) failures[code] = (failures[code] ?? 0) + n;
    }
    const previous = results.get(latest.run - 1);
    if (latest.run > 0 && previous) {
      // The retried samples were all failed before this run; the others keep their earlier status.
      const untouchedFailed = Math.max(0, previous.failed - latest.totalSamples);
      return {
        ...base,
        ok: previous.ok + ok,
        failed: untouchedFailed + failed,
        pending: Math.max(0, latest.totalSamples - ok - failed),
        failures,
        finished: false,
      };
    }
    return { ...base, ok, failed, pending: Math.max(0, latest.totalSamples - ok - failed), failures, finished: false };
  }
}
