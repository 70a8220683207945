import type { ChainableCommander } from 'ioredis';
import { ChunkResult, DatasetConfig, DatasetResult, EngineInfo, Sample, storedUri, type ManifestLine } from '@layertap/contracts';
import type { Redis } from './connection';

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
  /** When the latest run's manifest was written (ms since the epoch), once finished. */
  finishedAt?: number;
}

/** What the sample index keeps about one sample (`<prefix>:ds:<id>:samples`, one hash field per sample). */
export interface SampleRecord {
  status: 'ok' | 'failed';
  /** The failure's reason code (failed samples). */
  code?: string;
  /** The failure's message, cut to 500 characters (failed samples). */
  message?: string;
  /** The chunk and run whose part recorded this line: the latest run that processed the sample. */
  chunk: number;
  run: number;
  uri: string;
  /** layer spec -> output key, as in the manifest (`<key>#<tensor>` for shards). */
  outputs?: Record<string, string>;
}

/** A sample found in the index. */
export interface FoundSample extends SampleRecord {
  datasetId: string;
  id: string;
}

/** One example of a failure reason. */
export interface FailureExample {
  id: string;
  uri: string;
  message: string;
  chunk: number;
  run: number;
  /** When it was recorded (ms since the epoch). */
  at: number;
}

/** One chunk completion: `ok` and `failed` samples finished at `t` (ms since the epoch). */
export interface ThroughputPoint {
  t: number;
  ok: number;
  failed: number;
  run: number;
  chunk: number;
}

/** Samples done per time bucket, for a chart. */
export interface ThroughputBucket {
  /** Start of the bucket (ms since the epoch). */
  t: number;
  ok: number;
  failed: number;
  /** (ok + failed) per second over the bucket. */
  perSecond: number;
}

export interface DatasetStoreOptions {
  /** Failure examples kept per reason and dataset (default 10, the newest). */
  examplesPerReason?: number;
  /** Throughput points kept per dataset (default 10 000, the newest; one per chunk completion). */
  throughputPoints?: number;
}

const MESSAGE_CHARS = 500;
/** The fixed keys of a dataset, `<prefix>:ds:<id>:<part>` (plus `failex:<code>` per failure code). */
const DATASET_KEY_PARTS = ['runs', 'plan', 'chunks', 'times', 'results', 'samples', 'uris', 'failcodes', 'throughput', 'engines', 'cancelled'] as const;
/** Hash fields per HSET: a chunk of 100 000 samples is split into commands of a sane size. */
const FIELDS_PER_COMMAND = 1000;

/** Sums throughput points into buckets of `bucketMs` (aligned to multiples of it), oldest first, gaps left out. */
export function bucketThroughput(points: readonly ThroughputPoint[], bucketMs: number): ThroughputBucket[] {
  if (!(bucketMs > 0)) throw new RangeError('bucketMs must be positive');
  const buckets = new Map<number, ThroughputBucket>();
  for (const p of points) {
    const t = Math.floor(p.t / bucketMs) * bucketMs;
    const b = buckets.get(t) ?? { t, ok: 0, failed: 0, perSecond: 0 };
    b.ok += p.ok;
    b.failed += p.failed;
    b.perSecond = ((b.ok + b.failed) * 1000) / bucketMs;
    buckets.set(t, b);
  }
  return [...buckets.values()].sort((a, b) => a.t - b.t);
}

/**
 * Dataset state that outlives BullMQ jobs: the submitted configuration of every run, per-chunk progress,
 * the final result, the cancel flag, and the sample index (`samples`: id -> SampleRecord JSON, `uris`: URI
 * -> id, `failex:<code>` and `failcodes`: failure examples, `throughput`: a sorted set of chunk
 * completions). The index keeps URIs as the manifest does, without credentials (`storedUri`), and looks a URI
 * up in that form, so the URI as submitted still finds its sample. Keys live under the queue prefix, `<prefix>:ds:<id>:*`, and the dataset list is
 * `<prefix>:datasets`: with a hash-tag prefix (`{layertap}`) every key is in one Redis Cluster slot, as the
 * transactions here need. Nothing is ever found by SCAN.
 */
export class DatasetStore {
  private readonly examplesPerReason: number;
  private readonly throughputPoints: number;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    options: DatasetStoreOptions = {},
  ) {
    this.examplesPerReason = options.examplesPerReason ?? 10;
    this.throughputPoints = options.throughputPoints ?? 10_000;
  }

  private key(datasetId: string, part: string): string {
    return `${this.prefix}:ds:${datasetId}:${part}`;
  }

  private get listKey(): string {
    return `${this.prefix}:datasets`;
  }

  /** Every key this store keeps for a dataset (the failure example lists found through `failcodes`). */
  private async keysOf(datasetId: string): Promise<string[]> {
    const codes = await this.redis.smembers(this.key(datasetId, 'failcodes'));
    return [...DATASET_KEY_PARTS.map((part) => this.key(datasetId, part)), ...codes.map((code) => this.key(datasetId, `failex:${code}`))];
  }

  /**
   * Records a run's configuration and indexes the dataset (newest first in `list`). A dataset that runs again
   * is kept again: a retention set when an earlier run finished is lifted until this one finishes.
   */
  async saveRun(config: DatasetConfig): Promise<void> {
    const keys = await this.keysOf(config.datasetId);
    const multi = this.redis
      .multi()
      .hset(this.key(config.datasetId, 'runs'), String(config.run), JSON.stringify(config))
      .zadd(this.listKey, Date.parse(config.submittedAt) || Date.now(), config.datasetId)
      .del(this.key(config.datasetId, 'cancelled'));
    for (const key of keys) multi.persist(key);
    await multi.exec();
  }

  /**
   * Records which samples each chunk of a run was given (`<run>:<chunk>` -> samples): the census finds the
   * samples of a chunk whose job disappeared (removed in Bull Board, lost by Redis), so that they are reported
   * missing and `retry` runs them, instead of the dataset finishing without them. URIs are kept as stored
   * (`storedUri`): credentials stay in job data only, so a retry of a URI that needed them fails visibly, as a
   * retry of a failed sample does.
   */
  async savePlan(datasetId: string, run: number, chunks: readonly (readonly Sample[])[]): Promise<void> {
    const key = this.key(datasetId, 'plan');
    for (let start = 0; start < chunks.length; start += FIELDS_PER_COMMAND) {
      const fields: string[] = [];
      chunks
        .slice(start, start + FIELDS_PER_COMMAND)
        .forEach((samples, i) => fields.push(`${run}:${start + i}`, JSON.stringify(samples.map((s) => ({ id: s.id, uri: storedUri(s.uri) })))));
      await this.redis.hset(key, ...fields);
    }
  }

  /** The samples chunk `chunk` of run `run` was given at submit, or `undefined` when the plan is not known. */
  async plannedChunk(datasetId: string, run: number, chunk: number): Promise<Sample[] | undefined> {
    const value = await this.redis.hget(this.key(datasetId, 'plan'), `${run}:${chunk}`);
    if (value === null) return undefined;
    const parsed = Sample.array().safeParse(JSON.parse(value));
    return parsed.success ? parsed.data : undefined;
  }

  /** Lets Redis drop every key of the dataset after `seconds` (the retention of a finished dataset). */
  async expire(datasetId: string, seconds: number): Promise<void> {
    const multi = this.redis.multi();
    for (const key of await this.keysOf(datasetId)) multi.expire(key, seconds);
    await multi.exec();
  }

  /**
   * Removes everything this store keeps about a dataset: runs, progress, results, the sample index, failure
   * examples, throughput, and its entry in `list`. UNLINK frees large hashes off Redis' main thread.
   */
  async forget(datasetId: string): Promise<void> {
    const keys = await this.keysOf(datasetId);
    await this.redis.multi().unlink(...keys).zrem(this.listKey, datasetId).exec();
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

  /** Dataset ids, newest first. Datasets whose state expired (retention) are dropped from the list here. */
  async list(limit = 100): Promise<string[]> {
    const ids = await this.redis.zrevrange(this.listKey, 0, limit - 1);
    if (ids.length === 0) return ids;
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.exists(this.key(id, 'runs'));
    const replies = (await pipeline.exec()) ?? [];
    const gone = ids.filter((_, i) => replies[i]?.[1] === 0);
    if (gone.length) await this.redis.zrem(this.listKey, ...gone);
    return ids.filter((_, i) => replies[i]?.[1] !== 0);
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

  /**
   * Records a finished chunk in one transaction: its final counts, every sample's line in the sample index
   * (by id and by URI; a retried chunk or a later run overwrites), failure examples and a throughput point.
   * Called once the chunk's part is written.
   */
  async recordChunk(datasetId: string, result: ChunkResult, lines: readonly ManifestLine[]): Promise<void> {
    const { run, chunk, ok, failed, failures } = result;
    const now = Date.now();
    const progress: ChunkProgress = { run, chunk, ok, failed, failures, final: true, updatedAt: now };
    const multi = this.redis
      .multi()
      .hset(this.key(datasetId, 'chunks'), `${run}:${chunk}`, JSON.stringify(progress))
      .hsetnx(this.key(datasetId, 'times'), `started:${run}`, String(now));
    this.addToIndex(multi, datasetId, lines, run, chunk, now);
    const throughputKey = this.key(datasetId, 'throughput');
    multi.zadd(throughputKey, now, `${now}:${run}:${chunk}:${ok}:${failed}`).zremrangebyrank(throughputKey, 0, -(this.throughputPoints + 1));
    await multi.exec();
  }

  /** Adds lines to the sample index without a chunk result (samples of a chunk that failed for good). */
  async indexSamples(datasetId: string, lines: readonly ManifestLine[], run: number, chunk: number): Promise<void> {
    if (lines.length === 0) return;
    const multi = this.redis.multi();
    this.addToIndex(multi, datasetId, lines, run, chunk, Date.now());
    await multi.exec();
  }

  private addToIndex(multi: ChainableCommander, datasetId: string, lines: readonly ManifestLine[], run: number, chunk: number, now: number): void {
    const samplesKey = this.key(datasetId, 'samples');
    const urisKey = this.key(datasetId, 'uris');
    const examples = new Map<string, FailureExample[]>();
    for (let i = 0; i < lines.length; i += FIELDS_PER_COMMAND) {
      const slice = lines.slice(i, i + FIELDS_PER_COMMAND);
      const records: Record<string, string> = {};
      const uris: Record<string, string> = {};
      for (const line of slice) {
        const uri = storedUri(line.uri);
        const record: SampleRecord =
          line.status === 'ok'
            ? { status: 'ok', chunk, run, uri, outputs: line.outputs }
            : {
                status: 'failed',
                code: line.error?.code ?? 'unknown',
                message: (line.error?.message ?? '').slice(0, MESSAGE_CHARS),
                chunk,
                run,
                uri,
              };
        records[line.id] = JSON.stringify(record);
        uris[uri] = line.id;
        if (record.status === 'failed') {
          const list = examples.get(record.code ?? 'unknown') ?? [];
          if (list.length < this.examplesPerReason) list.push({ id: line.id, uri, message: record.message ?? '', chunk, run, at: now });
          examples.set(record.code ?? 'unknown', list);
        }
      }
      multi.hset(samplesKey, records).hset(urisKey, uris);
    }
    for (const [code, list] of examples) {
      const key = this.key(datasetId, `failex:${code}`);
      multi
        .sadd(this.key(datasetId, 'failcodes'), code)
        .lpush(key, ...list.map((e) => JSON.stringify(e)))
        .ltrim(key, 0, this.examplesPerReason - 1);
    }
  }

  /** A sample of a dataset by its id or its URI, from the sample index; `undefined` until its chunk is done. */
  async findSample(datasetId: string, idOrUri: string): Promise<FoundSample | undefined> {
    const [byId, idOfUri] = await Promise.all([this.redis.hget(this.key(datasetId, 'samples'), idOrUri), this.redis.hget(this.key(datasetId, 'uris'), storedUri(idOrUri))]);
    if (byId) return { ...(JSON.parse(byId) as SampleRecord), datasetId, id: idOrUri };
    if (!idOfUri) return undefined;
    const record = await this.redis.hget(this.key(datasetId, 'samples'), idOfUri);
    return record ? { ...(JSON.parse(record) as SampleRecord), datasetId, id: idOfUri } : undefined;
  }

  /**
   * A sample by id or URI in every dataset of the `list` index, newest dataset first, at most `limit`
   * matches. Two hash lookups per dataset, pipelined: O(datasets), no SCAN.
   */
  async findSampleAnywhere(idOrUri: string, limit = 20): Promise<FoundSample[]> {
    const datasets = await this.redis.zrevrange(this.listKey, 0, -1);
    const found: FoundSample[] = [];
    const PAGE = 200;
    for (let i = 0; i < datasets.length && found.length < limit; i += PAGE) {
      const page = datasets.slice(i, i + PAGE);
      const pipeline = this.redis.pipeline();
      for (const id of page) pipeline.hget(this.key(id, 'samples'), idOrUri).hget(this.key(id, 'uris'), storedUri(idOrUri));
      const replies = (await pipeline.exec()) ?? [];
      const byUri: Array<{ datasetId: string; sampleId: string }> = [];
      page.forEach((datasetId, k) => {
        const record = replies[2 * k]?.[1];
        const sampleId = replies[2 * k + 1]?.[1];
        if (typeof record === 'string') found.push({ ...(JSON.parse(record) as SampleRecord), datasetId, id: idOrUri });
        else if (typeof sampleId === 'string') byUri.push({ datasetId, sampleId });
      });
      if (byUri.length) {
        const second = this.redis.pipeline();
        for (const { datasetId, sampleId } of byUri) second.hget(this.key(datasetId, 'samples'), sampleId);
        const records = (await second.exec()) ?? [];
        byUri.forEach(({ datasetId, sampleId }, k) => {
          const record = records[k]?.[1];
          if (typeof record === 'string') found.push({ ...(JSON.parse(record) as SampleRecord), datasetId, id: sampleId });
        });
      }
    }
    // Keep the newest-dataset-first order across id and URI matches.
    const order = new Map(datasets.map((d, i) => [d, i]));
    return found.sort((a, b) => (order.get(a.datasetId) ?? 0) - (order.get(b.datasetId) ?? 0)).slice(0, limit);
  }

  /**
   * Up to `perReason` examples of each failure reason seen in the dataset, newest first. Samples that a
   * later run turned `ok` are left out, and a sample appears once per reason.
   */
  async failureExamples(datasetId: string, perReason = 3): Promise<Record<string, FailureExample[]>> {
    const codes = (await this.redis.smembers(this.key(datasetId, 'failcodes'))).sort();
    const out: Record<string, FailureExample[]> = {};
    for (const code of codes) {
      const raw = await this.redis.lrange(this.key(datasetId, `failex:${code}`), 0, -1);
      const seen = new Set<string>();
      const candidates = raw.map((r) => JSON.parse(r) as FailureExample).filter((e) => !seen.has(e.id) && seen.add(e.id));
      if (candidates.length === 0) continue;
      const current = await this.redis.hmget(this.key(datasetId, 'samples'), ...candidates.map((e) => e.id));
      const still = candidates.filter((_, i) => {
        const record = current[i];
        return !record || (JSON.parse(record) as SampleRecord).code === code;
      });
      if (still.length) out[code] = still.slice(0, perReason);
    }
    return out;
  }

  /** Chunk completions over time, oldest first (the newest 10 000 are kept); `sinceMs` keeps later ones. */
  async throughput(datasetId: string, options: { sinceMs?: number } = {}): Promise<ThroughputPoint[]> {
    const members = await this.redis.zrangebyscore(this.key(datasetId, 'throughput'), options.sinceMs ?? '-inf', '+inf');
    return members.map((m) => {
      const [t = 0, run = 0, chunk = 0, ok = 0, failed = 0] = m.split(':').map(Number);
      return { t, ok, failed, run, chunk };
    });
  }

  async chunkProgress(datasetId: string): Promise<ChunkProgress[]> {
    const all = await this.redis.hvals(this.key(datasetId, 'chunks'));
    return all.map((v) => JSON.parse(v) as ChunkProgress);
  }

  /**
   * Records an engine that runs the dataset's chunks (once per engine, backend and device: several workers
   * may run different ones). Called when a chunk's model is loaded, so it shows while the run goes on.
   */
  async recordEngine(datasetId: string, info: EngineInfo): Promise<void> {
    await this.redis.hset(this.key(datasetId, 'engines'), `${info.engine}/${info.backend} ${info.device.description}`, JSON.stringify(info));
  }

  /** The engines that ran (or run) the dataset's chunks. */
  async engines(datasetId: string): Promise<EngineInfo[]> {
    const all = await this.redis.hgetall(this.key(datasetId, 'engines'));
    return Object.keys(all)
      .sort()
      .flatMap((field) => {
        const parsed = EngineInfo.safeParse(JSON.parse(all[field] as string));
        return parsed.success ? [parsed.data] : [];
      });
  }

  async setResult(datasetId: string, run: number, result: DatasetResult): Promise<void> {
    await this.redis.hset(this.key(datasetId, 'results'), String(run), JSON.stringify({ ...result, finishedAt: Date.now() }));
  }

  /** Records a run's result and, when the dataset has a retention, starts counting it down. */
  async finish(dataset: Pick<DatasetConfig, 'datasetId' | 'run' | 'retentionSeconds'>, result: DatasetResult): Promise<void> {
    await this.setResult(dataset.datasetId, dataset.run, result);
    if (dataset.retentionSeconds) await this.expire(dataset.datasetId, dataset.retentionSeconds);
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
   * Overall progress. A finished run's counts come from its merged manifest (exact, every run included). While
   * a run is going they are what its plan found outside the run (`earlier`) plus its chunks' reports, and its
   * samples count as pending until their chunk reports them.
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
      return { ...base, total: finished.ok + finished.failed, ok: finished.ok, failed: finished.failed, pending: 0, failures: finished.failures, finished: true, finishedAt: finished.finishedAt };
    }
    let ok = 0;
    let failed = 0;
    const failures: Record<string, number> = {};
    for (const c of live) {
      ok += c.ok;
      failed += c.failed;
      for (const [code, n] of Object.entries(c.failures)) failures[code] = (failures[code] ?? 0) + n;
    }
    const pending = Math.max(0, latest.totalSamples - ok - failed);
    if (latest.earlier) {
      const e = latest.earlier;
      for (const [code, n] of Object.entries(e.failures)) failures[code] = (failures[code] ?? 0) + n;
      return { ...base, total: e.ok + e.failed + latest.totalSamples, ok: e.ok + ok, failed: e.failed + failed, pending, failures, finished: false };
    }
    // Runs planned before `earlier` existed.
    const previous = results.get(latest.run - 1);
    if (latest.run > 0 && previous) {
      // The retried samples were all failed before this run; the others keep their earlier status.
      const untouchedFailed = Math.max(0, previous.failed - latest.totalSamples);
      return {
        ...base,
        total: previous.ok + previous.failed,
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
