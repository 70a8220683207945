import * as tf from '@tensorflow/tfjs-core';
import { ErrorCode } from '@layertap/contracts';
import { Extractor } from './extractor';
import { randomWeight, type WeightSpec, type WeightsMap, VGG16_WEIGHTS } from '@layertap/model';
import { adaptiveAvgPool, conv3x3, dense, maxPool2, relativeError, testImages } from '@layertap/model/testing';
import { collect, get, rejection, thrown } from './__tests__/hooks';

const SIZE = 32;

function spec(name: string): WeightSpec {
  const found = VGG16_WEIGHTS.find((s) => s.name === name);
  if (!found) throw new Error(`no spec ${name}`);
  return found;
}

const relu = (data: Float32Array): Float32Array => data.map((v) => Math.max(0, v));

describe('Extractor', () => {
  const open: Extractor[] = [];
  async function create(options: Partial<Parameters<typeof Extractor.create>[0]> = {}): Promise<Extractor> {
    const extractor = await Extractor.create({ backend: 'wasm', imageSize: SIZE, ...options });
    open.push(extractor);
    return extractor;
  }
  afterEach(() => {
    for (const extractor of open.splice(0)) extractor.dispose();
    expect(tf.memory().numTensors).toBe(0);
  });

  it('hands two layers from one forward pass to their hooks, with NHWC shapes', async () => {
    const extractor = await create();
    const outputs = collect(extractor, ['block1_pool', 'features.9']);
    const result = await extractor.run({ data: testImages(3, SIZE), batchSize: 3 });
    expect(result.layers).toEqual(['block1_pool', 'block2_pool']);
    expect(result.batchSize).toBe(3);
    expect(result.inferenceMs).toBeGreaterThan(0);
    const pool1 = get(outputs, 'block1_pool');
    expect(pool1).toMatchObject({ canonical: 'block1_pool', shape: [3, 16, 16, 64], batchSize: 3 });
    expect(pool1.data).toHaveLength(3 * 16 * 16 * 64);
    expect(get(outputs, 'features.9')).toMatchObject({ canonical: 'block2_pool', shape: [3, 8, 8, 128] });
    expect(get(outputs, 'features.9').data).toBeInstanceOf(Float32Array);
    expect(extractor.backend).toBe('wasm');
    expect(extractor.weightsDescription).toBe('random, seed 0');
  });

  it('stops calling a removed hook, and computes nothing once no hook is left', async () => {
    const extractor = await create();
    const calls: string[] = [];
    const a = extractor.registerForwardHook('block1_conv1', (o) => void calls.push(`a:${o.spec}`));
    const b = extractor.registerForwardHook('block1_conv1', (o) => void calls.push(`b:${o.spec}`));
    const c = extractor.registerForwardHook('features.4', (o) => void calls.push(`c:${o.spec}`));
    const input = { data: testImages(1, SIZE), batchSize: 1 };
    await extractor.run(input);
    // Forward order, then registration order within a layer.
    expect(calls.splice(0)).toEqual(['a:block1_conv1', 'b:block1_conv1', 'c:features.4']);
    a.remove();
    a.remove();
    expect((await extractor.run(input)).layers).toEqual(['block1_conv1', 'block1_pool']);
    expect(calls.splice(0)).toEqual(['b:block1_conv1', 'c:features.4']);
    c.remove();
    expect((await extractor.run(input)).layers).toEqual(['block1_conv1']);
    expect(calls.splice(0)).toEqual(['b:block1_conv1']);
    b.remove();
    expect(await extractor.run(input)).toMatchObject({ layers: [], inferenceMs: 0 });
    expect(calls).toEqual([]);
  });

  it('builds the model only up to the deepest hooked layer', async () => {
    const before = tf.memory();
    const extractor = await create();
    extractor.registerForwardHook('block2_pool', () => undefined);
    expect(extractor.describeModel()).toBeUndefined();
    await extractor.warmup();
    const model = extractor.describeModel();
    expect(model?.layers).toHaveLength(7);
    expect(model?.layers.at(-1)).toBe('block2_pool');
    expect(model?.weights.map((w) => w.name)).not.toContain('fc1/kernel');
    expect(model?.weights.every((w) => /^block[12]_conv\d\//.test(w.name))).toBe(true);
    // What stays allocated is the weights of blocks 1-2 and nothing more.
    expect(extractor.memory().numBytes - before.numBytes).toBe(4 * 260_160);
  });

  it('gives pre-activations whose ReLU is exactly the hooked post-activation', async () => {
    const extractor = await create();
    const outputs = collect(extractor, ['features.0', 'features.1', 'block2_conv1_preact', 'block2_conv1']);
    await extractor.run({ data: testImages(2, SIZE), batchSize: 2 });
    const pre = get(outputs, 'features.0');
    expect(pre.canonical).toBe('block1_conv1_preact');
    expect(pre.data.some((v) => v < 0)).toBe(true);
    expect(get(outputs, 'features.1').data).toEqual(relu(pre.data));
    expect(get(outputs, 'block2_conv1').data).toEqual(relu(get(outputs, 'block2_conv1_preact').data));

    // The fused conv+ReLU of a model without pre-activation hooks computes the same values.
    const fused = await create();
    const fusedOutputs = collect(fused, ['block2_conv1']);
    await fused.run({ data: testImages(2, SIZE), batchSize: 2 });
    expect(relativeError(get(fusedOutputs, 'block2_conv1').data, get(outputs, 'block2_conv1').data)).toBeLessThan(1e-6);
  });

  it('matches a naive JavaScript VGG16 on the first convs and pools', async () => {
    const seed = 11;
    const extractor = await create({ seed });
    const outputs = collect(extractor, ['block1_conv1', 'block1_conv2', 'block1_pool', 'block2_conv1_preact']);
    const n = 2;
    const images = testImages(n, SIZE, 5);
    await extractor.run({ data: images, batchSize: n });
    const w = (name: string): Float32Array => randomWeight(seed, spec(name));

    const conv1 = conv3x3(images, [n, SIZE, SIZE, 3], w('block1_conv1/kernel'), w('block1_conv1/bias'), 64, true);
    expect(relativeError(get(outputs, 'block1_conv1').data, conv1)).toBeLessThan(1e-4);
    // From the model's own block1_conv2, so each check covers one step.
    const conv2 = get(outputs, 'block1_conv2').data;
    expect(get(outputs, 'block1_pool').data).toEqual(maxPool2(conv2, [n, SIZE, SIZE, 64]));
    const pool1 = get(outputs, 'block1_pool').data;
    const pre = conv3x3(pool1, [n, 16, 16, 64], w('block2_conv1/kernel'), w('block2_conv1/bias'), 128, false);
    expect(relativeError(get(outputs, 'block2_conv1_preact').data, pre)).toBeLessThan(1e-4);
  });

  it('runs the head at image sizes other than 224, like torchvision', async () => {
    const seed = 4;
    const n = 2;
    const extractor = await create({ imageSize: 64, seed });
    const specs = ['block5_pool', 'avgpool', 'flatten', 'classifier.0', 'classifier.1', 'fc2_preact', 'classifier.5', 'predictions'];
    const outputs = collect(extractor, specs);
    await extractor.run({ data: testImages(n, 64, 9), batchSize: n });
    const w = (name: string): Float32Array => randomWeight(seed, spec(name));

    const pool5 = get(outputs, 'block5_pool');
    expect(pool5.shape).toEqual([n, 2, 2, 512]);
    const avg = get(outputs, 'avgpool');
    expect(avg.shape).toEqual([n, 7, 7, 512]);
    expect(relativeError(avg.data, adaptiveAvgPool(pool5.data, pool5.shape, 7))).toBeLessThan(1e-6);
    // Keras flatten of NHWC: the (H,W,C) order of the pooled map.
    expect(get(outputs, 'flatten')).toMatchObject({ shape: [n, 25088] });
    expect(get(outputs, 'flatten').data).toEqual(avg.data);

    const fc1Pre = get(outputs, 'classifier.0');
    expect(fc1Pre).toMatchObject({ canonical: 'fc1_preact', shape: [n, 4096] });
    const fc1Ref = dense(avg.data, n, w('fc1/kernel'), w('fc1/bias'), 4096, false);
    expect(relativeError(fc1Pre.data, fc1Ref)).toBeLessThan(1e-4);
    const fc1 = get(outputs, 'classifier.1').data;
    expect(fc1).toEqual(relu(fc1Pre.data));
    const fc2Pre = get(outputs, 'fc2_preact').data;
    expect(relativeError(fc2Pre, dense(fc1, n, w('fc2/kernel'), w('fc2/bias'), 4096, false))).toBeLessThan(1e-4);
    // classifier.5 is the Dropout after fc2's ReLU: the identity at inference.
    expect(get(outputs, 'classifier.5')).toMatchObject({ canonical: 'fc2', shape: [n, 4096] });
    const fc2 = get(outputs, 'classifier.5').data;
    expect(fc2).toEqual(relu(fc2Pre));
    // Logits, no softmax: they do not sum to 1 and can be negative.
    const logits = get(outputs, 'predictions');
    expect(logits.shape).toEqual([n, 1000]);
    expect(relativeError(logits.data, dense(fc2, n, w('predictions/kernel'), w('predictions/bias'), 1000, false))).toBeLessThan(1e-4);
    expect(logits.data.some((v) => v < 0)).toBe(true);
  });

  it('derives random weights from the seed alone', async () => {
    const images = { data: testImages(2, SIZE, 3), batchSize: 2 };
    const run = async (seed: number): Promise<Float32Array> => {
      const extractor = await create({ seed });
      const outputs = collect(extractor, ['block2_conv1']);
      await extractor.run(images);
      return get(outputs, 'block2_conv1').data;
    };
    const a = await run(1);
    expect(await run(1)).toEqual(a);
    const other = await run(2);
    expect(other).toHaveLength(a.length);
    expect(relativeError(other, a)).toBeGreaterThan(0.1);
  });

  it('uses given weights, and says where they came from', async () => {
    const seed = 9;
    const weights: WeightsMap = new Map();
    for (const s of VGG16_WEIGHTS.filter((w) => /^block[12]_/.test(w.layer))) {
      weights.set(s.name, { shape: [...s.shape], data: randomWeight(seed, s) });
    }
    const given = await create({ weights, weightsDescription: 'test weights sha256:abc' });
    expect(given.weightsDescription).toBe('test weights sha256:abc');
    const random = await create({ seed });
    const a = collect(given, ['block2_pool']);
    const b = collect(random, ['block2_pool']);
    const images = { data: testImages(1, SIZE), batchSize: 1 };
    await given.run(images);
    await random.run(images);
    expect(get(a, 'block2_pool').data).toEqual(get(b, 'block2_pool').data);

    // Only blocks 1-2 were given: a deeper hook is refused when it is registered, naming the tensor.
    const err = thrown(() => given.registerForwardHook('block3_conv1', () => undefined));
    expect(err.code).toBe(ErrorCode.InvalidWeights);
    expect(err.message).toContain('block3_conv1/kernel is missing (expected shape [3, 3, 128, 256])');
  });

  it('refuses misshapen weights when created, naming the tensor and both shapes', async () => {
    const weights: WeightsMap = new Map([['block2_conv2/kernel', { shape: [3, 3, 128, 64], data: new Float32Array(73_728) }]]);
    const err = await rejection(create({ weights }));
    expect(err.code).toBe(ErrorCode.InvalidWeights);
    expect(err.message).toContain('block2_conv2/kernel has shape [3, 3, 128, 64], expected [3, 3, 128, 128]');
  });

  it('leaves no tensor behind over 60 batches of mixed sizes', async () => {
    const extractor = await create();
    let values = 0;
    extractor.registerForwardHook('block1_pool', (o) => void (values += o.data.length));
    extractor.registerForwardHook('block2_conv2', (o) => void (values += o.data.length));
    await extractor.run({ data: testImages(1, SIZE), batchSize: 1 });
    const steady = extractor.memory();
    let images = 1;
    for (let i = 0; i < 60; i++) {
      const batchSize = (i % 5) + 1;
      await extractor.run({ data: testImages(batchSize, SIZE, i), batchSize });
      images += batchSize;
      expect(extractor.memory()).toEqual(steady);
    }
    expect(values).toBe(images * (16 * 16 * 64 + 16 * 16 * 128));
    extractor.dispose();
    expect(tf.memory()).toMatchObject({ numTensors: 0, numBytes: 0 });
  });

  it('reports a tensor left behind during a run as tensor_leak, and goes on afterwards', async () => {
    const extractor = await create();
    const leaked: tf.Tensor[] = [];
    const hook = extractor.registerForwardHook('block1_conv1', (o) => void leaked.push(tf.tensor(o.data.subarray(0, 10))));
    const input = { data: testImages(1, SIZE), batchSize: 1 };
    const err = await rejection(extractor.run(input)).finally(() => tf.dispose(leaked));
    expect(err.code).toBe(ErrorCode.TensorLeak);
    // block1_conv1's kernel and bias are the 2 tensors alive between runs; the hook's 10 floats are the +1.
    expect(err.message).toMatch(/live tensor count from 2 to 3 \(\+1, 40 bytes\)/);
    hook.remove();
    const outputs = collect(extractor, ['block1_conv1']);
    await extractor.run(input);
    expect(get(outputs, 'block1_conv1').shape).toEqual([1, SIZE, SIZE, 64]);
  });

  it('reuses the built network for shallower hook sets and keeps it when one needs a split', async () => {
    const extractor = await create();
    const input = { data: testImages(1, SIZE), batchSize: 1 };
    const deep = extractor.registerForwardHook('block3_pool', () => undefined);
    await extractor.run(input);
    expect(extractor.describeModel()?.name).toBe('vgg16_to_block3_pool');
    deep.remove();
    const outputs = collect(extractor, ['block1_pool']);
    await extractor.run(input);
    expect(extractor.describeModel()?.name).toBe('vgg16_to_block3_pool');
    expect(get(outputs, 'block1_pool').shape).toEqual([1, 16, 16, 64]);
    // A pre-activation the network fused: rebuilt with it split, and as deep as before.
    extractor.registerForwardHook('block1_conv2_preact', () => undefined);
    await extractor.run(input);
    const model = extractor.describeModel();
    expect(model?.name).toBe('vgg16_to_block3_pool');
    expect(model?.layers).toContain('block1_conv2_preact');
    expect(model?.layers.at(-1)).toBe('block3_pool');
  });

  it('awaits async hooks and serialises concurrent runs', async () => {
    const extractor = await create();
    const events: string[] = [];
    extractor.registerForwardHook('block1_conv1', async (o) => {
      events.push(`start ${o.batchSize}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
      events.push(`end ${o.batchSize}`);
    });
    await Promise.all([1, 2, 3].map((batchSize) => extractor.run({ data: testImages(batchSize, SIZE), batchSize })));
    expect(events).toEqual(['start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3']);
  });

  it('lets a run in progress finish when disposed, then frees everything', async () => {
    const extractor = await create();
    let entered!: () => void;
    let release!: () => void;
    const inHook = new Promise<void>((resolve) => (entered = resolve));
    const gate = new Promise<void>((resolve) => (release = resolve));
    extractor.registerForwardHook('block1_conv1', () => {
      entered();
      return gate;
    });
    const running = extractor.run({ data: testImages(1, SIZE), batchSize: 1 });
    await inHook;
    extractor.dispose();
    expect(tf.memory().numTensors).toBe(2);
    release();
    await expect(running).resolves.toMatchObject({ layers: ['block1_conv1'] });
    expect(tf.memory().numTensors).toBe(0);
  });

  it('refuses bad input, unknown layers and use after dispose', async () => {
    const extractor = await create();
    expect(thrown(() => extractor.registerForwardHook('block6_conv1', () => undefined)).code).toBe(ErrorCode.UnknownLayer);
    extractor.registerForwardHook('block1_conv1', () => undefined);
    const short = await rejection(extractor.run({ data: new Float32Array(100), batchSize: 1 }));
    expect(short.code).toBe(ErrorCode.InvalidRequest);
    expect(short.message).toContain('1x32x32x3 = 3072 float32 values (NHWC), got 100 values');
    expect((await rejection(extractor.run({ data: testImages(1, SIZE), batchSize: 0 }))).code).toBe(ErrorCode.InvalidRequest);
    expect((await rejection(create({ imageSize: 16 }))).code).toBe(ErrorCode.InvalidRequest);
    extractor.dispose();
    expect((await rejection(extractor.run({ data: testImages(1, SIZE), batchSize: 1 }))).code).toBe(ErrorCode.InferenceFailed);
  });
});
