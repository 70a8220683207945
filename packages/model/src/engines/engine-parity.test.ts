import './__tests__/main-realm-typed-arrays';
import { ErrorCode, isLayertapError } from '@layertap/contracts';
import { Extractor, type ExtractorOptions, type LayerOutput } from '../extractor';
import { randomWeight } from '../random-weights';
import { requiredWeights, type WeightsMap } from '../weight-specs';
import { adaptiveAvgPool, conv3x3, dense, maxPool2, relativeError, testImages } from '../__tests__/reference';

// Every engine that can run here against the same references: the plain-JS VGG16 for block 1-2 layers, and
// the TF.js wasm engine (itself checked against the plain-JS reference in extractor.test.ts) plus plain-JS
// head maths for the deep layers. Engines that cannot run on this machine are skipped with the reason.
const ENGINES: { label: string; options: Partial<ExtractorOptions> }[] = [
  { label: 'tfjs/wasm', options: { engine: 'tfjs', backend: 'wasm' } },
  { label: 'onnx/cpu', options: { engine: 'onnx', onnxProvider: 'cpu', threads: 1 } },
  { label: 'onnx/webgpu', options: { engine: 'onnx', onnxProvider: 'webgpu' } },
  { label: 'onnx/cuda', options: { engine: 'onnx', onnxProvider: 'cuda' } },
  { label: 'tfjs/tensorflow', options: { engine: 'tfjs', backend: 'tensorflow' } },
  { label: 'tfjs/webgpu', options: { engine: 'tfjs', backend: 'webgpu' } },
];

/** Tolerance: max |a - b| <= TOLERANCE * max |reference|. */
const TOLERANCE = 1e-4;
const SEED = 7;

/** Creates the engine's extractor, or logs why it cannot run here and returns undefined. */
async function open(label: string, options: Partial<ExtractorOptions>, imageSize: number, weights?: WeightsMap): Promise<Extractor | undefined> {
  try {
    return await Extractor.create({ imageSize, seed: SEED, ...(weights ? { weights } : {}), ...options });
  } catch (err) {
    if (isLayertapError(err) && err.code === ErrorCode.InvalidRequest) {
      console.log(`engine parity: skipping ${label}: ${err.message}`);
      return undefined;
    }
    throw err;
  }
}

/** Runs one batch and returns each hooked layer's output in NHWC (or [N, C]) order. */
async function runNhwc(extractor: Extractor, layers: string[], data: Float32Array, batchSize: number): Promise<Map<string, LayerOutput>> {
  const outputs = new Map<string, LayerOutput>();
  for (const layer of layers) extractor.registerForwardHook(layer, (output) => void outputs.set(output.spec, toNhwc(output)));
  await extractor.run({ data, batchSize });
  return outputs;
}

function toNhwc(output: LayerOutput): LayerOutput {
  if (output.layout === 'nhwc' || output.shape.length !== 4) return output;
  const [n, c, h, w] = output.shape as [number, number, number, number];
  const data = new Float32Array(output.data.length);
  for (let b = 0; b < n; b++)
    for (let k = 0; k < c; k++)
      for (let p = 0; p < h * w; p++) data[(b * h * w + p) * c + k] = output.data[(b * c + k) * h * w + p] as number;
  return { ...output, data, shape: [n, h, w, c], layout: 'nhwc' };
}

function get(outputs: Map<string, LayerOutput>, spec: string): LayerOutput {
  const output = outputs.get(spec);
  if (!output) throw new Error(`no output for ${spec}`);
  return output;
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

describe('engine parity', () => {
  it('every available engine matches the plain-JS VGG16 on block 1-2 layers, pre-activations included (32x32)', async () => {
    const size = 32;
    const n = 2;
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
    for (const { label, options } of ENGINES) {
      const extractor = await open(label, options, size, weights);
      if (!extractor) continue;
      try {
        const outputs = await runNhwc(extractor, layers, images, n);
        for (const [spec, expected] of reference) {
          const error = relativeError(get(outputs, spec).data, expected);
          if (!(error <= TOLERANCE)) throw new Error(`${label} ${spec}: relative error ${error}`);
        }
        expect(get(outputs, 'block3_pool').shape).toEqual([n, 4, 4, 256]);
        // The first engine (tfjs/wasm) is the reference for the deeper layer.
        deepReference ??= get(outputs, 'block3_pool').data;
        expect(relativeError(get(outputs, 'block3_pool').data, deepReference)).toBeLessThanOrEqual(TOLERANCE);
        ran.push(label);
      } finally {
        extractor.dispose();
      }
    }
    expect(ran).toEqual(expect.arrayContaining(['tfjs/wasm', 'onnx/cpu']));
  });

  it('every available engine runs the head at 64x64 like torchvision: adaptive pool, (H,W,C) flatten, fc layers', async () => {
    const size = 64;
    const n = 2;
    const weights = seededWeights('predictions');
    const images = testImages(n, size, 22);
    const w = (name: string): Float32Array => weight(weights, name);
    const layers = ['block5_pool', 'avgpool', 'flatten', 'fc1_preact', 'fc2', 'predictions'];

    let reference: Map<string, Float32Array> | undefined;
    const ran: string[] = [];
    for (const { label, options } of ENGINES) {
      const extractor = await open(label, options, size, weights);
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
          reference = new Map([
            ['block5_pool', pool5.data],
            ['avgpool', avg],
            // Keras flattens the NHWC map as it lies.
            ['flatten', avg],
            ['fc1_preact', fc1Pre],
            ['fc2', fc2],
            ['predictions', logits],
          ]);
        }
        expect(get(outputs, 'avgpool').shape).toEqual([n, 7, 7, 512]);
        expect(get(outputs, 'flatten').shape).toEqual([n, 25088]);
        expect(get(outputs, 'predictions').shape).toEqual([n, 1000]);
        for (const [spec, expected] of reference) {
          const error = relativeError(get(outputs, spec).data, expected);
          if (!(error <= TOLERANCE)) throw new Error(`${label} ${spec}: relative error ${error}`);
        }
        ran.push(label);
      } finally {
        extractor.dispose();
      }
    }
    expect(ran).toEqual(expect.arrayContaining(['tfjs/wasm', 'onnx/cpu']));
  });
});
