import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import {
  DEFAULT_MAX_SAMPLES,
  DEFAULT_MAX_SOURCE_BYTES,
  ErrorCode,
  MAX_URI_BYTES,
  ValidationError,
  assignSampleIds,
  fileUriFromBytes,
  isUtf8,
  pathText,
  percentEncodeBytes,
  idProblem,
  type Sample,
} from '@layertap/contracts';

/** Image file endings picked up from directories and `s3://` prefixes. */
export const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif', '.bmp', '.heic', '.heif']);

/** Longest manifest line accepted (a URI plus an id). */
export const MAX_LINE_BYTES = 16 * 1024;

export interface ResolveSourceOptions {
  /** Needed for `s3://` sources. */
  s3?: S3Client;
  /**
   * Largest source in bytes: a list or manifest file's size, or the URIs a directory or `s3://` prefix lists.
   * Default `DEFAULT_MAX_SOURCE_BYTES` (64 MiB); the file is refused before it is read.
   */
  maxBytes?: number;
  /** Most samples a source may hold. Default `DEFAULT_MAX_SAMPLES` (1,000,000). */
  maxSamples?: number;
  /**
   * Called with each file of a directory or `s3://` prefix that is left out because its extension is not an
   * image's (`IMAGE_EXTENSIONS`), so that the submission can say how many were.
   */
  onSkipped?: (name: string) => void;
}

/** The limits a source is read under, with the settings that change them (for messages). */
interface SourceLimits {
  maxBytes: number;
  maxSamples: number;
}

interface Entry {
  uri: string;
  id?: string;
  /** Where the entry came from, for error messages (`list.txt:12`). */
  where: string;
}

function invalid(message: string): ValidationError {
  return new ValidationError(ErrorCode.InvalidSource, message);
}

function size(bytes: number): string {
  if (bytes >= 1024 ** 2) return `${Number((bytes / 1024 ** 2).toFixed(1))} MiB`;
  return bytes >= 1024 ? `${Number((bytes / 1024).toFixed(1))} KiB` : `${bytes} bytes`;
}

function tooBig(what: string, bytes: number, limits: SourceLimits): ValidationError {
  return invalid(
    `${what} is ${size(bytes)}, over the limit of ${size(limits.maxBytes)} for a source (LAYERTAP_MAX_SOURCE_MB): ` +
      'split it into several datasets, or raise the limit',
  );
}

function tooMany(where: string, limits: SourceLimits): ValidationError {
  return invalid(`${where}: more than ${limits.maxSamples} samples (LAYERTAP_MAX_SAMPLES): split it into several datasets, or raise the limit`);
}

/** Counts entries as a source is read, refusing past the limits (before the whole source is in memory). */
class EntryCounter {
  private count = 0;
  private bytes = 0;

  constructor(
    private readonly source: string,
    private readonly limits: SourceLimits,
  ) {}

  add(uri: string, where?: string): void {
    this.count++;
    this.bytes += Buffer.byteLength(uri);
    if (this.count > this.limits.maxSamples) throw tooMany(where ?? `source ${this.source}`, this.limits);
    if (this.bytes > this.limits.maxBytes) throw tooBig(`the list of ${this.source}`, this.bytes, this.limits);
  }
}

/** A URI with a scheme stays as it is; a plain path becomes an absolute `file://` URI. */
export function normalizeUri(raw: string, baseDir: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) || /^[a-z][a-z0-9+.-]*:/i.test(raw) && !/^[a-z]:[\\/]/i.test(raw)) return raw;
  return pathToFileURL(path.resolve(baseDir, raw)).href;
}

function checkLine(line: string, where: string): void {
  if (Buffer.byteLength(line) > MAX_LINE_BYTES) throw invalid(`${where}: line is longer than ${MAX_LINE_BYTES} bytes`);
}

function parseJsonl(text: string, file: string, baseDir: string, counter: EntryCounter): Entry[] {
  const entries: Entry[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const where = `${file}:${i + 1}`;
    if (!line.trim()) return;
    checkLine(line, where);
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw invalid(`${where}: not valid JSON (${(err as Error).message})`);
    }
    const record = value as { uri?: unknown; id?: unknown };
    if (typeof record !== 'object' || record === null || typeof record.uri !== 'string' || !record.uri.trim()) {
      throw invalid(`${where}: each line needs a "uri" string`);
    }
    if (record.id !== undefined && typeof record.id !== 'string') throw invalid(`${where}: "id" must be a string`);
    const uri = normalizeUri(record.uri.trim(), baseDir);
    counter.add(uri, where);
    entries.push({ uri, ...(record.id !== undefined ? { id: record.id } : {}), where });
  });
  return entries;
}

/** Splits one CSV record (RFC 4180 quoting; records do not span lines here). */
export function parseCsvLine(line: string): string[] {
  const cells: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      cells.push(cell);
      cell = '';
    } else cell += ch;
  }
  cells.push(cell);
  return cells.map((c) => c.trim());
}

function parseCsv(text: string, file: string, baseDir: string, counter: EntryCounter): Entry[] {
  const lines = text.split(/\r?\n/);
  const header = parseCsvLine((lines[0] ?? '').replace(/^\uFEFF/, '')).map((h) => h.toLowerCase());
  const uriCol = header.indexOf('uri');
  const idCol = header.indexOf('id');
  if (uriCol < 0) throw invalid(`${file}: the CSV header needs a "uri" column (found: ${header.join(', ') || 'nothing'})`);
  const entries: Entry[] = [];
  lines.slice(1).forEach((line, i) => {
    const where = `${file}:${i + 2}`;
    if (!line.trim()) return;
    checkLine(line, where);
    const cells = parseCsvLine(line);
    const uri = cells[uriCol];
    if (!uri) throw invalid(`${where}: empty uri`);
    const id = idCol >= 0 ? cells[idCol] : undefined;
    const normalized = normalizeUri(uri, baseDir);
    counter.add(normalized, where);
    entries.push({ uri: normalized, ...(id ? { id } : {}), where });
  });
  return entries;
}

function parseList(text: string, file: string, baseDir: string, counter: EntryCounter): Entry[] {
  const entries: Entry[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const where = `${file}:${i + 1}`;
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith('#')) return;
    checkLine(line, where);
    const uri = normalizeUri(trimmed, baseDir);
    counter.add(uri, where);
    entries.push({ uri, where });
  });
  return entries;
}

const SEP = Buffer.from(path.sep);

/** `dir/name` of raw bytes (`dir` absolute; the root `/` gets no second separator). */
function joinBytes(dir: Buffer, name: Buffer): Buffer {
  return dir.subarray(-SEP.length).equals(SEP) ? Buffer.concat([dir, name]) : Buffer.concat([dir, SEP, name]);
}

/**
 * Files below `dir`, as raw path bytes: Linux names need not be UTF-8, and a name decoded to text would lose
 * bytes (a Latin-1 `\xe9` becomes U+FFFD) and name a file that does not exist.
 */
async function walk(dir: Buffer, out: Buffer[], counter: EntryCounter, onSkipped?: (name: string) => void): Promise<void> {
  const items = await readdir(dir, { encoding: 'buffer', withFileTypes: true });
  items.sort((a, b) => Buffer.compare(a.name, b.name));
  for (const item of items) {
    const full = joinBytes(dir, item.name);
    const name = item.name.toString('latin1'); // the extension is ASCII either way
    if (item.isDirectory()) await walk(full, out, counter, onSkipped);
    else if (item.isFile() && IMAGE_EXTENSIONS.has(path.extname(name).toLowerCase())) {
      counter.add(pathText(full));
      out.push(full);
    } else if (item.isFile()) onSkipped?.(pathText(full));
  }
}

async function listS3(source: string, s3: S3Client, counter: EntryCounter, onSkipped?: (name: string) => void): Promise<Entry[]> {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(source);
  if (!m || !m[1]) throw invalid(`${source}: expected s3://bucket/prefix`);
  const bucket = m[1];
  const prefix = m[2] ?? '';
  const entries: Entry[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const obj of page.Contents ?? []) {
      if (obj.Key && IMAGE_EXTENSIONS.has(path.extname(obj.Key).toLowerCase())) {
        const uri = `s3://${bucket}/${obj.Key}`;
        counter.add(uri);
        entries.push({ uri, where: uri });
      } else if (obj.Key && !obj.Key.endsWith('/')) onSkipped?.(`s3://${bucket}/${obj.Key}`);
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return entries;
}

function prefixLength(source: string): number {
  const prefix = source.replace(/^s3:\/\/[^/]+\/?/, '');
  return prefix.endsWith('/') || prefix === '' ? prefix.length : prefix.lastIndexOf('/') + 1;
}

/** Ids for entries: the manifest's where given, else derived from the URI; all checked and unique; URIs at most `MAX_URI_BYTES`. */
export function toSamples(entries: readonly Entry[], relativeNames?: readonly string[]): Sample[] {
  const derived = assignSampleIds(relativeNames ?? entries.map((e) => e.uri));
  const seen = new Map<string, string>();
  return entries.map((entry, i) => {
    const bytes = Buffer.byteLength(entry.uri);
    if (bytes > MAX_URI_BYTES) throw invalid(`${entry.where}: the URI is ${bytes} bytes, over the limit of ${MAX_URI_BYTES} bytes`);
    const id = entry.id ?? (derived[i] as string);
    const problem = idProblem(id);
    if (problem) throw new ValidationError(ErrorCode.InvalidId, `${entry.where}: sample id ${JSON.stringify(id.slice(0, 80))} ${problem}`);
    const first = seen.get(id);
    if (first) throw new ValidationError(ErrorCode.DuplicateId, `${entry.where}: duplicate sample id "${id}" (first at ${first})`);
    seen.set(id, entry.where);
    return { id, uri: entry.uri };
  });
}

/**
 * Reads a dataset source into samples: a text file of URIs, a `.jsonl` or `.csv` manifest (`uri`, optional
 * `id`), a local directory (images found recursively) or an `s3://` prefix. Throws a ValidationError naming
 * the file and line for anything wrong; an empty source is an error, and so is one past the limits (a file
 * over `maxBytes` is refused before it is read; a listing stops at the first sample over a limit).
 */
export async function resolveSource(source: string, options: ResolveSourceOptions = {}): Promise<Sample[]> {
  const limits: SourceLimits = { maxBytes: options.maxBytes ?? DEFAULT_MAX_SOURCE_BYTES, maxSamples: options.maxSamples ?? DEFAULT_MAX_SAMPLES };
  const counter = new EntryCounter(source, limits);
  let entries: Entry[];
  let names: string[] | undefined;
  if (source.startsWith('s3://')) {
    if (!options.s3) throw invalid('s3:// sources need S3 settings');
    entries = await listS3(source, options.s3, counter, options.onSkipped);
    names = entries.map((e) => e.uri.slice(`s3://${source.slice(5).split('/')[0]}/`.length + prefixLength(source)));
  } else {
    const local = source.startsWith('file://') ? fileURLToPath(source) : path.resolve(source);
    let info;
    try {
      info = await stat(local);
    } catch (err) {
      throw invalid(`cannot read source ${source}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`);
    }
    if (info.isDirectory()) {
      const files: Buffer[] = [];
      const root = Buffer.from(local);
      await walk(root, files, counter, options.onSkipped);
      entries = files.map((f) => ({ uri: fileUriFromBytes(f), where: pathText(f) }));
      // A name that is not UTF-8 gives its id in the URI's spelling: `caf\xe9.jpg` -> `caf%E9.jpg` -> `caf_E9`.
      const relative = files.map((f) => f.subarray(joinBytes(root, Buffer.alloc(0)).length));
      names = relative.map((r) => (isUtf8(r) ? r.toString('utf8') : percentEncodeBytes(r)));
    } else {
      if (info.size > limits.maxBytes) throw tooBig(path.basename(local), info.size, limits);
      let text: string;
      try {
        // A UTF-8 byte order mark is not part of the first line.
        text = (await readFile(local, 'utf8')).replace(/^\uFEFF/, '');
      } catch (err) {
        throw invalid(`cannot read source ${source}: ${(err as Error).message}`);
      }
      const ext = path.extname(local).toLowerCase();
      const baseDir = path.dirname(local);
      const file = path.basename(local);
      // The file's size was its byte limit; its lines are counted, not their (absolute) URIs' bytes again.
      const lines = new EntryCounter(source, { ...limits, maxBytes: Number.POSITIVE_INFINITY });
      entries =
        ext === '.jsonl' || ext === '.ndjson'
          ? parseJsonl(text, file, baseDir, lines)
          : ext === '.csv'
            ? parseCsv(text, file, baseDir, lines)
            : parseList(text, file, baseDir, lines);
    }
  }
  if (entries.length === 0) throw new ValidationError(ErrorCode.EmptyManifest, `source ${source} holds no images`);
  // Ids from relative paths: `cats/001.jpg` -> `cats__001`, so equal file names in different folders differ.
  return toSamples(entries, names?.map((n) => n.split(/[\\/]/).join('__')));
}

/**
 * Groups of sample ids that differ only by case (`Cat`, `cat`), in the order their first id appears: separate
 * objects on S3 and files on Linux, one file on a case-insensitive file system (macOS, Windows).
 */
export function caseCollisions(samples: readonly Pick<Sample, 'id'>[]): string[][] {
  const groups = new Map<string, string[]>();
  for (const { id } of samples) {
    const key = id.toLowerCase();
    const group = groups.get(key);
    if (group) group.push(id);
    else groups.set(key, [id]);
  }
  return [...groups.values()].filter((group) => group.length > 1);
}
