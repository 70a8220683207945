import { outputUri } from './options';

describe('outputUri (--output)', () => {
  it('makes a relative directory path a file URI from the current directory', () => {
    expect(outputUri('out', '/home/me/work')).toBe('file:///home/me/work/out');
    expect(outputUri('./data/out dir', '/home/me')).toBe('file:///home/me/data/out%20dir');
    expect(outputUri('../shared', '/home/me')).toBe('file:///home/shared');
  });

  it('leaves URIs, absolute paths and what parseOutputUri refuses with its own message as they are', () => {
    for (const value of ['s3://bucket/prefix', 'file:///abs/dir', '/abs/dir', '~/out', '', ' out', 'ou\u0001t', 'ftp://x']) {
      expect(outputUri(value, '/home/me')).toBe(value);
    }
  });
});
