export { ImageFetcher, createTrustedFetcher, uriScheme, DEFAULT_MAX_BYTES, DEFAULT_FETCH_TIMEOUT_MS, DEFAULT_MAX_REDIRECTS } from './image-fetcher';
export type { ImageFetcherOptions } from './image-fetcher';
export type { RangeBytes } from './http-source';
export { classifyAddress, classifyIp, isBlockedAddress, parseAddress } from './address-classifier';
export type { AddressClass, IpAddress } from './address-classifier';
export { ALLOW_ENTRY_FORMS, AllowList, AllowListError, parseAllowEntry } from './allow-list';
export type { AllowEntry } from './allow-list';
export { HostPolicy } from './host-policy';
export type { HostPolicyOptions } from './host-policy';
export { redactUri } from '@layertap/contracts';
export { parseS3Uri } from './s3-source';
export { decodeImage, DECODABLE_FORMATS, DEFAULT_MAX_PIXELS } from './decode';
export type { DecodeOptions, DecodedImage, ImageSourceInfo } from './decode';
export { fitPixels, normalizePixels, preprocessImage, preprocessPixels } from './preprocess';
export type { PixelPreprocessOptions, PreprocessOptions, PreprocessedImage, PreprocessedPixels } from './preprocess';
export {
  PREPROCESSING,
  DEFAULT_IMAGE_SIZE,
  centerCropBox,
  normalizeCaffe,
  normalizeTorchvision,
  normalizeWithStats,
  resizeTarget,
  roundHalfEven,
  torchvisionResizeSize,
} from './preprocessing';
export type { Box, RgbImage } from './preprocessing';
export { resizeBilinear, bilinearCoefficients } from './resize-bilinear';
export {
  renderMontage,
  barStrip,
  channelMeans,
  channelToGrey,
  featureDims,
  gridShape,
  mostActiveChannels,
  DEFAULT_MONTAGE_CHANNELS,
  DEFAULT_MONTAGE_TILE,
} from './montage';
export type { MontageActivation, MontageOptions, MontageView } from './montage';
