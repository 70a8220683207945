import { chunkJobId, datasetJobId, parseJobId } from './job-ids';
import { safeRedisUrl } from './connection';

describe('job ids', () => {
  it('names dataset and chunk jobs after the dataset, run and chunk', () => {
    expect(datasetJobId('cats-01ab', 0)).toBe('cats-01ab~r0');
    expect(chunkJobId('cats-01ab', 2, 17)).toBe('cats-01ab~r2~c17');
  });

  it.each([
    ['plain', 0, undefined],
    ['with.dots_and-dashes@x+y=z,w', 3, 0],
    ['r1-c2', 12, 4096],
    ['ends-with-r9', 1, 1],
  ])('round-trips %j run %d chunk %j through parseJobId', (datasetId, run, chunk) => {
    const id = chunk === undefined ? datasetJobId(datasetId, run) : chunkJobId(datasetId, run, chunk);
    expect(parseJobId(id)).toEqual({ datasetId, run, ...(chunk === undefined ? {} : { chunk }) });
  });

  it.each(['', 'no-run-marker', '~r1', 'ds~rX', 'ds~r1~cY', 'ds~r1~c', 'ds:r1'])('refuses %j', (jobId) => {
    expect(parseJobId(jobId)).toBeUndefined();
  });

  it('gives every chunk of every run a distinct id', () => {
    const ids = new Set<string>();
    for (const run of [0, 1, 10]) for (let chunk = 0; chunk < 12; chunk++) ids.add(chunkJobId('ds', run, chunk));
    for (const run of [0, 1, 10]) ids.add(datasetJobId('ds', run));
    expect(ids.size).toBe(3 * 12 + 3);
    for (const id of ids) expect(id).not.toContain(':');
  });
});

describe('safeRedisUrl', () => {
  it('hides the password and keeps the rest', () => {
    expect(safeRedisUrl('redis://:pw@10.0.0.1:6379/1')).toBe('redis://:***@10.0.0.1:6379/1');
    expect(safeRedisUrl('redis://127.0.0.1:6379')).toBe('redis://127.0.0.1:6379');
  });

  it('shows nothing of a URL it cannot parse', () => {
    expect(safeRedisUrl('not a url :pw@host')).toBe('<invalid Redis URL>');
  });
});
