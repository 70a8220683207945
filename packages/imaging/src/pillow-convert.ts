import type { ExifOrientation } from '@layertap/contracts';
import type sharp from 'sharp';

/**
 * Decoding semantics that follow Pillow's `Image.open(f).convert('RGB')` (torchvision's default loader) where
 * sharp's own defaults differ. decode.ts calls these hooks; the maths lives here so that it can be tested on
 * its own against references made by Pillow (`__fixtures__/make-pillow-refs.py`).
 *
 * - EXIF orientation: Pillow's `Image.open` does not apply it, so `ignore` is the default.
 * - CMYK and YCCK JPEGs: libjpeg turns YCCK into CMYK for both; Pillow then converts CMYK to RGB with a naive
 *   formula, no colour management. sharp would go through an ICC transform (0.24-0.30 relative difference),
 *   so the raw CMYK is read and converted here with Pillow's formula.
 * - 16-bit: Pillow reads 16-bit RGB(A) and grey + alpha PNGs as their high bytes, as sharp does. A 16-bit
 *   greyscale PNG is Pillow's mode `I`, which `convert('RGB')` clips at 255 (nearly every pixel white); we
 *   keep the high byte (`v >> 8`) instead, the image as it looks: the one documented difference.
 */

/** Whether sharp should turn the image upright (`autoOrient`). The default is torchvision's: `ignore`. */
export function appliesOrientation(mode: ExifOrientation | undefined): boolean {
  return mode === 'apply';
}

/** Whether an image's pixels are CMYK as stored (CMYK and YCCK JPEGs, CMYK TIFFs). */
export function isCmyk(metadata: { space: string }): boolean {
  return metadata.space === 'cmyk';
}

/**
 * Pillow's `cmyk2rgb` (libImaging/Convert.c): with nk = 255 - K, each of R, G, B is nk - C*nk/255, the
 * product rounded as Pillow's MULDIV255 does. `cmyk` is 4 bytes per pixel, 0 = no ink.
 */
export function cmykToRgb(cmyk: Uint8Array): Uint8Array {
  const pixels = cmyk.length >> 2;
  const rgb = new Uint8Array(pixels * 3);
  for (let i = 0, o = 0, p = 0; p < pixels; p++, i += 4, o += 3) {
    const nk = 255 - (cmyk[i + 3] as number);
    for (let c = 0; c < 3; c++) {
      const t = (cmyk[i + c] as number) * nk + 128;
      rgb[o + c] = nk - (((t >> 8) + t) >> 8);
    }
  }
  return rgb;
}

/**
 * Decodes a CMYK image to RGB as Pillow does: the raw ink values (no ICC transform, Adobe inversion handled
 * by the decoder) through `cmykToRgb`. `image` is the sharp pipeline decode.ts set up (orientation, pages).
 */
export async function decodeCmykAsPillow(image: sharp.Sharp): Promise<{ data: Buffer; info: sharp.OutputInfo }> {
  const { data, info } = await image.pipelineColourspace('cmyk').toColourspace('cmyk').raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 4) return { data, info };
  const rgb = cmykToRgb(data);
  return { data: Buffer.from(rgb.buffer, rgb.byteOffset, rgb.length), info: { ...info, channels: 3, size: rgb.length } };
}
