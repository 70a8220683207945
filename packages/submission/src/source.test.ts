import { createHash } from 'node:crypto';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ErrorCode, MAX_URI_BYTES, ValidationError } from '@layertap/contracts';
import { MAX_LINE_BYTES, caseCollisions, normalizeUri, parseCsvLine, resolveSource, toSamples } from './source';
import { skippedWarning } from './plan';
import { TempDir } from './__tests__/temp-dir';

const fileUri = (p: string) => pathToFileURL(p).href;
const sha8 = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 8);

/** The ValidationError `promise` rejects with. */
async function refusal(promise: Promise<unknown>): Promise<ValidationError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ValidationError);
  return err as ValidationError;
}

let tmp: TempDir;
beforeEach(async () => {
  tmp = await TempDir.create();
});
afterEach(async () => {
  await tmp.remove();
});

describe('normalizeUri', () => {
  it.each([
    ['s3://bucket/a.jpg', 's3://bucket/a.jpg'],
    ['https://example.com/a.jpg?x=1', 'https://example.com/a.jpg?x=1'],
    ['file:///abs/a.jpg', 'file:///abs/a.jpg'],
    ['data:image/png;base64,AAAA', 'data:image/png;base64,AAAA'],
  ])('keeps %s as it is', (raw, uri) => {
    expect(normalizeUri(raw, '/base')).toBe(uri);
  });

  it('resolves plain paths against the base directory into file:// URIs', () => {
    expect(normalizeUri('img/a.jpg', '/data/set')).toBe('file:///data/set/img/a.jpg');
    expect(normalizeUri('../b.png', '/data/set')).toBe('file:///data/b.png');
    expect(normalizeUri('/abs/c.png', '/data/set')).toBe('file:///abs/c.png');
    expect(normalizeUri('my photo #1.jpg', '/d')).toBe('file:///d/my%20photo%20%231.jpg');
  });
});

describe('parseCsvLine', () => {
  it('splits on commas and trims cells', () => {
    expect(parseCsvLine('a, b ,c')).toEqual(['a', 'b', 'c']);
    expect(parseCsvLine('')).toEqual(['']);
    expect(parseCsvLine('a,,')).toEqual(['a', '', '']);
  });

  it('keeps commas inside quotes and turns doubled quotes into one', () => {
    expect(parseCsvLine('"s3://b/a, b.jpg","say ""cheese"""')).toEqual(['s3://b/a, b.jpg', 'say "cheese"']);
    expect(parseCsvLine('x,"",y')).toEqual(['x', '', 'y']);
  });
});

describe('resolveSource: text lists', () => {
  it('skips comments and blank lines, resolves relative paths against the list and keeps URIs', async () => {
    const list = await tmp.write(
      'sets/list.txt',
      ['# my dataset', '', 'img/cat.jpg', '   ', '  ../dog.png  ', '\t# indented comment', 's3://bucket/x/bird.webp', 'https://example.com/fish.jpg?sig=1', '/abs/elk.jpg'].join('\n'),
    );
    expect(await resolveSource(list)).toEqual([
      { id: 'cat', uri: fileUri(tmp.path('sets/img/cat.jpg')) },
      { id: 'dog', uri: fileUri(tmp.path('dog.png')) },
      { id: 'bird', uri: 's3://bucket/x/bird.webp' },
      { id: 'fish', uri: 'https://example.com/fish.jpg?sig=1' },
      { id: 'elk', uri: 'file:///abs/elk.jpg' },
    ]);
  });

  it('reads CRLF line endings and a relative source path', async () => {
    await tmp.write('list.lst', 'a.jpg\r\nb.jpg\r\n');
    const cwd = process.cwd();
    process.chdir(tmp.dir);
    try {
      expect(await resolveSource('list.lst')).toEqual([
        { id: 'a', uri: fileUri(tmp.path('a.jpg')) },
        { id: 'b', uri: fileUri(tmp.path('b.jpg')) },
      ]);
    } finally {
      process.chdir(cwd);
    }
  });

  it('suffixes colliding file names with a hash of their URI', async () => {
    const list = await tmp.write('list.txt', 's3://b/train/cat.jpg\ns3://b/test/cat.jpg\ns3://b/dog.jpg\n');
    expect((await resolveSource(list)).map((s) => s.id)).toEqual([
      `cat-${sha8('s3://b/train/cat.jpg')}`,
      `cat-${sha8('s3://b/test/cat.jpg')}`,
      'dog',
    ]);
  });

  it('refuses a line longer than MAX_LINE_BYTES, naming the file and line', async () => {
    const long = `s3://b/${'é'.repeat(MAX_LINE_BYTES / 2)}.jpg`;
    const list = await tmp.write('list.txt', `# ok\na.jpg\n${long}\n`);
    const err = await refusal(resolveSource(list));
    expect(err.code).toBe(ErrorCode.InvalidSource);
    expect(err.message).toBe(`list.txt:3: line is longer than ${MAX_LINE_BYTES} bytes`);
  });

  it('accepts a URI of exactly MAX_URI_BYTES bytes (the longest line is the URI, an id and the syntax)', async () => {
    const uri = `s3://b/${'x'.repeat(MAX_URI_BYTES - 11)}.jpg`;
    expect(Buffer.byteLength(uri)).toBe(MAX_URI_BYTES);
    expect(MAX_LINE_BYTES).toBeGreaterThan(2 * MAX_URI_BYTES);
    const list = await tmp.write('list.txt', `${uri}\n`);
    const [sample] = await resolveSource(list);
    expect(sample?.uri).toBe(uri);
    expect(sample?.id).toBe('x'.repeat(191));
  });

  it('refuses a list with nothing but comments as empty', async () => {
    const list = await tmp.write('list.txt', '# nothing\n\n# here\n');
    const err = await refusal(resolveSource(list));
    expect(err.code).toBe(ErrorCode.EmptyManifest);
    expect(err.message).toBe(`source ${list} holds no images`);
  });

  it('refuses a source that does not exist', async () => {
    const err = await refusal(resolveSource(tmp.path('missing.txt')));
    expect(err.code).toBe(ErrorCode.InvalidSource);
    expect(err.message).toBe(`cannot read source ${tmp.path('missing.txt')}: no such file or directory`);
  });

  it('reads a file:// source', async () => {
    const list = await tmp.write('list.txt', 'a.jpg\n');
    expect(await resolveSource(fileUri(list))).toEqual([{ id: 'a', uri: fileUri(tmp.path('a.jpg')) }]);
  });
});

describe('resolveSource: JSONL manifests', () => {
  it('reads uri and optional id per line, skipping blank lines', async () => {
    const manifest = await tmp.write(
      'm.jsonl',
      [JSON.stringify({ uri: 'img/a.jpg', id: 'first' }), '', JSON.stringify({ uri: ' s3://b/k/b.png ', extra: true }), JSON.stringify({ uri: 'c.jpg' })].join('\n'),
    );
    expect(await resolveSource(manifest)).toEqual([
      { id: 'first', uri: fileUri(tmp.path('img/a.jpg')) },
      { id: 'b', uri: 's3://b/k/b.png' },
      { id: 'c', uri: fileUri(tmp.path('c.jpg')) },
    ]);
  });

  it.each([
    ['{"uri": "a.jpg"}\n{not json}', 'm.jsonl:2: not valid JSON'],
    ['{"uri": "a.jpg"}\n\n{"id": "x"}', 'm.jsonl:3: each line needs a "uri" string'],
    ['{"uri": "   "}', 'm.jsonl:1: each line needs a "uri" string'],
    ['["a.jpg"]', 'm.jsonl:1: each line needs a "uri" string'],
    ['null', 'm.jsonl:1: each line needs a "uri" string'],
    ['{"uri": "a.jpg", "id": 7}', 'm.jsonl:1: "id" must be a string'],
  ])('refuses %j naming the file and line', async (text, message) => {
    const manifest = await tmp.write('m.jsonl', text);
    const err = await refusal(resolveSource(manifest));
    expect(err.code).toBe(ErrorCode.InvalidSource);
    expect(err.message.startsWith(message)).toBe(true);
  });

  it('refuses an unsafe id with InvalidId, naming the line', async () => {
    const manifest = await tmp.write('m.ndjson', '{"uri": "a.jpg"}\n{"uri": "b.jpg", "id": "../b"}\n');
    const err = await refusal(resolveSource(manifest));
    expect(err.code).toBe(ErrorCode.InvalidId);
    expect(err.message).toBe(`m.ndjson:2: sample id "../b" contains a path separator`);
  });

  it('refuses duplicate ids with DuplicateId, naming both lines', async () => {
    const manifest = await tmp.write('m.jsonl', '{"uri": "a.jpg", "id": "x"}\n{"uri": "b.jpg"}\n{"uri": "c.jpg", "id": "x"}\n');
    const err = await refusal(resolveSource(manifest));
    expect(err.code).toBe(ErrorCode.DuplicateId);
    expect(err.message).toBe('m.jsonl:3: duplicate sample id "x" (first at m.jsonl:1)');
  });

  it('refuses a given id equal to one derived for another line', async () => {
    const manifest = await tmp.write('m.jsonl', '{"uri": "s3://b/cat.jpg"}\n{"uri": "s3://b/dog.jpg", "id": "cat"}\n');
    const err = await refusal(resolveSource(manifest));
    expect(err.code).toBe(ErrorCode.DuplicateId);
    expect(err.message).toBe('m.jsonl:2: duplicate sample id "cat" (first at m.jsonl:1)');
  });

  it('refuses an over-long line before parsing it', async () => {
    const manifest = await tmp.write('m.jsonl', `{"uri": "a.jpg"}\n{"uri": "${'a'.repeat(MAX_LINE_BYTES)}"}\n`);
    const err = await refusal(resolveSource(manifest));
    expect(err.message).toBe(`m.jsonl:2: line is longer than ${MAX_LINE_BYTES} bytes`);
  });
});

describe('resolveSource: CSV manifests', () => {
  it('reads quoted cells with commas and doubled quotes, a BOM, any header case and column order', async () => {
    const csv = await tmp.write(
      'set.csv',
      '\uFEFFLabel, ID ,URI\r\ncat,c1,"s3://b/a, b.jpg"\r\n"dog, big",,"s3://b/say ""hi"".png"\r\n\r\nfish,f1,img/fish.jpg\r\n',
    );
    expect(await resolveSource(csv)).toEqual([
      { id: 'c1', uri: 's3://b/a, b.jpg' },
      { id: 'say__hi_', uri: 's3://b/say "hi".png' },
      { id: 'f1', uri: fileUri(tmp.path('img/fish.jpg')) },
    ]);
  });

  it('works without an id column', async () => {
    const csv = await tmp.write('set.csv', 'uri\ns3://b/x.jpg\n');
    expect(await resolveSource(csv)).toEqual([{ id: 'x', uri: 's3://b/x.jpg' }]);
  });

  it('refuses a header without a uri column, listing what it found', async () => {
    const csv = await tmp.write('set.csv', 'path,id\na.jpg,a\n');
    const err = await refusal(resolveSource(csv));
    expect(err.code).toBe(ErrorCode.InvalidSource);
    expect(err.message).toBe('set.csv: the CSV header needs a "uri" column (found: path, id)');
  });

  it('refuses an empty file as having no uri column', async () => {
    const csv = await tmp.write('set.csv', '');
    const err = await refusal(resolveSource(csv));
    expect(err.message).toBe('set.csv: the CSV header needs a "uri" column (found: nothing)');
  });

  it('refuses an empty uri cell naming the line (counting the header)', async () => {
    const csv = await tmp.write('set.csv', 'id,uri\na,s3://b/a.jpg\nb,  \n');
    const err = await refusal(resolveSource(csv));
    expect(err.message).toBe('set.csv:3: empty uri');
  });

  it('refuses a header-only file as empty', async () => {
    const csv = await tmp.write('set.csv', 'uri,id\n');
    const err = await refusal(resolveSource(csv));
    expect(err.code).toBe(ErrorCode.EmptyManifest);
  });

  it('reports duplicate ids with CSV line numbers', async () => {
    const csv = await tmp.write('set.csv', 'uri,id\ns3://b/1.jpg,same\ns3://b/2.jpg,other\ns3://b/3.jpg,same\n');
    const err = await refusal(resolveSource(csv));
    expect(err.code).toBe(ErrorCode.DuplicateId);
    expect(err.message).toBe('set.csv:4: duplicate sample id "same" (first at set.csv:2)');
  });
});

describe('resolveSource: directories', () => {
  it('finds images recursively in sorted order, ignores other files, and names them by relative path', async () => {
    await tmp.files({
      'imgs/b.png': 'x',
      'imgs/a/b/c.jpg': 'x',
      'imgs/a/z.JPEG': 'x',
      'imgs/a/notes.txt': 'x',
      'imgs/a/b/d.webp': 'x',
      'imgs/Z.tiff': 'x',
      'imgs/.DS_Store': 'x',
      'imgs/raw.cr2': 'x',
      'imgs/noext': 'x',
    });
    const root = tmp.path('imgs');
    expect(await resolveSource(root)).toEqual([
      { id: 'Z', uri: fileUri(tmp.path('imgs/Z.tiff')) },
      { id: 'a__b__c', uri: fileUri(tmp.path('imgs/a/b/c.jpg')) },
      { id: 'a__b__d', uri: fileUri(tmp.path('imgs/a/b/d.webp')) },
      { id: 'a__z', uri: fileUri(tmp.path('imgs/a/z.JPEG')) },
      { id: 'b', uri: fileUri(tmp.path('imgs/b.png')) },
    ]);
    // A trailing slash changes nothing.
    expect((await resolveSource(`${root}/`)).map((s) => s.id)).toEqual(['Z', 'a__b__c', 'a__b__d', 'a__z', 'b']);
    // The files left out are named to the caller, so that the submission can count them.
    const skipped: string[] = [];
    await resolveSource(root, { onSkipped: (name) => skipped.push(path.relative(root, name)) });
    expect(skipped).toEqual(['.DS_Store', 'a/notes.txt', 'noext', 'raw.cr2']);
    expect(skippedWarning(skipped)).toBe(
      "skipped 4 files whose extension is not an image's (.DS_Store, notes.txt, noext, and 1 more); images are read by extension: " +
        '.jpg .jpeg .png .webp .gif .tif .tiff .avif .bmp .heic .heif',
    );
    expect(skippedWarning([])).toBeUndefined();
  });

  it('tells apart images with the same name in different folders, and hashes same-stem files', async () => {
    await tmp.files({ 'ds/train/001.jpg': 'x', 'ds/test/001.jpg': 'x', 'ds/test/002.jpg': 'x', 'ds/test/002.png': 'x' });
    expect((await resolveSource(tmp.path('ds'))).map((s) => s.id)).toEqual([
      'test__001',
      `test__002-${sha8('test__002.jpg')}`,
      `test__002-${sha8('test__002.png')}`,
      'train__001',
    ]);
  });

  it('refuses a directory without images as empty', async () => {
    await tmp.files({ 'ds/readme.md': 'x', 'ds/sub/data.json': '{}' });
    const err = await refusal(resolveSource(tmp.path('ds')));
    expect(err.code).toBe(ErrorCode.EmptyManifest);
  });
});

describe('toSamples', () => {
  it('prefers the given id and derives the rest', () => {
    expect(
      toSamples([
        { uri: 's3://b/x.jpg', id: 'given', where: 'm:1' },
        { uri: 's3://b/y.jpg', where: 'm:2' },
      ]),
    ).toEqual([
      { id: 'given', uri: 's3://b/x.jpg' },
      { id: 'y', uri: 's3://b/y.jpg' },
    ]);
  });
});

describe('resolveSource: limits', () => {
  it('refuses a file over the size limit before reading it, naming its size and the limit', async () => {
    const text = Array.from({ length: 200_000 }, (_, i) => `${i}.jpg\n`).join('');
    await tmp.files({ 'list.txt': text });
    const err = await refusal(resolveSource(tmp.path('list.txt'), { maxBytes: 1024 ** 2 }));
    expect(err.code).toBe(ErrorCode.InvalidSource);
    expect(err.message).toBe(
      `list.txt is ${Number((text.length / 1024 ** 2).toFixed(1))} MiB, over the limit of 1 MiB for a source (LAYERTAP_MAX_SOURCE_MB): split it into several datasets, or raise the limit`,
    );
    expect(await resolveSource(tmp.path('list.txt'), { maxBytes: text.length })).toHaveLength(200_000);
  });

  it('refuses more samples than the limit, naming the line (or the source of a listing)', async () => {
    await tmp.files({ 'list.txt': 'a.jpg\nb.jpg\nc.jpg\n', 'dir/a.jpg': 'x', 'dir/b.jpg': 'x', 'dir/c.jpg': 'x' });
    expect((await resolveSource(tmp.path('list.txt'), { maxSamples: 3 })).map((s) => s.id)).toEqual(['a', 'b', 'c']);
    expect((await refusal(resolveSource(tmp.path('list.txt'), { maxSamples: 2 }))).message).toBe(
      'list.txt:3: more than 2 samples (LAYERTAP_MAX_SAMPLES): split it into several datasets, or raise the limit',
    );
    expect((await refusal(resolveSource(tmp.path('dir'), { maxSamples: 2 }))).message).toBe(
      `source ${tmp.path('dir')}: more than 2 samples (LAYERTAP_MAX_SAMPLES): split it into several datasets, or raise the limit`,
    );
    // A listing's paths (or s3:// URIs) count against the size limit: the third of three passes 100 bytes here.
    expect(2 * tmp.path('dir/a.jpg').length).toBeLessThanOrEqual(100);
    expect((await refusal(resolveSource(tmp.path('dir'), { maxBytes: 100 }))).message).toBe(
      `the list of ${tmp.path('dir')} is ${3 * tmp.path('dir/a.jpg').length} bytes, over the limit of 100 bytes for a source (LAYERTAP_MAX_SOURCE_MB): split it into several datasets, or raise the limit`,
    );
  });

  it('refuses a URI longer than 4096 bytes, naming the line', async () => {
    const uri = `https://example.com/${'é'.repeat(2040)}.jpg`;
    await tmp.files({ 'list.jsonl': `${JSON.stringify({ uri: 'https://example.com/a.jpg' })}\n${JSON.stringify({ uri })}\n` });
    const err = await refusal(resolveSource(tmp.path('list.jsonl')));
    expect(err.message).toBe(`list.jsonl:2: the URI is ${Buffer.byteLength(uri)} bytes, over the limit of 4096 bytes`);
    expect(Buffer.byteLength(uri)).toBeGreaterThan(4096);
    expect(uri.length).toBeLessThan(4096);
  });
});

describe('caseCollisions', () => {
  it('groups ids that differ only by case, in order of first appearance', () => {
    expect(caseCollisions(['Cat', 'dog', 'cat', 'DOG', 'Dog', 'bird', 'CAT'].map((id) => ({ id })))).toEqual([
      ['Cat', 'cat', 'CAT'],
      ['dog', 'DOG', 'Dog'],
    ]);
    expect(caseCollisions(['a', 'b', 'a_1'].map((id) => ({ id })))).toEqual([]);
  });
});
