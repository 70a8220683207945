import { createLimiter } from './limiter';
it('frees the slot when a task throws before returning a promise', async () => {
  const run = createLimiter(1);
  const first = run((() => {
    throw new TypeError('bad argument');
  }) as () => Promise<never>);
  await expect(first).rejects.toThrow('bad argument');
  const second = run(async () => 'ran');
  const outcome = await Promise.race([second, new Promise((r) => setTimeout(() => r('still queued after 200 ms'), 200))]);
  expect(outcome).toBe('ran');
});
