import { createHash } from 'node:crypto';
import { MAX_ID_BYTES, assignSampleIds, idFromUri, idProblem, isSafeId, shortHash } from './ids';

const sha8 = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 8);

describe('idProblem / isSafeId', () => {
  it.each([
    ['img_001', undefined],
    ['a@b+c=d,e-f.g', undefined],
    ['_leading_underscore', undefined],
    ['9lives', undefined],
    ['x'.repeat(MAX_ID_BYTES), undefined],
  ])('accepts %j', (id, expected) => {
    expect(idProblem(id)).toBe(expected);
    expect(isSafeId(id)).toBe(true);
  });

  it.each([
    ['', 'is empty'],
    ['x'.repeat(MAX_ID_BYTES + 1), 'is longer than 200 bytes'],
    ['tab\there', 'contains a control character'],
    ['nul\u0000', 'contains a control character'],
    ['del\u007f', 'contains a control character'],
    ['a/b', 'contains a path separator'],
    ['a\\b', 'contains a path separator'],
    ['..', "is '..'"],
    ['a..b', "contains '..'"],
    ['.hidden', 'must not start with'],
    ['-flag', 'must not start with'],
    ['.', "is '.'"],
    ['has space', 'may only contain'],
    ['tilde~r0', 'may only contain'],
    ['colon:x', 'may only contain'],
  ])('refuses %j (%s)', (id, fragment) => {
    expect(idProblem(id)).toContain(fragment);
    expect(isSafeId(id)).toBe(false);
  });

  it('measures the length limit in UTF-8 bytes, not characters', () => {
    // 101 two-byte characters: 101 characters but 202 bytes.
    expect(idProblem('é'.repeat(101))).toBe('is longer than 200 bytes');
    // 100 of them fit the byte limit, and are then refused for the character set instead.
    expect(idProblem('é'.repeat(100))).toMatch(/^may only contain/);
    // A 4-byte emoji: 51 of them are 102 UTF-16 units and 204 bytes.
    expect(idProblem('😀'.repeat(51))).toBe('is longer than 200 bytes');
  });

  it('checks control characters before path separators', () => {
    expect(idProblem('a/\nb')).toBe('contains a control character');
  });
});

describe('shortHash', () => {
  it('is the leading hex of the sha256 digest', () => {
    expect(shortHash('abc')).toBe('ba7816bf');
    expect(shortHash('abc', 12)).toBe('ba7816bf8f01');
  });
});

describe('idFromUri', () => {
  it.each([
    ['s3://bucket/cats/001.jpg', '001'],
    ['https://example.com/a/photo.JPG?sig=abc/def.png#frag', 'photo'],
    ['file:///tmp/my photo (1).png', 'my_photo__1_'],
    ['C:\\data\\img.final.png', 'img.final'],
    ['relative/noext', 'noext'],
    ['x/.hidden.jpg', 'hidden'],
    ['x/--dash.jpg', 'dash'],
    ['x/a..b..c.jpg', 'a_b_c'],
    ['x/..weird.jpg', '_weird'],
    ['x/ünïcödé.png', '_n_c_d_'],
    ['x/---.png', 'sample'],
    ['', 'sample'],
    // Credentials never become ids (issue 18): userinfo and query values are skipped, the host is used.
    ['http://user:secret@host/?f=d.jpg', 'host'],
    ['http://user:secret@host', 'host'],
    ['https://tok3n@images.example.com/', 'images.example'],
    ['http://user:p@ss@[bad/?x=1', '_bad'],
  ])('%j -> %j', (uri, id) => {
    expect(idFromUri(uri)).toBe(id);
  });

  it('keeps room for a "-<hash>" suffix under the byte limit', () => {
    const id = idFromUri(`s3://b/${'a'.repeat(400)}.jpg`);
    expect(id).toBe('a'.repeat(MAX_ID_BYTES - 9));
    expect(Buffer.byteLength(`${id}-${shortHash('x')}`)).toBe(MAX_ID_BYTES);
  });

  it('always yields a safe id, whatever the URI', () => {
    const nasty = ['x/%2e%2e', 'x/..', 'x/.', 'x/a\u0000b.png', 'x/😀😀.png', 'x/a:b.jpg', 'x/~r1~c2.jpg', `x/${'é'.repeat(300)}.png`, 'x/a..jpg'];
    for (const uri of nasty) expect([uri, idProblem(idFromUri(uri))]).toEqual([uri, undefined]);
  });
});

describe('assignSampleIds', () => {
  it('keeps unique stems and suffixes every colliding one with the hash of its own URI', () => {
    const uris = ['s3://b/a/cat.jpg', 's3://b/dog.png', 's3://b/b/cat.jpg', 's3://b/c/cat.png'];
    expect(assignSampleIds(uris)).toEqual([
      `cat-${sha8('s3://b/a/cat.jpg')}`,
      'dog',
      `cat-${sha8('s3://b/b/cat.jpg')}`,
      `cat-${sha8('s3://b/c/cat.png')}`,
    ]);
  });

  it('gives each URI the same id whatever the order of the list', () => {
    const uris = ['s3://b/x/1.jpg', 's3://b/y/1.jpg', 's3://b/2.jpg', 's3://b/z/1.png', 's3://b/3.webp'];
    const forward = new Map(uris.map((u, i) => [u, assignSampleIds(uris)[i]]));
    const reversed = [...uris].reverse();
    const backward = new Map(reversed.map((u, i) => [u, assignSampleIds(reversed)[i]]));
    expect(backward).toEqual(forward);
    expect(new Set(forward.values()).size).toBe(uris.length);
  });

  it('returns an empty list for no URIs', () => {
    expect(assignSampleIds([])).toEqual([]);
  });
});
