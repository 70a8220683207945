import { Writable } from 'node:stream';
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { writeFatalError, writeFatalLine } from './fatal-line';

function collector(): { stream: Writable; lines: () => Array<Record<string, unknown>> } {
  let out = '';
  const stream = new Writable({ write: (chunk, _enc, done) => ((out += String(chunk)), done()) });
  return { stream, lines: () => out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe("the worker's fatal lines are lines of its JSON log", () => {
  it('a bad option: one JSON line, fatal, with the message and the exit code', () => {
    const { stream, lines } = collector();
    writeFatalLine('unknown option --concurency, did you mean --concurrency?', { exitCode: 2 }, stream);
    expect(lines()).toEqual([
      { level: 60, time: expect.any(String), pid: process.pid, name: 'layertap-worker', exitCode: 2, msg: 'unknown option --concurency, did you mean --concurrency?' },
    ]);
  });

  it('a failed start: the error message with its code, and the userinfo of a URL dropped as in every log line', () => {
    const { stream, lines } = collector();
    writeFatalError(new ValidationError(ErrorCode.InvalidRequest, 'engine onnx has no backend tensorflow'), 2, stream);
    writeFatalError(new Error('cannot connect to Redis at redis://:hunter2secret@127.0.0.1:6379: WRONGPASS'), 1, stream);
    const [bad, down] = lines();
    expect(bad).toMatchObject({ level: 60, name: 'layertap-worker', code: 'invalid_request', exitCode: 2, msg: 'engine onnx has no backend tensorflow' });
    expect(down).toMatchObject({ level: 60, exitCode: 1, msg: 'cannot connect to Redis at redis://127.0.0.1:6379: WRONGPASS' });
    expect(down).not.toHaveProperty('code');
    expect(JSON.stringify(lines())).not.toContain('hunter2secret');
  });
});
