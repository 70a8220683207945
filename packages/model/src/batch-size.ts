import { VGG16_LAYERS, deepestLayer, layerInfo, layerOutputShape } from './layers';

/** Largest batch `autoBatchSize` picks, whatever the budget: beyond it throughput no longer grows. */
export const MAX_AUTO_BATCH = 256;

function elements(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Bytes one sample needs while a batch runs, for the hooked `layers` at `imageSize`: the input, the two
 * largest activations alive at once on the way to the deepest layer (an op's input and output), and each
 * hooked output three times (the engine's result, the host copy handed to the worker, the encoded file).
 * A deliberately generous float32 estimate: the engines free intermediates, the worker must not run out.
 */
export function sampleMemoryBytes(layers: readonly string[], imageSize: number): number {
  const deepest = layerInfo(deepestLayer(layers)).order;
  const path = VGG16_LAYERS.filter((layer) => layer.order <= deepest).map((layer) => elements(layerOutputShape(layer.name, imageSize)));
  const [first = 0, second = 0] = [...path].sort((a, b) => b - a);
  const hooked = layers.reduce((sum, spec) => sum + elements(layerOutputShape(layerInfo(spec).name, imageSize)), 0);
  return 4 * (imageSize * imageSize * 3 + first + second + 3 * hooked);
}

/**
 * `--batch-size auto`: the largest batch whose activations fit `budgetBytes` (weights excluded: they are
 * paid once per process), between 1 and `MAX_AUTO_BATCH`.
 */
export function autoBatchSize(layers: readonly string[], imageSize: number, budgetBytes: number): number {
  const fits = Math.floor(budgetBytes / sampleMemoryBytes(layers, imageSize));
  return Math.max(1, Math.min(MAX_AUTO_BATCH, fits));
}
