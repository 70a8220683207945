import { ErrorCode, ValidationError } from '@layertap/contracts';
import { datasetKey, datasetPrefix, manifestKey, parseOutputRef, parsePartKey, partKey, partsPrefix, sampleKey, shardKey, shardOutputRef } from './keys';

describe('output keys', () => {
  it('names samples, parts, the manifest and the dataset record', () => {
    expect(sampleKey('cats-2024', 'block3_conv1', 'img_0001')).toBe('cats-2024/block3_conv1/img_0001.npy');
    expect(partKey('cats-2024', 0, 3)).toBe('cats-2024/_parts/000000-000000003.jsonl');
    expect(partKey('cats-2024', 12, 123_456_789)).toBe('cats-2024/_parts/000012-123456789.jsonl');
    expect(manifestKey('cats-2024')).toBe('cats-2024/manifest.jsonl');
    expect(datasetKey('cats-2024')).toBe('cats-2024/dataset.json');
    expect(datasetPrefix('cats-2024')).toBe('cats-2024/');
    expect(partsPrefix('cats-2024')).toBe('cats-2024/_parts/');
    expect(shardKey('cats-2024', 1, 42)).toBe('cats-2024/shards/000001-000000042.safetensors');
  });

  it('points manifest outputs into shards with <key>#<tensor> and splits them back', () => {
    const ref = shardOutputRef(shardKey('cats', 0, 3), 'img_1/features.9');
    expect(ref).toBe('cats/shards/000000-000000003.safetensors#img_1/features.9');
    expect(parseOutputRef(ref)).toEqual({ key: 'cats/shards/000000-000000003.safetensors', tensor: 'img_1/features.9' });
    expect(parseOutputRef('cats/features.9/img_1.npy')).toEqual({ key: 'cats/features.9/img_1.npy' });
  });

  it("refuses 'shards' as a layer folder (it is the shards folder)", () => {
    expect(() => sampleKey('cats', 'shards', 'img')).toThrow(/reserved name/);
  });

  it('makes part keys that sort by run, then chunk', () => {
    const pairs = [
      [1, 0],
      [0, 10],
      [0, 2],
      [10, 1],
      [2, 100],
    ] as const;
    const sorted = pairs.map(([run, chunk]) => partKey('d', run, chunk)).sort();
    expect(sorted.map((key) => parsePartKey(key))).toEqual([
      { datasetId: 'd', run: 0, chunk: 2 },
      { datasetId: 'd', run: 0, chunk: 10 },
      { datasetId: 'd', run: 1, chunk: 0 },
      { datasetId: 'd', run: 2, chunk: 100 },
      { datasetId: 'd', run: 10, chunk: 1 },
    ]);
  });

  it('parses only part keys', () => {
    expect(parsePartKey('d/_parts/000001-000000002.jsonl')).toEqual({ datasetId: 'd', run: 1, chunk: 2 });
    expect(parsePartKey('d/_parts/1-2.jsonl')).toBeUndefined();
    expect(parsePartKey('d/manifest.jsonl')).toBeUndefined();
    expect(parsePartKey('x/d/_parts/000001-000000002.jsonl')).toBeUndefined();
  });

  it('refuses run and chunk numbers that would break the ordering', () => {
    expect(() => partKey('d', -1, 0)).toThrow('run -1 must be an integer from 0 to 999999');
    expect(() => partKey('d', 0, 1e9)).toThrow('chunk 1000000000 must be an integer from 0 to 999999999');
    expect(() => partKey('d', 0, 1.5)).toThrow(RangeError);
  });

  it('refuses unsafe ids with InvalidId and unsafe layer specs with InvalidRequest', () => {
    for (const [make, code, message] of [
      [() => sampleKey('../x', 'fc7', 'a'), ErrorCode.InvalidId, /^dataset id "..\/x" contains a path separator/],
      [() => sampleKey('d', 'fc7', 'a/b'), ErrorCode.InvalidId, /^sample id "a\/b" contains a path separator/],
      [() => sampleKey('d', 'fc7', ''), ErrorCode.InvalidId, /^sample id "" is empty/],
      [() => sampleKey('d', '../fc7', 'a'), ErrorCode.InvalidRequest, /^layer spec "..\/fc7" cannot name an output folder/],
      [() => sampleKey('d', '_parts', 'a'), ErrorCode.InvalidRequest, /starts with '_' \(reserved\)/],
      [() => sampleKey('d', 'manifest.jsonl', 'a'), ErrorCode.InvalidRequest, /reserved name/],
      [() => manifestKey('a b'), ErrorCode.InvalidId, /^dataset id "a b" may only contain/],
    ] as const) {
      let thrown: unknown;
      try {
        make();
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(ValidationError);
      expect(thrown).toMatchObject({ code });
      expect((thrown as Error).message).toMatch(message);
    }
  });
});
