// Plain-JS reference implementations (naive loops, NHWC, TF weight layout) to check the TF.js model against.
// Written from the definitions, not from the code under test.

/** 3x3 convolution, stride 1, zero "same" padding; kernel [3,3,in,out], bias [out]. */
export function conv3x3(
  x: Float32Array,
  shape: readonly number[],
  kernel: Float32Array,
  bias: Float32Array,
  cout: number,
  relu: boolean,
): Float32Array {
  const [n = 0, h = 0, w = 0, cin = 0] = shape;
  const out = new Float32Array(n * h * w * cout);
  const acc = new Float64Array(cout);
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) {
        for (let o = 0; o < cout; o++) acc[o] = bias[o] ?? 0;
        for (let ki = 0; ki < 3; ki++) {
          const y = i + ki - 1;
          if (y < 0 || y >= h) continue;
          for (let kj = 0; kj < 3; kj++) {
            const xx = j + kj - 1;
            if (xx < 0 || xx >= w) continue;
            for (let c = 0; c < cin; c++) {
              const v = x[((b * h + y) * w + xx) * cin + c] ?? 0;
              const k = ((ki * 3 + kj) * cin + c) * cout;
              for (let o = 0; o < cout; o++) acc[o] = (acc[o] ?? 0) + v * (kernel[k + o] ?? 0);
            }
          }
        }
        const base = ((b * h + i) * w + j) * cout;
        for (let o = 0; o < cout; o++) out[base + o] = relu ? Math.max(0, acc[o] ?? 0) : (acc[o] ?? 0);
      }
    }
  }
  return out;
}

/** 2x2 max pool, stride 2, floor ("valid"). */
export function maxPool2(x: Float32Array, shape: readonly number[]): Float32Array {
  const [n = 0, h = 0, w = 0, c = 0] = shape;
  const oh = Math.floor(h / 2);
  const ow = Math.floor(w / 2);
  const out = new Float32Array(n * oh * ow * c);
  for (let b = 0; b < n; b++)
    for (let i = 0; i < oh; i++)
      for (let j = 0; j < ow; j++)
        for (let k = 0; k < c; k++) {
          let m = -Infinity;
          for (const [di, dj] of [[0, 0], [0, 1], [1, 0], [1, 1]] as const) {
            m = Math.max(m, x[((b * h + 2 * i + di) * w + 2 * j + dj) * c + k] ?? -Infinity);
          }
          out[((b * oh + i) * ow + j) * c + k] = m;
        }
  return out;
}

/** torch.nn.AdaptiveAvgPool2d: bin i covers [floor(i*H/S), ceil((i+1)*H/S)). */
export function adaptiveAvgPool(x: Float32Array, shape: readonly number[], size: number): Float32Array {
  const [n = 0, h = 0, w = 0, c = 0] = shape;
  const out = new Float32Array(n * size * size * c);
  for (let b = 0; b < n; b++)
    for (let i = 0; i < size; i++)
      for (let j = 0; j < size; j++) {
        const y0 = Math.floor((i * h) / size);
        const y1 = Math.ceil(((i + 1) * h) / size);
        const x0 = Math.floor((j * w) / size);
        const x1 = Math.ceil(((j + 1) * w) / size);
        for (let k = 0; k < c; k++) {
          let sum = 0;
          for (let y = y0; y < y1; y++) for (let xx = x0; xx < x1; xx++) sum += x[((b * h + y) * w + xx) * c + k] ?? 0;
          out[((b * size + i) * size + j) * c + k] = sum / ((y1 - y0) * (x1 - x0));
        }
      }
  return out;
}

/** Dense layer: x [n, in] times kernel [in, out] plus bias. */
export function dense(
  x: Float32Array,
  n: number,
  kernel: Float32Array,
  bias: Float32Array,
  units: number,
  relu: boolean,
): Float32Array {
  const inputs = x.length / n;
  const out = new Float32Array(n * units);
  const acc = new Float64Array(units);
  for (let b = 0; b < n; b++) {
    for (let o = 0; o < units; o++) acc[o] = bias[o] ?? 0;
    for (let i = 0; i < inputs; i++) {
      const v = x[b * inputs + i] ?? 0;
      if (v === 0) continue;
      const row = i * units;
      for (let o = 0; o < units; o++) acc[o] = (acc[o] ?? 0) + v * (kernel[row + o] ?? 0);
    }
    for (let o = 0; o < units; o++) out[b * units + o] = relu ? Math.max(0, acc[o] ?? 0) : (acc[o] ?? 0);
  }
  return out;
}

/** max |a - b| / max |b|: the error relative to the reference tensor's scale. */
export function relativeError(actual: Float32Array, expected: Float32Array): number {
  if (actual.length !== expected.length) return Infinity;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs((actual[i] ?? 0) - (expected[i] ?? 0)));
    scale = Math.max(scale, Math.abs(expected[i] ?? 0));
  }
  return scale === 0 ? diff : diff / scale;
}

/** Deterministic pseudo-random values in [-2, 2) (the range of torchvision-normalised pixels). */
export function pseudoRandom(length: number, salt = 1): Float32Array {
  const data = new Float32Array(length);
  let s = salt >>> 0;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = (s / 4294967296) * 4 - 2;
  }
  return data;
}

/** A batch of NHWC test images. */
export function testImages(batchSize: number, imageSize: number, salt = 1): Float32Array {
  return pseudoRandom(batchSize * imageSize * imageSize * 3, salt);
}
