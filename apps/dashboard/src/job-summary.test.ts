import { inflateSync } from 'node:zlib';
import { datasetConfig } from '@layertap/contracts/testing';
import { faviconIco } from './favicon';
import { chunkJobSummary } from './job-summary';

describe('chunkJobSummary', () => {
  it("sums a chunk job up: dataset, run, chunk, how many samples, first and last id, layers; no URI", () => {
    const samples = Array.from({ length: 64 }, (_, i) => ({ id: `img${i}`, uri: `s3://photos/a/img${i}.jpg` }));
    const summary = chunkJobSummary({ kind: 'chunk', dataset: datasetConfig('cats', { run: 2 }), chunk: 7, samples });
    expect(summary).toEqual({ dataset: 'cats', run: 2, chunk: 7, samples: 64, first: 'img0', last: 'img63', layers: ['conv1_1'] });
    expect(JSON.stringify(summary)).not.toContain('s3://');
  });

  it('leaves anything else as it is (the dataset jobs, a malformed payload)', () => {
    const dataset = { kind: 'dataset', dataset: datasetConfig('cats'), chunks: 3 };
    expect(chunkJobSummary(dataset)).toBe(dataset);
    expect(chunkJobSummary(null)).toBeNull();
    const odd = { kind: 'chunk', samples: 'not a list' };
    expect(chunkJobSummary(odd)).toBe(odd);
  });
});

describe('faviconIco', () => {
  it('is an ICO holding one 16x16 RGBA PNG with the layer bars drawn', () => {
    const ico = faviconIco();
    expect([ico.readUInt16LE(0), ico.readUInt16LE(2), ico.readUInt16LE(4)]).toEqual([0, 1, 1]);
    expect([ico[6], ico[7], ico.readUInt16LE(12)]).toEqual([16, 16, 32]);
    const png = ico.subarray(ico.readUInt32LE(18));
    expect(png.length).toBe(ico.readUInt32LE(14));
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect([png.readUInt32BE(16), png.readUInt32BE(20), png[24], png[25]]).toEqual([16, 16, 8, 6]);
    const idatLength = png.readUInt32BE(33);
    const pixels = inflateSync(png.subarray(41, 41 + idatLength));
    const alpha = (x: number, y: number) => pixels[y * 65 + 1 + x * 4 + 3];
    expect(alpha(8, 13)).toBe(255); // the bottom bar
    expect(alpha(8, 0)).toBe(0); // transparent above the top bar
  });
});
