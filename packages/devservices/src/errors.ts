/** Stable reason codes of the dev services; tests and the demo match on them. */
export const DevServiceErrorCode = {
  /** The `redis-server` binary could not be run. */
  RedisNotFound: 'redis_not_found',
  /** A service exited or failed before it was ready. */
  StartFailed: 'start_failed',
  /** A service did not become ready in time. */
  StartTimeout: 'start_timeout',
  /** A method was called in a state where it cannot work (e.g. `pause()` while stopped). */
  NotRunning: 'not_running',
} as const;
export type DevServiceErrorCode = (typeof DevServiceErrorCode)[keyof typeof DevServiceErrorCode];

/** Why a dev service (Redis or S3) could not be started or used. */
export class DevServiceError extends Error {
  override name = 'DevServiceError';
  constructor(
    readonly code: DevServiceErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
