import { ErrorCode, SampleError } from '@layertap/contracts';
import { crc32, deflateSync, inflateSync } from 'node:zlib';
import sharp from 'sharp';
import { decodeImage, DEFAULT_MAX_PIXELS } from './decode';
import { cmykToRgb } from './pillow-convert';
import { fixture, reference, sha256 } from './__tests__/fixtures';

async function decodeError(bytes: Uint8Array, maxPixels?: number): Promise<SampleError> {
  const err = await decodeImage(bytes, maxPixels === undefined ? {} : { maxPixels }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SampleError);
  return err as SampleError;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A complete, valid 1-bit grayscale PNG of `size` x `size` black pixels: a few hundred KB that decode to size². */
function decompressionBomb(size: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr.set([1, 0, 0, 0, 0], 8); // bit depth 1, grayscale, deflate, no filter, no interlace
  const rows = Buffer.alloc((1 + Math.ceil(size / 8)) * size); // filter byte 0 + zero bits per row
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(rows, { level: 9 })),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** The samples of a 16-bit grayscale PNG written with filter 0 on every row (as make-fixtures.py does). */
function gray16Samples(png: Buffer, width: number, height: number): number[] {
  const chunks: Buffer[] = [];
  for (let at = 8; at < png.length; ) {
    const length = png.readUInt32BE(at);
    if (png.toString('latin1', at + 4, at + 8) === 'IDAT') chunks.push(png.subarray(at + 8, at + 8 + length));
    at += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(chunks));
  const values: number[] = [];
  for (let y = 0; y < height; y++) {
    const row = y * (1 + width * 2);
    expect(raw[row]).toBe(0);
    for (let x = 0; x < width; x++) values.push(raw.readUInt16BE(row + 1 + x * 2));
  }
  return values;
}

/** Rotates HWC RGB pixels 90° clockwise. */
function rotate90(data: Uint8Array, width: number, height: number): Uint8Array {
  const out = new Uint8Array(data.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      // Pixel (x, y) goes to column height-1-y, row x of the height-wide result.
      out.set(data.subarray((y * width + x) * 3, (y * width + x) * 3 + 3), (x * height + (height - 1 - y)) * 3);
    }
  }
  return out;
}

describe('decodeImage matches Pillow convert("RGB")', () => {
  const files = Object.entries(reference.files).filter(([, ref]) => ref.deviation === undefined);

  it.each(files)('%s', async (name, ref) => {
    const { rgb, source } = await decodeImage(fixture(name));
    expect([rgb.width, rgb.height]).toEqual(ref.size);
    expect(sha256(rgb.data)).toBe(ref.decodedRgbSha256);
    expect([source.width, source.height]).toEqual(ref.size);
  });

  it('covers every kind of input the brief lists', () => {
    const modes = Object.fromEntries(Object.entries(reference.files).map(([name, ref]) => [name, ref.mode]));
    expect(modes).toMatchObject({
      'gray-200x150.png': 'L',
      'palette-320x240.png': 'P',
      'palette-trns-64x48.png': 'P',
      'rgba-120x90.png': 'RGBA',
      'gray-alpha-64x48.png': 'LA',
      'rgb16-96x64.png': 'RGB', // Pillow reads 16-bit RGB as 8-bit (high bytes)
      'gray16-96x64.png': 'I',
      'animated-14x25.gif': 'P',
    });
  });
});

describe('decodeImage conversions', () => {
  it('drops alpha without blending: a fully transparent pixel keeps its stored RGB', async () => {
    const bytes = fixture('rgba-120x90.png');
    const stored = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
    expect(stored.info.channels).toBe(4);
    const { rgb, source } = await decodeImage(bytes);
    expect(source).toMatchObject({ format: 'png', channels: 4, space: 'srgb' });
    for (const [x, y] of [[5, 5], [30, 80], [60, 40], [100, 10]] as const) {
      const i = y * 120 + x;
      const rgba = Array.from(stored.data.subarray(i * 4, i * 4 + 4));
      expect(Array.from(rgb.data.subarray(i * 3, i * 3 + 3))).toEqual(rgba.slice(0, 3));
    }
    const transparent = Array.from(stored.data.subarray((5 * 120 + 5) * 4, (5 * 120 + 5) * 4 + 4));
    expect(transparent[3]).toBe(0);
    expect(transparent.slice(0, 3).some((v) => v > 0)).toBe(true); // a real colour under alpha 0, not black
  });

  it('reduces 16-bit grayscale to its high byte, replicated to RGB (Pillow would clip to white)', async () => {
    const bytes = fixture('gray16-96x64.png');
    const values = gray16Samples(bytes, 96, 64);
    const { rgb, source } = await decodeImage(bytes);
    expect(source).toMatchObject({ channels: 1, space: 'grey16' });
    expect(values.some((v) => (v & 0xff) >= 128)).toBe(true); // rounding instead of truncation would differ
    const mismatches = values.flatMap((value, i) => {
      const got = Array.from(rgb.data.subarray(i * 3, i * 3 + 3));
      const want = value >> 8;
      return got.every((v) => v === want) ? [] : [{ pixel: i, value, got, want }];
    });
    expect(mismatches).toEqual([]);
  });

  it('takes the first frame of an animated GIF and of an animated WebP', async () => {
    const gif = fixture('animated-14x25.gif');
    expect((await sharp(gif).metadata()).pages).toBe(24);
    const first = await decodeImage(gif);
    expect(first.rgb.width).toBe(14);
    expect(first.rgb.height).toBe(25); // one frame, not 24 stacked
    expect(sha256(first.rgb.data)).toBe(reference.files['animated-14x25.gif']?.decodedRgbSha256);

    const webp = await sharp(gif, { animated: true }).webp({ lossless: true }).toBuffer();
    expect((await sharp(webp).metadata()).pages).toBe(24);
    const fromWebp = await decodeImage(webp);
    expect(fromWebp.source.format).toBe('webp');
    expect([fromWebp.rgb.width, fromWebp.rgb.height]).toEqual([14, 25]);
    expect(sha256(fromWebp.rgb.data)).toBe(sha256(first.rgb.data));
    const second = await sharp(webp, { page: 1 }).removeAlpha().raw().toBuffer();
    expect(sha256(second)).not.toBe(sha256(first.rgb.data)); // the frames do differ
  });

  it('converts CMYK JPEGs written by libvips to RGB with Pillow\'s formula (pillow-convert.test.ts pins it against Pillow)', async () => {
    const original = await decodeImage(fixture('landscape-500x375.jpg'));
    const cmyk = await sharp(fixture('landscape-500x375.jpg')).toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer();
    const { rgb, source } = await decodeImage(cmyk);
    expect(source).toMatchObject({ format: 'jpeg', channels: 4, space: 'cmyk' });
    expect([rgb.width, rgb.height]).toEqual([500, 375]);
    const ink = await sharp(cmyk).pipelineColourspace('cmyk').toColourspace('cmyk').raw().toBuffer();
    expect(sha256(rgb.data)).toBe(sha256(cmykToRgb(ink)));
    let diff = 0;
    for (let i = 0; i < rgb.data.length; i++) diff += Math.abs((rgb.data[i] ?? 0) - (original.rgb.data[i] ?? 0));
    // libvips made the CMYK through a profile; the naive formula back is close on average, not equal.
    expect(diff / rgb.data.length).toBeGreaterThan(0);
    expect(diff / rgb.data.length).toBeLessThan(40);
  });

  it('applies EXIF orientation when asked (6: rotate 90° clockwise)', async () => {
    const raw = await sharp(fixture('landscape-500x375.jpg')).raw().toBuffer();
    const oriented = await sharp(raw, { raw: { width: 500, height: 375, channels: 3 } })
      .jpeg({ quality: 95 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const stored = await sharp(oriented, { autoOrient: false }).raw().toBuffer({ resolveWithObject: true });
    expect([stored.info.width, stored.info.height]).toEqual([500, 375]);

    const { rgb, source } = await decodeImage(oriented, { exifOrientation: 'apply' });
    expect(source).toMatchObject({ width: 375, height: 500, orientation: 6 });
    expect([rgb.width, rgb.height]).toEqual([375, 500]);
    expect(sha256(rgb.data)).toBe(sha256(rotate90(stored.data, 500, 375)));
  });
});

describe('decodeImage failures', () => {
  it('non-image bytes are DecodeFailed', async () => {
    const err = await decodeError(Buffer.from('<html><body>404 not found</body></html>'));
    expect(err.code).toBe(ErrorCode.DecodeFailed);
    expect(err.message).toMatch(/unsupported image format/);
  });

  it('zero bytes are EmptyFile', async () => {
    expect((await decodeError(Buffer.alloc(0))).code).toBe(ErrorCode.EmptyFile);
  });

  it('a truncated JPEG fails instead of half-decoding (also when only the end marker is missing)', async () => {
    const jpeg = fixture('landscape-500x375.jpg');
    for (const bytes of [jpeg.subarray(0, jpeg.length >> 1), jpeg.subarray(0, jpeg.length - 2)]) {
        const err = await decodeError(bytes);
      expect(err.code).toBe(ErrorCode.DecodeFailed);
      expect(err.message).toMatch(/premature end of JPEG/);
    }
  });

  it('a JPEG whose entropy data libjpeg reports as corrupt fails, as in Pillow', async () => {
    const jpeg = Buffer.from(fixture('landscape-500x375.jpg'));
    const start = Math.floor(jpeg.length * 0.3);
    for (let i = start; i < start + 200; i++) {
      const flipped = (jpeg[i] ?? 0) ^ 0x5a;
      if (jpeg[i] !== 0xff && flipped !== 0xff) jpeg[i] = flipped;
    }
    const err = await decodeError(jpeg);
    expect(err.code).toBe(ErrorCode.DecodeFailed);
    expect(err.message).toMatch(/Corrupt JPEG data/);
  });

  it('a truncated PNG is DecodeFailed', async () => {
    const png = fixture('gray-200x150.png');
    expect((await decodeError(png.subarray(0, png.length >> 1))).code).toBe(ErrorCode.DecodeFailed);
  });

  it('SVG is refused even though sharp could rasterise it', async () => {
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>');
    const err = await decodeError(svg);
    expect(err.code).toBe(ErrorCode.DecodeFailed);
    expect(err.message).toMatch(/unsupported image format 'svg'/);
  });

  it('a decompression bomb is PixelLimit, read from the header without allocating the image', async () => {
    const bomb = decompressionBomb(30_000);
    expect(bomb.length).toBeLessThan(300_000);
    const before = process.memoryUsage().rss;
    const err = await decodeError(bomb);
    const grown = process.memoryUsage().rss - before;
    expect(err.code).toBe(ErrorCode.PixelLimit);
    expect(err.message).toMatch(/30000x30000 \(900\.0 megapixels\), more than the limit of 100\.0 megapixels/);
    expect(grown).toBeLessThan(200 * 1024 * 1024); // decoding would need 900 MB even at one byte per pixel
    expect(DEFAULT_MAX_PIXELS).toBe(100_000_000);
  });

  it('maxPixels applies to ordinary images too', async () => {
    const err = await decodeError(fixture('landscape-500x375.jpg'), 500 * 375 - 1);
    expect(err.code).toBe(ErrorCode.PixelLimit);
    await expect(decodeImage(fixture('landscape-500x375.jpg'), { maxPixels: 500 * 375 })).resolves.toBeDefined();
  });
});
