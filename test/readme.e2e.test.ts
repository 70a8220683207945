import { execFile, spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { BIN, Harness, REPO, SAMPLES } from './support/harness';

const run = promisify(execFile);

/** The README shows only what works: its usage block runs as written, and every command it names exists. */
describe('README', () => {
  const h = new Harness('readme');
  let readme: string;
  /** Shell lines of the README's ```sh blocks, comments and continuation lines dropped. */
  let shellLines: string[];

  beforeAll(async () => {
    await h.start();
    readme = await readFile(path.join(REPO, 'README.md'), 'utf8');
    shellLines = [...readme.matchAll(/^```sh\n([\s\S]*?)^```$/gm)]
      .flatMap((m) => (m[1] ?? '').split('\n'))
      .map((line) => line.replace(/(^|\s)#.*$/, '').trim())
      .filter(Boolean);
  }, 60_000);
  afterAll(() => h.close());

  /** Every command line it shows, in code blocks and in inline code: `layertap ...`, `layertap-worker ...`. */
  function commandLines(): string[][] {
    const inline = [...readme.matchAll(/`([^`\n]+)`/g)].map((m) => m[1] as string);
    return [...shellLines.flatMap((l) => l.split(/&&|;/)), ...inline]
      .map((l) => l.trim().split(/\s+/))
      .filter((tokens) => ['layertap', 'layertap-worker', 'layertap-dashboard'].includes(tokens[0] ?? ''));
  }

  const helps = new Map<string, string>();
  async function helpOf(bin: string, words: string[]): Promise<string> {
    const key = [bin, ...words].join(' ');
    if (!helps.has(key)) {
      const { stdout } = await run(process.execPath, [bin, ...words, '--help'], { env: h.env() });
      helps.set(key, stdout);
    }
    return helps.get(key) as string;
  }

  it('names only commands and options that exist', async () => {
    const lines = commandLines();
    expect(lines.length).toBeGreaterThan(15);
    const problems: string[] = [];
    for (const tokens of lines) {
      const [name, ...rest] = tokens;
      const bin = name === 'layertap' ? BIN.layertap : name === 'layertap-worker' ? BIN.worker : BIN.dashboard;
      const words: string[] = [];
      if (name === 'layertap') {
        // The command, and the sub-command of `weights`.
        for (const word of rest) {
          if (!/^[a-z]+$/.test(word)) break;
          const help = await helpOf(bin, words);
          if (!new RegExp(`^  ${word}\\b`, 'm').test(help)) break;
          words.push(word);
        }
        if (rest.length && words.length === 0 && /^[a-z]+$/.test(rest[0] ?? '')) problems.push(`${tokens.join(' ')}: no command ${rest[0]}`);
      }
      const help = await helpOf(bin, words);
      for (const flag of rest.join(' ').match(/--[a-z][a-z0-9-]*/g) ?? []) {
        if (!help.includes(flag)) problems.push(`${tokens.join(' ')}: ${[name, ...words].join(' ')} has no ${flag}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('shows no npx, no files that are not in the repository, and speaks of the project only', () => {
    expect(readme).not.toMatch(/`npx layertap|^npx /m);
    expect(readme).not.toMatch(/issue note|ANCHORS\.md/i);
    const paths = [...readme.matchAll(/`((?:infra|packages|apps|test)\/[^`\s*<]+)`/g)].map((m) => m[1] as string);
    expect(paths.length).toBeGreaterThan(10);
    expect(paths.filter((p) => !existsSync(path.join(REPO, p)))).toEqual([]);
    for (const line of shellLines.filter((l) => l.startsWith('bash '))) {
      const script = line.split(/\s+/)[1] as string;
      // `run-gpu-bench.sh` runs on the GPU host, next to the bundle; it is made from infra/gpu/.
      expect([script, path.join('infra/gpu', script)].some((p) => existsSync(path.join(REPO, p)))).toBe(true);
    }
    const scripts = Object.keys((JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts);
    for (const line of shellLines.flatMap((l) => l.split('&&')).map((l) => l.trim()).filter((l) => l.startsWith('pnpm '))) {
      expect(scripts).toContain(line.split(/\s+/)[1]);
    }
  });

  it('the usage block runs as written, from a directory outside the checkout, with the commands on PATH', async () => {
    const block = /## Using it\n\n```sh\n([\s\S]*?)\n```/.exec(readme)?.[1];
    expect(block).toBeDefined();
    const bin = await mkdtemp(path.join(tmpdir(), 'lt-readme-bin-'));
    await run('bash', [path.join(REPO, 'infra/install-commands.sh'), bin]);
    const cwd = await mkdtemp(path.join(tmpdir(), 'lt-readme-'));
    await mkdir(path.join(cwd, 'images'));
    for (const name of ['camera.jpg', 'rocket.jpg']) await copyFile(path.join(SAMPLES, name), path.join(cwd, 'images', name));
    // Here the services are the harness's (its environment replaces the exports), the bucket is the test
    // server's, the worker exits soon after the work, and the dashboard (a server) is left to its own tests.
    // This machine has no internet: the default weights (torchvision-imagenet, a download) become random ones.
    const script = (block as string)
      .split('\n')
      .filter((l) => !l.startsWith('export ') && !l.startsWith('layertap-dashboard'))
      .join('\n')
      .replaceAll('s3://bucket/', 's3://layertap/')
      .replace('--exit-when-idle=600', '--exit-when-idle=3')
      .replace('--dataset-id images --wait', '--dataset-id images --weights random --wait');
    expect(script).toContain('layertap submit ./images --layer features.9,block5_pool --output s3://layertap/activations --dataset-id images --weights random --wait');
    const result = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const env = { ...h.env({ LAYERTAP_ENGINE: 'null' }), PATH: `${bin}${path.delimiter}${process.env.PATH}` };
      // In a process group of its own: a line that fails leaves the background worker behind, which is stopped
      // with the group (it would hold the pipes and the test open).
      const child = spawn('bash', ['-euc', `${script}\nwait`], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      child.on('exit', (code) => {
        try {
          process.kill(-(child.pid as number), 'SIGTERM');
        } catch {
          // the group has ended already
        }
        resolve({ code, out });
      });
    });
    expect(result.out).toContain('dataset   images (run 0, done)');
    expect(result.out).toMatch(/samples\s+2 total: 2 ok, 0 failed, 0 pending/);
    expect(result.out).toContain('dataset images has no failed samples: nothing to retry');
    expect(result.out).toContain('forgot images');
    // `export` stacked the ok samples' features.9 arrays into one file, ids beside it.
    expect((await readFile(path.join(cwd, 'acts.ids.txt'), 'utf8')).trim().split('\n').sort()).toEqual(['camera', 'rocket']);
    expect(result.code).toBe(0);
    expect((await h.manifest('layertap', 'activations', 'images')).map((l) => l.id).sort()).toEqual(['camera', 'rocket']);
  });
});
