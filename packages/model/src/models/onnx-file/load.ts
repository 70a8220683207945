// Reading a user's ONNX file: a path, file://, http(s):// or s3:// URI, within a size cap, hashed.
import { ErrorCode, ValidationError, fileUriPath, pathText, redactUri } from '@layertap/contracts';
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { checkOnnxSize } from '../../onnx/size';
import type { FetchBytes } from '../../weights/weights-cache';
import { maxModelBytes } from '../../weights/weights-env';

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
  let bytes: Uint8Array;
  if (/^(https?|s3):\/\//i.test(uri)) {
    if (!options.fetchBytes) throw new ValidationError(ErrorCode.InvalidModel, `${source}: no fetcher for remote models here`);
    bytes = await options.fetchBytes(uri);
    checkOnnxSize(bytes.length, source, maxBytes);
  } else {
    const path = /^file:/i.test(uri) ? pathText(fileUriPath(uri)) : uri;
    const info = await stat(path).catch((err: NodeJS.ErrnoException) => {
      throw new ValidationError(ErrorCode.InvalidModel, `${source}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
    });
    if (info.isDirectory()) throw new ValidationError(ErrorCode.InvalidModel, `${source} is a directory, not an .onnx file`);
    checkOnnxSize(info.size, source, maxBytes);
    bytes = await readFile(path);
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (options.sha256 && sha256 !== options.sha256) {
    throw new ValidationError(ErrorCode.InvalidModel, `${source} changed since the dataset was submitted: its sha256 is ${sha256}, the plan's ${options.sha256}; submit it again as a new dataset`);
  }
  return { bytes, sha256, source };
}
