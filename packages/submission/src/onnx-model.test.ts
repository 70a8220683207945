import { idProblem } from '@layertap/contracts';
import path from 'node:path';
import { folderName, planOnnxModel } from './onnx-model';

const SQUEEZENET = path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'onnx', 'squeezenet1_1.onnx');

describe('folderName', () => {
  it('keeps safe names and makes ONNX names safe folder names', () => {
    expect(folderName('features.3')).toBe('features.3');
    expect(folderName('/model/features/features.7/Concat')).toBe('model_features_features.7_Concat');
    expect(folderName('onnx::Conv_12')).toBe('onnx_Conv_12');
    expect(folderName('/layer3/Relu_output_0')).toBe('layer3_Relu_output_0');
    expect(folderName('a..b')).toBe('a_b');
    expect(folderName('///')).toBe('tensor');
    for (const name of ['/x/y:z', '..', '_parts', '-a', 'é/ü', 'x'.repeat(500)]) expect(idProblem(folderName(name))).toBeUndefined();
  });
});

describe('planOnnxModel', () => {
  // A probe that answers from a table: the plan's own logic, without ONNX Runtime.
  const shapes: Record<string, number[]> = { 'features.3': [128, 55, 55], 'features.7': [256, 27, 27], 'features.12': [512, 13, 13], logits: [1000] };
  const probe = async (_bytes: Uint8Array, tensors: readonly string[]) => new Map(tensors.map((t) => [t, shapes[t] ?? [64, 111, 111]]));

  it('resolves tensors and node names, records the file, and keeps the largest activations on the way', async () => {
    const planned = await planOnnxModel(SQUEEZENET, { layers: ['features.7', '/model/features/features.3/Concat'], imageSize: 224, workerUri: `file://${SQUEEZENET}`, probe });
    expect(planned.resolved).toEqual([
      { spec: 'features.7', tensor: 'features.7' },
      { spec: 'model_features_features.3_Concat', tensor: 'features.3' },
    ]);
    expect(planned.ref).toMatchObject({ uri: `file://${SQUEEZENET}`, sha256: expect.stringMatching(/^[0-9a-f]{64}$/), input: 'image', imageSize: 224 });
    const names = planned.ref.tensors.map((t) => t.name);
    expect(names).toContain('features.7');
    expect(names).toContain('features.3');
    // Two more: the largest activations before features.7 (for batch sizing), in graph order.
    expect(planned.ref.tensors).toHaveLength(4);
    expect(planned.ref.tensors.map((t) => t.order)).toEqual([...planned.ref.tensors.map((t) => t.order)].sort((a, b) => a - b));
    expect(planned.ref.tensors.find((t) => t.name === 'features.3')?.aliases).toEqual(['model_features_features.3_Concat']);
  });

  it('refuses a tensor twice, a weight, and a batch that changes the shapes', async () => {
    const base = { imageSize: 224, workerUri: 'file:///x.onnx', probe };
    await expect(planOnnxModel(SQUEEZENET, { ...base, layers: ['features.3', '/model/features/features.3/Concat'] })).rejects.toThrow('names one tensor twice');
    await expect(planOnnxModel(SQUEEZENET, { ...base, layers: ['model.features.12.expand3x3.bias'] })).rejects.toThrow("computed from the model's weights alone");
    const fixed = async (_b: Uint8Array, tensors: readonly string[], o: { batchSize?: number }) => new Map(tensors.map((t) => [t, o.batchSize === 2 ? [2000] : [1000]]));
    await expect(planOnnxModel(SQUEEZENET, { ...base, layers: ['logits'], probe: fixed })).rejects.toThrow('export the model with a dynamic batch axis');
  });
});
