import './__tests__/main-realm-typed-arrays';
import * as tf from '@tensorflow/tfjs-core';
import { ErrorCode, isLayertapError } from '@layertap/contracts';
import { selectBackend } from './backend';
import { Extractor, type ExtractorOptions, type LayerOutput } from './extractor';
import { randomWeight, type WeightsMap, requiredWeights } from '@layertap/model';
import { adaptiveAvgPool, conv3x3, dense, maxPool2, relativeError, testImages } from '@layertap/model/testing';
import type { InferenceEngine } from './engine';
import { OnnxEngine } from './onnx-engine';
import { TfjsEngine } from './tfjs-engine';
import { webgpuAdapter } from './webgpu-adapter';
import { get } from './__tests__/hooks';

// Every engine against the same references: the plain-JS VGG16 for block 1-2 layers, and the first engine
// (TF.js wasm, itself checked against the plain-JS reference in extractor.test.ts) plus plain-JS head maths for
// the deep layers. The WebGPU engines must run: `bash infra/bootstrap.sh --test` installs Mesa's software
// Vulkan driver (lavapipe), whose adapter the tests name explicitly (auto would pass it over). Only engines
// whose native parts cannot be installed here (CUDA, tfjs-node) may be skipped, with the reason.
const ENGINES: { label: string; options: Partial<ExtractorOptions>; required: boolean }[] = [
  { label: 'tfjs/wasm', options: { engine: 'tfjs', backend: 'wasm' }, required: true },
  { label: 'onnx/cpu', options: { engine: 'onnx', backend: 'cpu', threads: 1 }, required: true },
  { label: 'onnx/webgpu', options: { engine: 'onnx', backend: 'webgpu' }, required: true },
  { label: 'tfjs/webgpu', options: { engine: 'tfjs', backend: 'webgpu' }, required: true },
  { label: 'onnx/cuda', options: { engine: 'onnx', backend: 'cuda' }, required: false },
  { label: 'tfjs/tensorflow', options: { engine: 'tfjs', backend: 'tensorflow' }, required: false },
];

/** Tolerance: max |a - b| <= TOLERANCE * max |reference|. */
const TOLERANCE = 1e-4;
const SEED = 7;
const WEBGPU_HELP = "the WebGPU engines must run in the tests: install Mesa's software Vulkan driver (Debian mesa-vulkan-drivers >= 24; `bash infra/bootstrap.sh --test` does)";

/** Creates the engine's extractor; an optional engine that cannot run here is skipped, saying why. */
async function open(label: string, options: Partial<ExtractorOptions>, required: boolean, imageSize: number, weights?: WeightsMap): Promise<Extractor | undefined> {
  try {
    const extractor = await Extractor.create({ imageSize, seed: SEED, ...(weights ? { weights } : {}), ...options });
    console.log(`engine parity: ${label} on ${extractor.info.device.description}`);
    return extractor;
  } catch (err) {
    if (!required && isLayertapError(err) && err.code === ErrorCode.BackendUnavailable) {
      console.log(`engine parity: skipping ${label}: ${err.message}`);
      return undefined;
    }
    throw new Error(`${label} cannot run: ${(err as Error).message}${label.endsWith('/webgpu') ? `; ${WEBGPU_HELP}` : ''}`);
  }
}

/** Runs one batch and returns each hooked layer's output in NHWC (or [N, C]) order. */
async function runNhwc(extractor: Extractor, layers: string[], data: Float32Array, batchSize: number): Promise<Map<string, LayerOutput>> {
  const outputs = new Map<string, LayerOutput>();
  for (const layer of layers) extractor.registerForwardHook(layer, (output) => void outputs.set(output.spec, toNhwc(output)));
  await extractor.run({ data, batchSize });
  return outputs;
}

function toNhwc(output: { data: Float32Array; shape: number[]; layout: 'nhwc' | 'nchw' }): LayerOutput {
  const base = { spec: '', canonical: '', batchSize: output.shape[0] ?? 0 };
  if (output.layout === 'nhwc' || output.shape.length !== 4) return { ...base, ...output };
  const [n, c, h, w] = output.shape as [number, number, number, number];
  const data = new Float32Array(output.data.length);
  for (let b = 0; b < n; b++)
    for (let k = 0; k < c; k++)
      for (let p = 0; p < h * w; p++) data[(b * h * w + p) * c + k] = output.data[(b * c + k) * h * w + p] as number;
  return { ...base, data, shape: [n, h, w, c], layout: 'nhwc' };
}

/** Seeded weights for everything up to `layer`, made once and given to every engine. */
function seededWeights(layer: string): WeightsMap {
  return new Map(requiredWeights([layer]).map((spec) => [spec.name, { shape: [...spec.shape], data: randomWeight(SEED, spec) }]));
}

function weight(weights: WeightsMap, name: string): Float32Array {
  const tensor = weights.get(name);
  if (!tensor) throw new Error(`no weight ${name}`);
  return tensor.data;
}

function within(label: string, spec: string, actual: Float32Array, expected: Float32Array): void {
  const error = relativeError(actual, expected);
  if (!(error <= TOLERANCE)) throw new Error(`${label} ${spec}: relative error ${error}`);
}

describe('engine parity', () => {
  it('every engine matches the plain-JS VGG16 on block 1-2 layers, pre-activations included (32x32, batch 3)', async () => {
    const size = 32;
    const n = 3;
    const weights = seededWeights('block3_pool');
    const images = testImages(n, size, 21);
    const w = (name: string): Float32Array => weight(weights, name);
    const pre1 = conv3x3(images, [n, size, size, 3], w('block1_conv1/kernel'), w('block1_conv1/bias'), 64, false);
    const conv1 = pre1.map((v) => Math.max(0, v));
    const conv2 = conv3x3(conv1, [n, size, size, 64], w('block1_conv2/kernel'), w('block1_conv2/bias'), 64, true);
    const pool1 = maxPool2(conv2, [n, size, size, 64]);
    const pre3 = conv3x3(pool1, [n, 16, 16, 64], w('block2_conv1/kernel'), w('block2_conv1/bias'), 128, false);
    const reference = new Map([
      ['features.0', pre1],
      ['block1_conv1', conv1],
      ['block1_pool', pool1],
      ['block2_conv1_preact', pre3],
    ]);
    const layers = [...reference.keys(), 'block3_pool'];

    let deepReference: Float32Array | undefined;
    const ran: string[] = [];
    for (const { label, options, required } of ENGINES) {
      const extractor = await open(label, options, required, size, weights);
      if (!extractor) continue;
      try {
        const outputs = await runNhwc(extractor, layers, images, n);
        for (const [spec, expected] of reference) within(label, spec, get(outputs, spec).data, expected);
        expect(get(outputs, 'block3_pool').shape).toEqual([n, 4, 4, 256]);
        // The first engine (tfjs/wasm) is the reference for the deeper layer.
        deepReference ??= get(outputs, 'block3_pool').data;
        within(label, 'block3_pool', get(outputs, 'block3_pool').data, deepReference);
        ran.push(label);
      } finally {
        extractor.dispose();
      }
    }
    expect(ran).toEqual(expect.arrayContaining(['tfjs/wasm', 'onnx/cpu', 'onnx/webgpu', 'tfjs/webgpu']));
  });

  it('every engine runs the head at 64x64 like torchvision: adaptive pool, (H,W,C) flatten, fc layers (fc1 beyond a 128 MiB binding)', async () => {
    const size = 64;
    const n = 2;
    const weights = seededWeights('predictions');
    const images = testImages(n, size, 22);
    const w = (name: string): Float32Array => weight(weights, name);
    const layers = ['block5_pool', 'avgpool', 'flatten', 'fc1_preact', 'fc2', 'predictions'];

    let reference: Map<string, Float32Array> | undefined;
    const ran: string[] = [];
    for (const { label, options, required } of ENGINES) {
      const extractor = await open(label, options, required, size, weights);
      if (!extractor) continue;
      try {
        const outputs = await runNhwc(extractor, layers, images, n);
        if (!reference) {
          // From the first engine's block5_pool, the head in plain JS.
          const pool5 = get(outputs, 'block5_pool');
          expect(pool5.shape).toEqual([n, 2, 2, 512]);
          const avg = adaptiveAvgPool(pool5.data, pool5.shape, 7);
          const fc1Pre = dense(avg, n, w('fc1/kernel'), w('fc1/bias'), 4096, false);
          const fc2 = dense(fc1Pre.map((v) => Math.max(0, v)), n, w('fc2/kernel'), w('fc2/bias'), 4096, true);
          const logits = dense(fc2, n, w('predictions/kernel'), w('predictions/bias'), 1000, false);
          // Keras flattens the NHWC map as it lies.
          reference = new Map([['block5_pool', pool5.data], ['avgpool', avg], ['flatten', avg], ['fc1_preact', fc1Pre], ['fc2', fc2], ['predictions', logits]]);
        }
        expect(get(outputs, 'avgpool').shape).toEqual([n, 7, 7, 512]);
        expect(get(outputs, 'flatten').shape).toEqual([n, 25088]);
        expect(get(outputs, 'predictions').shape).toEqual([n, 1000]);
        for (const [spec, expected] of reference) within(label, spec, get(outputs, spec).data, expected);
        ran.push(label);
      } finally {
        extractor.dispose();
      }
    }
    expect(ran).toEqual(expect.arrayContaining(['tfjs/wasm', 'onnx/cpu', 'onnx/webgpu', 'tfjs/webgpu']));
  });
});

describe('WebGPU engines on the adapter', () => {
  const size = 32;
  const layers = ['block1_conv2', 'block2_conv1_preact', 'block2_pool'];
  const weights = seededWeights('block2_pool');
  const common = { imageSize: size, weights, weightsDescription: 'seeded', seed: SEED, log: () => undefined };

  async function cpuReference(data: Float32Array, batchSize: number): Promise<Float32Array[]> {
    const cpu = new OnnxEngine({ ...common, provider: 'cpu', threads: 1, reason: 'reference' });
    try {
      return (await cpu.run(layers, data, batchSize)).outputs.map((o) => toNhwc(o).data);
    } finally {
      cpu.dispose();
    }
  }

  async function engines(maxBindingBytes: number): Promise<{ label: string; engine: InferenceEngine }[]> {
    const adapter = await webgpuAdapter().catch((err: Error) => {
      throw new Error(`${err.message}; ${WEBGPU_HELP}`);
    });
    console.log(`engine parity: WebGPU adapter ${adapter.description} (${adapter.vendor}, ${adapter.architecture}), binding limit ${adapter.maxStorageBufferBindingSize} bytes`);
    const selection = await selectBackend('webgpu');
    return [
      { label: 'onnx/webgpu', engine: new OnnxEngine({ ...common, provider: 'webgpu', threads: 1, maxBindingBytes, reason: 'test' }) },
      { label: 'tfjs/webgpu', engine: new TfjsEngine({ ...common, maxBindingBytes }, selection) },
      { label: 'tfjs/webgpu im2col', engine: new TfjsEngine({ ...common, maxBindingBytes, im2col: true }, selection) },
    ];
  }

  it('cuts odd batches into slices that fit the binding limit, and the slices add up to the CPU result', async () => {
    // 32 px: block1 maps are 256 KiB per image, im2col 2.3 MiB: a 600 KiB limit means slices of 2 (1 with im2col).
    const limit = 600 * 1024;
    for (const { label, engine } of await engines(limit)) {
      try {
        for (const n of [1, 5, 7]) {
          const data = testImages(n, size, 30 + n);
          const expected = await cpuReference(data, n);
          const { outputs } = await engine.run(layers, data, n);
          outputs.forEach((output, i) => within(`${label} batch ${n}`, layers[i] as string, toNhwc(output).data, expected[i] as Float32Array));
        }
      } finally {
        engine.dispose();
      }
    }
  });

  it('ONNX Runtime WebGPU runs 11 images of 224 px through block 1 on the real limit (failed with raw_hash_map<>::at before)', async () => {
    const adapter = await webgpuAdapter();
    const big = { ...common, imageSize: 224, weights: seededWeights('block1_conv1') };
    const gpu = new OnnxEngine({ ...big, provider: 'webgpu', threads: 1, maxBindingBytes: adapter.maxStorageBufferBindingSize, reason: 'test' });
    const cpu = new OnnxEngine({ ...big, provider: 'cpu', threads: 2, reason: 'reference' });
    try {
      const n = 11;
      // 11 x 12.8 MB of block1 maps (the failing Conv was block1_conv2's, the same size): over 128 MiB, so llvmpipe's adapter needs slices.
      const slice = gpu.runBatchSize(n, ['block1_conv1']);
      if (adapter.maxStorageBufferBindingSize <= 128 * 1024 ** 2) expect(slice).toBeLessThan(n);
      const data = testImages(n, 224, 41);
      const [got] = (await gpu.run(['block1_conv1'], data, n)).outputs;
      const [want] = (await cpu.run(['block1_conv1'], data, n)).outputs;
      within('onnx/webgpu 224 px', 'block1_conv1', got!.data, want!.data);
    } finally {
      gpu.dispose();
      cpu.dispose();
    }
  });

  it('frees every GPU tensor and byte after each of 24 mixed batches (TF.js), holds no OrtValue (ONNX Runtime)', async () => {
    for (const options of [{ engine: 'tfjs', backend: 'webgpu' }, { engine: 'onnx', backend: 'webgpu' }] as const) {
      const extractor = await Extractor.create({ ...options, imageSize: size, weights, seed: SEED });
      let values = 0;
      for (const layer of layers) extractor.registerForwardHook(layer, (o) => void (values += o.data.length));
      await extractor.warmup(2);
      const baseline = extractor.memory();
      const gpuBytes = (): number | undefined => (options.engine === 'tfjs' ? (tf.memory() as { numBytesInGPU?: number }).numBytesInGPU : undefined);
      const baselineGpu = gpuBytes();
      if (options.engine === 'tfjs') expect(baselineGpu).toBeGreaterThan(0);
      else expect(baseline.numTensors).toBe(0);
      let images = 0;
      for (let i = 0; i < 24; i++) {
        const n = [1, 4, 3, 7, 2, 5][i % 6] as number;
        await extractor.run({ data: testImages(n, size, 50 + i), batchSize: n });
        images += n;
        expect(extractor.memory()).toEqual(baseline);
        expect(gpuBytes()).toBe(baselineGpu);
      }
      expect(values).toBe(images * (64 * 32 * 32 + 128 * 16 * 16 + 128 * 8 * 8));
      extractor.dispose();
    }
  });
});
