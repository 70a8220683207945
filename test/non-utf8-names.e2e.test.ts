/**
 * A directory source holding a file whose name is not UTF-8 (Latin-1 `caf\xe9.jpg`, as old archives and
 * some cameras write them): its URI percent-encodes the raw bytes, so the worker opens that very file
 * (issue 18). Before, the name was decoded to `caf\uFFFD.jpg`, a URI that names no file.
 */
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Harness, SAMPLES } from './support/harness';

describe('a directory source with a non-UTF-8 file name', () => {
  const h = new Harness('nonutf8');
  beforeAll(() => h.start(), 60_000);
  afterAll(() => h.close());

  it('submits an encoded URI that the worker reads: both samples ok', async () => {
    const dir = path.join(h.tmp, 'photos');
    await mkdir(dir);
    const dirBytes = Buffer.from(dir);
    const latin1 = Buffer.concat([dirBytes, Buffer.from([0x2f, 0x63, 0x61, 0x66, 0xe9, 0x2e, 0x6a, 0x70, 0x67])]); // <dir>/caf\xe9.jpg
    await copyFile(path.join(SAMPLES, 'chelsea.jpg'), latin1);
    await copyFile(path.join(SAMPLES, 'rocket.jpg'), path.join(dir, 'rocket.jpg'));

    const submitted = await h.layertap(['submit', dir, '--dataset-id', 'names', '--weights', 'random', '--layer', 'block1_pool', '--image-size', '32', '--output', 's3://layertap/nonutf8']);
    expect({ code: submitted.code, stderr: submitted.stderr }).toEqual({ code: 0, stderr: '' });
    await h.runWorker();

    const manifest = await h.manifest('layertap', 'nonutf8', 'names');
    const byUri = Object.fromEntries(manifest.map((l) => [l.uri, { id: l.id, status: l.status }]));
    expect(byUri).toEqual({
      [`file://${encodeURI(dir)}/caf%E9.jpg`]: { id: 'caf_E9', status: 'ok' },
      [`file://${encodeURI(dir)}/rocket.jpg`]: { id: 'rocket', status: 'ok' },
    });
    // Its activations were stored under the id, with the layer's shape at --image-size 32.
    const stored = await h.npy('layertap', 'nonutf8/names/block1_pool/caf_E9.npy');
    expect(stored.shape).toEqual([64, 16, 16]);
  });
});
