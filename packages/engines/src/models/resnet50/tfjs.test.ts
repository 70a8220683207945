import { ErrorCode, LayertapError } from '@layertap/contracts';
import { getModel } from '@layertap/model';
import { Extractor } from '../../extractor';
import { buildTfjsModel } from '../../tfjs-models';

const resnet = getModel('resnet50');

describe('ResNet-50 on TF.js', () => {
  it('is refused with a clear message', async () => {
    let refusal: unknown;
    try {
      buildTfjsModel(resnet, { imageSize: 224, outputs: ['layer1'] });
    } catch (err) {
      refusal = err;
    }
    expect(refusal).toBeInstanceOf(LayertapError);
    expect((refusal as LayertapError).code).toBe(ErrorCode.InvalidRequest);
    expect((refusal as LayertapError).message).toMatch(/ONNX Runtime only/);
    await expect(Extractor.create({ model: 'resnet50', engine: 'tfjs', imageSize: 64 })).rejects.toThrow(/^ResNet-50 runs on ONNX Runtime only/);
    // `auto` passes TF.js over, saying why, when nothing else is allowed.
    await expect(Extractor.create({ model: 'resnet50', engine: 'auto', backend: 'wasm', imageSize: 64 })).rejects.toThrow(/^no engine can run here: tfjs\/wasm: ResNet-50 runs on ONNX Runtime only/);
  });
});
