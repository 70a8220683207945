import { PassThrough } from 'node:stream';
import { createProgressBar, progressLine } from './progress-bar';

function stream(tty: boolean): { stream: NodeJS.WritableStream; written: () => string } {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString('utf8')));
  Object.assign(out, { isTTY: tty });
  return { stream: out, written: () => text };
}

describe('progress bar', () => {
  it('draws a bar with the percentage and sizes', () => {
    expect(progressLine('torchvision-imagenet', 138_400_000, 553_433_881)).toBe(
      'torchvision-imagenet [########----------------------]  25% 138.4 MB / 553.4 MB',
    );
    expect(progressLine('x', 5e6, 0)).toBe('x 5.0 MB');
  });

  it('redraws one line on a terminal (at most every 100 ms, always at 100%), then ends it', async () => {
    const { stream: out, written } = stream(true);
    let clock = 0;
    const bar = createProgressBar(out, 'w', () => clock);
    bar.update(10, 100);
    clock = 50;
    bar.update(20, 100); // too soon: skipped
    clock = 200;
    bar.update(60, 100);
    clock = 210;
    bar.update(100, 100);
    bar.done();
    await new Promise((r) => setImmediate(r));
    const text = written();
    expect(text.split('\r').filter(Boolean).map((s) => s.replace('\x1b[K', '').replace(/\n$/, ''))).toEqual([
      progressLine('w', 10, 100),
      progressLine('w', 60, 100),
      progressLine('w', 100, 100),
    ]);
    expect(text.endsWith('\n')).toBe(true);
    expect(text.match(/\n/g)).toHaveLength(1);
  });

  it('writes nothing when the stream is not a terminal', async () => {
    const { stream: out, written } = stream(false);
    const bar = createProgressBar(out, 'w');
    bar.update(10, 100);
    bar.update(100, 100);
    bar.done();
    await new Promise((r) => setImmediate(r));
    expect(written()).toBe('');
  });
});
