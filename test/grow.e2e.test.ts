import { spawn } from 'node:child_process';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { findFreePort } from '@layertap/devservices';
import { BIN, Harness, SAMPLES } from './support/harness';

/** A folder that grows: a resubmission adds its new photos as a new run of the same dataset; `layertap list`. */
describe('a growing dataset and layertap list', () => {
  const h = new Harness('grow');
  beforeAll(async () => {
    await h.start();
  }, 60_000);
  afterAll(async () => {
    await h.close();
  });

  const dir = () => path.join(h.tmp, 'photos');
  async function add(...names: string[]): Promise<void> {
    await mkdir(dir(), { recursive: true });
    for (const n of names) await copyFile(path.join(SAMPLES, `${n}.jpg`), path.join(dir(), `${n}.jpg`));
  }
  // No --dataset-id: the default id names the folder, so the same folder finds its dataset again.
  const submit = (...extra: string[]) =>
    h.layertap(['submit', dir(), '--weights', 'random', '--layer', 'block1_pool', '--output', 's3://layertap/grow', '--image-size', '32', '--chunk-size', '2', '--json', ...extra]);

  it('adds the new photos as a new run, says what was new, stored and removed, and lists the dataset', async () => {
    await add('astronaut', 'camera', 'chelsea');
    await writeFile(path.join(dir(), 'notes.txt'), 'not an image');
    const first = await submit();
    expect(first.code).toBe(0);
    // The file that is not an image is counted, not silently dropped.
    expect(first.stderr).toBe('');
    const { datasetId, skipped } = JSON.parse(first.stdout) as { datasetId: string; skipped: unknown };
    expect(skipped).toEqual({ files: 1, examples: ['notes.txt'] });
    expect(datasetId).toMatch(/^photos-[0-9a-f]{10}$/);
    await h.runWorker();
    const firstBytes = await h.getObject('layertap', `grow/${datasetId}/block1_pool/astronaut.npy`);

    // Two more photos; one is gone from the folder.
    await add('coffee', 'rocket');
    await rm(path.join(dir(), 'camera.jpg'));
    const grown = await h.layertap(['submit', dir(), '--weights', 'random', '--layer', 'block1_pool', '--output', 's3://layertap/grow', '--image-size', '32', '--chunk-size', '2']);
    expect(grown.code).toBe(0);
    expect(grown.stdout).toContain("skipped 1 file whose extension is not an image's (notes.txt); images are read by extension:");
    expect(grown.stdout).toContain(
      `adding to dataset ${datasetId} as run 1: 2 new samples to run in 1 chunks; 2 already stored, 1 removed from the source (their outputs and manifest lines stay)`,
    );
    const log = await h.runWorker();
    expect(log.match(/"chunk started"/g)).toHaveLength(1);
    const manifest = await h.manifest('layertap', 'grow', datasetId);
    expect(manifest.map((l) => l.id).sort()).toEqual(['astronaut', 'camera', 'chelsea', 'coffee', 'rocket']);
    expect(manifest.every((l) => l.status === 'ok')).toBe(true);
    // Stored samples were not recomputed.
    expect(await h.getObject('layertap', `grow/${datasetId}/block1_pool/astronaut.npy`)).toEqual(firstBytes);
    const provenance = JSON.parse((await h.getObject('layertap', `grow/${datasetId}/dataset.json`))!.toString());
    expect(provenance.counts).toMatchObject({ total: 5, ok: 5, failed: 0 });
    expect(provenance.preprocessing.exifOrientation).toBe('ignore');

    // Nothing new: nothing runs, and the JSON says why.
    const again = await submit();
    expect(JSON.parse(again.stdout)).toMatchObject({ datasetId, existing: true, added: 0, alreadyStored: 4, removedFromSource: 1 });

    const listed = await h.layertap(['list', '--json']);
    expect(listed.code).toBe(0);
    const rows = JSON.parse(listed.stdout) as Array<Record<string, unknown>>;
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      datasetId,
      state: 'done',
      run: 1,
      samples: { total: 5, ok: 5, failed: 0, cancelled: 0, pending: 0 },
      output: `s3://layertap/grow/${datasetId}/`,
    });
    expect(typeof rows[0]!.durationSeconds).toBe('number');
    const table = await h.layertap(['list']);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^DATASET\s+STATE\s+OK\s+FAILED\s+CANCELLED\s+PENDING\s+STARTED\s+DURATION\s+OUTPUT$/);
    expect(lines[1]).toMatch(new RegExp(`^${datasetId}\\s+done \\(run 1\\)\\s+5\\s+0\\s+0\\s+0\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ\\s+\\S+\\s+s3://layertap/grow/${datasetId}/$`));
  });

  it('export --to creates the folder it names; a file in the way is one line and exit 2', async () => {
    const listed = JSON.parse((await h.layertap(['list', '--json'])).stdout) as Array<{ datasetId: string }>;
    const datasetId = listed[0]!.datasetId;
    const to = path.join(h.tmp, 'missing', 'dir', 'x.npy');
    const exported = await h.layertap(['export', datasetId, '--layer', 'block1_pool', '--to', to]);
    expect(exported.code).toBe(0);
    expect((await readFile(to)).subarray(0, 6).toString('latin1')).toBe('\x93NUMPY');
    expect((await readFile(path.join(h.tmp, 'missing', 'dir', 'x.ids.txt'), 'utf8')).trim().split('\n')).toHaveLength(5);
    await writeFile(path.join(h.tmp, 'a-file'), 'x');
    const blocked = await h.layertap(['export', datasetId, '--layer', 'block1_pool', '--to', path.join(h.tmp, 'a-file', 'x.npy')]);
    expect(blocked.code).toBe(2);
    expect(blocked.stderr).toBe(
      `layertap: error [invalid_request]: --to ${path.join(h.tmp, 'a-file', 'x.npy')}: cannot create the folder ${path.join(h.tmp, 'a-file')}: a file is in the way of the folder\n`,
    );
  });

  it('Ctrl-C on submit --wait says the dataset keeps running and how to watch it, and exits 130', async () => {
    await add('hubble_deep_field');
    const cli = h.spawn(BIN.layertap, ['submit', dir(), '--weights', 'random', '--layer', 'block1_pool', '--output', 's3://layertap/grow', '--image-size', '32', '--chunk-size', '2', '--wait']);
    // No worker runs: the wait goes on until interrupted.
    await h.waitForOutput(cli.output, /no worker connected/, 30_000);
    cli.child.kill('SIGINT');
    expect(await cli.exited).toBe(130);
    expect(cli.output()).toMatch(/layertap: interrupted: dataset photos-[0-9a-f]{10} keeps running on the workers; watch it with `layertap status photos-[0-9a-f]{10} --watch`, stop it with `layertap cancel photos-[0-9a-f]{10}`\n$/);
  });

  it('with Redis down, submit says so before resolving the weights (no download), without suggesting the demo', async () => {
    const port = await findFreePort('127.0.0.1');
    const down = await h.layertap(
      ['submit', dir(), '--weights', 'torchvision-imagenet', '--layer', 'block1_pool', '--output', 's3://layertap/grow', '--image-size', '32'],
      { REDIS_URL: `redis://127.0.0.1:${port}`, LAYERTAP_WEIGHTS_CACHE: path.join(h.tmp, 'empty-cache') },
    );
    expect(down.code).toBe(1);
    expect(down.stderr).toBe(
      `layertap: error [service_unavailable]: cannot connect to Redis at redis://127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port} ` +
        '(is redis-server running there? start it, or set REDIS_URL to the Redis your workers use)\n',
    );
    // A bad request is still said first, as exit 2.
    const bad = await h.layertap(['submit', dir(), '--layer', 'block9_pool', '--output', 's3://layertap/grow'], { REDIS_URL: `redis://127.0.0.1:${port}` });
    expect(bad.code).toBe(2);
  });

  it("keeps the worker's log JSON: a Node warning and the inference process's native writes become log lines", async () => {
    const warn = path.join(h.tmp, 'warn.cjs');
    // Loaded before the worker's own code; the warning comes once the worker runs, as a deprecation would. In
    // the inference process (it has an IPC channel) it also writes to fd 1 and 2 directly, as Dawn and ONNX
    // Runtime do.
    await writeFile(
      warn,
      "setImmediate(() => process.emitWarning('something is deprecated', { type: 'DeprecationWarning', code: 'DEP_TEST' }));\n" +
        "if (process.channel) {\n" +
        "  require('node:fs').writeSync(2, 'Warning: Dawn: the adapter is a software rasteriser\\n');\n" +
        "  require('node:fs').writeSync(1, '2026-12-04 10:00:00.1 onnxruntime[1:0x1] [W:onnxruntime:, x.cc:1 F] raw\\n');\n" +
        "}\n",
    );
    const worker = h.spawn(BIN.worker, ['--exit-when-idle=1', '--engine', 'null'], { NODE_OPTIONS: `--require ${warn}` });
    expect(await worker.exited).toBe(0);
    const lines = worker.output().trim().split('\n');
    const parsed = lines.map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        throw new Error(`not a JSON log line: ${line}`);
      }
    });
    expect(parsed).toContainEqual(expect.objectContaining({ msg: 'node warning', warning: 'DeprecationWarning', code: 'DEP_TEST', detail: 'something is deprecated' }));
    expect(parsed).toContainEqual(expect.objectContaining({ level: 40, source: 'dawn', msg: 'Warning: Dawn: the adapter is a software rasteriser', name: 'layertap-worker' }));
    // Alone in this test's LAYERTAP_WORKERS_DIR: its one inference process gets every core.
    expect(parsed.find((l) => l.msg === 'worker started')).toMatchObject({ threads: availableParallelism() });
    expect(parsed).toContainEqual(expect.objectContaining({ level: 40, source: 'onnxruntime', msg: '2026-12-04 10:00:00.1 onnxruntime[1:0x1] [W:onnxruntime:, x.cc:1 F] raw' }));
  });

  it('a second Ctrl-C hands the running chunk back at once and exits 130, without a native crash', async () => {
    // One chunk long enough to be caught running: 120 samples of one photo at 224 px.
    const manifest = path.join(h.tmp, 'long.jsonl');
    await writeFile(manifest, Array.from({ length: 120 }, (_, i) => JSON.stringify({ id: `s${i}`, uri: path.join(SAMPLES, 'coffee.jpg') })).join('\n') + '\n');
    const submitted = await h.layertap(['submit', manifest, '--weights', 'random', '--layer', 'fc2', '--output', 's3://layertap/grow', '--chunk-size', '120', '--batch-size', '4', '--dataset-id', 'interrupted']);
    expect(submitted.code).toBe(0);
    // Its own process group, as a worker started from a shell: Ctrl-C signals the worker and its inference process.
    const worker = spawn(process.execPath, [BIN.worker, '--engine', 'onnx', '--backend', 'cpu'], { env: h.env(), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    worker.stdout.on('data', (d) => (out += d));
    worker.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => worker.on('exit', (code) => resolve(code)));
    await h.waitForOutput(() => out, /"datasetId":"interrupted"[^\n]*"chunk started"|"chunk started"[^\n]*"datasetId":"interrupted"/, 120_000);
    // Into its batches (the model loads in a second or two).
    await new Promise((r) => setTimeout(r, 2_500));
    process.kill(-worker.pid!, 'SIGINT');
    await new Promise((r) => setTimeout(r, 300));
    process.kill(-worker.pid!, 'SIGINT');
    expect(await exited).toBe(130);
    expect(out).not.toContain('terminate called');
    expect(out).toContain('chunk released: worker shutting down');
    // Handed back, not locked until its lock expires: no job is active.
    const chunks = new Queue('chunks', { connection: h.redis, prefix: h.prefix });
    try {
      expect(await chunks.getJobCounts('active', 'delayed', 'waiting')).toMatchObject({ active: 0 });
    } finally {
      await chunks.close();
    }
  });
});
