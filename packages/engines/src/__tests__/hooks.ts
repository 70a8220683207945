// What the engine tests share: hooked outputs collected by spec, and the LayertapError a call ends with.
import { LayertapError } from '@layertap/contracts';
import type { Extractor, LayerOutput } from '../extractor';

/** Collects each hooked output by spec. */
export function collect(extractor: Extractor, specs: string[]): Map<string, LayerOutput> {
  const outputs = new Map<string, LayerOutput>();
  for (const layer of specs) extractor.registerForwardHook(layer, (output) => void outputs.set(output.spec, output));
  return outputs;
}

/** The output collected for `spec` (a test failure when there is none). */
export function get(outputs: Map<string, LayerOutput>, spec: string): LayerOutput {
  const output = outputs.get(spec);
  if (!output) throw new Error(`no output for ${spec}`);
  return output;
}

/** The LayertapError a promise rejects with (a test failure when it resolves or rejects with something else). */
export async function rejection(promise: Promise<unknown>): Promise<LayertapError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof LayertapError) return err;
    throw err;
  }
  throw new Error('expected a LayertapError');
}

/** The LayertapError a call throws. */
export function thrown(fn: () => unknown): LayertapError {
  try {
    fn();
  } catch (err) {
    if (err instanceof LayertapError) return err;
    throw err;
  }
  throw new Error('expected a LayertapError');
}
