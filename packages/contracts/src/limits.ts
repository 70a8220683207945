// The limits a request is checked against, in one place: the CLI's flags, the job schema and the worker
// all take them from here.

/** Side of the square network input, in pixels: five 2x2 pools must leave a pixel; larger is memory, not sense. */
export const IMAGE_SIZE = { min: 32, max: 1024 } as const;

/** Largest batch a dataset may ask for (a worker's memory budget may make it run smaller ones). */
export const BATCH_SIZE = { min: 1, max: 1024 } as const;

/** Samples per chunk job (the unit of retry and of work spread over workers). */
export const CHUNK_SIZE = { min: 1, max: 100_000 } as const;

/**
 * Largest `--format shards` shard: a worker builds a chunk's shard in memory, in one buffer. Submissions whose
 * chunks would need more are refused, saying which chunk size fits.
 */
export const MAX_SHARD_BYTES = 2 * 1024 ** 3;

/**
 * Longest sample URI accepted at submit, in UTF-8 bytes: every URI travels in job data (Redis) and is kept in
 * manifests and the sample index. Presigned URLs are well under it.
 */
export const MAX_URI_BYTES = 4096;

/**
 * Default limits of a source (`LAYERTAP_MAX_SOURCE_MB`, `LAYERTAP_MAX_SAMPLES`): `submit` holds every sample
 * in memory and writes them all to Redis in one flow, so a huge list is refused before it is read whole.
 * Split bigger datasets into several, or raise the limits.
 */
export const DEFAULT_MAX_SOURCE_BYTES = 64 * 1024 ** 2;
export const DEFAULT_MAX_SAMPLES = 1_000_000;

/**
 * The most a worker's memory budget for one batch's activations defaults to (`LAYERTAP_MEMORY_BUDGET_MB`
 * unset: half the machine shared out between its inference processes, capped here). `submit` refuses a
 * request whose single sample needs more than this (or the producer's `LAYERTAP_MEMORY_BUDGET_MB`).
 */
export const DEFAULT_MEMORY_BUDGET_CAP_BYTES = 8 * 1024 ** 3;
