import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { decodeNpy } from '@layertap/storage';
import { BIN, REPO } from './support/harness';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';

/** The README's first command ends in `layertap demo`: it must work from a clean state. */
describe('layertap demo', () => {
  it('starts its own services, runs a worker, and leaves .npy files of the right shapes and a full manifest', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'lt-demo-'));
    const env = {
      PATH: `${path.join(REPO, 'node_modules/.bin')}${path.delimiter}${process.env.PATH}`,
      HOME: process.env.HOME,
      LOG_LEVEL: 'info',
    };
    const result = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN.layertap, 'demo', '--dir', dir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      child.on('exit', (code) => resolve({ code, out }));
    });
    expect(result.out).toContain('dataset   demo (run 0, done)');
    expect(result.code).toBe(0);
    expect(result.out).toMatch(/samples\s+7 total: 7 ok, 0 failed/);

    const local = path.join(dir, 'output', 'demo');
    const manifest = (await readFile(path.join(local, 'manifest.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(manifest).toHaveLength(7);
    expect(manifest.every((l) => l.status === 'ok')).toBe(true);
    const pools = (await readdir(path.join(local, 'features.9'))).sort();
    expect(pools).toEqual(['astronaut.npy', 'camera.npy', 'chelsea.npy', 'coffee.npy', 'hubble_deep_field.npy', 'motorcycle_left.npy', 'rocket.npy']);
    expect(decodeNpy(await readFile(path.join(local, 'features.9', 'camera.npy'))).shape).toEqual([128, 56, 56]);
    expect(decodeNpy(await readFile(path.join(local, 'block3_pool', 'camera.npy'))).shape).toEqual([256, 28, 28]);
    // No service is left behind.
    expect(result.out).not.toMatch(/error/i);
  });
});
