import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import { Harness, SAMPLES } from './support/harness';

/** Every bad request is refused before anything reaches Redis: a clear message, a non-zero exit. */
describe('layertap submit refuses bad requests and enqueues nothing', () => {
  const h = new Harness('cli');
  let redis: Redis;

  beforeAll(async () => {
    await h.start();
    redis = new Redis(h.services.redisUrl);
  }, 60_000);
  afterAll(async () => {
    redis.disconnect();
    await h.close();
  });

  async function expectRefused(args: string[], message: RegExp | string, exit = 2) {
    const res = await h.layertap(['submit', ...args]);
    expect(res.code).toBe(exit);
    if (typeof message === 'string') expect(res.stderr).toContain(message);
    else expect(res.stderr).toMatch(message);
    expect(await redis.keys(`${h.prefix}:*`)).toEqual([]);
    return res;
  }

  const ok = (extra: string[] = []) => [SAMPLES, '--layer', 'block2_pool', '--output', 's3://layertap/out', ...extra];

  it('unknown layer: names it and lists the valid ones', async () => {
    const res = await expectRefused([SAMPLES, '--layer', 'block2_pool,block9_conv1', '--output', 's3://layertap/out'], 'block9_conv1');
    expect(res.stderr).toMatch(/unknown_layer/);
    expect(res.stderr).toContain('block5_pool');
    expect(res.stderr).toMatch(/features\.0/);
  });

  it('bad output URIs', async () => {
    await expectRefused([SAMPLES, '--layer', 'block2_pool', '--output', 'http://example.com/out'], /invalid_output/);
    await expectRefused([SAMPLES, '--layer', 'block2_pool', '--output', 'relative/dir'], /invalid_output/);
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
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/float64.*(float32|choices)/s);
    expect(await redis.keys(`${h.prefix}:*`)).toEqual([]);
  });

  it('a valid request is accepted (the checks above are not refusing everything)', async () => {
    const res = await h.layertap(['submit', ...ok(['--dataset-id', 'fine'])]);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect((await redis.keys(`${h.prefix}:*`)).length).toBeGreaterThan(0);
  });
});
