import { ErrorCode, SampleError } from '@layertap/contracts';
import sharp from 'sharp';
import { channelMeans, fixture, reference, sha256, type OutputReference } from './__tests__/fixtures';
import { normalizePixels, preprocessImage, preprocessPixels } from './preprocess';
import { normalizeCaffe, normalizeTorchvision } from './preprocessing';
import { resizeBilinear } from './resize-bilinear';

const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];
const CAFFE_BGR = [103.939, 116.779, 123.68];

function expectMatchesReference(data: Float32Array, ref: OutputReference | undefined): void {
  expect(ref).toBeDefined();
  if (!ref) return;
  expect(data.length).toBe(ref.shape.reduce((a, b) => a * b, 1));
  // Readable first: the leading values and channel means; then the exact bytes.
  Array.from(data.subarray(0, 6)).forEach((v, i) => expect(v).toBeCloseTo(ref.first[i] ?? NaN, 5));
  channelMeans(data).forEach((m, c) => expect(m).toBeCloseTo(ref.channelMeans[c] ?? NaN, 4));
  expect(sha256(data)).toBe(ref.sha256);
}

describe('preprocessImage reproduces torchvision and Keras bit for bit', () => {
  const files = Object.entries(reference.files).filter(([, ref]) => ref.deviation === undefined);

  it.each(files)('torchvision 224: %s', async (name, ref) => {
    const out = await preprocessImage(fixture(name), { mode: 'torchvision' });
    expect([out.width, out.height]).toEqual([224, 224]);
    expectMatchesReference(out.data, ref.torchvision224);
  });

  it.each(files)('caffe 224: %s', async (name, ref) => {
    const out = await preprocessImage(fixture(name), { mode: 'caffe', imageSize: 224 });
    expectMatchesReference(out.data, ref.caffe224);
  });

  it('other image sizes: torchvision 160 (Resize(183) + CenterCrop(160)) and caffe 64', async () => {
    const ref = reference.files['landscape-500x375.jpg'];
    const tv = await preprocessImage(fixture('landscape-500x375.jpg'), { mode: 'torchvision', imageSize: 160 });
    expect([tv.width, tv.height, tv.data.length]).toEqual([160, 160, 160 * 160 * 3]);
    expectMatchesReference(tv.data, ref?.torchvision160);
    const caffe = await preprocessImage(fixture('landscape-500x375.jpg'), { mode: 'caffe', imageSize: 64 });
    expectMatchesReference(caffe.data, ref?.caffe64);
  });
});

describe('preprocessImage geometry and channels', () => {
  it('a 256x256 image is only cropped and normalised in torchvision mode (no resize)', async () => {
    const bytes = fixture('square-256.jpg');
    const raw = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
    expect([raw.info.width, raw.info.height, raw.info.channels]).toEqual([256, 256, 3]);
    const out = await preprocessImage(bytes, { mode: 'torchvision' });
    expect(out.source).toMatchObject({ format: 'jpeg', width: 256, height: 256, channels: 3 });
    let worst = 0;
    for (let y = 0; y < 224; y++) {
      for (let x = 0; x < 224; x++) {
        for (let c = 0; c < 3; c++) {
          const pixel = raw.data[((y + 16) * 256 + (x + 16)) * 3 + c] ?? NaN;
          const expected = (pixel / 255 - (MEAN[c] ?? 0)) / (STD[c] ?? 1);
          worst = Math.max(worst, Math.abs((out.data[(y * 224 + x) * 3 + c] ?? NaN) - expected));
        }
      }
    }
    expect(worst).toBeLessThan(1e-6);
  });

  it('caffe mode is BGR minus the BGR mean, on a known pixel of a flat image', async () => {
    const flat = await sharp({ create: { width: 300, height: 200, channels: 3, background: { r: 200, g: 100, b: 50 } } })
      .png()
      .toBuffer();
    const out = await preprocessImage(flat, { mode: 'caffe' });
    const at = (120 * 224 + 37) * 3;
    expect(out.data[at]).toBeCloseTo(50 - (CAFFE_BGR[0] ?? 0), 4); // B
    expect(out.data[at + 1]).toBeCloseTo(100 - (CAFFE_BGR[1] ?? 0), 4); // G
    expect(out.data[at + 2]).toBeCloseTo(200 - (CAFFE_BGR[2] ?? 0), 4); // R
    const tv = await preprocessImage(flat, { mode: 'torchvision' });
    expect(tv.data[at]).toBeCloseTo((200 / 255 - 0.485) / 0.229, 5); // R first
    expect(tv.data[at + 2]).toBeCloseTo((50 / 255 - 0.406) / 0.225, 5);
  });

  it.each([
    // name, decoded size, resized size, crop offset (left, top)
    ['landscape-500x375.jpg', [500, 375], [341, 256], [58, 16]], // 58.5 rounds to even
    ['portrait-300x450.jpg', [300, 450], [256, 384], [16, 80]],
  ] as const)('crops %s at the centre of its resize', async (name, size, resized, offset) => {
    const bytes = fixture(name);
    const decoded = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
    expect([decoded.info.width, decoded.info.height]).toEqual(size);
    const rgb = { data: new Uint8Array(decoded.data), width: size[0], height: size[1] };
    const full = resizeBilinear(rgb, resized[0], resized[1]);
    const cropped = new Uint8Array(224 * 224 * 3);
    for (let y = 0; y < 224; y++) {
      const from = ((y + offset[1]) * resized[0] + offset[0]) * 3;
      cropped.set(full.data.subarray(from, from + 224 * 3), y * 224 * 3);
    }
    const out = await preprocessImage(bytes, { mode: 'torchvision' });
    expect(sha256(out.data)).toBe(sha256(normalizeTorchvision(cropped)));
    // One pixel to the side would be a different image.
    const shifted = new Uint8Array(cropped.length);
    for (let y = 0; y < 224; y++) {
      const from = ((y + offset[1]) * resized[0] + offset[0] + 1) * 3;
      shifted.set(full.data.subarray(from, from + 224 * 3), y * 224 * 3);
    }
    expect(sha256(out.data)).not.toBe(sha256(normalizeTorchvision(shifted)));
  });

  it('an EXIF-rotated JPEG is preprocessed upright with exifOrientation apply, as stored by default', async () => {
    const raw = await sharp(fixture('portrait-300x450.jpg')).raw().toBuffer();
    // Store the portrait lying on its side (rotated 90° anticlockwise) with orientation 6 to stand it up again.
    const sideways = await sharp(raw, { raw: { width: 300, height: 450, channels: 3 } }).rotate(-90).png().toBuffer();
    const tagged = await sharp(sideways).withMetadata({ orientation: 6 }).png().toBuffer();
    const upright = await sharp(raw, { raw: { width: 300, height: 450, channels: 3 } }).png().toBuffer();

    const out = await preprocessImage(tagged, { mode: 'torchvision', exifOrientation: 'apply' });
    expect(out.source).toMatchObject({ width: 300, height: 450, orientation: 6 });
    expect(sha256(out.data)).toBe(sha256((await preprocessImage(upright, { mode: 'torchvision' })).data));
    const ignored = await preprocessImage(sideways, { mode: 'torchvision' });
    expect(sha256(ignored.data)).not.toBe(sha256(out.data));
    // The default is torchvision's loader: the tag is ignored, the stored (sideways) pixels are used.
    const byDefault = await preprocessImage(tagged, { mode: 'torchvision' });
    expect(byDefault.source).toMatchObject({ width: 450, height: 300, orientation: 6 });
    expect(sha256(byDefault.data)).toBe(sha256(ignored.data));
  });

  it('preprocessPixels: caffe leaves a 224x224 input unresized, torchvision still resizes it to 256 and crops', () => {
    const data = new Uint8Array(224 * 224 * 3);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 7)) % 256;
    const rgb = { data, width: 224, height: 224 };
    expect(sha256(preprocessPixels(rgb, { mode: 'caffe' }).data)).toBe(sha256(normalizeCaffe(data)));
    const tv = preprocessPixels(rgb, { mode: 'torchvision' });
    expect(tv.data.length).toBe(224 * 224 * 3);
    expect(sha256(tv.data)).not.toBe(sha256(normalizeTorchvision(data)));
    const upsampled = resizeBilinear(rgb, 256, 256, { left: 16, top: 16, width: 224, height: 224 });
    expect(sha256(tv.data)).toBe(sha256(normalizeTorchvision(upsampled.data)));
  });

  it('passes decode failures through as SampleErrors', async () => {
    const err = await preprocessImage(Buffer.from('not an image'), { mode: 'caffe' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SampleError);
    expect((err as SampleError).code).toBe(ErrorCode.DecodeFailed);
    const limit = await preprocessImage(fixture('square-256.jpg'), { mode: 'caffe', maxPixels: 1000 }).catch((e: unknown) => e);
    expect((limit as SampleError).code).toBe(ErrorCode.PixelLimit);
  });

  it('refuses bad options', async () => {
    await expect(preprocessImage(fixture('square-256.jpg'), { mode: 'torchvision', imageSize: 0 })).rejects.toThrow(RangeError);
    await expect(preprocessImage(fixture('square-256.jpg'), { mode: 'imagenet' as 'caffe' })).rejects.toThrow(/unknown preprocessing mode/);
  });
});

describe('normalizePixels with --mean/--std', () => {
  const rgb = Uint8Array.from({ length: 3 * 64 }, (_, i) => (i * 37) % 256);

  it('gives the ImageNet values given by hand exactly what torchvision mode gives', () => {
    expect(sha256(normalizePixels(rgb, 'torchvision', undefined, { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }))).toBe(sha256(normalizeTorchvision(rgb)));
  });

  it('computes ((v / 255) - mean) / std in float32 per channel', () => {
    const out = normalizePixels(rgb, 'torchvision-v2', new Float32Array(rgb.length), { mean: [0.5, 0.25, 0], std: [0.5, 1, 2] });
    for (let i = 0; i < rgb.length; i++) {
      const c = i % 3;
      const [mean, std] = [[0.5, 0.25, 0][c]!, [0.5, 1, 2][c]!];
      expect(out[i]).toBe(Math.fround(Math.fround(Math.fround(rgb[i]! / 255) - Math.fround(mean)) / Math.fround(std)));
    }
  });

  it('refuses them with caffe, which has its own', () => {
    expect(() => normalizePixels(rgb, 'caffe', undefined, { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] })).toThrow('not caffe');
  });
});
