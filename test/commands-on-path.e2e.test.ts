import { execFile, spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Harness, REPO, SAMPLES, type RunResult } from './support/harness';

/**
 * After setup the commands work from any directory, as the README shows them: `infra/install-commands.sh`
 * (run by `infra/bootstrap.sh`) links them onto PATH. Here into a temporary directory, and then used from
 * a directory outside the checkout, with relative paths, by name: no `npx`, nothing from the npm registry.
 */
describe('layertap, layertap-worker and layertap-dashboard on PATH', () => {
  const h = new Harness('onpath');
  let bin: string;
  let cwd: string;

  beforeAll(async () => {
    await h.start();
    bin = await mkdtemp(path.join(tmpdir(), 'lt-bin-'));
    cwd = await mkdtemp(path.join(tmpdir(), 'lt-elsewhere-'));
    await mkdir(path.join(cwd, 'images'));
    for (const name of ['chelsea.jpg', 'rocket.jpg']) await copyFile(path.join(SAMPLES, name), path.join(cwd, 'images', name));
  }, 60_000);
  afterAll(() => h.close());

  /** The harness environment, with PATH holding the linked commands and the system's, not the repository's node_modules/.bin. */
  const env = (extra: Record<string, string> = {}) => ({ ...h.env(extra), PATH: `${bin}${path.delimiter}/usr/local/bin${path.delimiter}/usr/bin${path.delimiter}/bin` });

  function run(command: string, args: string[], extra: Record<string, string> = {}): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(command, args, { cwd, env: env(extra), stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('error', reject);
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
  }

  it('the setup script links the three commands to this checkout', async () => {
    const { stdout } = await promisify(execFile)('bash', [path.join(REPO, 'infra/install-commands.sh'), bin], { env: { PATH: process.env.PATH, HOME: process.env.HOME } });
    expect(stdout).toContain(`linked layertap, layertap-worker and layertap-dashboard into ${bin}`);
    expect(await readlink(path.join(bin, 'layertap'))).toBe(path.join(REPO, 'apps/producer/bin/layertap.js'));
    expect(await readlink(path.join(bin, 'layertap-worker'))).toBe(path.join(REPO, 'apps/worker/bin/layertap-worker.js'));
    expect(await readlink(path.join(bin, 'layertap-dashboard'))).toBe(path.join(REPO, 'apps/dashboard/bin/layertap-dashboard.js'));
  });

  it('runs from another directory: submit a relative folder, a worker, status, forget', async () => {
    const version = await run('layertap', ['--version']);
    expect(version).toMatchObject({ code: 0, stdout: expect.stringMatching(/^\d+\.\d+\.\d+\n$/) });
    expect((await run('layertap-worker', ['--help'])).stdout).toContain('--exit-when-idle [seconds]');
    expect((await run('layertap-dashboard', ['--help'])).stdout).toContain('--read-only');

    const worker = run('layertap-worker', ['--exit-when-idle=5'], { LAYERTAP_ENGINE: 'null' });
    const submitted = await run('layertap', ['submit', './images', '--weights', 'random', '--layer', 'block1_pool', '--output', 's3://layertap/onpath', '--image-size', '32', '--dataset-id', 'here', '--wait']);
    expect(submitted.stderr).not.toMatch(/error/i);
    expect(submitted.code).toBe(0);
    expect(submitted.stdout).toContain('submitted dataset here: 2 samples in 1 chunks -> s3://layertap/onpath/here/');
    expect(submitted.stdout).toContain('dataset   here (run 0, done)');
    expect((await worker).code).toBe(0);
    const manifest = await h.manifest('layertap', 'onpath', 'here');
    expect(manifest.map((l) => l.uri).sort()).toEqual([`file://${cwd}/images/chelsea.jpg`, `file://${cwd}/images/rocket.jpg`]);
    expect((await run('layertap', ['status', 'here'])).stdout).toMatch(/samples\s+2 total: 2 ok, 0 failed, 0 pending/);
    expect((await run('layertap', ['forget', 'here'])).code).toBe(0);
  });
});
