import { ErrorCode, SampleError, type ExifOrientation } from '@layertap/contracts';
import sharp from 'sharp';
import { readImageHeader, type ImageHeader } from './image-header';
import type { RgbImage } from './preprocessing';
import { appliesOrientation, decodeCmykAsPillow, isCmyk } from './pillow-convert';

/** Default decompression-bomb limit: 100 megapixels (about 300 MB of decoded RGB). */
export const DEFAULT_MAX_PIXELS = 100_000_000;

/**
 * Raster formats accepted as input. Others that sharp could open (SVG, PDF, libvips' own format, FITS, ...) are
 * refused: Pillow, and so torchvision and Keras, cannot read them, and rasterising untrusted vector files is
 * attack surface an activation pipeline does not need.
 */
export const DECODABLE_FORMATS: readonly string[] = ['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif', 'jp2', 'jxl', 'ppm'];

export interface DecodeOptions {
  /**
   * Refuse images with more pixels than this (width x height, read from the header before any pixel is
   * decoded) with `PixelLimit`. Default {@link DEFAULT_MAX_PIXELS}.
   */
  maxPixels?: number;
  /** `ignore` (default, as torchvision's loader) or `apply` the EXIF orientation: see pillow-convert.ts. */
  exifOrientation?: ExifOrientation;
}

/** What the file was, before conversion to 8-bit RGB: its header, with the size as decoded. */
export interface ImageSourceInfo extends Omit<ImageHeader, 'width' | 'height'> {
  /** Width as decoded, EXIF orientation applied or not (what the model sees, before resizing). */
  width: number;
  /** Height as decoded. */
  height: number;
}

export interface DecodedImage {
  rgb: RgbImage;
  source: ImageSourceInfo;
}

/**
 * Decodes image bytes to 8-bit sRGB pixels the way Pillow's `Image.open(f).convert('RGB')` does: alpha dropped
 * (not blended), grey replicated, palettes expanded, 16-bit reduced to 8, embedded ICC profiles ignored, CMYK
 * converted with Pillow's formula; the first frame of animations; EXIF orientation ignored unless asked for
 * (pillow-convert.ts says where and why 16-bit greyscale differs). Failures are `SampleError`s:
 * `EmptyFile`, `PixelLimit` (checked on the header, so a decompression bomb is never allocated), or
 * `DecodeFailed` (not an image, an unsupported format, truncated or corrupt data).
 */
export async function decodeImage(bytes: Uint8Array, options: DecodeOptions = {}): Promise<DecodedImage> {
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!Number.isInteger(maxPixels) || maxPixels < 1) {
    throw new RangeError(`maxPixels must be a positive integer, got ${maxPixels}`);
  }
  if (bytes.length === 0) throw new SampleError(ErrorCode.EmptyFile, 'image is empty (0 bytes)');

  const header = await imageHeader(bytes);
  if (!DECODABLE_FORMATS.includes(header.format)) {
    throw new SampleError(ErrorCode.DecodeFailed, `unsupported image format '${header.format}'`);
  }
  if (header.width * header.height > maxPixels) {
    throw new SampleError(
      ErrorCode.PixelLimit,
      `image is ${header.width}x${header.height} (${megapixels(header.width * header.height)}), ` +
        `more than the limit of ${megapixels(maxPixels)}`,
    );
  }

  const image = sharp(bytes, {
    // 'warning' (sharp's default, the strictest) makes truncated and corrupt JPEGs fail, as they do in Pillow,
    // instead of returning a half-grey image; 'truncated' and 'error' let corrupt entropy data through.
    failOn: 'warning',
    // Checked above already; kept as the decoder's own guard.
    limitInputPixels: maxPixels,
    // Pillow does no colour management: keep the stored values (CMYK still goes through an ICC transform).
    ignoreIcc: true,
    autoOrient: appliesOrientation(options.exifOrientation),
    pages: 1,
    page: 0,
  });

  let decoded: { data: Buffer; info: sharp.OutputInfo };
  try {
    // Without a resize in the same pipeline sharp never premultiplies, so removeAlpha keeps the stored RGB of
    // transparent pixels, as convert('RGB') does.
    decoded = isCmyk(header) ? await decodeCmykAsPillow(image) : await image.toColourspace('srgb').removeAlpha().raw().toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw decodeError(err);
  }
  const { data, info } = decoded;
  if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
    throw new SampleError(
      ErrorCode.DecodeFailed,
      `decoder returned ${info.channels} channels of ${data.length} bytes for ${info.width}x${info.height}`,
    );
  }

  const source: ImageSourceInfo = { ...header, width: info.width, height: info.height };
  return { rgb: { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height }, source };
}

/**
 * The header, read in JavaScript for ordinary JPEGs and PNGs (image-header.ts), so that libvips passes over the
 * image once, to decode it; other files go through sharp's metadata (header only: no pixel is decoded, so the
 * size check runs before anything big is allocated).
 */
async function imageHeader(bytes: Uint8Array): Promise<ImageHeader> {
  const header = readImageHeader(bytes);
  if (header) return header;
  let metadata: sharp.Metadata;
  try {
    metadata = await sharp(bytes, { limitInputPixels: false, pages: 1 }).metadata();
  } catch (err) {
    throw decodeError(err);
  }
  const read: ImageHeader = { format: metadata.format, width: metadata.width, height: metadata.pageHeight ?? metadata.height, channels: metadata.channels, space: metadata.space };
  if (metadata.orientation !== undefined) read.orientation = metadata.orientation;
  return read;
}

function megapixels(pixels: number): string {
  return `${(pixels / 1e6).toFixed(1)} megapixels`;
}

/** Maps a sharp failure to a per-sample error; sharp's own message (one line) says what was wrong. */
function decodeError(err: unknown): SampleError {
  const message = (err instanceof Error ? err.message : String(err)).split('\n')[0]?.trim() ?? '';
  if (/exceeds pixel limit/i.test(message)) {
    return new SampleError(ErrorCode.PixelLimit, `image has too many pixels: ${message}`, { cause: err });
  }
  if (/buffer is empty/i.test(message)) {
    return new SampleError(ErrorCode.EmptyFile, 'image is empty (0 bytes)', { cause: err });
  }
  return new SampleError(ErrorCode.DecodeFailed, `cannot decode image: ${message}`, { cause: err });
}
