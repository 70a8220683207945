import { ValidationError } from '@layertap/contracts';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describeOutputWriterContract } from './__tests__/output-writer-contract';
import { FileOutputWriter } from './file-output-writer';
import { openOutput } from './open-output';

const temps: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'layertap-file-writer-'));
  temps.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(temps.map((dir) => rm(dir, { recursive: true, force: true })));
});

describeOutputWriterContract('FileOutputWriter', {
  makeWriter: async () => new FileOutputWriter({ dir: join(await tempDir(), 'out') }),
  makeUnwritable: async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'a-file'), 'not a directory');
    return new FileOutputWriter({ dir: join(dir, 'a-file', 'out') });
  },
  unwritableMessage: /^cannot write to output directory \/.*\/a-file\/out: a part of the path is (not a directory|a file, not a directory)/,
});

describe('FileOutputWriter', () => {
  it('takes a path or a file:// URI and reports file:// URLs', async () => {
    const dir = await tempDir();
    const fromPath = new FileOutputWriter({ dir });
    const fromUri = new FileOutputWriter({ dir: pathToFileURL(dir).href });
    expect(fromUri.dir).toBe(dir);
    expect(fromPath.uri).toBe(pathToFileURL(dir).href);
    expect(fromPath.urlFor('ds/l/a b.npy')).toBe(pathToFileURL(join(dir, 'ds', 'l', 'a b.npy')).href);
    expect(() => new FileOutputWriter({ dir: 'relative/out' })).toThrow(ValidationError);
  });

  it('writes files at the key path and leaves no temp files', async () => {
    const dir = await tempDir();
    const w = new FileOutputWriter({ dir });
    await Promise.all(Array.from({ length: 20 }, (_, i) => w.put(`ds/l/${i}.npy`, Buffer.alloc(1000, i))));
    const names = await readdir(join(dir, 'ds', 'l'));
    expect(names.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `${i}.npy`).sort());
  });

  // S3 itself guarantees this for PUT (s3rver does not: it interleaves concurrent writes of one key).
  it('keeps one whole body when puts to one key race', async () => {
    const w = new FileOutputWriter({ dir: await tempDir() });
    const bodies = Array.from({ length: 8 }, (_, i) => Buffer.alloc(50_000 + i, i));
    await Promise.all(bodies.map((body) => w.put('ds/raced.npy', body)));
    const got = await w.get('ds/raced.npy');
    expect(bodies.some((body) => body.equals(got ?? Buffer.alloc(0)))).toBe(true);
    expect(await w.list('')).toEqual(['ds/raced.npy']);
  });

  it('ignores a temp file left by a crash mid-write', async () => {
    const dir = await tempDir();
    const w = new FileOutputWriter({ dir });
    await w.put('ds/l/done.npy', 'done');
    // What a killed writer leaves: a partial temp file, never a partial file under the real name.
    await writeFile(join(dir, 'ds', 'l', '.layertap-tmp-0123456789ab'), 'partial');
    expect(await w.list('ds/')).toEqual(['ds/l/done.npy']);
    expect(await w.exists('ds/l/partial.npy')).toBe(false);
  });

  it('is what openOutput returns for file:// URIs and absolute paths', async () => {
    const dir = await tempDir();
    const a = openOutput(`file://${dir}/out/`);
    const b = openOutput(`${dir}/out`);
    expect(a).toBeInstanceOf(FileOutputWriter);
    expect(b).toBeInstanceOf(FileOutputWriter);
    expect(a.uri).toBe(b.uri);
    await a.put('x.json', '{}');
    expect((await b.get('x.json'))?.toString()).toBe('{}');
  });
});
