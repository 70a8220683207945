import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import sharp from 'sharp';
import { decodeImage } from './decode';
import { cmykToRgb } from './pillow-convert';
import { FIXTURES, fixture, sha256 } from './__tests__/fixtures';

interface PillowRef {
  size: [number, number];
  mode: string;
  orientation: number | null;
  convertRgbSha256: string;
  pixels: Record<string, [number, number, number]>;
}

// Made by __fixtures__/make-pillow-refs.py: Pillow's Image.open(f).convert('RGB') of each file.
const refs = JSON.parse(readFileSync(join(FIXTURES, 'pillow-refs.json'), 'utf8')) as { files: Record<string, PillowRef> };
const ref = (name: string): PillowRef => refs.files[name] as PillowRef;

function pixel(data: Uint8Array, width: number, key: string): number[] {
  const [x, y] = key.split(',').map(Number) as [number, number];
  return Array.from(data.subarray((y * width + x) * 3, (y * width + x) * 3 + 3));
}

describe('cmykToRgb (Pillow cmyk2rgb)', () => {
  it('is white without ink, black at full K, and rounds products as MULDIV255', () => {
    const rgb = cmykToRgb(Uint8Array.from([0, 0, 0, 0, 255, 255, 255, 0, 0, 0, 0, 255, 100, 50, 200, 30]));
    // nk = 225: 225 - round(100*225/255) = 225 - 88 = 137; 225 - 44 = 181; 225 - 176 = 49.
    expect(Array.from(rgb)).toEqual([255, 255, 255, 0, 0, 0, 0, 0, 0, 137, 181, 49]);
  });
});

describe('decodeImage follows Pillow convert("RGB")', () => {
  it('converts a CMYK JPEG (Adobe, inverted) with Pillow\'s formula, byte for byte', async () => {
    const r = ref('cmyk-120x90.jpg');
    expect(r.mode).toBe('CMYK');
    const { rgb, source } = await decodeImage(fixture('cmyk-120x90.jpg'));
    expect(source).toMatchObject({ format: 'jpeg', channels: 4, space: 'cmyk' });
    expect([rgb.width, rgb.height]).toEqual(r.size);
    for (const key of Object.keys(r.pixels)) expect([key, pixel(rgb.data, rgb.width, key)]).toEqual([key, r.pixels[key]]);
    expect(sha256(rgb.data)).toBe(r.convertRgbSha256);
  });

  it('converts a YCCK JPEG (Adobe transform 2, made by libjpeg from known inks) as Pillow does, byte for byte', async () => {
    const r = ref('ycck-64x48.jpg');
    expect(r.mode).toBe('CMYK');
    const bytes = fixture('ycck-64x48.jpg');
    // The file is what it claims: 4 components and an Adobe APP14 marker whose transform byte says YCCK (2).
    const adobe = bytes.indexOf(Buffer.from('Adobe'));
    expect(adobe).toBeGreaterThan(0);
    expect(bytes[adobe + 11]).toBe(2);
    const { rgb, source } = await decodeImage(bytes);
    expect(source).toMatchObject({ format: 'jpeg', channels: 4, space: 'cmyk' });
    expect([rgb.width, rgb.height]).toEqual(r.size);
    for (const key of Object.keys(r.pixels)) expect([key, pixel(rgb.data, rgb.width, key)]).toEqual([key, r.pixels[key]]);
    expect(sha256(rgb.data)).toBe(r.convertRgbSha256);
    // And near the inks make-ycck.c wrote, through Pillow's formula (JPEG is lossy: a few levels).
    const [x, y] = [40, 20];
    const ink = Uint8Array.from([x * 4, y * 5, Math.floor(x / 16) * 85, Math.floor(y / 12) * 60]);
    const want = Array.from(cmykToRgb(ink));
    const got = pixel(rgb.data, rgb.width, `${x},${y}`);
    for (let c = 0; c < 3; c++) expect(Math.abs((got[c] as number) - (want[c] as number))).toBeLessThanOrEqual(4);
  });

  it('an ICC transform (sharp\'s own CMYK conversion) would differ: the test can tell', async () => {
    const viaIcc = await sharp(fixture('cmyk-120x90.jpg')).toColourspace('srgb').raw().toBuffer();
    expect(sha256(viaIcc)).not.toBe(ref('cmyk-120x90.jpg').convertRgbSha256);
  });

  it('ignores EXIF orientation by default, as torchvision\'s loader does', async () => {
    const r = ref('exif6-96x64.jpg');
    expect(r.orientation).toBe(6);
    const { rgb, source } = await decodeImage(fixture('exif6-96x64.jpg'));
    expect([rgb.width, rgb.height]).toEqual([96, 64]);
    expect(source).toMatchObject({ width: 96, height: 64, orientation: 6 });
    expect(sha256(rgb.data)).toBe(r.convertRgbSha256);
  });

  it('applies it when asked (--exif-orientation apply): upright, 64x96', async () => {
    const ignored = await decodeImage(fixture('exif6-96x64.jpg'), { exifOrientation: 'ignore' });
    const applied = await decodeImage(fixture('exif6-96x64.jpg'), { exifOrientation: 'apply' });
    expect([applied.rgb.width, applied.rgb.height]).toEqual([64, 96]);
    // Orientation 6 turns the stored image 90° clockwise: stored (x, y) lands at (63 - y, x).
    for (const [x, y] of [[0, 0], [10, 50], [95, 63]] as const) {
      expect(pixel(applied.rgb.data, 64, `${63 - y},${x}`)).toEqual(pixel(ignored.rgb.data, 96, `${x},${y}`));
    }
  });

  it('16-bit greyscale: Pillow clips at 255 (mode I); layertap keeps the high byte, the documented difference', async () => {
    const r = ref('gray16-96x64.png');
    expect(r.mode).toBe('I');
    const bytes = fixture('gray16-96x64.png');
    const values = gray16(bytes);
    const clipped = Uint8Array.from(values.flatMap((v) => [Math.min(v, 255), Math.min(v, 255), Math.min(v, 255)]));
    // What Pillow does is exactly a clip: this pins the difference the README describes.
    expect(sha256(clipped)).toBe(r.convertRgbSha256);
    const { rgb } = await decodeImage(bytes);
    const high = Uint8Array.from(values.flatMap((v) => [v >> 8, v >> 8, v >> 8]));
    expect(sha256(rgb.data)).toBe(sha256(high));
  });
});

/** The samples of the 16-bit greyscale fixture (filter 0 on every row, as make-fixtures.py writes it). */
function gray16(png: Buffer): number[] {
  const idat: Buffer[] = [];
  for (let at = 8; at < png.length; ) {
    const length = png.readUInt32BE(at);
    if (png.toString('latin1', at + 4, at + 8) === 'IDAT') idat.push(png.subarray(at + 8, at + 8 + length));
    at += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const values: number[] = [];
  const stride = 1 + 96 * 2;
  for (let y = 0; y < 64; y++) for (let x = 0; x < 96; x++) values.push(raw.readUInt16BE(y * stride + 1 + x * 2));
  return values;
}
