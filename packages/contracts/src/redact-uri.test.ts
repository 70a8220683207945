import { redactText, redactUri, redactUris, storedUri } from './redact-uri';

describe('redactUri', () => {
  it('removes userinfo', () => {
    expect(redactUri('https://alice:s3cret@images.example.com/a.jpg')).toBe('https://images.example.com/a.jpg');
    expect(redactUri('http://token@example.com/x.png')).toBe('http://example.com/x.png');
    expect(redactUri('s3://AKIA:abc@bucket/key.jpg')).toBe('s3://bucket/key.jpg');
  });

  it('hides the values of credential-like query parameters and keeps the others', () => {
    const presigned =
      'https://b.s3.amazonaws.com/k.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20240101' +
      '&X-Amz-Security-Token=abc&X-Amz-Signature=deadbeef&id=42';
    expect(redactUri(presigned)).toBe(
      'https://b.s3.amazonaws.com/k.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***' +
        '&X-Amz-Security-Token=***&X-Amz-Signature=***&id=42',
    );
    expect(redactUri('https://x.blob.core.windows.net/c/a.jpg?sv=2020&sig=abc%3D')).toBe(
      'https://x.blob.core.windows.net/c/a.jpg?sv=2020&sig=***',
    );
    expect(redactUri('https://api.example.com/img?api_key=123&size=large')).toBe(
      'https://api.example.com/img?api_key=***&size=large',
    );
  });

  it('leaves URIs without secrets and plain paths exactly as written', () => {
    expect(redactUri('https://example.com/a b.jpg?x=1')).toBe('https://example.com/a b.jpg?x=1');
    expect(redactUri('/data/images/cat 1.jpg')).toBe('/data/images/cat 1.jpg');
    expect(redactUri('file:///data/a.jpg')).toBe('file:///data/a.jpg');
  });

  it('strips userinfo from text that is not a valid URL too', () => {
    expect(redactUri('http://user:p@ss@[bad/x.jpg')).toBe('http://[bad/x.jpg');
  });

  it('shortens very long URIs', () => {
    const long = `https://example.com/${'a'.repeat(1000)}.jpg`;
    expect(redactUri(long)).toHaveLength(300);
    expect(redactUri(long).endsWith('...')).toBe(true);
  });
});

describe('storedUri', () => {
  it('is redactUri without shortening, idempotent, and leaves URIs without credentials as written', () => {
    const long = `https://u:p@example.com/${'a'.repeat(1000)}.jpg?sig=abc&w=1`;
    expect(storedUri(long)).toBe(`https://example.com/${'a'.repeat(1000)}.jpg?sig=***&w=1`);
    expect(storedUri(storedUri(long))).toBe(storedUri(long));
    expect(storedUri('s3://bucket/a b.jpg')).toBe('s3://bucket/a b.jpg');
    expect(storedUri('random, seed 0')).toBe('random, seed 0');
  });
});

describe('redactUris', () => {
  it('redacts every URI string in a JSON value and keeps the rest', () => {
    const job = {
      kind: 'chunk',
      chunk: 3,
      dataset: { datasetId: 'd', weights: 'http://w:pw@host/w.h5?X-Amz-Signature=s', seed: 0, layers: [{ spec: 'fc1', shape: [4096] }] },
      samples: [{ id: 'a', uri: 'https://u:p@h/a.jpg?token=t' }, { id: 'b', uri: 's3://b/k.jpg' }],
      done: null,
    };
    expect(redactUris(job)).toEqual({
      kind: 'chunk',
      chunk: 3,
      dataset: { datasetId: 'd', weights: 'http://host/w.h5?X-Amz-Signature=***', seed: 0, layers: [{ spec: 'fc1', shape: [4096] }] },
      samples: [{ id: 'a', uri: 'https://h/a.jpg?token=***' }, { id: 'b', uri: 's3://b/k.jpg' }],
      done: null,
    });
    // The value given is not changed.
    expect(job.samples[0]?.uri).toBe('https://u:p@h/a.jpg?token=t');
  });
});

describe('one rule set (issue 18)', () => {
  it.each(['pwd', 'jwt', 'password', 'secret', 'key', 'credential', 'auth', 'access_token', 'Session'])('hides ?%s=', (name) => {
    expect(redactUri(`https://h/a.jpg?${name}=PLANTED&w=1`)).toBe(`https://h/a.jpg?${name}=***&w=1`);
  });

  it('masks a Redis password in userinfo and in the query', () => {
    expect(redactUri('redis://:PLANTED@h:6379/0', Infinity, { userinfo: 'mask' })).toBe('redis://:***@h:6379/0');
    expect(redactUri('redis://h:6379?password=PLANTED&db=1', Infinity, { userinfo: 'mask' })).toBe('redis://h:6379?password=***&db=1');
  });

  it('redacts URIs inside free text', () => {
    const text = 'connect ENOENT redsi://:PLANTED@h:6379?pwd=PLANTED2 then https://x/y.jpg';
    expect(redactText(text)).toBe('connect ENOENT redsi://h:6379?pwd=*** then https://x/y.jpg');
  });
});
