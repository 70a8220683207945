/**
 * Sample ids that differ only by case (`Cat`, `cat`) name different files: fine on Linux and S3, one file on a
 * case-insensitive disk (macOS, Windows, some network shares). `layertap submit` warns when the output is
 * `file://` (and still submits); an `s3://` output gets no warning.
 */
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Harness, SAMPLES } from './support/harness';

describe('sample ids that differ only by case', () => {
  const h = new Harness('idcase');

  beforeAll(() => h.start(), 60_000);
  afterAll(() => h.close());

  const submit = (source: string, output: string, extra: string[] = []) => h.layertap(['submit', source, '--weights', 'random', '--layer', 'block1_pool', '--image-size', '32', '--output', output, ...extra]);
  const warnings = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('layertap: warning:'));

  it('warns once at submit for a file:// output, listing a few of them, and not for s3://', async () => {
    const manifest = path.join(h.tmp, 'animals.jsonl');
    const ids = ['Cat', 'cat', 'Dog', 'dog', 'DOG', 'bird', 'B1', 'b1', 'C2', 'c2', 'D3', 'd3'];
    await writeFile(manifest, ids.map((id) => JSON.stringify({ id, uri: path.join(SAMPLES, 'chelsea.jpg') })).join('\n') + '\n');
    const out = pathToFileURL(path.join(h.tmp, 'out')).href;

    const onDisk = await submit(manifest, out, ['--dataset-id', 'animals-file', '--json']);
    expect(onDisk.code).toBe(0);
    expect(warnings(onDisk.stderr)).toEqual([
      'layertap: warning: 11 sample ids differ from another only by case (Cat = cat, Dog = dog = DOG, B1 = b1, C2 = c2, and 1 more group): ' +
        'their files collide on a case-insensitive file system (macOS, Windows), where one overwrites the other; give ids that differ by more than case, or write to s3://',
    ]);
    expect(JSON.parse(onDisk.stdout).warnings).toEqual([warnings(onDisk.stderr)[0]!.replace('layertap: warning: ', '')]);

    const onS3 = await submit(manifest, 's3://layertap/out', ['--dataset-id', 'animals-s3']);
    expect({ code: onS3.code, stderr: onS3.stderr }).toEqual({ code: 0, stderr: '' });
  });

  it('warns for ids derived from file names, and not when ids differ by more than case', async () => {
    const dir = path.join(h.tmp, 'photos');
    await mkdir(dir);
    for (const name of ['Chelsea.jpg', 'chelsea.png', 'rocket.jpg']) await copyFile(path.join(SAMPLES, 'chelsea.jpg'), path.join(dir, name));
    const out = pathToFileURL(path.join(h.tmp, 'out')).href;
    const derived = await submit(dir, out, ['--dataset-id', 'photos']);
    expect(derived.code).toBe(0);
    expect(warnings(derived.stderr)).toEqual([expect.stringMatching(/^layertap: warning: 2 sample ids differ from another only by case \(Chelsea = chelsea\): /)]);

    const distinct = path.join(h.tmp, 'distinct.jsonl');
    await writeFile(distinct, ['Cat', 'cat2', 'DOG'].map((id) => JSON.stringify({ id, uri: path.join(SAMPLES, 'chelsea.jpg') })).join('\n'));
    const fine = await submit(distinct, out, ['--dataset-id', 'distinct']);
    expect({ code: fine.code, stderr: fine.stderr }).toEqual({ code: 0, stderr: '' });
  });
});
