// Which preprocessing a set of weights was trained with, told from what the file is (its content, not its
// name), and what to do when a request asks for another. Pure functions: the CLI decides with them at submit.
import { Preprocess } from '@layertap/contracts';

/** What `loadWeights` found (format, how tensors are named, provenance), or seeded random weights. */
export type WeightsKind = 'random' | { format: string; naming: 'keras' | 'torchvision'; metadata: Readonly<Record<string, string>> };

export interface PreprocessChoice {
  mode: Preprocess;
  /** Why, in one sentence (recorded in dataset.json). */
  reason: string;
  /** Set when `--preprocess` contradicts the weights: one line for the terminal. */
  warning?: string;
}

/** The mode a `layertap weights convert` output recorded (`preprocess` in safetensors/HDF5 metadata, or
 * inside the TF.js `layertap` provenance object). */
export function recordedPreprocess(metadata: Readonly<Record<string, string>>): Preprocess | undefined {
  const direct = Preprocess.safeParse(metadata.preprocess);
  if (direct.success) return direct.data;
  if (metadata.layertap) {
    try {
      const nested = Preprocess.safeParse((JSON.parse(metadata.layertap) as Record<string, unknown>).preprocess);
      if (nested.success) return nested.data;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** The preprocessing `weights` were trained with, and why layertap thinks so. */
export function trainedPreprocess(weights: WeightsKind): PreprocessChoice {
  if (weights === 'random') return { mode: 'torchvision', reason: 'random weights have no training to follow: torchvision, the default' };
  const recorded = recordedPreprocess(weights.metadata);
  if (recorded) {
    return { mode: recorded, reason: `the file records preprocess=${recorded} (written by layertap weights convert from weights trained that way)` };
  }
  if (weights.naming === 'torchvision') {
    return {
      mode: 'torchvision',
      reason: `torchvision state_dict keys (features.0.weight, ...) in a ${weights.format} file: a torchvision training, which normalises RGB with ImageNet's mean and std`,
    };
  }
  return {
    mode: 'caffe',
    reason: `Keras weights (${weights.format}, block1_conv1/kernel, ...): keras-applications' VGG16 is the original Caffe training, BGR with the mean subtracted`,
  };
}

/**
 * The mode a submission runs with: `requested` when given (with a warning when it contradicts trained
 * weights), else the one the weights were trained with.
 */
export function choosePreprocess(weights: WeightsKind, requested?: Preprocess): PreprocessChoice {
  const trained = trainedPreprocess(weights);
  if (requested === undefined) return trained;
  // torchvision's V1 and V2 evaluations normalise alike and differ in the resize, which a file cannot tell.
  const torchvisionFamily = (mode: Preprocess) => mode === 'torchvision' || mode === 'torchvision-v2';
  if (weights === 'random' || requested === trained.mode || (torchvisionFamily(requested) && torchvisionFamily(trained.mode))) {
    return { mode: requested, reason: `--preprocess ${requested} given${weights === 'random' ? '' : `, as the weights expect (${trained.reason})`}` };
  }
  return {
    mode: requested,
    reason: `--preprocess ${requested} given, although the weights expect ${trained.mode} (${trained.reason})`,
    warning: `--preprocess ${requested} contradicts the weights, which were trained with ${trained.mode} preprocessing (${trained.reason}); running with ${requested} as asked`,
  };
}
