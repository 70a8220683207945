/**
 * Maps `items` through the async `fn` with at most `limit` calls in flight, and resolves to the results in the
 * order of `items`. The worker uses it to fetch and decode a chunk's images in parallel without opening
 * hundreds of connections or decoding hundreds of images at once.
 *
 * If a call rejects, no further calls start; the promise rejects with the first error once the calls already
 * in flight have settled, so nothing is left running behind the caller's back. Per-sample failures that should
 * not stop the others belong inside `fn` (catch them and return a result).
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  if (!(Number.isInteger(limit) && limit >= 1) && limit !== Infinity) {
    throw new RangeError(`limit must be a positive integer, got ${limit}`);
  }
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  let firstError: unknown;

  async function lane(): Promise<void> {
    while (!failed && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index] as T, index);
      } catch (err) {
        if (!failed) {
          failed = true;
          firstError = err;
        }
      }
    }
  }

  const lanes = Math.min(limit, items.length);
  await Promise.all(Array.from({ length: lanes }, () => lane()));
  if (failed) throw firstError;
  return results;
}
