/**
 * `layertap submit ... --wait | head -1`: the reader leaves after the first line, and what submit prints later
 * (the final summary) meets a closed pipe. That was an unhandled EPIPE with a stack trace (issue 18); now the
 * CLI stops quietly with its exit code.
 */
import { spawn } from 'node:child_process';
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { BIN, Harness, SAMPLES } from './support/harness';

describe('submit with its stdout closed after the first line', () => {
  const h = new Harness('closedpipe');
  beforeAll(() => h.start(), 60_000);
  afterAll(() => h.close());

  it('exits 0 without an EPIPE or an unhandled error when the reader is gone', async () => {
    const dir = path.join(h.tmp, 'photos');
    await mkdir(dir);
    await copyFile(path.join(SAMPLES, 'chelsea.jpg'), path.join(dir, 'chelsea.jpg'));
    const args = ['submit', dir, '--dataset-id', 'pipe', '--weights', 'random', '--layer', 'block1_pool', '--image-size', '32', '--output', 's3://layertap/pipe', '--wait'];
    const cli = spawn(process.execPath, [BIN.layertap, ...args], { env: h.env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    cli.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => cli.on('exit', resolve));

    // `head -1`: read one line, then close the read end of the pipe.
    const first = await new Promise<string>((resolve) => {
      let out = '';
      cli.on('exit', () => resolve(`(exited) ${out}${stderr}`));
      cli.stdout.on('data', (d) => {
        out += d;
        if (out.includes('\n')) resolve(out.split('\n')[0]!);
      });
    });
    cli.stdout.destroy();
    expect(first).toBe('submitted dataset pipe: 1 samples in 1 chunks -> s3://layertap/pipe/pipe/');

    // The worker finishes the dataset; submit's summary then goes to the closed pipe.
    await h.runWorker();
    expect(await exited).toBe(0);
    expect(stderr).not.toMatch(/EPIPE|Unhandled|at .*\.js:\d+/);
    const manifest = await h.manifest('layertap', 'pipe', 'pipe');
    expect(manifest.map((l) => [l.id, l.status])).toEqual([['chelsea', 'ok']]);
  });
});
