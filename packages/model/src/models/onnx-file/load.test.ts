import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { maxModelBytes } from '../../weights/weights-env';
import { readOnnxFile } from './load';

describe('readOnnxFile', () => {
  let dir: string;
  let file: string;
  const bytes = Buffer.from('not really a model, but bytes to hash');
  const sha256 = createHash('sha256').update(bytes).digest('hex');

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'onnx-load-'));
    file = path.join(dir, 'm.onnx');
    await writeFile(file, bytes);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads a path or a file URI whole and hashes it', async () => {
    for (const uri of [file, pathToFileURL(file).href]) {
      const read = await readOnnxFile(uri);
      expect(Buffer.from(read.bytes)).toEqual(bytes);
      expect(read.sha256).toBe(sha256);
    }
  });

  it('checks the sha256 the plan recorded', async () => {
    await expect(readOnnxFile(file, { sha256 })).resolves.toMatchObject({ sha256 });
    await expect(readOnnxFile(file, { sha256: '0'.repeat(64) })).rejects.toThrow(/changed since the dataset was submitted: its sha256 is [0-9a-f]{64}, the plan's 0000/);
  });

  it('refuses a file over the cap before reading it, and a remote one whose body is', async () => {
    await expect(readOnnxFile(file, { maxBytes: 10 })).rejects.toMatchObject({ code: 'invalid_model', message: expect.stringContaining('LAYERTAP_MAX_MODEL_MB') });
    const fetchBytes = jest.fn(async () => new Uint8Array(11));
    await expect(readOnnxFile('https://example.com/m.onnx?X-Amz-Signature=secret', { maxBytes: 10, fetchBytes })).rejects.toThrow(/^https:\/\/example\.com\/m\.onnx.* is 0\.0 MB, over/);
    await expect(readOnnxFile('https://example.com/m.onnx?X-Amz-Signature=secret', { maxBytes: 10, fetchBytes })).rejects.not.toThrow('secret');
  });

  it('says what is wrong with a missing file and a directory', async () => {
    await expect(readOnnxFile(path.join(dir, 'nope.onnx'))).rejects.toThrow('nope.onnx: no such file');
    await expect(readOnnxFile(dir)).rejects.toThrow('is a directory, not an .onnx file');
  });

  it('reads LAYERTAP_MAX_MODEL_MB', () => {
    expect(maxModelBytes({})).toBe(1024 * 1024 ** 2);
    expect(maxModelBytes({ LAYERTAP_MAX_MODEL_MB: '64' })).toBe(64 * 1024 ** 2);
    expect(() => maxModelBytes({ LAYERTAP_MAX_MODEL_MB: '4096' })).toThrow('from 1 to 2048');
  });
});
