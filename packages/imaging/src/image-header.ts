/**
 * What decode.ts needs from an image before decoding it (size for the pixel limit, channels, colour space,
 * EXIF orientation), read from the bytes of a JPEG or PNG in plain JavaScript. sharp's `metadata()` would be a
 * second libvips pass over every image; this reads a few hundred bytes. It answers only when the file is
 * unremarkable, with the values sharp's metadata would give; anything odd (other formats, truncated headers,
 * 12-bit JPEGs, unusual component counts, EXIF it cannot read, PNGs with eXIf or animation chunks) returns
 * `undefined` and the caller asks sharp.
 */
export interface ImageHeader {
  /** sharp's format name: jpeg, png (from here), webp, gif, tiff, heif, ... (from sharp's metadata). */
  format: string;
  /** Width as stored. */
  width: number;
  /** Height as stored (of the first page). */
  height: number;
  /** Channels as stored (1 grey, 2 grey + alpha, 3 RGB, 4 RGBA or CMYK). */
  channels: number;
  /** sharp's colour space name as stored: srgb, b-w, cmyk, rgb16, grey16, ... */
  space: string;
  /** EXIF orientation (1-8) when the file has one. */
  orientation?: number;
}

/** The header of a baseline/progressive JPEG or a PNG, or `undefined` when sharp should be asked. */
export function readImageHeader(bytes: Uint8Array): ImageHeader | undefined {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return readJpegHeader(bytes);
  if (startsWith(bytes, PNG_SIGNATURE)) return readPngHeader(bytes);
  return undefined;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function startsWith(bytes: Uint8Array, prefix: readonly number[], at = 0): boolean {
  if (bytes.length < at + prefix.length) return false;
  return prefix.every((b, i) => bytes[at + i] === b);
}

function u16be(b: Uint8Array, at: number): number {
  return ((b[at] as number) << 8) | (b[at + 1] as number);
}

function u32be(b: Uint8Array, at: number): number {
  return (((b[at] as number) << 24) >>> 0) + (((b[at + 1] as number) << 16) | ((b[at + 2] as number) << 8) | (b[at + 3] as number));
}

/** Start-of-frame markers: every SOFn except DHT (C4), JPG (C8) and DAC (CC). */
function isSof(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
}

const EXIF_ID = [0x45, 0x78, 0x69, 0x66, 0x00, 0x00]; // "Exif\0\0"
const ADOBE_ID = [0x41, 0x64, 0x6f, 0x62, 0x65]; // "Adobe"

interface JpegFrame {
  precision: number;
  width: number;
  height: number;
  components: number;
}

/** Walks the markers up to the first scan (SOS), as libjpeg's `jpeg_read_header` does. */
function readJpegHeader(b: Uint8Array): ImageHeader | undefined {
  let frame: JpegFrame | undefined;
  let exifOrientation: number | undefined | 'odd';
  let exifSeen = 0;
  let adobeTransform: number | undefined;
  let at = 2;
  for (;;) {
    // Any number of 0xFF fill bytes may precede a marker code (T.81 B.1.1.2).
    if (b[at] !== 0xff) return undefined;
    while (b[at] === 0xff) at++;
    if (at >= b.length) return undefined;
    const marker = b[at] as number;
    at++;
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue; // standalone: TEM, RSTn
    if (marker === 0xd8 || marker === 0xd9 || marker === 0x00) return undefined; // SOI again, EOI before a scan
    if (marker === 0xda) break; // SOS: the header is over
    if (at + 2 > b.length) return undefined;
    const length = u16be(b, at);
    if (length < 2 || at + length > b.length) return undefined;
    const segment = b.subarray(at + 2, at + length);
    if (isSof(marker)) {
      if (frame || segment.length < 6) return undefined;
      frame = { precision: segment[0] as number, height: u16be(segment, 1), width: u16be(segment, 3), components: segment[5] as number };
    } else if (marker === 0xe1 && startsWith(segment, EXIF_ID)) {
      exifSeen++;
      exifOrientation = readExifOrientation(segment.subarray(EXIF_ID.length));
    } else if (marker === 0xee && startsWith(segment, ADOBE_ID) && segment.length >= 12) {
      adobeTransform = segment[11] as number;
    }
    at += length;
  }
  if (!frame || frame.precision !== 8 || frame.width === 0 || frame.height === 0) return undefined;
  // libvips keeps one EXIF block; which of several it would keep is its business.
  if (exifSeen > 1 || exifOrientation === 'odd') return undefined;
  const space = jpegSpace(frame.components, adobeTransform);
  if (!space) return undefined;
  const header: ImageHeader = { format: 'jpeg', width: frame.width, height: frame.height, channels: frame.components, space };
  if (exifOrientation !== undefined) header.orientation = exifOrientation;
  return header;
}

/**
 * libjpeg's colour space guess as libvips names it: 1 component grey, 3 YCbCr or RGB (Adobe transform 1 or 0),
 * 4 CMYK or YCCK (transform 0 or 2; both decode to CMYK). Other combinations are left to sharp.
 */
function jpegSpace(components: number, adobeTransform: number | undefined): string | undefined {
  if (components === 1) return 'b-w';
  if (components === 3 && (adobeTransform === undefined || adobeTransform === 0 || adobeTransform === 1)) return 'srgb';
  if (components === 4 && (adobeTransform === undefined || adobeTransform === 0 || adobeTransform === 2)) return 'cmyk';
  return undefined;
}

const ORIENTATION_TAG = 0x0112;
const SHORT = 3;

/**
 * The Orientation tag of IFD0 in an EXIF block (a TIFF structure, either byte order): its value 1-8, `undefined`
 * when there is none, `'odd'` when the block cannot be read or holds a value libvips would treat its own way.
 */
export function readExifOrientation(tiff: Uint8Array): number | undefined | 'odd' {
  if (tiff.length < 8) return 'odd';
  const little = tiff[0] === 0x49 && tiff[1] === 0x49;
  const big = tiff[0] === 0x4d && tiff[1] === 0x4d;
  if (!little && !big) return 'odd';
  const view = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
  if (view.getUint16(2, little) !== 42) return 'odd';
  const ifd = view.getUint32(4, little);
  if (ifd < 8 || ifd + 2 > tiff.length) return 'odd';
  const count = view.getUint16(ifd, little);
  if (ifd + 2 + count * 12 > tiff.length) return 'odd';
  for (let i = 0; i < count; i++) {
    const entry = ifd + 2 + i * 12;
    if (view.getUint16(entry, little) !== ORIENTATION_TAG) continue;
    if (view.getUint16(entry + 2, little) !== SHORT || view.getUint32(entry + 4, little) !== 1) return 'odd';
    const value = view.getUint16(entry + 8, little);
    return value >= 1 && value <= 8 ? value : 'odd';
  }
  return undefined;
}

/** Bands libvips loads for each PNG colour type, without and with a tRNS chunk. */
const PNG_BANDS: Record<number, [number, number]> = { 0: [1, 2], 2: [3, 4], 3: [3, 4], 4: [2, 2], 6: [4, 4] };

/** IHDR, then the chunks before the first IDAT (tRNS adds an alpha band). */
function readPngHeader(b: Uint8Array): ImageHeader | undefined {
  let at = PNG_SIGNATURE.length;
  if (at + 8 + 13 > b.length || u32be(b, at) !== 13 || !startsWith(b, [0x49, 0x48, 0x44, 0x52], at + 4)) return undefined; // IHDR
  const ihdr = at + 8;
  const width = u32be(b, ihdr);
  const height = u32be(b, ihdr + 4);
  const depth = b[ihdr + 8] as number;
  const colourType = b[ihdr + 9] as number;
  const interlace = b[ihdr + 12] as number;
  const bands = PNG_BANDS[colourType];
  if (!bands || width === 0 || height === 0 || interlace > 1) return undefined;
  if (![1, 2, 4, 8, 16].includes(depth) || (colourType === 3 && depth === 16) || (colourType !== 0 && colourType !== 3 && depth < 8)) return undefined;
  at = ihdr + 13 + 4; // past IHDR's CRC
  let transparency = false;
  for (;;) {
    if (at + 8 > b.length) return undefined;
    const length = u32be(b, at);
    const type = String.fromCharCode(b[at + 4] as number, b[at + 5] as number, b[at + 6] as number, b[at + 7] as number);
    if (type === 'IDAT') break;
    // EXIF orientation (eXIf) and animation (acTL) change what sharp reports: let it read those.
    if (type === 'eXIf' || type === 'acTL' || type === 'IEND') return undefined;
    if (type === 'tRNS') transparency = true;
    at += 12 + length;
  }
  const channels = bands[transparency ? 1 : 0];
  const space = depth === 16 ? (colourType === 0 || colourType === 4 ? 'grey16' : 'rgb16') : colourType === 0 || colourType === 4 ? 'b-w' : 'srgb';
  return { format: 'png', width, height, channels, space };
}
