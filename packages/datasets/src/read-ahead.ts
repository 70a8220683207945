/**
 * Maps `items` through `fn` with up to `ahead` calls under way, yielding the results in the items' order: the
 * next reads go on while the caller handles the current one, and at most `ahead` results are held.
 */
export async function* readAhead<T, R>(items: AsyncIterable<T> | Iterable<T>, ahead: number, fn: (item: T) => Promise<R>): AsyncGenerator<R> {
  const pending: Array<Promise<R>> = [];
  const start = (item: T) => {
    const result = fn(item);
    // Awaited in turn below; until then a failure must not count as unhandled.
    result.catch(() => undefined);
    pending.push(result);
  };
  for await (const item of items) {
    start(item);
    if (pending.length >= Math.max(1, ahead)) yield await (pending.shift() as Promise<R>);
  }
  while (pending.length > 0) yield await (pending.shift() as Promise<R>);
}
