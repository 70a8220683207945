import {
  centerCropBox,
  normalizeCaffe,
  normalizeTorchvision,
  PREPROCESSING,
  resizeTarget,
  roundHalfEven,
  torchvisionResizeSize,
} from './preprocessing';

describe('resizeTarget (torchvision Resize(int))', () => {
  it('sets the shorter side and truncates the longer one like int(size * long / short)', () => {
    expect(resizeTarget(500, 375, 256)).toEqual({ width: 341, height: 256 }); // 341.33
    expect(resizeTarget(375, 500, 256)).toEqual({ width: 256, height: 341 });
    expect(resizeTarget(640, 427, 256)).toEqual({ width: 383, height: 256 }); // 383.70: truncated, not rounded
    expect(resizeTarget(300, 450, 256)).toEqual({ width: 256, height: 384 });
    expect(resizeTarget(256, 256, 256)).toEqual({ width: 256, height: 256 });
    expect(resizeTarget(14, 25, 256)).toEqual({ width: 256, height: 457 }); // 457.14, upsampling
  });

  it('treats a square image as "width is the shorter side"', () => {
    expect(resizeTarget(1000, 1000, 183)).toEqual({ width: 183, height: 183 });
  });
});

describe('torchvisionResizeSize', () => {
  it('keeps the 256/224 ratio of the reference transform', () => {
    expect(torchvisionResizeSize(224)).toBe(256);
    expect(torchvisionResizeSize(160)).toBe(183); // 182.86
    expect(torchvisionResizeSize(32)).toBe(37); // 36.57
    expect(torchvisionResizeSize(448)).toBe(512);
  });
});

describe('roundHalfEven (Python 3 round)', () => {
  it('rounds halves to the even neighbour and everything else to the nearest', () => {
    expect([0.5, 1.5, 2.5, 58.5, 59.5, 16, 16.4, 16.6].map(roundHalfEven)).toEqual([0, 2, 2, 58, 60, 16, 16, 17]);
  });
});

describe('centerCropBox (torchvision CenterCrop)', () => {
  it('centres with round-half-even offsets', () => {
    expect(centerCropBox(341, 256, 224)).toEqual({ left: 58, top: 16, width: 224, height: 224 }); // 58.5 -> 58
    expect(centerCropBox(256, 343, 224)).toEqual({ left: 16, top: 60, width: 224, height: 224 }); // 59.5 -> 60
    expect(centerCropBox(256, 384, 224)).toEqual({ left: 16, top: 80, width: 224, height: 224 });
    expect(centerCropBox(224, 224, 224)).toEqual({ left: 0, top: 0, width: 224, height: 224 });
  });

  it('refuses a crop larger than the image', () => {
    expect(() => centerCropBox(200, 300, 224)).toThrow(RangeError);
  });
});

describe('normalizeTorchvision', () => {
  it('scales to [0, 1] and normalises each channel with the ImageNet mean and std, in float32', () => {
    const out = normalizeTorchvision(Uint8Array.from([0, 128, 255, 124, 116, 104]));
    const expected = [
      (0 / 255 - 0.485) / 0.229,
      (128 / 255 - 0.456) / 0.224,
      (255 / 255 - 0.406) / 0.225,
      (124 / 255 - 0.485) / 0.229,
      (116 / 255 - 0.456) / 0.224,
      (104 / 255 - 0.406) / 0.225,
    ];
    expect(out).toBeInstanceOf(Float32Array);
    out.forEach((v, i) => expect(v).toBeCloseTo(expected[i] ?? NaN, 6));
    expect(out[0]).toBe(Math.fround(-2.1179039301310043)); // float32 of (0 - 0.485) / 0.229
  });
});

describe('normalizeCaffe', () => {
  it('swaps RGB to BGR and subtracts the BGR mean on the 0-255 scale', () => {
    // One pixel R=200, G=100, B=50.
    const out = normalizeCaffe(Uint8Array.from([200, 100, 50]));
    expect(Array.from(out)).toEqual([
      Math.fround(50 - Math.fround(103.939)), // B
      Math.fround(100 - Math.fround(116.779)), // G
      Math.fround(200 - Math.fround(123.68)), // R
    ]);
    expect(out[0]).toBeCloseTo(-53.939, 4);
    expect(out[1]).toBeCloseTo(-16.779, 4);
    expect(out[2]).toBeCloseTo(76.32, 4);
  });

  it('refuses input that is not whole RGB pixels', () => {
    expect(() => normalizeCaffe(new Uint8Array(4))).toThrow(RangeError);
  });
});

describe('PREPROCESSING', () => {
  it('records the exact constants of both modes', () => {
    expect(PREPROCESSING.torchvision.mean).toEqual([0.485, 0.456, 0.406]);
    expect(PREPROCESSING.torchvision.std).toEqual([0.229, 0.224, 0.225]);
    expect(PREPROCESSING.torchvision.channelOrder).toBe('RGB');
    expect(PREPROCESSING.caffe.mean).toEqual([103.939, 116.779, 123.68]);
    expect(PREPROCESSING.caffe.channelOrder).toBe('BGR');
    expect(PREPROCESSING.caffe.std).toBeNull();
    expect(JSON.parse(JSON.stringify(PREPROCESSING))).toEqual(PREPROCESSING); // serialisable for dataset.json
  });
});
