// Damaged models: mutated and truncated variants of tiny.onnx (deterministic seed) either parse or are refused
// with a LayertapError, never another exception, never slowly. What parses is also cut.
import { isLayertapError } from '@layertap/contracts';
import { cutOnnxModel } from './cut-onnx';
import { readOnnxModel } from './read-onnx';
import { fixture } from './__tests__/helpers';
import { mulberry32 } from '../testing';

function variants(original: Uint8Array, count: number, seed: number): { what: string; bytes: Uint8Array }[] {
  const random = mulberry32(seed);
  const int = (n: number) => Math.floor(random() * n);
  const out: { what: string; bytes: Uint8Array }[] = [];
  for (let i = 0; i < count; i++) {
    const bytes = original.slice();
    const kind = i % 5;
    if (kind === 0) {
      const end = int(original.length);
      out.push({ what: `truncated at ${end}`, bytes: bytes.subarray(0, end) });
      continue;
    }
    if (kind === 1) {
      // A few random bytes anywhere.
      const n = 1 + int(4);
      for (let k = 0; k < n; k++) bytes[int(bytes.length)] = int(256);
    } else if (kind === 2) {
      // Bit flips.
      for (let k = 0; k < 1 + int(3); k++) {
        const at = int(bytes.length);
        bytes[at] = (bytes[at] as number) ^ (1 << int(8));
      }
    } else if (kind === 3) {
      // Length-like bytes pushed to their extremes (varints: 0x7f, 0xff continuation, 0x00).
      const at = int(bytes.length);
      bytes[at] = [0x00, 0x7f, 0xff, 0x80][int(4)] as number;
    } else {
      // A slice repeated or dropped.
      const from = int(bytes.length);
      const len = 1 + int(32);
      const slice = original.subarray(from, from + len);
      const joined = random() < 0.5
        ? Uint8Array.from([...original.subarray(0, from), ...slice, ...original.subarray(from)])
        : Uint8Array.from([...original.subarray(0, from), ...original.subarray(from + len)]);
      out.push({ what: `slice ${from}+${len}`, bytes: joined });
      continue;
    }
    out.push({ what: `mutation ${i}`, bytes });
  }
  return out;
}

describe('damaged ONNX models', () => {
  it('are read or refused with a LayertapError, each in well under a second', () => {
    const cases = [...variants(fixture('tiny.onnx'), 300, 17), ...variants(fixture('tiny-two-inputs.onnx'), 100, 18)];
    let parsed = 0;
    let refused = 0;
    for (const { what, bytes } of cases) {
      const started = performance.now();
      for (const run of [
        () => readOnnxModel(bytes, 'fuzz.onnx'),
        () => cutOnnxModel(bytes, ['relu'], { inputLayout: 'nhwc', imageSize: 8, source: 'fuzz.onnx' }),
      ]) {
        try {
          run();
          parsed++;
        } catch (err) {
          if (!isLayertapError(err)) throw new Error(`${what}: ${String(err)}`, { cause: err });
          refused++;
        }
      }
      expect(performance.now() - started).toBeLessThan(1000);
    }
    // Both outcomes happen: the mutations are not all harmless, nor all fatal.
    expect(parsed).toBeGreaterThan(20);
    expect(refused).toBeGreaterThan(100);
  });
});
