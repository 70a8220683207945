import { ErrorCode, TransientError } from '@layertap/contracts';
import { InferenceHost } from './host';
import type { ModelSpec } from './protocol';
import { writeFakeChild } from './__tests__/fake-child';

const spec = (overrides: Partial<ModelSpec> = {}): ModelSpec => ({ engine: 'tfjs', backend: 'cpu', imageSize: 32, layers: [{ spec: 'fc2', canonical: 'fc2', shape: [4096] }], seed: 0, preprocess: 'torchvision', store: { layout: 'chw', pool: 'none', dtype: 'float32' }, ...overrides });

it("an old child's exit does not reject requests pending on the fresh child", async () => {
  const fake = await writeFakeChild();
  const host = new InferenceHost({ childPath: fake.childPath });
  try {
    await host.load(spec());
    const oldPid = host.pid;
    // seed 14: the child closes its IPC channel at once and exits 300 ms later.
    const dying = host.load(spec({ seed: 14 })).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 100)); // channel closed, process still alive
    // A request now goes to a fresh child, whose answer takes 400 ms: the old child exits meanwhile.
    const fresh = host.infer(new Uint8Array([1, 2]), 400).then((r) => r.outputs[0]?.data[0], (e: unknown) => e);
    expect(host.pid).not.toBe(oldPid);
    const err = (await dying) as TransientError;
    expect(err.code).toBe(ErrorCode.InferenceFailed);
    expect(await fresh).toBe(2);
  } finally {
    await host.close();
    await fake.remove();
  }
});
