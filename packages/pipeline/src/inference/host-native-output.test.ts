import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '@layertap/config';
import { InferenceHost } from './host';
import { cleanLine, nativeSource } from './native-output';
import type { ModelSpec } from './protocol';

// A child that writes to fd 1 and 2 directly, as Dawn and ONNX Runtime do, plus one JSON warning line (as
// json-warnings.ts writes them) and one line without its newline, then answers the load request.
const CHILD = `
const fs = require('node:fs');
process.on('message', (req) => {
  fs.writeSync(2, 'Warning: Dawn: the adapter is a CPU (lavapipe)\\n');
  fs.writeSync(1, '2026-12-04 10:00:00.123 onnxruntime[42:0x1] [W:onnxruntime:, session_state.cc:1166 VerifyEachNodeIsAssignedToAnEp] Some nodes were not assigned\\r\\n');
  fs.writeSync(2, '\\u001b[33msomething native\\u001b[0m\\n\\n');
  fs.writeSync(2, JSON.stringify({ level: 40, time: 'x', pid: process.pid, name: 'layertap-inference', warning: 'DeprecationWarning', code: 'DEP0005', msg: 'node warning' }) + '\\n');
  fs.writeSync(1, 'half a line');
  process.send({ id: req.id, ok: true, value: { backend: 'cpu', backendReason: 'raw', weights: { description: 'none' }, loadMs: 0 } });
});
process.on('disconnect', () => process.exit(0));
`;

const spec: ModelSpec = { engine: 'tfjs', backend: 'cpu', imageSize: 32, layers: [{ spec: 'fc2', canonical: 'fc2', shape: [4096] }], seed: 0, preprocess: 'torchvision', store: { layout: 'chw', pool: 'none', dtype: 'float32' } };

describe("the inference process's raw output", () => {
  it('reaches the log as one JSON line per line, with its source, never as raw text', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'layertap-raw-child-'));
    const childPath = path.join(dir, 'raw-child.js');
    await writeFile(childPath, CHILD);
    let out = '';
    const destination = new Writable({ write: (chunk, _enc, done) => ((out += String(chunk)), done()) });
    const host = new InferenceHost({ childPath, log: createLogger({ name: 'layertap-worker', destination }) });
    try {
      await host.load(spec);
      const pid = host.pid;
      await host.close();
      const until = Date.now() + 5_000;
      while (out.trim().split('\n').length < 5 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      const pick = (l: Record<string, unknown>) => ({ level: l.level, source: l.source, stream: l.stream, msg: l.msg, inferencePid: l.inferencePid, name: l.name });
      expect(lines.map(pick)).toEqual(
        expect.arrayContaining([
          { level: 40, source: 'dawn', stream: 'stderr', msg: 'Warning: Dawn: the adapter is a CPU (lavapipe)', inferencePid: pid, name: 'layertap-worker' },
          {
            level: 40,
            source: 'onnxruntime',
            stream: 'stdout',
            msg: '2026-12-04 10:00:00.123 onnxruntime[42:0x1] [W:onnxruntime:, session_state.cc:1166 VerifyEachNodeIsAssignedToAnEp] Some nodes were not assigned',
            inferencePid: pid,
            name: 'layertap-worker',
          },
          { level: 40, source: 'native', stream: 'stderr', msg: 'something native', inferencePid: pid, name: 'layertap-worker' },
          { level: 40, source: 'native', stream: 'stdout', msg: 'half a line', inferencePid: pid, name: 'layertap-worker' },
          // A JSON warning of the child keeps its fields and message, under the worker's name.
          { level: 40, source: undefined, stream: undefined, msg: 'node warning', inferencePid: pid, name: 'layertap-worker' },
        ]),
      );
      expect(lines).toHaveLength(5);
      expect(lines.find((l) => l.msg === 'node warning')).toMatchObject({ warning: 'DeprecationWarning', code: 'DEP0005' });
    } finally {
      await host.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('nativeSource and cleanLine', () => {
  it.each([
    ['2026-12-04 10:00:00.123 onnxruntime[42:0x1] [E:onnxruntime:Default, provider_bridge_ort.cc:1862 TryGetProviderInfo_CUDA] failed', 'onnxruntime'],
    ['Warning: Dawn: adapter is a software rasteriser', 'dawn'],
    ['WARNING: [Loader Message] Code 0 : loader_scanned_icd_add: Could not get vkCreateInstance', 'dawn'],
    ['MESA: warning: lavapipe is not a conformant vulkan implementation', 'dawn'],
    ["terminate called after throwing an instance of 'std::bad_alloc'", 'native'],
  ])('%s -> %s', (line, source) => {
    expect(nativeSource(line)).toBe(source);
  });

  it('drops terminal colours and carriage returns, and cuts very long lines', () => {
    expect(cleanLine('\u001b[1;31merror\u001b[0m\r')).toBe('error');
    const long = cleanLine('x'.repeat(10_000));
    expect(long).toBe(`${'x'.repeat(4_000)}… (10000 characters)`);
  });
});
