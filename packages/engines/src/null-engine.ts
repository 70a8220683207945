// The null engine: zeros of the right shapes, at once. It measures everything around the model (fetch,
// decode, preprocessing, transfer, encoding, writing): what bounds a worker whose GPU engine is fast.
import { getModel, type ModelDescriptor } from '@layertap/model';
import type { EngineOutput, EngineRun, InferenceEngine, MemoryInfo, ModelDescription } from './engine';

export class NullEngine implements InferenceEngine {
  readonly engine = 'null';
  readonly backend = 'cpu';
  private layers: string[] = [];

  constructor(
    private readonly imageSize: number,
    readonly reason = 'requested: returns zeros of the right shapes, computes nothing',
    private readonly model: ModelDescriptor = getModel(),
  ) {}

  prepare(layers: readonly string[]): Promise<void> {
    this.layers = [...layers];
    return Promise.resolve();
  }

  run(layers: readonly string[], _data: Float32Array, batchSize: number): Promise<EngineRun> {
    this.layers = [...layers];
    const outputs = layers.map((layer): EngineOutput => {
      const shape = [batchSize, ...this.model.outputShape(layer, this.imageSize)];
      return { data: new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, layout: 'nchw' };
    });
    return Promise.resolve({ outputs, inferenceMs: 0, readbackMs: 0 });
  }

  memory(): MemoryInfo {
    return { numTensors: 0, numBytes: 0 };
  }

  describeModel(): ModelDescription | undefined {
    return this.layers.length ? { name: 'null', layers: this.layers, weights: [] } : undefined;
  }

  dispose(): void {
    this.layers = [];
  }
}
