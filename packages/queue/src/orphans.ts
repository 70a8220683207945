import type { Job } from 'bullmq';
import type { Redis } from './connection';

/**
 * The chunk jobs a dataset parent still waits for that no longer exist: Bull Board's "Empty" (and other
 * removals that skip BullMQ's bookkeeping) delete the jobs but leave them in the parent's dependencies, so the
 * parent would wait for them forever. Returns their job ids (the last segment of each dependency key).
 */
export async function vanishedChildren(parent: Job, redis: Redis): Promise<string[]> {
  const gone: string[] = [];
  let cursor = 0;
  do {
    const page = await parent.getDependencies({ unprocessed: { cursor, count: 1000 } });
    const keys = page.unprocessed ?? [];
    if (keys.length) {
      const pipeline = redis.pipeline();
      for (const key of keys) pipeline.exists(key);
      const replies = (await pipeline.exec()) ?? [];
      keys.forEach((key, i) => {
        if (replies[i]?.[1] === 0) gone.push(key.split(':').pop() ?? key);
      });
    }
    cursor = page.nextUnprocessedCursor ?? 0;
  } while (cursor !== 0);
  return gone;
}

/**
 * Whether `parent`, waiting for its children, waits for nothing that exists: every unprocessed child is gone.
 * Such a parent is no work (`--exit-when-idle` workers exit) and its dataset is `unknown` (retry resumes it).
 */
export async function isOrphaned(parent: Job, redis: Redis): Promise<boolean> {
  const counts = await parent.getDependenciesCount({ unprocessed: true });
  const unprocessed = counts.unprocessed ?? 0;
  if (unprocessed === 0) return false;
  return (await vanishedChildren(parent, redis)).length === unprocessed;
}
