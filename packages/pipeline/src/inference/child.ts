/**
 * The inference process: one per concurrency slot of a worker, so a crashing driver or engine takes down
 * only its slot, and the worker's own event loop (BullMQ lock renewal) never waits on a batch. Its main
 * thread only moves requests and results across: small requests on the IPC channel, batches and their
 * activations as raw bytes on the data channel (fd 4, a socket pair; see frames.ts). The engine computes
 * on its own thread (EngineThread), so a result leaves while the next batch computes. The model stays
 * loaded between jobs while they ask for the same one.
 */
import { Socket } from 'node:net';
import { describeError, isLayertapError } from '@layertap/contracts';
import { EngineThread } from './engine-client';
import { BufferPool, FrameReader, writeFrame } from './frames';
import { packInferResult, wallClockMs, type ChildResponse, type HostRequest, type InferReplyHeader, type InferRequestHeader, type WireError } from './protocol';
import { warningsAsJson } from './json-warnings';

warningsAsJson('layertap-inference');

/** The data channel's file descriptor in this process (the host forks with stdio [.., 'ipc', 'pipe']). */
export const DATA_FD = 4;

/** Batches are received into buffers the engine thread gives back once it normalised them. */
const batches = new BufferPool(64 * 1024 * 1024);

// Without its engine thread the process has nothing to offer: exit, and the worker starts a fresh one.
const engine = new EngineThread({
  onExit: (err) => {
    process.stderr.write(`layertap inference process: ${err.message}\n`);
    process.exit(1);
  },
  onRecycled: (buffers) => buffers.forEach((b) => batches.give(new Uint8Array(b))),
});

function wireError(err: unknown): WireError {
  return { name: err instanceof Error ? err.name : 'Error', ...(isLayertapError(err) ? { code: err.code } : {}), message: describeError(err) };
}
// Ctrl-C reaches the whole process group: the worker decides when this process ends (it closes the channel),
// so a signal must not tear the engine's native threads down mid-batch ("terminate called ... Napi::Error").
process.on('SIGINT', () => undefined);

function reply(message: ChildResponse): void {
  process.send?.(message);
}

process.on('message', (raw: HostRequest) => {
  const run: Promise<unknown> = raw.type === 'usage' ? Promise.resolve(engine.usage()) : raw.type === 'probe' ? engine.probe(raw.probe) : engine.load(raw.spec);
  run.then(
    (value) => reply({ id: raw.id, ok: true, value }),
    (err: unknown) => reply({ id: raw.id, ok: false, error: wireError(err) }),
  );
});

const data = new Socket({ fd: DATA_FD, readable: true, writable: true });
const exit = (why: string, code: number) => {
  if (code) process.stderr.write(`layertap inference process: ${why}\n`);
  void engine.close().finally(() => process.exit(code));
};
new FrameReader<InferRequestHeader>(
  ({ header, segments }) => {
    const receivedAt = wallClockMs();
    // The batch's buffer is its own (offset 0): it moves to the engine thread, not copied.
    const batch = segments[0] ?? new Uint8Array(0);
    engine.infer(batch, header.batchSize, receivedAt).then(
      (result) => {
        const { value, segments: out } = packInferResult(result);
        const head: InferReplyHeader = { id: header.id, ok: true, value, sizes: out.map((s) => s.byteLength) };
        // Arrays the engine thread converted (float16) go back to it once sent, for the next batches.
        const converted = result.outputs.filter((o) => o.dtype === 'float16').map((o) => o.data.buffer);
        writeFrame(data, head, out, (err) => {
          if (!err) engine.recycle([...new Set(converted)].filter((b): b is ArrayBuffer => b instanceof ArrayBuffer));
        });
      },
      (err: unknown) => {
        const head: InferReplyHeader = { id: header.id, ok: false, error: wireError(err), sizes: [] };
        writeFrame(data, head, []);
      },
    );
  },
  (err) => exit(err.message, 1),
  (size) => batches.take(size),
).attach(data);
// The worker is gone: nothing left to serve.
data.on('error', () => undefined);
data.on('end', () => exit('the data channel closed', 0));

// The worker died or closed the channel: nothing left to serve.
process.on('disconnect', () => exit('the IPC channel closed', 0));
