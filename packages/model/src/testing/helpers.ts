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

export async function rejection(promise: Promise<unknown>): Promise<LayertapError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof LayertapError) return err;
    throw err;
  }
  throw new Error('expected a LayertapError');
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
