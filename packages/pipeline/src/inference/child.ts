/**
 * The inference process: one per concurrency slot of a worker, so a crashing driver or engine takes down
 * only its slot, and the worker's own event loop (BullMQ lock renewal) never waits on a batch. Its main
 * thread only moves requests and results across the pipe; the engine computes on its own thread
 * (EngineThread), so a result leaves while the next batch computes. The model stays loaded between jobs
 * while they ask for the same one.
 */
import { describeError, isLayertapError } from '@layertap/contracts';
import { EngineThread } from './engine-client';
import { wallClockMs, type ChildResponse, type HostRequest } from './protocol';
import { warningsAsJson } from './json-warnings';

warningsAsJson('layertap-inference');

// Without its engine thread the process has nothing to offer: exit, and the worker starts a fresh one.
const engine = new EngineThread({
  onExit: (err) => {
    process.stderr.write(`layertap inference process: ${err.message}\n`);
    process.exit(1);
  },
});

// Ctrl-C reaches the whole process group: the worker decides when this process ends (it closes the channel),
// so a signal must not tear the engine's native threads down mid-batch ("terminate called ... Napi::Error").
process.on('SIGINT', () => undefined);

function reply(message: ChildResponse): void {
  process.send?.(message);
}

process.on('message', (raw: HostRequest) => {
  const receivedAt = wallClockMs();
  const run: Promise<unknown> =
    raw.type === 'usage'
      ? Promise.resolve(engine.usage())
      : raw.type === 'probe'
        ? engine.probe(raw.probe)
        : raw.type === 'load'
          ? engine.load(raw.spec)
          : engine.infer(raw.batch, raw.batchSize, receivedAt);
  run.then(
    (value) => reply({ id: raw.id, ok: true, value }),
    (err: unknown) =>
      reply({
        id: raw.id,
        ok: false,
        error: { name: err instanceof Error ? err.name : 'Error', ...(isLayertapError(err) ? { code: err.code } : {}), message: describeError(err) },
      }),
  );
});

// The worker died or closed the channel: nothing left to serve.
process.on('disconnect', () => {
  void engine.close().finally(() => process.exit(0));
});
