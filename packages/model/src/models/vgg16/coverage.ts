// Which layers a set of weights can compute, and refusing requests it cannot serve with a message that says
// what the file is (notop, truncated) rather than only which tensor is missing.
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { VGG16_LAYERS, layerInfo } from './layers';
import { weightProblem, type WeightSpec, type WeightShapes } from '../../weight-specs';
import { VGG16_WEIGHTS, requiredWeights } from './weight-specs';

const HEAD_LAYERS = new Set(['fc1', 'fc2', 'predictions']);
/** Problems spelled out in one message; a truncated file would otherwise list every later tensor. */
const MAX_LISTED = 6;

export interface WeightsCoverage {
  /** Canonical name of the deepest layer the weights can compute, or undefined when not even the first. */
  deepest?: string;
  /** Whether fc1, fc2 and predictions are all there (false for a `notop` file). */
  classifierHead: boolean;
  /** Every spec that can be computed, compactly: `block1_conv1_preact .. block5_pool (features.0-30, avgpool)`. */
  summary: string;
}

/** The first tensor, in forward order, that is missing or misshapen (everything after it is unusable). */
function firstProblem(weights: WeightShapes): WeightSpec | undefined {
  return VGG16_WEIGHTS.find((spec) => weightProblem(weights, spec) !== undefined);
}

/** How far along VGG16 `weights` reach. */
export function weightsCoverage(weights: WeightShapes): WeightsCoverage {
  const broken = firstProblem(weights);
  const servable = VGG16_LAYERS.filter((layer) => broken === undefined || layer.order < broken.order);
  const deepest = servable.at(-1);
  const classifierHead = VGG16_WEIGHTS.filter((spec) => HEAD_LAYERS.has(spec.layer)).every((spec) => !weightProblem(weights, spec));
  if (!deepest) return { classifierHead, summary: 'no layer (block1_conv1 is missing or misshapen)' };
  const torchvision = compactTorchvision(servable.flatMap((layer) => layer.torchvision));
  return {
    deepest: deepest.name,
    classifierHead,
    summary: `${servable[0]?.name} .. ${deepest.name}${torchvision ? ` (${torchvision})` : ''}`,
  };
}

function compactTorchvision(specs: string[]): string {
  const groups = new Map<string, number[]>();
  for (const spec of specs) {
    const [prefix = spec, index] = spec.split('.');
    const list = groups.get(prefix) ?? [];
    if (index !== undefined) list.push(Number(index));
    groups.set(prefix, list);
  }
  return [...groups]
    .map(([prefix, list]) => (list.length === 0 ? prefix : list.length === 1 ? `${prefix}.${list[0]}` : `${prefix}.${Math.min(...list)}-${Math.max(...list)}`))
    .join(', ');
}

/**
 * Refuses (`InvalidWeights`) a request for `layers` that `weights` cannot serve. Every message names the
 * tensor and, for a wrong shape, both shapes; `origin` adds how a tensor was stored in the file (a torchvision
 * key and shape) to the message.
 */
export function checkWeightsServe(
  weights: WeightShapes,
  layers: readonly string[],
  source: string,
  origin: (tensor: string) => string | undefined = () => undefined,
): void {
  const specs = requiredWeights(layers);
  const problems = specs
    .map((spec) => {
      const problem = weightProblem(weights, spec);
      if (!problem) return undefined;
      const stored = weights.has(spec.name) ? origin(spec.name) : undefined;
      return stored ? `${problem} (stored as ${stored})` : problem;
    })
    .filter((p): p is string => p !== undefined);
  if (problems.length === 0) return;

  const coverage = weightsCoverage(weights);
  const hasNoHead = VGG16_WEIGHTS.filter((spec) => HEAD_LAYERS.has(spec.layer)).every((spec) => !weights.has(spec.name));
  const needHead = layers.filter((spec) => layerInfo(spec).order >= layerInfo('fc1_preact').order);
  // Every convolution there and not one head tensor: a notop file, asked for the head.
  if (hasNoHead && coverage.deepest === 'flatten' && needHead.length > 0) {
    throw new ValidationError(
      ErrorCode.InvalidWeights,
      `${source} has no classifier head (a "notop" file: convolutional layers only), so it cannot compute ` +
        `${needHead.join(', ')}. It serves ${coverage.summary}. Use the full weights (--weights keras-imagenet or torchvision-imagenet) ` +
        'for fc1, fc2 and predictions.',
    );
  }
  const reach = coverage.deepest ? `it serves ${coverage.summary}` : 'it serves no layer';
  const listed = problems.length > MAX_LISTED ? [...problems.slice(0, MAX_LISTED), `and ${problems.length - MAX_LISTED} more`] : problems;
  throw new ValidationError(
    ErrorCode.InvalidWeights,
    `invalid VGG16 weights in ${source} for ${layers.join(', ')} (${reach}): ${listed.join('; ')}`,
  );
}

/** Refuses tensors that are present but misshapen (what any use of them would trip over). */
export function checkPresentShapes(weights: WeightShapes, source: string, origin: (tensor: string) => string | undefined = () => undefined): void {
  const problems = VGG16_WEIGHTS.filter((spec) => weights.has(spec.name))
    .map((spec) => {
      const problem = weightProblem(weights, spec);
      const stored = origin(spec.name);
      return problem && stored ? `${problem} (stored as ${stored})` : problem;
    })
    .filter((p): p is string => p !== undefined);
  if (problems.length > 0) throw new ValidationError(ErrorCode.InvalidWeights, `invalid VGG16 weights in ${source}: ${problems.join('; ')}`);
}
