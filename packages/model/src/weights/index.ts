export { loadWeights } from './load-weights';
export type { LoadWeightsOptions, LoadedWeights, WeightsFormat, WeightsNaming } from './load-weights';
export { convertWeights } from './convert-weights';
export type { ConvertWeightsOptions, ConvertedWeights } from './convert-weights';
export {
  fetchPublishedWeights,
  isPublishedWeightsName,
  PUBLISHED_WEIGHTS,
  PUBLISHED_WEIGHTS_BASE_URL,
} from './fetch-published';
export type { FetchPublishedWeightsOptions, FetchedWeights, PublishedWeightsName } from './fetch-published';
export { weightsCoverage, checkWeightsServe } from './coverage';
export type { WeightsCoverage } from './coverage';
export { WeightsCache, displayUri, isRemoteUri } from './weights-cache';
export type { FetchBytes } from './weights-cache';
export { defaultWeightsCacheDir } from './weights-env';
export { torchConvToTf, tfConvToTorch, torchDenseToTf, tfDenseToTorch } from './layout';
export { torchvisionWeightKey, torchvisionKeyOf } from './tensor-names';
