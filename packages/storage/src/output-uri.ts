import { ErrorCode, idProblem, ValidationError } from '@layertap/contracts';
import { isAbsolute, normalize } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Where outputs go, parsed from `s3://bucket[/prefix]`, `file:///abs/dir` or `/abs/dir`. */
export type OutputLocation =
  | {
      kind: 's3';
      bucket: string;
      /** Without leading or trailing `/`; `''` for the bucket root. */
      prefix: string;
      /** Canonical form: `s3://bucket` or `s3://bucket/prefix`. */
      uri: string;
    }
  | {
      kind: 'file';
      /** Absolute, normalised, without a trailing `/` (except for `/` itself). */
      dir: string;
      /** Canonical form: `file:///abs/dir`. */
      uri: string;
    };

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const IP_ADDRESS = /^\d+\.\d+\.\d+\.\d+$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** The URI as it may appear in an error message: credentials in it (`//user:pass@`) are masked. */
function shown(uri: string): string {
  const masked = uri.replace(/\/\/[^/@]*@/, '//***@');
  return JSON.stringify(masked.length > 200 ? `${masked.slice(0, 200)}...` : masked);
}

function invalid(uri: string, problem: string): never {
  throw new ValidationError(ErrorCode.InvalidOutput, `invalid output ${shown(uri)}: ${problem}`);
}

/** Why a bucket name is not valid, or `undefined` (S3's general-purpose bucket naming rules). */
export function bucketNameProblem(bucket: string): string | undefined {
  if (!BUCKET.test(bucket)) {
    return `bucket name ${JSON.stringify(bucket)} is not valid: use 3-63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit`;
  }
  if (bucket.includes('..') || bucket.includes('.-') || bucket.includes('-.')) {
    return `bucket name ${JSON.stringify(bucket)} is not valid: no '..', '.-' or '-.'`;
  }
  if (IP_ADDRESS.test(bucket)) return `bucket name ${JSON.stringify(bucket)} is not valid: it looks like an IP address`;
  return undefined;
}

function hasDotSegment(path: string): boolean {
  return path.split('/').some((segment) => segment === '..' || segment === '.');
}

function parseS3(uri: string): OutputLocation {
  if (!/^s3:\/\//i.test(uri)) invalid(uri, 'an S3 output is written s3://bucket[/prefix]');
  const rest = uri.slice('s3://'.length);
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  if (bucket.length === 0) invalid(uri, 'missing bucket name (expected s3://bucket[/prefix])');
  if (bucket.includes('@')) invalid(uri, 'credentials do not belong in the URI; pass them through the environment or S3 settings');
  const bucketProblem = bucketNameProblem(bucket);
  if (bucketProblem) invalid(uri, bucketProblem);
  const prefix = (slash < 0 ? '' : rest.slice(slash + 1)).replace(/\/+$/, '');
  if (prefix.includes('//') || prefix.startsWith('/')) invalid(uri, "the prefix has an empty segment ('//')");
  if (hasDotSegment(prefix)) invalid(uri, "the prefix has a '.' or '..' segment");
  if (/[?#\\]/.test(prefix)) invalid(uri, "the prefix must not contain '?', '#' or '\\'");
  return { kind: 's3', bucket, prefix, uri: prefix ? `s3://${bucket}/${prefix}` : `s3://${bucket}` };
}

function fileLocation(uri: string, path: string): OutputLocation {
  if (hasDotSegment(path)) invalid(uri, "the path has a '.' or '..' segment; give the directory itself");
  let dir = normalize(path);
  if (dir.length > 1) dir = dir.replace(/\/+$/, '');
  return { kind: 'file', dir, uri: pathToFileURL(dir).href };
}

function parseFile(uri: string): OutputLocation {
  const match = /^file:\/\/([^/]*)(\/.*)?$/i.exec(uri);
  if (!match) invalid(uri, 'a file output is written file:///absolute/dir');
  const [, host = '', path = ''] = match;
  if (host !== '' && host !== 'localhost') {
    invalid(uri, `a file URI must be absolute, file:///absolute/dir (this one names host ${JSON.stringify(host)}; a relative path?)`);
  }
  if (path === '') invalid(uri, 'missing the directory path (expected file:///absolute/dir)');
  if (/[?#]/.test(path)) invalid(uri, "a file URI must not have a query or fragment ('?', '#'); percent-encode them");
  // Check before URL parsing, which would silently resolve `..`.
  if (hasDotSegment(path)) invalid(uri, "the path has a '.' or '..' segment; give the directory itself");
  let decoded: string;
  try {
    decoded = fileURLToPath(`file://${path}`);
  } catch (err) {
    invalid(uri, (err as Error).message);
  }
  return fileLocation(uri, decoded);
}

/**
 * Parses and validates an output URI. Accepts `s3://bucket[/prefix]`, `file:///absolute/dir` and a plain
 * absolute path; anything else throws `ValidationError` (`invalid_output`) saying what is wrong.
 */
export function parseOutputUri(uri: string): OutputLocation {
  if (uri.length === 0) invalid(uri, 'it is empty');
  if (uri.trim() !== uri) invalid(uri, 'it has leading or trailing whitespace');
  if (CONTROL.test(uri)) invalid(uri, 'it contains a control character');
  const scheme = SCHEME.exec(uri)?.[1]?.toLowerCase();
  if (scheme === 's3') return parseS3(uri);
  if (scheme === 'file') return parseFile(uri);
  if (scheme !== undefined) invalid(uri, `unsupported scheme "${scheme}:"; use s3://bucket[/prefix] or file:///absolute/dir`);
  if (uri.startsWith('~')) invalid(uri, "'~' is not expanded; give an absolute path or file:///absolute/dir");
  if (!isAbsolute(uri)) invalid(uri, 'it is a relative path; give an absolute path or file:///absolute/dir');
  return fileLocation(uri, uri);
}

/**
 * A dataset folder's URI (`s3://bucket/prefix/<datasetId>`, `file:///dir/<datasetId>` or `/dir/<datasetId>`)
 * split into the output root it was written under and the dataset id, its last path segment.
 */
export function parseDatasetUri(uri: string): { output: string; datasetId: string } {
  const location = parseOutputUri(uri);
  const path = location.kind === 's3' ? location.prefix : location.dir;
  const slash = path.lastIndexOf('/');
  const datasetId = path.slice(slash + 1);
  if (datasetId === '') invalid(uri, 'name the dataset folder: s3://bucket[/prefix]/<datasetId> or file:///dir/<datasetId>');
  const problem = idProblem(datasetId);
  if (problem) invalid(uri, `its last segment names the dataset, but ${JSON.stringify(datasetId)} ${problem}`);
  const parent = path.slice(0, Math.max(slash, 0));
  const output = location.kind === 's3' ? `s3://${location.bucket}${parent ? `/${parent}` : ''}` : pathToFileURL(parent || '/').href;
  return { output, datasetId };
}
