import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BIN, Harness, SAMPLES } from './support/harness';

/** Every bad request is refused before anything reaches Redis: a clear message, a non-zero exit. */
describe('layertap submit refuses bad requests and enqueues nothing', () => {
  const h = new Harness('cli');

  beforeAll(async () => {
    await h.start();
  }, 60_000);
  afterAll(async () => {
    await h.close();
  });

  async function expectRefused(args: string[], message: RegExp | string, exit = 2) {
    const res = await h.layertap(['submit', '--weights', 'random', ...args]);
    expect(res.code).toBe(exit);
    if (typeof message === 'string') expect(res.stderr).toContain(message);
    else expect(res.stderr).toMatch(message);
    expect(await h.redis.keys(`${h.prefix}:*`)).toEqual([]);
    return res;
  }

  const ok = (extra: string[] = []) => [SAMPLES, '--weights', 'random', '--layer', 'block2_pool', '--output', 's3://layertap/out', ...extra];

  it('unknown layer: names it and lists the valid ones', async () => {
    const res = await expectRefused([SAMPLES, '--layer', 'block2_pool,block9_conv1', '--output', 's3://layertap/out'], 'block9_conv1');
    expect(res.stderr).toMatch(/unknown_layer/);
    expect(res.stderr).toContain('block5_pool');
    expect(res.stderr).toMatch(/features\.0/);
  });

  it('bad output URIs', async () => {
    await expectRefused([SAMPLES, '--layer', 'block2_pool', '--output', 'http://example.com/out'], /invalid_output/);
    await expectRefused([SAMPLES, '--layer', 'block2_pool', '--output', '~/out'], /invalid_output/);
    await expectRefused([SAMPLES, '--layer', 'block2_pool', '--output', 's3://'], /invalid_output/);
  });

  it('an output bucket that does not exist', async () => {
    await expectRefused([SAMPLES, '--layer', 'block2_pool', '--output', 's3://no-such-bucket/out'], /no-such-bucket/);
  });

  it('unreadable and empty sources', async () => {
    await expectRefused([path.join(h.tmp, 'missing.txt'), '--layer', 'block2_pool', '--output', 's3://layertap/out'], /missing\.txt.*no such file/);
    const empty = path.join(h.tmp, 'empty.txt');
    await writeFile(empty, '# only a comment\n\n');
    await expectRefused([empty, '--layer', 'block2_pool', '--output', 's3://layertap/out'], /empty_manifest/);
    const emptyDir = path.join(h.tmp, 'no-images');
    await mkdir(emptyDir);
    await writeFile(path.join(emptyDir, 'notes.txt'), 'no images here');
    await expectRefused([emptyDir, '--layer', 'block2_pool', '--output', 's3://layertap/out'], /holds no images/);
    const badJson = path.join(h.tmp, 'bad.jsonl');
    await writeFile(badJson, '{"uri": "a.jpg"}\n{"url": "b.jpg"}\n');
    await expectRefused([badJson, '--layer', 'block2_pool', '--output', 's3://layertap/out'], /bad\.jsonl:2.*"uri"/);
    const csv = path.join(h.tmp, 'no-uri.csv');
    await writeFile(csv, 'path,id\na.jpg,a\n');
    await expectRefused([csv, '--layer', 'block2_pool', '--output', 's3://layertap/out'], /"uri" column/);
  });

  it('duplicate and unsafe sample ids', async () => {
    const dup = path.join(h.tmp, 'dup.jsonl');
    await writeFile(dup, ['{"uri": "a.jpg", "id": "x"}', '{"uri": "b.jpg", "id": "y"}', '{"uri": "c.jpg", "id": "x"}'].join('\n'));
    await expectRefused([dup, '--layer', 'block2_pool', '--output', 's3://layertap/out'], /duplicate_id.*dup\.jsonl:3.*"x".*dup\.jsonl:1/);
    for (const bad of ['../etc/passwd', 'a/b', '..', 'tab\there', 'x'.repeat(201)]) {
      const file = path.join(h.tmp, 'unsafe.jsonl');
      await writeFile(file, JSON.stringify({ uri: 'a.jpg', id: bad }) + '\n');
      await expectRefused([file, '--layer', 'block2_pool', '--output', 's3://layertap/out'], /invalid_id/);
    }
    const csv = path.join(h.tmp, 'unsafe.csv');
    await writeFile(csv, 'uri,id\na.jpg,ok-1\nb.jpg,../../x\n');
    await expectRefused([csv, '--layer', 'block2_pool', '--output', 's3://layertap/out'], /unsafe\.csv:3/);
  });

  it('an unsafe dataset id, and an oversized manifest line', async () => {
    await expectRefused(ok(['--dataset-id', '../up']), /invalid_id.*--dataset-id/);
    const long = path.join(h.tmp, 'long.txt');
    await writeFile(long, `a.jpg\nhttp://example.com/${'x'.repeat(20_000)}.jpg\n`);
    await expectRefused([long, '--layer', 'block2_pool', '--output', 's3://layertap/out'], /long\.txt:2.*longer than/);
  });

  it('weights that cannot serve the layers, or that do not exist', async () => {
    const h5 = path.join(__dirname, 'fixtures/parity/weights/vgg16-blocks1-2-seed11.keras.h5');
    const res = await expectRefused([SAMPLES, '--layer', 'fc1', '--weights', h5, '--output', 's3://layertap/out'], /invalid_weights/);
    expect(res.stderr).toMatch(/block3_conv1\/kernel is missing \(expected shape \[3, 3, 128, 256\]\)/);
    await expectRefused([SAMPLES, '--layer', 'block2_pool', '--weights', path.join(h.tmp, 'nope.h5'), '--output', 's3://layertap/out'], /nope\.h5/);
  });

  it('bad option values are refused by the parser', async () => {
    const res = await h.layertap(['submit', ...ok(['--dtype', 'float64'])]);
    expect(res.code).toBe(2);
    expect(res.stderr).toBe('layertap: error: --dtype "float64": allowed values are float32, float16\n');
    expect(await h.redis.keys(`${h.prefix}:*`)).toEqual([]);
  });

  /** Exit 2, nothing in Redis, and the whole output is one line on stderr: `layertap: <line>`. */
  async function expectOneLine(args: string[], line: string) {
    const res = await h.run(BIN.layertap, args, {}, 20_000);
    expect({ code: res.code, stderr: res.stderr, stdout: res.stdout }).toEqual({ code: 2, stderr: `layertap: ${line}\n`, stdout: '' });
    expect(await h.redis.keys(`${h.prefix}:*`)).toEqual([]);
  }

  it('values outside the request limits name the flag, the value and the range (no schema dump)', async () => {
    await expectOneLine(['submit', ...ok(['--batch-size', '5000'])], 'error: --batch-size "5000": expected auto or an integer from 1 to 1024');
    await expectOneLine(['submit', ...ok(['--image-size', '2048'])], 'error: --image-size "2048": expected an integer from 32 to 1024');
    await expectOneLine(['submit', ...ok(['--image-size', '16'])], 'error: --image-size "16": expected an integer from 32 to 1024');
    await expectOneLine(['submit', ...ok(['--chunk-size', '0'])], 'error: --chunk-size "0": expected an integer from 1 to 100000');
    await expectOneLine(['submit', ...ok(['--seed', '-1'])], 'error: --seed "-1": expected an integer from 0 up');
  });

  it('a missing flag, a typo and an unknown command are one line each, without the help', async () => {
    await expectOneLine(['submit', SAMPLES, '--weights', 'random', '--layer', 'block2_pool'], 'error [invalid_request]: missing --output <uri>: where outputs go: s3://bucket/prefix, file:///absolute/dir or a directory path');
    await expectOneLine(['submit', SAMPLES, '--weights', 'random', '--output', 's3://layertap/out'], 'error [invalid_request]: missing --layer <spec>: the layer(s) to extract, e.g. --layer block2_pool,features.16');
    await expectOneLine(['submit', SAMPLES, '--weights', 'random', '--layer', 'block2_pool', '--ouput', 's3://layertap/out'], 'error: unknown option --ouput, did you mean --output?');
    await expectOneLine(['submit', '--layer', 'block2_pool', '--weights', 'random', '--output', 's3://layertap/out'], 'error: missing <source>');
    await expectOneLine(['sumbit', SAMPLES], 'error: unknown command sumbit, did you mean submit?');
    await expectOneLine(['status'], 'error: missing <datasetId>');
    const worker = await h.run(BIN.worker, ['--concurency', '2'], {}, 20_000);
    // The worker's output is JSON log lines: its bad option too is one.
    expect(worker.code).toBe(2);
    expect(worker.stderr.endsWith('\n') && worker.stderr.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(worker.stderr)).toMatchObject({ level: 60, name: 'layertap-worker', exitCode: 2, msg: 'unknown option --concurency, did you mean --concurrency?' });
    const help = await h.run(BIN.layertap, ['submit', '--help'], {}, 20_000);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--retention <duration>');
  });

  it('one layer named twice is refused with exit 2 and says so', async () => {
    await expectOneLine(
      ['submit', SAMPLES, '--weights', 'random', '--layer', 'block3_pool,features.16', '--output', 's3://layertap/out'],
      'error [invalid_request]: --layer names one layer twice: block3_pool and features.16 are both block3_pool; name it once',
    );
  });

  it('probes of an output or a source end, with a clear message, where Node would spin or block for ever', async () => {
    // Node's recursive mkdir loops at full CPU on /proc; a FIFO blocks whoever opens it.
    const started = Date.now();
    await expectOneLine(
      ['submit', SAMPLES, '--weights', 'random', '--layer', 'block2_pool', '--output', 'file:///proc/layertap-out'],
      'error [invalid_output]: cannot make directory /proc/layertap-out: the file system of /proc does not allow it (ENOENT)',
    );
    const fifo = path.join(h.tmp, 'list.txt');
    execFileSync('mkfifo', [fifo]);
    await expectOneLine(
      ['submit', fifo, '--weights', 'random', '--layer', 'block2_pool', '--output', 's3://layertap/out'],
      `error [invalid_source]: source ${fifo} is not a regular file or a directory (a FIFO, device or socket cannot be read as a list of images)`,
    );
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('a valid request is accepted (the checks above are not refusing everything)', async () => {
    const res = await h.layertap(['submit', ...ok(['--dataset-id', 'fine'])]);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect((await h.redis.keys(`${h.prefix}:*`)).length).toBeGreaterThan(0);
  });
});
