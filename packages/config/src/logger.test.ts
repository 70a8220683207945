import { Writable } from 'node:stream';
import { readCommonConfig } from './env-config';
import { createLogger, redactUrl } from './logger';

/** A logger writing into memory, and the JSON lines it wrote so far. */
function capture(level?: string) {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  const log = createLogger({ name: 'test', destination, ...(level ? { level } : {}) });
  const text = () => chunks.join('');
  const lines = () =>
    text()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { log, text, lines };
}

const SECRET = 'wJalrXUtnFEMI-K7MDENG-bPxRfiCY';
const PASSWORD = 'hunter2-correct-horse';

describe('createLogger', () => {
  it('writes structured JSON lines with name, level, pid, an ISO time and the message', () => {
    const { log, lines } = capture();
    log.info({ chunk: 3 }, 'chunk started');
    const [line] = lines();
    expect(line).toMatchObject({ name: 'test', level: 30, pid: process.pid, chunk: 3, msg: 'chunk started' });
    expect(typeof line?.time).toBe('string');
    expect(Number.isNaN(Date.parse(String(line?.time)))).toBe(false);
  });

  it('drops lines below its level', () => {
    const { log, lines } = capture('warn');
    log.info('quiet');
    log.warn('loud');
    expect(lines().map((l) => l.msg)).toEqual(['loud']);
  });

  it('redacts passwords and S3 secrets at the top level and one level down', () => {
    const { log, text, lines } = capture();
    log.info({ password: PASSWORD, auth: { user: 'admin', password: PASSWORD } }, 'auth');
    log.info({ secretAccessKey: SECRET, s3: { secretAccessKey: SECRET, accessKeyId: 'AKIAEXAMPLE' } }, 's3');
    log.info({ s3: { region: 'eu-west-1', credentials: { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: SECRET } } }, 'creds');
    log.info({ headers: { authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}` } }, 'request');
    const out = text();
    expect(out).not.toContain(PASSWORD);
    expect(out).not.toContain(SECRET);
    expect(out).not.toContain('AKIAEXAMPLE');
    expect(out).not.toContain(Buffer.from(`admin:${PASSWORD}`).toString('base64'));
    const [auth, s3, creds, request] = lines();
    expect(auth).toMatchObject({ password: '[redacted]', auth: { user: 'admin', password: '[redacted]' } });
    expect(s3).toMatchObject({ secretAccessKey: '[redacted]', s3: { secretAccessKey: '[redacted]', accessKeyId: '[redacted]' } });
    // The whole credentials object goes, and the fields next to it stay.
    expect(creds).toMatchObject({ s3: { region: 'eu-west-1', credentials: '[redacted]' } });
    expect(request).toMatchObject({ headers: { authorization: '[redacted]' } });
  });

  it('redacts a whole CommonConfig logged as the log object', () => {
    const { log, text } = capture();
    const config = readCommonConfig({ AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE', AWS_SECRET_ACCESS_KEY: SECRET, AWS_SESSION_TOKEN: 'session-tok-123' });
    log.info(config, 'config');
    expect(text()).not.toContain(SECRET);
    expect(text()).not.toContain('session-tok-123');
    expect(text()).toContain('"region":"us-east-1"');
  });

  it('does not change the object it logged', () => {
    const { log } = capture();
    const value = { password: PASSWORD, nested: { secretAccessKey: SECRET } };
    log.info(value, 'x');
    expect(value).toEqual({ password: PASSWORD, nested: { secretAccessKey: SECRET } });
  });
});

describe('redactUrl', () => {
  it.each([
    ['redis://:s3cret@redis.internal:6379/0', 'redis://:***@redis.internal:6379/0'],
    ['rediss://default:s3cret@cache.example.com:6380', 'rediss://default:***@cache.example.com:6380'],
    ['https://user:p%40ss@example.com/path?q=1', 'https://user:***@example.com/path?q=1'],
  ])('hides the password of %s', (url, shown) => {
    expect(redactUrl(url)).toBe(shown);
  });

  it('leaves a URL without a password unchanged', () => {
    expect(redactUrl('redis://127.0.0.1:6379')).toBe('redis://127.0.0.1:6379');
    expect(redactUrl('redis://justuser@host:6379')).toBe('redis://justuser@host:6379');
  });

  it('hides the user info of a string the URL parser refuses', () => {
    const shown = redactUrl('redis//:s3cret@host:6379 with spaces');
    expect(shown).not.toContain('s3cret');
    expect(shown).toBe('redis//***@host:6379 with spaces');
  });
});

describe('URIs in log lines (issue 18)', () => {
  it('redacts credentials of URIs in messages, fields and errors', () => {
    const { log, text, lines } = capture();
    log.warn({ uri: `https://h/a.jpg?pwd=${PASSWORD}`, redis: `redis://h:6379?password=${PASSWORD}` }, `failed https://u:${SECRET}@h/b.jpg?jwt=${SECRET}`);
    log.error({ err: new Error(`connect ENOENT redsi://:${PASSWORD}@h:1`) }, 'cannot connect');
    expect(text()).not.toContain(PASSWORD);
    expect(text()).not.toContain(SECRET);
    const [first, second] = lines();
    expect(first).toMatchObject({ uri: 'https://h/a.jpg?pwd=***', redis: 'redis://h:6379?password=***', msg: 'failed https://h/b.jpg?jwt=***' });
    expect(second).toMatchObject({ err: { type: 'Error', message: 'connect ENOENT redsi://h:1' } });
  });
});
