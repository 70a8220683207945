import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * A stand-in for the inference child (`child.js`) that speaks the same protocol (IPC and data channel) without TF.js, written to a temp
 * dir and forked for real by InferenceHost. What it does is steered by the request:
 * - load: answers a ModelInfo; backend 'webgpu' fails with a coded LayertapError, 'tensorflow' with a plain
 *   Error; seed 13 exits with code 3 (a crash); seed 14 closes the channel and exits 300 ms later.
 * - infer: answers each value doubled, `batchSize` ms later (so replies can overtake each other);
 *   batchSize 0 crashes with code 4.
 */
const SCRIPT = `
process.on('message', (req) => {
  const reply = (msg) => process.send && process.send(msg);
  if (req.type === 'load') {
    const spec = req.spec;
    if (spec.seed === 13) process.exit(3);
    if (spec.seed === 14) {
      process.removeAllListeners('disconnect');
      process.disconnect();
      setTimeout(() => process.exit(1), 300);
      return;
    }
    if (spec.backend === 'webgpu') return reply({ id: req.id, ok: false, error: { name: 'LayertapError', code: 'backend_unavailable', message: 'no GPU adapter' } });
    if (spec.backend === 'tensorflow') return reply({ id: req.id, ok: false, error: { name: 'TypeError', message: 'tfjs-node missing' } });
    return reply({ id: req.id, ok: true, value: { backend: spec.backend, backendReason: 'pid ' + process.pid, weights: { description: 'random, seed ' + spec.seed }, loadMs: 1 } });
  }
});

// The data channel (fd 4), framed as frames.ts says, written out here independently: u32 LE header length,
// JSON header with the segments' sizes, the segments.
const data = new (require('node:net').Socket)({ fd: 4, readable: true, writable: true });
const send = (header, segments) => {
  const json = Buffer.from(JSON.stringify({ ...header, sizes: segments.map((s) => s.byteLength) }));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length);
  data.write(Buffer.concat([len, json, ...segments.map((s) => Buffer.from(s.buffer, s.byteOffset, s.byteLength))]));
};
let buffered = Buffer.alloc(0);
data.on('data', (chunk) => {
  buffered = Buffer.concat([buffered, chunk]);
  for (;;) {
    if (buffered.length < 4) return;
    const n = buffered.readUInt32LE(0);
    if (buffered.length < 4 + n) return;
    const header = JSON.parse(buffered.subarray(4, 4 + n).toString());
    const size = header.sizes.reduce((a, b) => a + b, 0);
    if (buffered.length < 4 + n + size) return;
    const batch = new Uint8Array(buffered.subarray(4 + n, 4 + n + size));
    buffered = buffered.subarray(4 + n + size);
    infer({ id: header.id, batchSize: header.batchSize, batch });
  }
});
function infer(req) {
  if (req.batchSize === 0) process.exit(4);
  const isUint8 = req.batch instanceof Uint8Array;
  const out = Float32Array.from(req.batch, (v) => v * 2);
  setTimeout(() => send({ id: req.id, ok: true, value: {
    outputs: [{ spec: 'fc2', canonical: 'fc2', dtype: 'float32', segment: 0, byteOffset: 0, length: out.length, shape: [req.batchSize, out.length / req.batchSize] }],
    inferenceMs: req.batchSize, readbackMs: 0, memory: { numTensors: isUint8 ? 1 : -1, numBytes: out.byteLength },
    times: { receivedAt: performance.timeOrigin + performance.now(), startedAt: 0, finishedAt: performance.timeOrigin + performance.now() },
  } }, [out]), req.batchSize);
}
process.on('disconnect', () => process.exit(0));
`;

export async function writeFakeChild(): Promise<{ childPath: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'layertap-fake-child-'));
  const childPath = path.join(dir, 'fake-inference-child.js');
  await writeFile(childPath, SCRIPT);
  return { childPath, remove: () => rm(dir, { recursive: true, force: true }) };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
