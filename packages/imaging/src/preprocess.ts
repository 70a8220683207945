import { Preprocess, type Normalization } from '@layertap/contracts';
import { decodeImage, type DecodeOptions, type ImageSourceInfo } from './decode';
import {
  centerCropBox,
  DEFAULT_IMAGE_SIZE,
  normalizeCaffe,
  normalizeTorchvision,
  normalizeWithStats,
  resizeTarget,
  torchvisionResizeSize,
  type RgbImage,
} from './preprocessing';
import { resizeBilinear } from './resize-bilinear';

export interface PixelPreprocessOptions {
  /** Which model input space to produce (see `PREPROCESSING`). */
  mode: Preprocess;
  /** Side of the square model input. Default 224. */
  imageSize?: number;
}

export interface PreprocessOptions extends PixelPreprocessOptions {
  /** Decompression-bomb limit in pixels (width x height). Default 100 megapixels. */
  maxPixels?: number;
  /** EXIF orientation: `ignore` (default, as torchvision's loader) or `apply`. */
  exifOrientation?: DecodeOptions['exifOrientation'];
}

export interface PreprocessedPixels {
  /** `height * width * 3` floats, HWC, in the model's input space (RGB for torchvision, BGR for caffe). */
  data: Float32Array;
  width: number;
  height: number;
}

export interface PreprocessedImage extends PreprocessedPixels {
  source: ImageSourceInfo;
}

/**
 * Decodes image bytes and turns them into a model input: `imageSize` x `imageSize` x 3 floats (HWC). Throws
 * `SampleError` (`EmptyFile`, `DecodeFailed`, `PixelLimit`) for images that cannot be used.
 */
export async function preprocessImage(bytes: Uint8Array, options: PreprocessOptions): Promise<PreprocessedImage> {
  const pixelOptions = checkedOptions(options);
  const decoded = await decodeImage(bytes, {
    ...(options.maxPixels === undefined ? {} : { maxPixels: options.maxPixels }),
    ...(options.exifOrientation === undefined ? {} : { exifOrientation: options.exifOrientation }),
  });
  return { ...preprocessPixels(decoded.rgb, pixelOptions), source: decoded.source };
}

/**
 * The synchronous part of `preprocessImage`, on decoded 8-bit RGB pixels: `fitPixels` then `normalizePixels`.
 * - torchvision: shorter side to round(imageSize * 256 / 224), center crop, scale to [0, 1], normalise.
 * - torchvision-v2: the same with round(imageSize * 232 / 224).
 * - caffe: resize to imageSize x imageSize, RGB -> BGR, subtract the BGR mean.
 */
export function preprocessPixels(rgb: RgbImage, options: PixelPreprocessOptions): PreprocessedPixels {
  const { mode, imageSize } = checkedOptions(options);
  return { data: normalizePixels(fitPixels(rgb, { mode, imageSize }), mode), width: imageSize, height: imageSize };
}

/**
 * The geometric part of preprocessing, still 8-bit RGB (HWC, `imageSize` x `imageSize` x 3 bytes), exactly as
 * Pillow leaves it before torchvision's `ToTensor` or Keras' `preprocess_input`: torchvision resizes the shorter
 * side and center-crops; caffe resizes to the square. A quarter of the float32 input's size: what travels to
 * the inference process.
 */
export function fitPixels(rgb: RgbImage, options: PixelPreprocessOptions): Uint8Array {
  const { mode, imageSize } = checkedOptions(options);
  if (mode === 'torchvision' || mode === 'torchvision-v2') {
    const target = resizeTarget(rgb.width, rgb.height, torchvisionResizeSize(imageSize, mode === 'torchvision' ? 256 : 232));
    const box = centerCropBox(target.width, target.height, imageSize);
    return resizeBilinear(rgb, target.width, target.height, box).data;
  }
  return resizeBilinear(rgb, imageSize, imageSize).data;
}

/** The arithmetic part: 8-bit RGB (HWC) into the model's input space (`normalizeTorchvision` or `normalizeCaffe`). */
export function normalizePixels(rgb: Uint8Array, mode: Preprocess, out?: Float32Array, normalize?: Normalization): Float32Array {
  if (normalize) {
    if (mode === 'caffe') throw new RangeError('a mean and std of the caller\'s apply to the torchvision modes, not caffe');
    return normalizeWithStats(rgb, normalize, out);
  }
  return mode === 'caffe' ? normalizeCaffe(rgb, out) : normalizeTorchvision(rgb, out);
}

function checkedOptions(options: PixelPreprocessOptions): Required<PixelPreprocessOptions> {
  const imageSize = options.imageSize ?? DEFAULT_IMAGE_SIZE;
  if (!Number.isInteger(imageSize) || imageSize < 1 || imageSize > 8192) {
    throw new RangeError(`imageSize must be an integer from 1 to 8192, got ${imageSize}`);
  }
  if (!Preprocess.options.includes(options.mode)) {
    throw new RangeError(`unknown preprocessing mode '${String(options.mode)}' (expected ${Preprocess.options.join(', ')})`);
  }
  return { mode: options.mode, imageSize };
}
