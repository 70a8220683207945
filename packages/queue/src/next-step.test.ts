import { datasetConfig } from '@layertap/contracts/testing';
import { nextStep, sampleCounts, type DatasetStatus } from './status';

function done(failed: number, failures: Record<string, number>): DatasetStatus {
  return {
    datasetId: 'cats',
    state: 'done',
    config: datasetConfig('cats'),
    progress: { total: 10, ok: 10 - failed, failed, pending: 0, failures, run: 0, finished: true },
    chunks: { total: 5, done: 5, failed: 0, pending: 0 },
    chunkFailures: [],
    cancelled: false,
    engines: [],
  };
}

describe('nextStep of a finished dataset', () => {
  it('does not offer a bare retry for files that fail again: it says to fix them first', () => {
    expect(nextStep(done(3, { decode_failed: 2, not_found: 1 }))).toBe(
      'the 3 failed samples are broken or missing files (decode_failed 2, not_found 1): a retry alone fails them again; ' +
        'replace or fix the files, then `layertap retry cats`; or leave them (`layertap forget cats` drops its state from Redis (the outputs stay))',
    );
  });

  it('offers retry for failures a retry can fix, noting the broken files among them', () => {
    expect(nextStep(done(3, { timeout: 2, decode_failed: 1 }))).toBe(
      '`layertap retry cats` runs the 3 failed samples again (1 of them broken or missing files, which fail again until fixed); ' +
        '`layertap forget cats` drops its state from Redis (the outputs stay)',
    );
    expect(nextStep(done(2, { cancelled: 2 }))).toMatch(/^`layertap retry cats` runs the 2 failed samples again; /);
    expect(nextStep(done(0, {}))).toMatch(/^nothing: every sample is ok/);
  });
});

describe('sampleCounts', () => {
  it('counts cancelled samples apart from the failed ones', () => {
    expect(sampleCounts({ total: 10, ok: 2, failed: 8, pending: 0, failures: { cancelled: 5, timeout: 3 } })).toEqual({ total: 10, ok: 2, failed: 3, cancelled: 5, pending: 0 });
    expect(sampleCounts({ total: 4, ok: 3, failed: 1, pending: 0, failures: { decode_failed: 1 } })).toEqual({ total: 4, ok: 3, failed: 1, cancelled: 0, pending: 0 });
  });
});
