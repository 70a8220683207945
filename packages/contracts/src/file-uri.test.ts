import { pathToFileURL } from 'node:url';
import { fileUriFromBytes, fileUriPath, pathText } from './file-uri';

const LATIN1 = Buffer.from('/data/caf\xe9 #1.jpg', 'latin1');

describe('file URIs from raw path bytes', () => {
  it('percent-encodes a non-UTF-8 name byte by byte and decodes it back to the same bytes', () => {
    const uri = fileUriFromBytes(LATIN1);
    expect(uri).toBe('file:///data/caf%E9%20%231.jpg');
    expect(fileUriPath(uri)).toEqual(LATIN1);
  });

  it('gives UTF-8 paths the URI pathToFileURL gives, and reads those back as their UTF-8 bytes', () => {
    const name = '/data/café ü?.jpg';
    expect(fileUriFromBytes(Buffer.from(name))).toBe(pathToFileURL(name).href);
    expect(fileUriPath(pathToFileURL(name).href).toString('utf8')).toBe(name);
  });

  it('refuses hosts and encoded slashes with the codes fileURLToPath uses', () => {
    expect(() => fileUriPath('file://server/share/a.jpg')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_FILE_URL_HOST' }));
    expect(() => fileUriPath('file:///a%2Fb.jpg')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_FILE_URL_PATH' }));
    expect(fileUriPath('file://localhost/a.jpg').toString()).toBe('/a.jpg');
  });

  it('prints bytes that are not UTF-8 as \\xNN, keeping valid UTF-8 around them', () => {
    expect(pathText(LATIN1)).toBe('/data/caf\\xe9 #1.jpg');
    expect(pathText(Buffer.concat([Buffer.from('ü'), Buffer.from([0xff])]))).toBe('ü\\xff');
    expect(pathText(Buffer.from('/plain/ü.jpg'))).toBe('/plain/ü.jpg');
  });
});
