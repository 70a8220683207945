/**
 * The exit codes of `layertap` and `layertap-worker`, in one place (the README's table is this one). Scripts
 * match on them: never renumber one, only add.
 */
export const ExitCode = {
  /** Done. With `--wait` and `status --watch`: the dataset finished and every sample is ok. */
  Ok: 0,
  /** Something failed that is not the request's fault: Redis or S3 unreachable, an unexpected error. */
  Error: 1,
  /**
   * A bad request, refused before anything changed: an unknown option or command, a bad or missing value, an
   * unknown dataset, or an action the dataset's state does not allow now (`retry` or `forget` while it runs).
   */
  BadRequest: 2,
  /** `--wait`, `status --watch`: the dataset finished with failed or cancelled samples (`layertap retry` runs them). */
  FinishedWithFailures: 3,
  /**
   * `--wait`, `status --watch`: the dataset stopped without finishing: its manifest could not be written, or its
   * jobs are gone from Redis. `layertap status` prints why and the next step.
   */
  DatasetFailed: 4,
  /** The worker got a second SIGINT or SIGTERM and exited without waiting for its running chunks. */
  Interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];
