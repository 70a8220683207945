import './__tests__/main-realm-typed-arrays';
import { ErrorCode, LayertapError } from '@layertap/contracts';
import { Extractor, type ExtractorOptions } from './extractor';
import { randomWeight, type WeightsMap, VGG16_WEIGHTS } from '@layertap/model';
import { relativeError, testImages } from '@layertap/model/testing';
import { collect, get, rejection } from './__tests__/hooks';

const SIZE = 32;

describe('Extractor on ONNX Runtime (cpu)', () => {
  const open: Extractor[] = [];
  async function create(options: Partial<ExtractorOptions> = {}): Promise<Extractor> {
    const extractor = await Extractor.create({ engine: 'onnx', backend: 'cpu', threads: 1, imageSize: SIZE, ...options });
    open.push(extractor);
    return extractor;
  }
  afterEach(() => {
    for (const extractor of open.splice(0)) extractor.dispose();
  });

  it('hands two layers from one pass to their hooks as NCHW batches', async () => {
    const extractor = await create();
    expect(extractor).toMatchObject({ engine: 'onnx', backend: 'cpu', label: 'onnx/cpu', backendReason: 'onnx/cpu: cpu ran a test model' });
    const outputs = collect(extractor, ['block1_pool', 'features.9']);
    const result = await extractor.run({ data: testImages(3, SIZE), batchSize: 3 });
    expect(result.layers).toEqual(['block1_pool', 'block2_pool']);
    expect(result.inferenceMs).toBeGreaterThan(0);
    expect(get(outputs, 'block1_pool')).toMatchObject({ canonical: 'block1_pool', shape: [3, 64, 16, 16], layout: 'nchw', batchSize: 3 });
    expect(get(outputs, 'block1_pool').data).toHaveLength(3 * 64 * 16 * 16);
    expect(get(outputs, 'features.9')).toMatchObject({ canonical: 'block2_pool', shape: [3, 128, 8, 8], layout: 'nchw' });
  });

  it('gives pre-activations whose Relu is exactly the hooked post-activation', async () => {
    const extractor = await create();
    const outputs = collect(extractor, ['features.0', 'features.1', 'block2_conv1_preact', 'block2_conv1']);
    await extractor.run({ data: testImages(2, SIZE), batchSize: 2 });
    const pre = get(outputs, 'features.0');
    expect(pre.canonical).toBe('block1_conv1_preact');
    expect(pre.data.some((v) => v < 0)).toBe(true);
    expect(get(outputs, 'features.1').data).toEqual(pre.data.map((v) => Math.max(0, v)));
    expect(get(outputs, 'block2_conv1').data).toEqual(get(outputs, 'block2_conv1_preact').data.map((v) => Math.max(0, v)));
  });

  it('holds no OrtValue between runs over 30 batches of mixed sizes, and reports the weight bytes', async () => {
    const extractor = await create({ runBatch: 2 });
    let values = 0;
    extractor.registerForwardHook('block1_pool', (o) => void (values += o.data.length));
    extractor.registerForwardHook('block2_conv2', (o) => void (values += o.data.length));
    await extractor.run({ data: testImages(1, SIZE), batchSize: 1 });
    // Blocks 1-2: (1792 + 36928 + 73856 + 147584) float32 weights, no live tensor.
    expect(extractor.memory()).toEqual({ numTensors: 0, numBytes: 4 * 260_160 });
    let images = 1;
    for (let i = 0; i < 30; i++) {
      const batchSize = (i % 5) + 1;
      await extractor.run({ data: testImages(batchSize, SIZE, i), batchSize });
      images += batchSize;
      expect(extractor.memory()).toEqual({ numTensors: 0, numBytes: 4 * 260_160 });
    }
    expect(values).toBe(images * (64 * 16 * 16 + 128 * 16 * 16));
  });

  it('runs a batch in slices of runBatch with the same results as one call', async () => {
    const whole = await create();
    const sliced = await create({ runBatch: 2 });
    const a = collect(whole, ['block1_conv2', 'block2_pool']);
    const b = collect(sliced, ['block1_conv2', 'block2_pool']);
    const input = { data: testImages(5, SIZE, 4), batchSize: 5 };
    await whole.run(input);
    await sliced.run(input);
    for (const spec of ['block1_conv2', 'block2_pool']) {
      expect(get(b, spec).shape).toEqual(get(a, spec).shape);
      expect(relativeError(get(b, spec).data, get(a, spec).data)).toBeLessThan(1e-6);
    }
    // The last sample of the last slice is where it belongs.
    const perSample = 128 * 8 * 8;
    expect(relativeError(get(b, 'block2_pool').data.subarray(4 * perSample), get(a, 'block2_pool').data.subarray(4 * perSample))).toBeLessThan(1e-6);
  });

  it('builds only up to the deepest hooked layer, and rebuilds when the hooks need another depth', async () => {
    const built: string[] = [];
    const extractor = await create({ log: (msg, fields) => void (msg === 'built VGG16' && built.push((fields as { model: string }).model)) });
    const input = { data: testImages(1, SIZE), batchSize: 1 };
    const deep = extractor.registerForwardHook('block3_pool', () => undefined);
    expect(extractor.describeModel()).toBeUndefined();
    await extractor.warmup();
    const model = extractor.describeModel();
    expect(model?.name).toBe('vgg16_to_block3_pool');
    expect(model?.layers.at(-1)).toBe('block3_pool');
    expect(model?.weights.map((w) => w.name)).not.toContain('block4_conv1/kernel');
    expect(model?.weights[0]).toEqual({ name: 'block1_conv1/kernel', shape: [64, 3, 3, 3] });
    // ONNX Runtime runs every node of its graph, so a shallower hook set gets its own, shorter graph.
    deep.remove();
    const pool = extractor.registerForwardHook('block1_pool', () => undefined);
    await extractor.run(input);
    expect(extractor.describeModel()?.name).toBe('vgg16_to_block1_pool');
    // Same depth, one more output: rebuilt once with both; dropping it again reuses that graph.
    const conv = extractor.registerForwardHook('block1_conv1_preact', () => undefined);
    await extractor.run(input);
    conv.remove();
    await extractor.run(input);
    pool.remove();
    expect(built).toEqual(['vgg16_to_block3_pool', 'vgg16_to_block1_pool', 'vgg16_to_block1_pool']);
  });

  it('gives the same outputs for given weights as for the seeded weights they equal', async () => {
    const seed = 9;
    const weights: WeightsMap = new Map();
    for (const s of VGG16_WEIGHTS.filter((w) => /^block1_/.test(w.layer))) weights.set(s.name, { shape: [...s.shape], data: randomWeight(seed, s) });
    const given = await create({ weights, weightsDescription: 'test weights' });
    const random = await create({ seed });
    expect(given.weightsDescription).toBe('test weights');
    const a = collect(given, ['block1_pool']);
    const b = collect(random, ['block1_pool']);
    const input = { data: testImages(2, SIZE, 8), batchSize: 2 };
    await given.run(input);
    await random.run(input);
    expect(get(a, 'block1_pool').data).toEqual(get(b, 'block1_pool').data);
    const err = (() => {
      try {
        given.registerForwardHook('block2_conv1', () => undefined);
      } catch (e) {
        return e as LayertapError;
      }
      throw new Error('expected a refusal');
    })();
    expect(err.code).toBe(ErrorCode.InvalidWeights);
  });

  it('lets a run in progress finish when disposed, and refuses use afterwards', async () => {
    const extractor = await create();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let entered!: () => void;
    const inHook = new Promise<void>((resolve) => (entered = resolve));
    extractor.registerForwardHook('block1_conv1', () => {
      entered();
      return gate;
    });
    const running = extractor.run({ data: testImages(1, SIZE), batchSize: 1 });
    await inHook;
    extractor.dispose();
    release();
    await expect(running).resolves.toMatchObject({ layers: ['block1_conv1'] });
    expect(extractor.describeModel()).toBeUndefined();
    expect((await rejection(extractor.run({ data: testImages(1, SIZE), batchSize: 1 }))).code).toBe(ErrorCode.InferenceFailed);
  });

  it('refuses bad threads and runBatch values', async () => {
    expect((await rejection(create({ threads: 0 }))).message).toContain('threads must be a positive integer, got 0');
    expect((await rejection(create({ runBatch: 1.5 }))).code).toBe(ErrorCode.InvalidRequest);
  });
});
