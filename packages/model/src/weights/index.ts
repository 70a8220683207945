export { loadWeights } from './load-weights';
export type { LoadWeightsOptions, LoadedWeights, WeightsFormat, WeightsNaming } from './load-weights';
export { convertWeights } from './convert-weights';
export type { ConvertWeightsOptions, ConvertedWeights, WritableWeightsFormat } from './convert-weights';
export { cachedPublishedWeights, fetchPublishedWeights } from './fetch-published';
export type { FetchPublishedWeightsOptions, FetchedWeights, PublishedFetchOptions } from './fetch-published';
export {
  PUBLISHED_WEIGHTS,
  PUBLISHED_WEIGHTS_ALIASES,
  PUBLISHED_WEIGHTS_NAMES,
  describeChecksum,
  isPublishedWeightsName,
  publishedUrl,
  publishedWeightsName,
} from './published-weights';
export type { PublishedWeights, PublishedWeightsName, WeightsChecksum } from './published-weights';
export { DEFAULT_WEIGHTS, RANDOM_WEIGHTS, parseWeightsRequest, resolveWeightsRequest } from './resolve-weights';
export type { ResolveWeightsOptions, ResolvedWeights, WeightsRequest } from './resolve-weights';
export { choosePreprocess, trainedPreprocess } from './preprocess-for-weights';
export type { PreprocessChoice, WeightsKind } from './preprocess-for-weights';
export { weightsCoverage, checkWeightsServe } from '../models/vgg16/coverage';
export type { WeightsCoverage } from '../models/vgg16/coverage';
export { WeightsCache, displayUri, isRemoteUri } from './weights-cache';
export type { FetchBytes } from './weights-cache';
export { defaultWeightsCacheDir, publishedWeightsSource } from './weights-env';
export type { PublishedWeightsSource } from './weights-env';
export { torchConvToTf, tfConvToTorch, torchDenseToTf, tfDenseToTorch } from './layout';
export { torchvisionWeightKey, torchvisionKeyOf } from '../models/vgg16/tensor-names';
export { checkWeightsHeader } from './check-weights-header';
export type { CheckWeightsHeaderOptions, WeightsHeader } from './check-weights-header';
export type { FetchRange, RemoteAccessStats } from './random-access';
