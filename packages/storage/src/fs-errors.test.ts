import { ErrorCode, LayertapError, TransientError, ValidationError } from '@layertap/contracts';
import { mapFsError } from './fs-errors';

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: something, open '/x'`), { code });
}

describe('mapFsError', () => {
  it('reports a wrong location as ValidationError (not retried)', () => {
    const err = mapFsError(errno('EACCES'), 'write', '/out/a.npy');
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.code).toBe(ErrorCode.InvalidOutput);
    expect(err.message).toBe('cannot write /out/a.npy: permission denied (EACCES)');
    expect(mapFsError(errno('EROFS'), 'write', '/out').message).toBe('cannot write /out: read-only file system (EROFS)');
  });

  it('reports trouble that may clear up as TransientError', () => {
    const err = mapFsError(errno('ENOSPC'), 'write', '/out/a.npy');
    expect(err).toBeInstanceOf(TransientError);
    expect(err.code).toBe(ErrorCode.UploadFailed);
    expect(err.message).toBe("cannot write /out/a.npy: ENOSPC: something, open '/x'");
  });

  it('reports anything else as a plain LayertapError', () => {
    const err = mapFsError(errno('EWHATEVER'), 'read', '/out/a.npy');
    expect(err).toBeInstanceOf(LayertapError);
    expect(err).not.toBeInstanceOf(ValidationError);
    expect(err).not.toBeInstanceOf(TransientError);
    expect(err.cause).toBeInstanceOf(Error);
  });
});
