// Reading a user's ONNX file: a path, file://, http(s):// or s3:// URI, within a size cap, hashed.
import { ErrorCode, ValidationError, fileUriPath, pathText, redactUri } from '@layertap/contracts';
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { FetchBytes } from '../../weights/weights-cache';

/** Largest ONNX file layertap reads, in MiB, unless `LAYERTAP_MAX_MODEL_MB` says otherwise (protobuf's own limit is 2 GiB). */
export const DEFAULT_MAX_MODEL_MB = 1024;

/** The cap on ONNX files from `LAYERTAP_MAX_MODEL_MB` (default `DEFAULT_MAX_MODEL_MB`), in bytes. */
export function maxModelBytes(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.LAYERTAP_MAX_MODEL_MB?.trim();
  if (!raw) return DEFAULT_MAX_MODEL_MB * 1024 ** 2;
  const mb = Number(raw);
  if (!Number.isInteger(mb) || mb < 1 || mb > 2048) {
    throw new ValidationError(ErrorCode.InvalidRequest, `LAYERTAP_MAX_MODEL_MB must be a whole number of MiB from 1 to 2048, got ${JSON.stringify(raw)}`);
  }
  return mb * 1024 ** 2;
}

export interface OnnxFile {
  bytes: Uint8Array;
  sha256: string;
  /** The URI without credentials, for messages. */
  source: string;
}

export interface ReadOnnxFileOptions {
  /** Downloads `http(s)://` and `s3://` URIs (with the caller's address policy); their bodies are checked against the cap. */
  fetchBytes?: FetchBytes;
  /** Default `maxModelBytes()`. */
  maxBytes?: number;
  /** The sha256 the file must have (what the plan recorded): a file that changed since is refused. */
  sha256?: string;
}

/** Reads an ONNX file whole (it carries its weights), refusing one over the cap before reading it where the size is known. */
export async function readOnnxFile(uri: string, options: ReadOnnxFileOptions = {}): Promise<OnnxFile> {
  const source = redactUri(uri);
  const maxBytes = options.maxBytes ?? maxModelBytes();
  const tooLarge = (size: number) =>
    new ValidationError(
      ErrorCode.InvalidModel,
      `${source} is ${(size / 1024 ** 2).toFixed(1)} MiB, over the ${(maxBytes / 1024 ** 2).toFixed(0)} MiB layertap reads as a model (LAYERTAP_MAX_MODEL_MB)`,
    );
  let bytes: Uint8Array;
  if (/^(https?|s3):\/\//i.test(uri)) {
    if (!options.fetchBytes) throw new ValidationError(ErrorCode.InvalidModel, `${source}: no fetcher for remote models here`);
    bytes = await options.fetchBytes(uri);
    if (bytes.length > maxBytes) throw tooLarge(bytes.length);
  } else {
    const path = /^file:/i.test(uri) ? pathText(fileUriPath(uri)) : uri;
    let handle;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new ValidationError(ErrorCode.InvalidModel, `${source}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory, not an .onnx file' : String((err as Error).message)}`);
    }
    try {
      const { size } = await handle.stat();
      if (size > maxBytes) throw tooLarge(size);
      const buffer = Buffer.allocUnsafe(size);
      let read = 0;
      while (read < size) {
        const { bytesRead } = await handle.read(buffer, read, size - read, read);
        if (bytesRead === 0) break;
        read += bytesRead;
      }
      bytes = buffer.subarray(0, read);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EISDIR') throw new ValidationError(ErrorCode.InvalidModel, `${source} is a directory, not an .onnx file`);
      throw err;
    } finally {
      await handle.close();
    }
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (options.sha256 && sha256 !== options.sha256) {
    throw new ValidationError(ErrorCode.InvalidModel, `${source} changed since the dataset was submitted: its sha256 is ${sha256}, the plan's ${options.sha256}; submit it again as a new dataset`);
  }
  return { bytes, sha256, source };
}
