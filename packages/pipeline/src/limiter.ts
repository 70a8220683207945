/** Runs a task when a slot is free; resolves with the task's own result. */
export type Limiter = <T>(task: () => Promise<T>) => Promise<T>;

/** Runs at most `limit` async tasks at once, in the order they were given; the one concurrency limiter of layertap. */
export function createLimiter(limit: number): Limiter {
  let active = 0;
  const queue: Array<() => void> = [];
  const next = () => {
    if (active >= limit) return;
    const start = queue.shift();
    if (start) {
      active++;
      start();
    }
  };
  return <T>(task: () => Promise<T>) =>
    new Promise<T>((resolve, reject) => {
      queue.push(() => {
        // A task that throws before returning a promise must still free its slot.
        new Promise<T>((res) => res(task()))
          .then(resolve, reject)
          .finally(() => {
            active--;
            next();
          });
      });
      next();
    });
}
