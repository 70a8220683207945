import sharp from 'sharp';
import { ErrorCode, SampleError } from '@layertap/contracts';
import { barStrip, channelMeans, channelToGrey, featureDims, gridShape, mostActiveChannels, renderMontage, type MontageActivation } from './montage';
import { fixture } from './__tests__/fixtures';

/** A (C,H,W) activation where channel c holds `value(c, p)` at pixel p (row-major). */
function chw(channels: number, height: number, width: number, value: (c: number, p: number) => number): MontageActivation {
  const data = new Float32Array(channels * height * width);
  for (let c = 0; c < channels; c++) for (let p = 0; p < height * width; p++) data[c * height * width + p] = value(c, p);
  return { data, shape: [channels, height, width], layout: 'chw' };
}

/** The same values in (H,W,C). */
function toHwc(a: MontageActivation): MontageActivation {
  const [c = 0, h = 0, w = 0] = a.shape;
  const data = new Float32Array(a.data.length);
  for (let ch = 0; ch < c; ch++) for (let p = 0; p < h * w; p++) data[p * c + ch] = a.data[ch * h * w + p] as number;
  return { data, shape: [h, w, c], layout: 'hwc' };
}

async function decode(png: Buffer) {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  const at = (x: number, y: number) => Array.from(data.subarray((y * info.width + x) * info.channels, (y * info.width + x) * info.channels + 3));
  return { info, at };
}

describe('montage maths', () => {
  it('reads channels, height and width from either layout and checks them against the data', () => {
    expect(featureDims(chw(8, 6, 5, () => 0))).toEqual({ channels: 8, height: 6, width: 5 });
    expect(featureDims(toHwc(chw(8, 6, 5, () => 0)))).toEqual({ channels: 8, height: 6, width: 5 });
    expect(featureDims({ data: new Float32Array(4096), shape: [4096], layout: 'chw' })).toEqual({ channels: 4096, height: 1, width: 1 });
    expect(() => featureDims({ data: new Float32Array(10), shape: [2, 3, 2], layout: 'chw' })).toThrow('shape (2, 3, 2) holds 12 values but the data has 10');
    expect(() => featureDims({ data: new Float32Array(4), shape: [2, 2], layout: 'chw' })).toThrow(/expected a \(C,H,W\)/);
  });

  it('ranks channels by mean activation, the same in chw and hwc', () => {
    const a = chw(5, 2, 2, (c, p) => [1, 4, -2, 4, 0.5][c]! + p * 0.01);
    expect(Array.from(channelMeans(a)).map((m) => Number(m.toFixed(3)))).toEqual([1.015, 4.015, -1.985, 4.015, 0.515]);
    expect(Array.from(channelMeans(toHwc(a)))).toEqual(Array.from(channelMeans(a)));
    expect(mostActiveChannels(channelMeans(a), 3)).toEqual([1, 3, 0]);
    expect(mostActiveChannels([0.1, 0.2], 5)).toEqual([1, 0]);
  });

  it('normalises one channel to 0-255 on its own range; a constant channel is black', () => {
    const a = chw(2, 2, 3, (c, p) => (c === 0 ? -1 + p * 0.4 : 7));
    expect(channelToGrey(a, 0)).toEqual({ data: Uint8Array.from([0, 51, 102, 153, 204, 255]), width: 3, height: 2, min: -1, max: expect.closeTo(1, 6) });
    expect(Array.from(channelToGrey(a, 1).data)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(Array.from(channelToGrey(toHwc(a), 0).data)).toEqual([0, 51, 102, 153, 204, 255]);
    expect(() => channelToGrey(a, 2)).toThrow('channel 2 is not in 0..1');
  });

  it('lays tiles out in a near-square grid', () => {
    expect([1, 4, 5, 16, 17].map(gridShape)).toEqual([
      { cols: 1, rows: 1 },
      { cols: 2, rows: 2 },
      { cols: 3, rows: 2 },
      { cols: 4, rows: 4 },
      { cols: 5, rows: 4 },
    ]);
  });

  it('draws a vector as bars, each column the largest of the values it covers', () => {
    const strip = barStrip(Float32Array.from([0, 1, 0.5, 0]), 2, 4);
    // Column 0 covers [0, 1] -> full height; column 1 covers [0.5, 0] -> half.
    const column = (x: number) => Array.from({ length: 4 }, (_, y) => strip.data[y * 2 + x]);
    expect(column(0)).toEqual([230, 230, 230, 230]);
    expect(column(1)).toEqual([40, 40, 230, 230]);
  });
});

describe('renderMontage', () => {
  // Channel 5 is the most active (a gradient from 100 to 135), channel 2 second (constant 50), others small.
  const act = chw(8, 6, 6, (c, p) => (c === 5 ? 100 + p : c === 2 ? 50 : c * 0.1 + (p % 3) * 0.01));

  it('puts the input beside the most active channels, each tile scaled up with nearest neighbour', async () => {
    const png = await renderMontage({ input: { bytes: fixture('landscape-500x375.jpg') }, activation: act, channels: 4, size: 16, labels: false });
    const { info, at } = await decode(png);
    // 2x2 tiles of 16 px with 4 px gaps = 36 px; the 500x375 photo fits into 36x36 as 36x27; 8 px padding.
    expect({ width: info.width, height: info.height }).toEqual({ width: 8 + 36 + 16 + 36 + 8, height: 8 + 36 + 8 });
    const grid = { x: 8 + 36 + 16, y: 8 };
    // Tile 0 is channel 5: its minimum (pixel 0) black, its maximum (pixel 35) white, pixel 6 (row 1) at 6/35.
    expect(at(grid.x, grid.y)).toEqual([0, 0, 0]);
    expect(at(grid.x + 15, grid.y + 15)).toEqual([255, 255, 255]);
    expect(at(grid.x, grid.y + 3)).toEqual([44, 44, 44]);
    // Tile 1 is channel 2, constant: black. Background between tiles stays dark grey.
    expect(at(grid.x + 20 + 8, grid.y + 8)).toEqual([0, 0, 0]);
    expect(at(grid.x + 17, grid.y + 8)).toEqual([24, 24, 24]);
    // The photo is drawn in colour at the left.
    const photo = at(8 + 18, 8 + 13);
    expect(new Set(photo).size).toBeGreaterThan(1);
  });

  it('renders hwc data exactly as the same values in chw', async () => {
    const a = await renderMontage({ activation: act, channels: 6, size: 12 });
    const b = await renderMontage({ activation: toHwc(act), channels: 6, size: 12 });
    expect((await sharp(a).raw().toBuffer()).equals(await sharp(b).raw().toBuffer())).toBe(true);
  });

  it('shows the crop the network saw when given the preprocessing', async () => {
    const png = await renderMontage({
      input: { bytes: fixture('landscape-500x375.jpg'), view: { preprocess: 'torchvision', imageSize: 64 } },
      activation: act,
      channels: 16,
      size: 32,
      title: 'ds / sample <1> / features.9',
    });
    const { info } = await decode(png);
    // 8 channels -> 3x3 grid of 32 px = 104 px; the 64x64 crop is scaled to 104x104 beside it; a title line.
    expect({ width: info.width, height: info.height }).toEqual({ width: 8 + 104 + 16 + 104 + 8, height: 8 + 22 + 104 + 8 });
  });

  it('draws a (C,) vector as a bar strip', async () => {
    const values = Float32Array.from({ length: 4096 }, (_, i) => (i % 97) / 97);
    const { info } = await decode(await renderMontage({ activation: { data: values, shape: [4096], layout: 'chw' }, size: 32 }));
    expect({ width: info.width, height: info.height }).toEqual({ width: 8 + 1024 + 8, height: 8 + 64 + 8 });
  });

  it('refuses an input that is not an image, and bad options', async () => {
    const err = await renderMontage({ input: { bytes: Buffer.from('not an image') }, activation: act }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SampleError);
    expect((err as SampleError).code).toBe(ErrorCode.DecodeFailed);
    await expect(renderMontage({ activation: act, channels: 0 })).rejects.toThrow('channels must be a positive integer, got 0');
    await expect(renderMontage({ activation: act, size: 4 })).rejects.toThrow('size must be an integer from 8 to 1024, got 4');
  });
});
