// Test helpers: fixture files and the Pillow / torchvision references made by __fixtures__/make-fixtures.py.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const FIXTURES = join(__dirname, '..', '__fixtures__');

export function fixture(name: string): Buffer {
  return readFileSync(join(FIXTURES, name));
}

export interface OutputReference {
  sha256: string;
  shape: number[];
  first: number[];
  channelMeans: number[];
}

export interface FileReference {
  size: [number, number];
  mode: string;
  decodedRgbSha256: string;
  deviation?: string;
  torchvision224?: OutputReference;
  caffe224?: OutputReference;
  torchvision160?: OutputReference;
  caffe64?: OutputReference;
  pilBilinear?: Record<string, string>;
}

export const reference = JSON.parse(readFileSync(join(FIXTURES, 'reference.json'), 'utf8')) as {
  pillow: string;
  files: Record<string, FileReference>;
};

/** sha256 of the bytes of a typed array (little-endian floats, as numpy's '<f4'). */
export function sha256(array: Uint8Array | Float32Array): string {
  return createHash('sha256').update(new Uint8Array(array.buffer, array.byteOffset, array.byteLength)).digest('hex');
}

export function channelMeans(hwc: Float32Array): number[] {
  const sums = [0, 0, 0];
  for (let i = 0; i < hwc.length; i++) sums[i % 3] = (sums[i % 3] ?? 0) + (hwc[i] ?? 0);
  return sums.map((s) => s / (hwc.length / 3));
}
