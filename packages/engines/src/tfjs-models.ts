// The TF.js builders, by model name. The descriptors in @layertap/model carry no TF.js (the CLI and the
// dashboard load them); a model without a builder says why in its descriptor's `engines.tfjs`.
import type * as tfl from '@tensorflow/tfjs-layers';
import { ErrorCode, ValidationError, type ModelName } from '@layertap/contracts';
import type { ModelBuildOptions, ModelDescriptor } from '@layertap/model';
import { buildVgg16 } from './models/vgg16/tfjs-model';

const TFJS_BUILDERS: Partial<Record<ModelName, (options: ModelBuildOptions) => tfl.LayersModel>> = { vgg16: buildVgg16 };

/** The TF.js model up to the deepest output; throws (`invalid_request`) where `engines.tfjs` says why not. */
export function buildTfjsModel(model: ModelDescriptor, options: ModelBuildOptions): tfl.LayersModel {
  const build = model.engines.tfjs === true ? TFJS_BUILDERS[model.name] : undefined;
  if (!build) {
    const reason = model.engines.tfjs === true ? `layertap has no TF.js build of ${model.title}` : model.engines.tfjs;
    throw new ValidationError(ErrorCode.InvalidRequest, reason);
  }
  return build(options);
}
