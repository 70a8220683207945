import { ErrorCode, ValidationError } from '@layertap/contracts';
import { assertListPrefix, assertOutputKey, contentTypeFor, outputKeyProblem } from './output-writer';

describe('output keys for writers', () => {
  it('accepts relative keys as the key helpers make them', () => {
    for (const key of ['ds/block1_conv1/a.npy', 'ds/_parts/000000-000000001.jsonl', 'ds/manifest.jsonl', 'x', 'a/b.c/d..e']) {
      expect(outputKeyProblem(key)).toBeUndefined();
    }
  });

  it('names the problem with a key', () => {
    expect(outputKeyProblem('')).toBe('is empty');
    expect(outputKeyProblem('/a')).toBe("starts with '/'");
    expect(outputKeyProblem('a/')).toBe("ends with '/'");
    expect(outputKeyProblem('a//b')).toBe("has an empty segment ('//')");
    expect(outputKeyProblem('a/../b')).toBe("has a '..' segment");
    expect(outputKeyProblem('./b')).toBe("has a '.' segment");
    expect(outputKeyProblem('a\\b')).toBe("contains '\\'");
    expect(outputKeyProblem('a\u0000b')).toBe('contains a control character');
    expect(outputKeyProblem('a/.layertap-tmp-1')).toBe("uses the reserved name prefix '.layertap-tmp-'");
    expect(outputKeyProblem('a'.repeat(1025))).toBe('is longer than 1024 bytes');
  });

  it('throws ValidationError(invalid_output) for a bad key or list prefix', () => {
    expect(() => assertOutputKey('../x')).toThrow(new ValidationError(ErrorCode.InvalidOutput, 'invalid output key "../x": it has a \'..\' segment'));
    expect(() => assertListPrefix('')).not.toThrow();
    expect(() => assertListPrefix('ds/')).not.toThrow();
    expect(() => assertListPrefix('ds/_parts/0000')).not.toThrow();
    expect(() => assertListPrefix('../')).toThrow(ValidationError);
    expect(() => assertListPrefix('/ds')).toThrow(ValidationError);
  });

  it('picks a content type from the extension', () => {
    expect(contentTypeFor('d/l/a.npy')).toBe('application/octet-stream');
    expect(contentTypeFor('d/manifest.jsonl')).toBe('application/x-ndjson');
    expect(contentTypeFor('d/dataset.json')).toBe('application/json');
    expect(contentTypeFor('d.json/noext')).toBe('application/octet-stream');
  });
});
