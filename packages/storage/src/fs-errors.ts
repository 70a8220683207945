import { ErrorCode, LayertapError, TransientError, ValidationError } from '@layertap/contracts';

/** Errors that say the output location itself is wrong: retrying cannot help. */
const PERMANENT: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOTDIR: 'a part of the path is not a directory',
  EEXIST: 'a part of the path is a file, not a directory',
  EISDIR: 'it is a directory',
};

/** Errors that may clear up (disk space freed, file handles released, a network file system back). */
const TRANSIENT = new Set(['ENOSPC', 'EDQUOT', 'EMFILE', 'ENFILE', 'EBUSY', 'EAGAIN', 'EIO', 'ETIMEDOUT', 'ESTALE']);

/** A file system error during `action` on `path` as a LayertapError that says what to fix. */
export function mapFsError(err: unknown, action: string, path: string): LayertapError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
  const reason = PERMANENT[code];
  if (reason) return new ValidationError(ErrorCode.InvalidOutput, `cannot ${action} ${path}: ${reason} (${code})`, { cause: err });
  const message = `cannot ${action} ${path}: ${(err as Error | undefined)?.message ?? String(err)}`;
  if (TRANSIENT.has(code)) return new TransientError(ErrorCode.UploadFailed, message, { cause: err });
  return new LayertapError(ErrorCode.UploadFailed, message, { cause: err });
}
