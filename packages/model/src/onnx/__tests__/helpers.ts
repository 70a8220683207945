// Shared by the ONNX reader's tests: the fixtures made by test/parity/make_onnx_fixtures.py, and decoding.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isLayertapError, type LayertapError } from '@layertap/contracts';
import { onnxModelType } from '../read-onnx';
import type { ModelProto } from '../onnx-types';

export const ONNX_FIXTURES = path.resolve(__dirname, '../../../../../test/fixtures/onnx');

export function fixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(path.join(ONNX_FIXTURES, name)));
}

export function decode(bytes: Uint8Array): ModelProto {
  const type = onnxModelType();
  return type.toObject(type.decode(bytes), { longs: Number, enums: Number, arrays: true }) as ModelProto;
}

/** The LayertapError `fn` throws (fails the test if it throws something else or nothing). */
export function refusal(fn: () => unknown): LayertapError {
  try {
    fn();
  } catch (err) {
    if (isLayertapError(err)) return err;
    throw err;
  }
  throw new Error('expected a refusal, got none');
}
