// What the engine tests share: hooked outputs collected by spec, and (from @layertap/model/testing) the
// LayertapError a call ends with.
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

export { rejection, thrown } from '@layertap/model/testing';
