import { ErrorCode, ValidationError } from '@layertap/contracts';
import { parseDatasetUri, parseOutputUri } from './output-uri';

function problem(uri: string): string {
  try {
    parseOutputUri(uri);
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    expect(err).toMatchObject({ code: ErrorCode.InvalidOutput });
    return (err as Error).message;
  }
  throw new Error(`accepted ${uri}`);
}

describe('parseOutputUri', () => {
  it('parses s3 URIs, normalising the prefix', () => {
    expect(parseOutputUri('s3://my-bucket')).toEqual({ kind: 's3', bucket: 'my-bucket', prefix: '', uri: 's3://my-bucket' });
    expect(parseOutputUri('s3://my-bucket/')).toEqual({ kind: 's3', bucket: 'my-bucket', prefix: '', uri: 's3://my-bucket' });
    expect(parseOutputUri('s3://my.bucket/acts/vgg16/')).toEqual({
      kind: 's3',
      bucket: 'my.bucket',
      prefix: 'acts/vgg16',
      uri: 's3://my.bucket/acts/vgg16',
    });
    expect(parseOutputUri('S3://abc/x').uri).toBe('s3://abc/x');
  });

  it('parses file URIs and absolute paths', () => {
    expect(parseOutputUri('file:///data/out')).toEqual({ kind: 'file', dir: '/data/out', uri: 'file:///data/out' });
    expect(parseOutputUri('file:///data/out/')).toEqual({ kind: 'file', dir: '/data/out', uri: 'file:///data/out' });
    expect(parseOutputUri('file://localhost/data/out')).toMatchObject({ kind: 'file', dir: '/data/out' });
    expect(parseOutputUri('file:///data/my%20out')).toEqual({ kind: 'file', dir: '/data/my out', uri: 'file:///data/my%20out' });
    expect(parseOutputUri('/data//out/')).toEqual({ kind: 'file', dir: '/data/out', uri: 'file:///data/out' });
    expect(parseOutputUri('/')).toEqual({ kind: 'file', dir: '/', uri: 'file:///' });
  });

  it('says what is wrong with a bad URI', () => {
    expect(problem('')).toBe('invalid output "": it is empty');
    expect(problem('out/acts')).toBe('invalid output "out/acts": it is a relative path; give an absolute path or file:///absolute/dir');
    expect(problem('./out')).toMatch(/relative path/);
    expect(problem('~/out')).toMatch(/'~' is not expanded/);
    expect(problem('http://example.com/out')).toBe(
      'invalid output "http://example.com/out": unsupported scheme "http:"; use s3://bucket[/prefix] or file:///absolute/dir',
    );
    expect(problem('gs://bucket/x')).toMatch(/unsupported scheme "gs:"/);
    expect(problem('s3://')).toMatch(/missing bucket name/);
    expect(problem('s3:///prefix')).toMatch(/missing bucket name/);
    expect(problem('s3:bucket')).toMatch(/s3:\/\/bucket\[\/prefix\]/);
    expect(problem('s3://My_Bucket/x')).toMatch(/bucket name "My_Bucket" is not valid: use 3-63 lowercase letters/);
    expect(problem('s3://ab')).toMatch(/bucket name "ab" is not valid/);
    expect(problem('s3://a..b')).toMatch(/no '\.\.'/);
    expect(problem('s3://192.168.1.1/x')).toMatch(/IP address/);
    expect(problem('s3://bucket/a/../b')).toMatch(/'\.' or '\.\.' segment/);
    expect(problem('s3://bucket/a//b')).toMatch(/empty segment/);
    expect(problem('s3://bucket/a?x=1')).toMatch(/must not contain '\?'/);
    expect(problem('file://relative/dir')).toMatch(/must be absolute, file:\/\/\/absolute\/dir \(this one names host "relative"/);
    expect(problem('file:relative')).toMatch(/file:\/\/\/absolute\/dir/);
    expect(problem('file:///data/../etc')).toMatch(/'\.' or '\.\.' segment/);
    expect(problem('/data/../etc')).toMatch(/'\.' or '\.\.' segment/);
    expect(problem('file:///data/a%2Fb')).toMatch(/encoded/);
    expect(problem(' /data')).toMatch(/whitespace/);
    expect(problem('/data/\nx')).toMatch(/control character/);
  });

  it('never echoes credentials', () => {
    const message = problem('s3://AKIAKEY:secretvalue@bucket/x');
    expect(message).not.toContain('secretvalue');
    expect(message).not.toContain('AKIAKEY');
    expect(message).toMatch(/credentials do not belong in the URI/);
    expect(problem('https://user:hunter2@host/x')).not.toContain('hunter2');
  });
});

describe('parseDatasetUri', () => {
  it('splits a dataset folder into its output root and the dataset id', () => {
    expect(parseDatasetUri('s3://bucket/acts/cats-1')).toEqual({ output: 's3://bucket/acts', datasetId: 'cats-1' });
    expect(parseDatasetUri('s3://bucket/cats-1/')).toEqual({ output: 's3://bucket', datasetId: 'cats-1' });
    expect(parseDatasetUri('file:///data/out/cats-1')).toEqual({ output: 'file:///data/out', datasetId: 'cats-1' });
    expect(parseDatasetUri('/data/my%20out/cats-1')).toEqual({ output: 'file:///data/my%2520out', datasetId: 'cats-1' });
    expect(parseDatasetUri('/cats-1')).toEqual({ output: 'file:///', datasetId: 'cats-1' });
  });

  it('refuses a URI without a dataset folder, or whose last segment is no dataset id', () => {
    expect(() => parseDatasetUri('s3://bucket')).toThrow('invalid output "s3://bucket": name the dataset folder');
    expect(() => parseDatasetUri('/')).toThrow('name the dataset folder');
    expect(() => parseDatasetUri('s3://bucket/out/-x')).toThrow(`its last segment names the dataset, but "-x" may only contain`);
    expect(() => parseDatasetUri('out/cats')).toThrow(ValidationError);
  });
});
