// The part of the zip format that PyTorch's checkpoints use: a central directory (ZIP64 when the file or an
// entry passes 4 GiB or 65,535 entries) listing stored, uncompressed entries. Read from the end of the file,
// as zip readers do, so nothing but the directory and the entries asked for is read.
import { ErrorCode, ValidationError } from '@layertap/contracts';
import type { RandomAccess } from './random-access';

export interface ZipEntry {
  name: string;
  /** 0: stored (what torch writes); anything else is refused when the entry is read. */
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;

/** Whether a file starts like a zip archive (a local file header). */
export function looksLikeZip(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
}

function invalid(source: string, problem: string): ValidationError {
  return new ValidationError(ErrorCode.InvalidWeights, `${source}: not a readable zip archive: ${problem}`);
}

function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function safe(value: bigint, source: string, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(source, `${what} ${value} is too large`);
  return Number(value);
}

/** Lists the entries of the zip archive in `file`. */
export async function readZipDirectory(file: RandomAccess, source: string): Promise<ZipEntry[]> {
  if (file.size < EOCD_SIZE) throw invalid(source, `${file.size} bytes is too short`);
  const tailLength = Math.min(file.size, EOCD_SIZE + MAX_COMMENT + 20);
  const tailStart = file.size - tailLength;
  const tail = await file.read(tailStart, tailLength);
  const tv = dataView(tail);
  // The end record is the last signature whose comment length reaches exactly to the end of the file.
  let eocd = -1;
  for (let i = tail.length - EOCD_SIZE; i >= 0; i--) {
    if (tv.getUint32(i, true) === EOCD && i + EOCD_SIZE + tv.getUint16(i + 20, true) === tail.length) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw invalid(source, 'no end-of-central-directory record');
  let entries: number = tv.getUint16(eocd + 10, true);
  let cdSize: number = tv.getUint32(eocd + 12, true);
  let cdOffset: number = tv.getUint32(eocd + 16, true);
  if (entries === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const locator = eocd - 20;
    if (locator < 0 || tv.getUint32(locator, true) !== ZIP64_LOCATOR) throw invalid(source, 'ZIP64 fields without a ZIP64 locator');
    const recordAt = safe(tv.getBigUint64(locator + 8, true), source, 'ZIP64 record offset');
    if (recordAt + 56 > file.size) throw invalid(source, 'the ZIP64 end-of-central-directory record lies outside the file');
    const record = dataView(await file.read(recordAt, 56));
    if (record.getUint32(0, true) !== ZIP64_EOCD) throw invalid(source, 'bad ZIP64 end-of-central-directory record');
    entries = safe(record.getBigUint64(32, true), source, 'entry count');
    cdSize = safe(record.getBigUint64(40, true), source, 'central directory size');
    cdOffset = safe(record.getBigUint64(48, true), source, 'central directory offset');
  }
  if (cdOffset + cdSize > file.size) throw invalid(source, 'the central directory lies outside the file');
  const cd = await file.read(cdOffset, cdSize);
  const v = dataView(cd);
  const out: ZipEntry[] = [];
  let at = 0;
  for (let n = 0; n < entries; n++) {
    if (at + 46 > cd.length || v.getUint32(at, true) !== CENTRAL) throw invalid(source, `central directory entry ${n} is damaged`);
    const method = v.getUint16(at + 10, true);
    let compressedSize = v.getUint32(at + 20, true);
    let size = v.getUint32(at + 24, true);
    const nameLength = v.getUint16(at + 28, true);
    const extraLength = v.getUint16(at + 30, true);
    const commentLength = v.getUint16(at + 32, true);
    let localHeaderOffset = v.getUint32(at + 42, true);
    const nameStart = at + 46;
    if (nameStart + nameLength + extraLength > cd.length) throw invalid(source, `central directory entry ${n} is damaged`);
    const name = Buffer.from(cd.buffer, cd.byteOffset + nameStart, nameLength).toString('utf8');
    // ZIP64 extended information: the 8-byte values of the fields that are 0xffffffff, in this order.
    let extra = nameStart + nameLength;
    const extraEnd = extra + extraLength;
    while (extra + 4 <= extraEnd) {
      const id = v.getUint16(extra, true);
      const length = v.getUint16(extra + 2, true);
      if (id === 0x0001) {
        let field = extra + 4;
        const next = () => {
          if (field + 8 > extra + 4 + length) throw invalid(source, `entry ${name}: short ZIP64 extra field`);
          const value = safe(v.getBigUint64(field, true), source, `entry ${name} field`);
          field += 8;
          return value;
        };
        if (size === 0xffffffff) size = next();
        if (compressedSize === 0xffffffff) compressedSize = next();
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = next();
      }
      extra += 4 + length;
    }
    out.push({ name, method, compressedSize, size, localHeaderOffset });
    at = extraEnd + commentLength;
  }
  return out;
}

/** Where an entry's bytes start: after its local header, whose name and extra field (torch pads it to align
 * the data to 64 bytes) may differ in length from the central directory's. */
export async function entryDataOffset(file: RandomAccess, entry: ZipEntry, source: string): Promise<number> {
  if (entry.method !== 0) {
    throw invalid(source, `entry ${entry.name} is compressed (method ${entry.method}); torch writes stored entries`);
  }
  // Every offset is checked against the file before it is read: they are the writer's word, not facts.
  if (entry.localHeaderOffset + 30 > file.size) throw invalid(source, `entry ${entry.name} lies outside the file`);
  const header = dataView(await file.read(entry.localHeaderOffset, 30));
  if (header.getUint32(0, true) !== LOCAL) throw invalid(source, `entry ${entry.name} has no local header`);
  const start = entry.localHeaderOffset + 30 + header.getUint16(26, true) + header.getUint16(28, true);
  if (start + entry.size > file.size) throw invalid(source, `entry ${entry.name} lies outside the file`);
  return start;
}

/** An entry's bytes (a view when the file is in memory, otherwise a buffer of its own). */
export async function readZipEntry(file: RandomAccess, entry: ZipEntry, source: string): Promise<Uint8Array> {
  return file.read(await entryDataOffset(file, entry, source), entry.size);
}
