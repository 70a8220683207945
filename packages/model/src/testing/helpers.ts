// Test helpers for the weights readers: fixtures, a tiny .npy reader, a local HTTP server, seeded tensors.
import { encodeSafetensors } from '@layertap/storage/formats';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LayertapError } from '@layertap/contracts';
import { randomWeight } from '../random-weights';
import { type WeightsMap } from '../weight-specs';
import { VGG16_WEIGHTS } from '../models/vgg16/weight-specs';

/** test/fixtures/parity at the repository root (written by test/parity/make_fixtures.py). */
export const PARITY = path.resolve(__dirname, '..', '..', '..', '..', 'test', 'fixtures', 'parity');
/** test/fixtures/pth at the repository root (written by test/parity/make_pth_fixtures.py with torch). */
export const PTH = path.resolve(__dirname, '..', '..', '..', '..', 'test', 'fixtures', 'pth');

export interface ParityReference {
  torchvision: string;
  spec: string;
  canonical: string;
  shape: number[];
  stride: number;
  storedShape: number[];
  maxAbs: number;
  file: string;
}

export interface ParityCase {
  id: string;
  image: string;
  preprocess: 'torchvision' | 'caffe';
  imageSize: number;
  weights: { seed?: number; files?: string[] };
  check: 'maxAbsRelative' | 'cosine';
  input: { file: string; shape: number[] };
  references: ParityReference[];
}

export interface ParityIndex {
  seed: number;
  tolerances: { maxAbsRelative: number; cosine: number; preprocessMeanAbs: number };
  images: Record<string, { file: string; width: number; height: number }>;
  weights: Record<'keras-h5' | 'safetensors', { file: string; size: number; sha256: string; seed: number; servesUpTo: string }>;
  cases: ParityCase[];
}

export async function parityIndex(): Promise<ParityIndex> {
  return JSON.parse(await readFile(path.join(PARITY, 'index.json'), 'utf8')) as ParityIndex;
}

/** Reads a little-endian float32 .npy (v1/v2, C order), independently of the code under test. */
export async function readNpy(file: string): Promise<{ shape: number[]; data: Float32Array }> {
  const bytes = await readFile(file);
  if (bytes.subarray(0, 6).toString('latin1') !== '\x93NUMPY') throw new Error(`${file} is not .npy`);
  const major = bytes[6];
  const headerLength = major === 1 ? bytes.readUInt16LE(8) : bytes.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + headerLength;
  const header = bytes.subarray(major === 1 ? 10 : 12, start).toString('latin1');
  if (!header.includes("'descr': '<f4'") || header.includes("'fortran_order': True")) throw new Error(`${file}: not C-order <f4: ${header}`);
  const shape = (/'shape': \(([^)]*)\)/.exec(header)?.[1] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset + start, bytes.byteOffset + bytes.length));
  return { shape, data };
}

/** Seeded weights for the given Keras layers, in TF layout (what layertap computes from `--seed`). */
export function seededWeights(seed: number, layers: readonly string[]): WeightsMap {
  const map: WeightsMap = new Map();
  for (const spec of VGG16_WEIGHTS.filter((s) => layers.includes(s.layer))) {
    map.set(spec.name, { shape: [...spec.shape], data: randomWeight(seed, spec) });
  }
  return map;
}

export const CONV_LAYERS = [...new Set(VGG16_WEIGHTS.filter((s) => s.shape.length === 4).map((s) => s.layer))];

/** The LayertapError a promise rejects with (a test failure when it resolves or rejects with something else). */
export async function rejection(promise: Promise<unknown>): Promise<LayertapError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof LayertapError) return err;
    throw err;
  }
  throw new Error('expected a LayertapError');
}

/** The LayertapError a call throws (a test failure when it returns or throws something else). */
export function thrown(fn: () => unknown): LayertapError {
  try {
    fn();
  } catch (err) {
    if (err instanceof LayertapError) return err;
    throw err;
  }
  throw new Error('expected a LayertapError');
}

/** mulberry32: a small seeded generator of numbers in [0, 1), the same on every machine (fuzz and mutation tests). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(tmpdir(), 'layertap-weights-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface TestServer {
  url: string;
  /** Paths requested, in order (with the Range header when there was one). */
  requests: { path: string; range?: string }[];
  close(): Promise<void>;
}

/** An HTTP server on 127.0.0.1 with a free port. */
export async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestServer> {
  const requests: TestServer['requests'] = [];
  const server = createServer((req, res) => {
    requests.push({ path: req.url ?? '', ...(req.headers.range ? { range: req.headers.range } : {}) });
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Serves files from a map of URL path -> bytes; 404 otherwise. */
export function staticFiles(files: Map<string, Uint8Array>) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const body = files.get(req.url ?? '');
    if (!body) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-length': body.length }).end(Buffer.from(body));
  };
}

/** `fetchBytes` over the global fetch, counting downloads. */
export function countingFetch(): { fetchBytes: (uri: string) => Promise<Uint8Array>; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    fetchBytes: async (uri) => {
      calls.push(uri);
      const res = await fetch(uri);
      if (!res.ok) throw new Error(`GET ${uri}: ${res.status}`);
      return new Uint8Array(await res.arrayBuffer());
    },
  };
}

/** A safetensors file of float32 tensors (the storage package's one writer). */
export function safetensorsFile(tensors: readonly { name: string; shape: readonly number[]; data: Float32Array }[], metadata: Record<string, string> = {}): Buffer {
  return encodeSafetensors(tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: [...t.shape], data: t.data })), metadata);
}

/**
 * Serves files from a map of URL path -> bytes as a static file server does: `Range: bytes=a-b` answered
 * with 206 and `Content-Range`, a range past the end with 416; counts the body bytes it sent (`sent.bytes`).
 */
export function rangeFiles(files: Map<string, Uint8Array>, sent: { bytes: number; ranges: number } = { bytes: 0, ranges: 0 }) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const body = files.get(req.url ?? '');
    if (!body) {
      res.writeHead(404).end('not found');
      return;
    }
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (!range) {
      sent.bytes += body.length;
      res.writeHead(200, { 'content-length': body.length, 'accept-ranges': 'bytes' }).end(Buffer.from(body));
      return;
    }
    sent.ranges++;
    const start = Number(range[1]);
    const end = Math.min(range[2] ? Number(range[2]) : body.length - 1, body.length - 1);
    if (start >= body.length) {
      res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
      return;
    }
    const part = body.subarray(start, end + 1);
    sent.bytes += part.length;
    res.writeHead(206, { 'content-length': part.length, 'content-range': `bytes ${start}-${end}/${body.length}` }).end(Buffer.from(part));
  };
}

/** A stored zip archive, optionally with every size and offset in ZIP64 extra fields and a ZIP64 end record. */
export function buildZip(files: { name: string; data: Buffer }[], zip64: boolean, comment = Buffer.alloc(0)): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const file of files) {
    const name = Buffer.from(file.name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(file.data.length & 0xffff, 18); // deliberately not the real fields: readers use the directory
    local.writeUInt16LE(name.length, 26);
    locals.push(local, name, file.data);
    const extra = Buffer.alloc(zip64 ? 28 : 0);
    if (zip64) {
      extra.writeUInt16LE(0x0001, 0);
      extra.writeUInt16LE(24, 2);
      extra.writeBigUInt64LE(BigInt(file.data.length), 4);
      extra.writeBigUInt64LE(BigInt(file.data.length), 12);
      extra.writeBigUInt64LE(BigInt(offset), 20);
    }
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt32LE(zip64 ? 0xffffffff : file.data.length, 20);
    central.writeUInt32LE(zip64 ? 0xffffffff : file.data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt16LE(extra.length, 30);
    central.writeUInt32LE(zip64 ? 0xffffffff : offset, 42);
    centrals.push(central, name, extra);
    offset += 30 + name.length + file.data.length;
  }
  const cd = Buffer.concat(centrals);
  const tail: Buffer[] = [];
  if (zip64) {
    const record = Buffer.alloc(56);
    record.writeUInt32LE(0x06064b50, 0);
    record.writeBigUInt64LE(44n, 4);
    record.writeBigUInt64LE(BigInt(files.length), 24);
    record.writeBigUInt64LE(BigInt(files.length), 32);
    record.writeBigUInt64LE(BigInt(cd.length), 40);
    record.writeBigUInt64LE(BigInt(offset), 48);
    const locator = Buffer.alloc(20);
    locator.writeUInt32LE(0x07064b50, 0);
    locator.writeBigUInt64LE(BigInt(offset + cd.length), 8);
    locator.writeUInt32LE(1, 16);
    tail.push(record, locator);
  }
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(zip64 ? 0xffff : files.length, 8);
  eocd.writeUInt16LE(zip64 ? 0xffff : files.length, 10);
  eocd.writeUInt32LE(zip64 ? 0xffffffff : cd.length, 12);
  eocd.writeUInt32LE(zip64 ? 0xffffffff : offset, 16);
  eocd.writeUInt16LE(comment.length, 20);
  return Buffer.concat([...locals, cd, ...tail, eocd, comment]);
}

/** Pickle (protocol 2) pieces, as torch.save writes them. */
const pk = {
  text: (s: string) => {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length);
    return Buffer.concat([Buffer.from('X'), len, b]);
  },
  int: (n: number) => {
    const b = Buffer.alloc(5);
    b.write('J');
    b.writeInt32LE(n, 1);
    return b;
  },
  global: (module: string, name: string) => Buffer.from(`c${module}\n${name}\n`, 'latin1'),
  tuple: (items: Buffer[]) => Buffer.concat([Buffer.from('('), ...items, Buffer.from('t')]),
};

/**
 * The pickle of a float32 state_dict whose tensor i lives in storage `String(i)`, contiguous, as
 * `torch.save` writes it (`legacy`: persistent ids carry a view slot, as the legacy format's do).
 */
function stateDictPickle(tensors: readonly { name: string; shape: readonly number[] }[], legacy: boolean): Buffer {
  const parts: Buffer[] = [Buffer.from([0x80, 0x02]), pk.global('collections', 'OrderedDict'), Buffer.from(')R(')];
  tensors.forEach((tensor, i) => {
    const numel = tensor.shape.reduce((a, b) => a * b, 1);
    const strides = tensor.shape.map((_, d) => tensor.shape.slice(d + 1).reduce((a, b) => a * b, 1));
    const pid = pk.tuple([pk.text('storage'), pk.global('torch', 'FloatStorage'), pk.text(String(i)), pk.text('cpu'), pk.int(numel), ...(legacy ? [Buffer.from('N')] : [])]);
    parts.push(
      pk.text(tensor.name),
      pk.global('torch._utils', '_rebuild_tensor_v2'),
      pk.tuple([pid, Buffer.from('Q'), pk.int(0), pk.tuple(tensor.shape.map(pk.int)), pk.tuple(strides.map(pk.int)), Buffer.from([0x89]), pk.global('collections', 'OrderedDict'), Buffer.from(')R')]),
      Buffer.from('R'),
    );
  });
  parts.push(Buffer.from('u.'));
  return Buffer.concat(parts);
}

/** A zip-format `.pth` (torch >= 1.6) of float32 tensors. */
export function torchZipFile(tensors: readonly { name: string; shape: readonly number[]; data: Float32Array }[]): Buffer {
  return buildZip(
    [
      { name: 'archive/data.pkl', data: stateDictPickle(tensors, false) },
      { name: 'archive/byteorder', data: Buffer.from('little') },
      ...tensors.map((t, i) => ({ name: `archive/data/${i}`, data: Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength) })),
    ],
    false,
  );
}

/** A legacy-format `.pth` (torch < 1.6) of float32 tensors: five pickles, then each storage. */
export function torchLegacyFile(tensors: readonly { name: string; shape: readonly number[]; data: Float32Array }[]): Buffer {
  const magic = Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]);
  const protocol = Buffer.from([0x80, 0x02, 0x4d, 0xe9, 0x03, 0x2e]);
  const sysInfo = Buffer.concat([Buffer.from([0x80, 0x02, 0x7d]), pk.text('little_endian'), Buffer.from([0x88, 0x73, 0x2e])]);
  const keys = Buffer.concat([Buffer.from([0x80, 0x02]), Buffer.from(']('), ...tensors.map((_, i) => pk.text(String(i))), Buffer.from('e.')]);
  const storages = tensors.flatMap((t) => {
    const count = Buffer.alloc(8);
    count.writeBigInt64LE(BigInt(t.data.length));
    return [count, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)];
  });
  return Buffer.concat([magic, protocol, sysInfo, stateDictPickle(tensors, true), keys, ...storages]);
}

/** A `FetchRange` over the global fetch (`Range:` requests; a 200 is the whole file). */
export async function fetchRangeOverHttp(uri: string, offset: number, length: number): Promise<{ offset: number; bytes: Uint8Array; size: number }> {
  const res = await fetch(uri, { headers: { range: `bytes=${offset}-${offset + length - 1}` } });
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (res.status === 200) return { offset: 0, bytes, size: bytes.length };
  const match = /^bytes (?:(\d+)-\d+|\*)\/(\d+)$/.exec(res.headers.get('content-range') ?? '');
  if (!match || (res.status !== 206 && res.status !== 416)) throw new Error(`GET ${uri} bytes ${offset}+${length}: HTTP ${res.status}`);
  return { offset: res.status === 416 ? offset : Number(match[1]), bytes, size: Number(match[2]) };
}
