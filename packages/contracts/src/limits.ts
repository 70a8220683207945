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
