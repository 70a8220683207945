import sharp from 'sharp';
import { readdirSync } from 'node:fs';
import { fixture, FIXTURES } from './__tests__/fixtures';
import { decodeImage } from './decode';
import { readExifOrientation, readImageHeader, type ImageHeader } from './image-header';

/** What sharp's metadata says, in the reader's terms: the answer the reader must give or leave to sharp. */
async function sharpHeader(bytes: Buffer): Promise<ImageHeader> {
  const m = await sharp(bytes, { pages: 1 }).metadata();
  const header: ImageHeader = { format: m.format, width: m.width, height: m.pageHeight ?? m.height, channels: m.channels, space: m.space };
  if (m.orientation !== undefined) header.orientation = m.orientation;
  return header;
}

const base = () => sharp({ create: { width: 37, height: 23, channels: 3, background: { r: 10, g: 200, b: 30 } } });

/** A JPEG with `segment` (marker + payload, length filled in) right after SOI. */
function withSegment(jpeg: Buffer, marker: number, payload: Buffer, fill = 0): Buffer {
  const head = Buffer.alloc(4 + fill);
  head.fill(0xff, 0, fill + 1);
  head[fill + 1] = marker;
  head.writeUInt16BE(payload.length + 2, fill + 2);
  return Buffer.concat([jpeg.subarray(0, 2), head, payload, jpeg.subarray(2)]);
}

/** An EXIF block (`Exif\0\0` + TIFF) whose IFD0 holds one entry. */
function exifBlock(little: boolean, entry: { tag?: number; type?: number; count?: number; value: number }): Buffer {
  const tiff = Buffer.alloc(8 + 2 + 12 + 4);
  const u16 = (v: number, at: number) => (little ? tiff.writeUInt16LE(v, at) : tiff.writeUInt16BE(v, at));
  const u32 = (v: number, at: number) => (little ? tiff.writeUInt32LE(v, at) : tiff.writeUInt32BE(v, at));
  tiff.write(little ? 'II' : 'MM', 0, 'latin1');
  u16(42, 2);
  u32(8, 4);
  u16(1, 8);
  u16(entry.tag ?? 0x0112, 10);
  u16(entry.type ?? 3, 12);
  u32(entry.count ?? 1, 14);
  u16(entry.value, 18);
  return Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), tiff]);
}

/** A PNG with a chunk of `type` inserted after IHDR (CRC left zero: the reader does not check CRCs). */
function withChunk(png: Buffer, type: string, data: Buffer): Buffer {
  const chunk = Buffer.alloc(12 + data.length);
  chunk.writeUInt32BE(data.length, 0);
  chunk.write(type, 4, 'latin1');
  data.copy(chunk, 8);
  const afterIhdr = 8 + 25;
  return Buffer.concat([png.subarray(0, afterIhdr), chunk, png.subarray(afterIhdr)]);
}

describe('readImageHeader', () => {
  it('agrees with sharp on every JPEG and PNG fixture', async () => {
    const names = readdirSync(FIXTURES).filter((n) => /\.(jpg|png)$/.test(n));
    expect(names.length).toBeGreaterThanOrEqual(12);
    for (const name of names) {
      const bytes = fixture(name);
      expect({ name, header: readImageHeader(bytes) }).toEqual({ name, header: await sharpHeader(bytes) });
    }
  });

  it('agrees with sharp on progressive, grey, CMYK, 16-bit, low-depth, palette and interlaced files', async () => {
    const made: Record<string, Buffer> = {
      progressive: await base().jpeg({ progressive: true }).toBuffer(),
      greyJpeg: await base().toColourspace('b-w').jpeg().toBuffer(),
      cmykJpeg: await base().toColourspace('cmyk').jpeg().toBuffer(),
      rgb16: await base().toColourspace('rgb16').png().toBuffer(),
      grey16: await base().toColourspace('grey16').png().toBuffer(),
      palette1bit: await base().png({ palette: true, colours: 2 }).toBuffer(),
      palette: await base().png({ palette: true }).toBuffer(),
      rgba: await base().ensureAlpha(0.5).png().toBuffer(),
      interlaced: await base().png({ progressive: true }).toBuffer(),
    };
    const expected: Record<string, Partial<ImageHeader>> = {
      progressive: { format: 'jpeg', channels: 3, space: 'srgb' },
      greyJpeg: { format: 'jpeg', channels: 1, space: 'b-w' },
      cmykJpeg: { format: 'jpeg', channels: 4, space: 'cmyk' },
      rgb16: { format: 'png', channels: 3, space: 'rgb16' },
      grey16: { format: 'png', channels: 1, space: 'grey16' },
      palette1bit: { format: 'png', channels: 3, space: 'srgb' },
      palette: { format: 'png', channels: 3, space: 'srgb' },
      rgba: { format: 'png', channels: 4, space: 'srgb' },
      interlaced: { format: 'png', channels: 3, space: 'srgb' },
    };
    for (const [name, bytes] of Object.entries(made)) {
      const header = readImageHeader(bytes);
      expect({ name, header }).toEqual({ name, header: await sharpHeader(bytes) });
      expect(header).toMatchObject({ width: 37, height: 23, ...expected[name] });
    }
  });

  it('reads EXIF orientation 1-8 as sharp does', async () => {
    for (let orientation = 1; orientation <= 8; orientation++) {
      const bytes = await base().withMetadata({ orientation }).jpeg().toBuffer();
      expect(readImageHeader(bytes)?.orientation).toBe(orientation);
      expect((await sharpHeader(bytes)).orientation).toBe(orientation);
    }
  });

  it('reads hand-made EXIF in both byte orders, after fill bytes', async () => {
    const jpeg = await base().jpeg().toBuffer();
    for (const little of [true, false]) {
      const bytes = withSegment(jpeg, 0xe1, exifBlock(little, { value: 6 }), 3);
      expect(readImageHeader(bytes)).toEqual({ format: 'jpeg', width: 37, height: 23, channels: 3, space: 'srgb', orientation: 6 });
      expect(await sharpHeader(bytes)).toEqual(readImageHeader(bytes));
    }
  });

  it('reads an Adobe APP14 segment and leaves odd transforms to sharp', async () => {
    const jpeg = await base().jpeg().toBuffer();
    const adobe = (transform: number) => Buffer.concat([Buffer.from('Adobe', 'latin1'), Buffer.from([0, 100, 0, 0, 0, 0, transform])]);
    expect(readImageHeader(withSegment(jpeg, 0xee, adobe(1)))).toMatchObject({ channels: 3, space: 'srgb' });
    expect(readImageHeader(withSegment(jpeg, 0xee, adobe(0)))).toMatchObject({ channels: 3, space: 'srgb' });
    expect(readImageHeader(withSegment(jpeg, 0xee, adobe(2)))).toBeUndefined(); // YCCK with 3 components
    const cmyk = await base().toColourspace('cmyk').jpeg().toBuffer();
    // libjpeg writes an Adobe segment into CMYK JPEGs itself (transform 0); the last one counts.
    const own = cmyk.indexOf(Buffer.from('Adobe', 'latin1'));
    expect(own).toBeGreaterThan(0);
    expect(readImageHeader(cmyk)).toMatchObject({ channels: 4, space: 'cmyk' });
    const ycbcrCmyk = Buffer.from(cmyk);
    ycbcrCmyk[own + 11] = 1;
    expect(readImageHeader(ycbcrCmyk)).toBeUndefined();
  });

  it('returns undefined for every truncation of a JPEG or PNG header, and never throws', async () => {
    const jpeg = await base().withMetadata({ orientation: 3 }).jpeg().toBuffer();
    const sos = jpeg.indexOf(Buffer.from([0xff, 0xda]));
    expect(sos).toBeGreaterThan(100);
    for (let n = 0; n < sos + 2; n++) expect(readImageHeader(jpeg.subarray(0, n))).toBeUndefined();
    expect(readImageHeader(jpeg.subarray(0, sos + 2))).toMatchObject({ orientation: 3 });

    const png = await base().png().toBuffer();
    const idat = png.indexOf(Buffer.from('IDAT', 'latin1'));
    for (let n = 0; n < idat + 4; n++) expect(readImageHeader(png.subarray(0, n))).toBeUndefined();
    expect(readImageHeader(png.subarray(0, idat + 4))).toMatchObject({ width: 37, height: 23 });
  });

  it('leaves 12-bit JPEGs, two EXIF blocks and bad EXIF to sharp', async () => {
    const jpeg = await base().jpeg().toBuffer();
    const sof = jpeg.indexOf(Buffer.from([0xff, 0xc0]));
    const twelveBit = Buffer.from(jpeg);
    twelveBit[sof + 4] = 12;
    expect(readImageHeader(twelveBit)).toBeUndefined();

    const twice = withSegment(withSegment(jpeg, 0xe1, exifBlock(true, { value: 6 })), 0xe1, exifBlock(false, { value: 3 }));
    expect(readImageHeader(twice)).toBeUndefined();
    expect(readImageHeader(withSegment(jpeg, 0xe1, exifBlock(true, { value: 9 })))).toBeUndefined();
    expect(readImageHeader(withSegment(jpeg, 0xe1, exifBlock(true, { value: 6, type: 4 })))).toBeUndefined();
    // An XMP APP1 is not EXIF: no orientation, nothing odd.
    const xmp = Buffer.from('http://ns.adobe.com/xap/1.0/\0<x:xmpmeta/>', 'latin1');
    expect(readImageHeader(withSegment(jpeg, 0xe1, xmp))).toEqual({ format: 'jpeg', width: 37, height: 23, channels: 3, space: 'srgb' });
  });

  it('counts a tRNS chunk as an alpha band and leaves eXIf and animated PNGs to sharp', async () => {
    const grey = await base().toColourspace('b-w').png().toBuffer();
    expect(readImageHeader(grey)).toMatchObject({ channels: 1, space: 'b-w' });
    const trns = withChunk(grey, 'tRNS', Buffer.from([0, 0]));
    expect(readImageHeader(trns)).toMatchObject({ channels: 2, space: 'b-w' });
    expect(readImageHeader(withChunk(grey, 'eXIf', exifBlock(false, { value: 6 }).subarray(6)))).toBeUndefined();
    expect(readImageHeader(withChunk(grey, 'acTL', Buffer.alloc(8)))).toBeUndefined();
  });

  it('returns undefined for other formats and non-images', async () => {
    expect(readImageHeader(fixture('animated-14x25.gif'))).toBeUndefined();
    expect(readImageHeader(await base().webp().toBuffer())).toBeUndefined();
    expect(readImageHeader(Buffer.from('not an image at all'))).toBeUndefined();
    expect(readImageHeader(new Uint8Array(0))).toBeUndefined();
  });
});

describe('readExifOrientation', () => {
  const tiff = (little: boolean, entry: Parameters<typeof exifBlock>[1]) => exifBlock(little, entry).subarray(6);

  it('reads the value in either byte order and reports a missing tag as undefined', () => {
    expect(readExifOrientation(tiff(true, { value: 8 }))).toBe(8);
    expect(readExifOrientation(tiff(false, { value: 8 }))).toBe(8);
    expect(readExifOrientation(tiff(false, { tag: 0x010f, type: 2, count: 4, value: 0 }))).toBeUndefined();
  });

  it('calls unreadable blocks odd', () => {
    expect(readExifOrientation(tiff(true, { value: 0 }))).toBe('odd');
    expect(readExifOrientation(tiff(true, { value: 2, count: 2 }))).toBe('odd');
    expect(readExifOrientation(tiff(true, { value: 2 }).subarray(0, 20))).toBe('odd');
    expect(readExifOrientation(Buffer.from('XX*\0\0\0\0\x08', 'latin1'))).toBe('odd');
  });
});

describe('decodeImage with the JavaScript header', () => {
  it('still reports the orientation of a PNG whose eXIf only sharp reads', async () => {
    const png = await base().withMetadata({ orientation: 6 }).png().toBuffer();
    expect(readImageHeader(png)).toBeUndefined();
    expect((await decodeImage(png)).source).toEqual({ format: 'png', width: 37, height: 23, channels: 3, space: 'srgb', orientation: 6 });
  });

  it('refuses a JPEG over the pixel limit from the header alone', async () => {
    const jpeg = await base().jpeg().toBuffer();
    await expect(decodeImage(jpeg, { maxPixels: 37 * 23 - 1 })).rejects.toMatchObject({ code: 'pixel_limit', message: expect.stringMatching(/^image is 37x23/) });
  });
});
