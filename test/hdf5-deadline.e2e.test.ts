/**
 * Keras `.h5` weights are parsed in a worker thread under a deadline (LAYERTAP_H5_PARSE_SECONDS, default 20)
 * and a heap cap: HDF5 trusts a file's structure, and a hostile one can keep it busy forever (issue 18).
 * Past the deadline, submit refuses the file with one line naming it, exit 2. test/fixtures/hostile/hdf5-loop.h5
 * (test/parity/make_hostile_h5.py) has a local-heap free list that names itself: before, the parse ran until
 * h5wasm's 2 GB of wasm memory were spent, then printed HDF5's diagnostics.
 */
import path from 'node:path';
import { Harness, REPO } from './support/harness';

describe('the HDF5 parse deadline', () => {
  const h = new Harness('h5deadline');
  beforeAll(() => h.start(), 60_000);
  afterAll(() => h.close());

  const h5 = () => path.join(h.tmp, 'blocks.h5');
  const submit = (id: string, env: Record<string, string> = {}, weights = h5()) =>
    h.layertap(['submit', path.join(REPO, 'apps/producer/samples'), '--dataset-id', id, '--weights', weights, '--layer', 'block1_pool', '--image-size', '32', '--output', 's3://layertap/h5'], env);

  it('reads a normal 1 MB file within it, and refuses a file whose structure loops with exit 2 and one line', async () => {
    const converted = await h.layertap(['weights', 'convert', path.join(REPO, 'test/fixtures/pth/vgg16-blocks1-2-seed11.legacy.pth'), h5()]);
    expect({ code: converted.code, stderr: converted.stderr }).toEqual({ code: 0, stderr: '' });

    const fine = await submit('fine');
    expect({ code: fine.code, stderr: fine.stderr }).toEqual({ code: 0, stderr: '' });

    const loop = path.join(REPO, 'test/fixtures/hostile/hdf5-loop.h5');
    const refused = await submit('refused', { LAYERTAP_H5_PARSE_SECONDS: '3' }, loop);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe(
      `layertap: error [invalid_weights]: ${loop}: refused: reading it as HDF5 did not finish within 3 s (LAYERTAP_H5_PARSE_SECONDS); ` +
        'its structure may loop (a B-tree or object header pointing back at itself)\n',
    );

    const bad = await submit('bad', { LAYERTAP_H5_PARSE_SECONDS: 'soon' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('layertap: error [invalid_request]: LAYERTAP_H5_PARSE_SECONDS must be a positive number of seconds, got "soon"\n');
  });
});
