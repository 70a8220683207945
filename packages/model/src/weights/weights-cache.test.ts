import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PARITY, countingFetch, parityIndex, rejection, serve, staticFiles, withTempDir, type TestServer } from '../testing/helpers';
import { loadWeights } from './load-weights';
import { encodeTfjsLayers } from './tfjs-layers';
import { displayUri } from './weights-cache';
import { seededWeights } from '../testing/helpers';

describe('remote weights and the cache', () => {
  let server: TestServer;
  let safetensors: Buffer;
  let sha256: string;
  const tfjs = encodeTfjsLayers(
    [...seededWeights(6, ['block1_conv1'])].map(([name, t]) => ({ name, ...t })),
    {},
  );

  beforeAll(async () => {
    const index = await parityIndex();
    safetensors = await readFile(path.join(PARITY, index.weights.safetensors.file));
    sha256 = index.weights.safetensors.sha256;
    const files = new Map<string, Uint8Array>([
      ['/w/vgg16.bin', safetensors],
      ['/w/junk.bin', Buffer.from('<html>login required</html>')],
      ['/m/model.json', Buffer.from(tfjs.modelJson)],
      ...tfjs.shards.map((s) => [`/m/${s.name}`, s.bytes] as [string, Uint8Array]),
    ]);
    server = await serve(staticFiles(files));
  });
  afterAll(() => server.close());

  it('downloads once: a second load (another process, same cache dir) reads the cached copy', async () => {
    await withTempDir(async (cacheDir) => {
      const uri = `${server.url}/w/vgg16.bin`;
      const first = countingFetch();
      const a = await loadWeights(uri, { fetchBytes: first.fetchBytes, cacheDir });
      expect(first.calls).toEqual([uri]);
      expect(a.sha256).toBe(sha256);
      expect(a.path).toBe(path.join(cacheDir, `${sha256}.safetensors`));
      expect(a.description).toBe(`${uri} (safetensors, torchvision keys, sha256 ${sha256})`);

      const second = countingFetch();
      const b = await loadWeights(uri, { fetchBytes: second.fetchBytes, cacheDir });
      expect(second.calls).toEqual([]);
      expect(b.sha256).toBe(sha256);
      expect(b.tensors.get('block2_conv2/kernel')?.data).toEqual(a.tensors.get('block2_conv2/kernel')?.data);
      expect(server.requests.filter((r) => r.path === '/w/vgg16.bin')).toHaveLength(1);

      // Without a fetch function, a cached URI still loads.
      expect((await loadWeights(uri, { cacheDir })).sha256).toBe(sha256);

      const index = await readdir(path.join(cacheDir, 'index'));
      expect(index).toHaveLength(1);
      expect(JSON.parse(await readFile(path.join(cacheDir, 'index', index[0]!), 'utf8'))).toEqual({
        uri,
        sha256,
        file: `${sha256}.safetensors`,
        size: safetensors.length,
      });
    });
  });

  it('downloads again when the cached copy no longer matches its hash', async () => {
    await withTempDir(async (cacheDir) => {
      const uri = `${server.url}/w/vgg16.bin`;
      await loadWeights(uri, { fetchBytes: countingFetch().fetchBytes, cacheDir });
      const cached = path.join(cacheDir, `${sha256}.safetensors`);
      const damaged = Buffer.from(safetensors);
      damaged[damaged.length - 1] = damaged[damaged.length - 1]! ^ 0xff;
      await writeFile(cached, damaged);
      const again = countingFetch();
      const loaded = await loadWeights(uri, { fetchBytes: again.fetchBytes, cacheDir });
      expect(again.calls).toEqual([uri]);
      expect(loaded.sha256).toBe(sha256);
      expect((await readFile(cached)).equals(safetensors)).toBe(true);
    });
  });

  it('does not keep a download it cannot read', async () => {
    await withTempDir(async (cacheDir) => {
      const uri = `${server.url}/w/junk.bin`;
      for (let attempt = 1; attempt <= 2; attempt++) {
        const fetcher = countingFetch();
        const err = await rejection(loadWeights(uri, { fetchBytes: fetcher.fetchBytes, cacheDir }));
        expect(err.message).toContain('is not a weights file layertap reads');
        expect(fetcher.calls).toEqual([uri]);
      }
      expect(await readdir(path.join(cacheDir, 'index'))).toEqual([]);
      expect((await readdir(cacheDir)).sort()).toEqual(['index']);
    });
  });

  it('loads a remote TF.js model.json with its shards beside it, cached file by file', async () => {
    await withTempDir(async (cacheDir) => {
      const uri = `${server.url}/m/model.json`;
      const first = countingFetch();
      const a = await loadWeights(uri, { fetchBytes: first.fetchBytes, cacheDir });
      expect(first.calls).toEqual([uri, `${server.url}/m/group1-shard1of1.bin`]);
      expect(a.format).toBe('tfjs-layers');
      expect(a.tensors.size).toBe(2);
      const second = countingFetch();
      const b = await loadWeights(uri, { fetchBytes: second.fetchBytes, cacheDir });
      expect(second.calls).toEqual([]);
      expect(b.sha256).toBe(a.sha256);
    });
  });

  it('resolves s3:// shards next to their model.json', async () => {
    await withTempDir(async (cacheDir) => {
      const objects = new Map<string, Uint8Array>([
        ['s3://bucket/models/vgg/model.json', Buffer.from(tfjs.modelJson)],
        ['s3://bucket/models/vgg/group1-shard1of1.bin', tfjs.shards[0]!.bytes],
      ]);
      const calls: string[] = [];
      const loaded = await loadWeights('s3://bucket/models/vgg/model.json', {
        cacheDir,
        fetchBytes: async (uri) => {
          calls.push(uri);
          const body = objects.get(uri);
          if (!body) throw new Error(`no object ${uri}`);
          return body;
        },
      });
      expect(calls).toEqual(['s3://bucket/models/vgg/model.json', 's3://bucket/models/vgg/group1-shard1of1.bin']);
      expect(loaded.description).toContain('s3://bucket/models/vgg/model.json (tfjs-layers');
    });
  });

  it('keeps credentials and query strings out of descriptions', () => {
    expect(displayUri('https://user:pw@host.example/w.h5?X-Amz-Signature=s3cr3t')).toBe('https://host.example/w.h5?…');
    expect(displayUri('s3://bucket/w.h5')).toBe('s3://bucket/w.h5');
    expect(displayUri('s3://AKIA:secret@bucket/w.h5')).toBe('s3://bucket/w.h5');
  });
});
