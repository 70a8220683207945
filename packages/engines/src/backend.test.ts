import * as tf from '@tensorflow/tfjs-core';
import { ErrorCode } from '@layertap/contracts';
import { selectBackend } from './backend';
import { rejection } from './__tests__/hooks';

// On this project's CI machine tfjs-node(-gpu) and the WebGPU backend are not installed: the fallbacks and
// error paths are what runs here.
describe('selectBackend', () => {
  it('auto falls back to wasm and says why', async () => {
    const lines: string[] = [];
    const selection = await selectBackend('auto', { log: (msg) => lines.push(msg) });
    expect(selection.name).toBe('wasm');
    expect(selection.reason).toContain('@tensorflow/tfjs-node-gpu not installed');
    expect(selection.reason).toContain('@tensorflow/tfjs-node not installed');
    expect(selection.reason).toContain('SIMD');
    expect(tf.getBackend()).toBe('wasm');
    expect(lines).toEqual([expect.stringContaining('tfjs backend wasm')]);
  });

  it('is idempotent: the same selection, logged once', async () => {
    const lines: string[] = [];
    const first = await selectBackend('wasm', { log: (msg) => lines.push(msg) });
    const second = await selectBackend('wasm', { log: (msg) => lines.push(msg) });
    expect(second).toBe(first);
    expect(lines).toHaveLength(1);
  });

  it('switches between cpu and wasm on request', async () => {
    expect((await selectBackend('cpu')).name).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    await selectBackend('wasm');
    expect(tf.getBackend()).toBe('wasm');
    const sum = tf.tidy(() => tf.sum(tf.tensor1d([1, 2, 3.5])).dataSync()[0]);
    expect(sum).toBe(6.5);
  });

  it('refuses tensorflow when tfjs-node is missing, with install advice', async () => {
    const err = await rejection(selectBackend('tensorflow'));
    expect(err.code).toBe(ErrorCode.InvalidRequest);
    expect(err.message).toContain('backend tensorflow is not available');
    expect(err.message).toContain('@tensorflow/tfjs-node-gpu not installed');
    expect(err.message).toContain('Install @tensorflow/tfjs-node-gpu');
  });
});
