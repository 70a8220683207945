import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { comparePytorchPipeline, PYTORCH_SCRIPT, type PytorchPipelineOptions } from './pytorch';

// A stand-in interpreter: logs its arguments and answers as the reference script would, with the CPU figure
// of each run taken from a list, so the comparison's arithmetic can be checked without torch.
async function fakePython(dir: string, cpuMsPerImage: number[]): Promise<string> {
  const file = path.join(dir, 'python');
  const answers = cpuMsPerImage.map((ms) => JSON.stringify({ mode: 'pipeline', images: 8, seconds: 1, imagesPerSecond: 8, cpuMsPerImage: ms, saveMsPerImage: 0.4, workers: 2, dtype: 'float16', shape: [128, 56, 56], versions: { torch: '9.9' } }));
  await writeFile(
    file,
    [
      '#!/bin/sh',
      `echo "$@" >> ${dir}/args`,
      'case "$2" in --check) echo \'{"torch": "9.9"}\'; exit 0;; esac',
      `n=$(wc -l < ${dir}/args)`,
      ...answers.map((a, i) => `[ "$n" = "${i + 2}" ] && echo '${a}'`),
      'exit 0',
    ].join('\n'),
  );
  await chmod(file, 0o755);
  return file;
}

describe('comparePytorchPipeline', () => {
  let dir: string;
  const options = (python: string): PytorchPipelineOptions => ({ python, imagesDir: '/photos', workDir: dir, shape: [128, 56, 56], dtype: 'float16', batchSize: 16, imageSize: 224, preprocess: 'torchvision' });
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pytorch-pipeline-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("runs the script's pipeline mode twice on the same photos and compares with its cheapest run", async () => {
    const python = await fakePython(dir, [12.5, 10]);
    const result = await comparePytorchPipeline(options(python), 15, () => undefined);
    expect(result).toMatchObject({ available: true, cpuMsPerImage: 10, ratio: 1.5 });
    const calls = (await readFile(path.join(dir, 'args'), 'utf8')).trim().split('\n');
    expect(calls).toHaveLength(3);
    expect(calls[0]).toBe(`${PYTORCH_SCRIPT} --check`);
    expect(calls[1]).toBe(`${PYTORCH_SCRIPT} --mode pipeline --images /photos --out ${path.join(dir, 'pytorch-pipeline')} --shape 128,56,56 --dtype float16 --batch-size 16 --image-size 224`);
  });

  it('says why it cannot compare: no torch, caffe preprocessing, no CPU figure of the worker', async () => {
    expect(await comparePytorchPipeline(options(path.join(dir, 'missing')), 15, () => undefined)).toEqual({ available: false, reason: expect.stringContaining('cannot run torch and torchvision') });
    expect(await comparePytorchPipeline({ ...options('x'), preprocess: 'caffe' }, 15, () => undefined)).toEqual({ available: false, reason: 'the PyTorch comparison needs --preprocess torchvision' });
    expect(await comparePytorchPipeline(options('x'), undefined, () => undefined)).toEqual({ available: false, reason: "the worker's CPU time was not measured (no /proc here)" });
  });
});
