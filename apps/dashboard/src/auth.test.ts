import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import { basicAuth, safeEqual } from './auth';

const basic = (credentials: string) => `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`;

describe('basicAuth (a real express app on a free port)', () => {
  let server: Server;
  let base: string;
  let reached: number;

  beforeAll(async () => {
    const app = express();
    app.use(basicAuth('admin', 'pa:ss wörd'));
    app.get('/secret', (_req, res) => {
      reached++;
      res.json({ ok: true });
    });
    server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });
  beforeEach(() => {
    reached = 0;
  });

  async function get(authorization?: string) {
    const res = await fetch(`${base}/secret`, authorization === undefined ? {} : { headers: { authorization } });
    return { status: res.status, challenge: res.headers.get('www-authenticate'), body: await res.text() };
  }

  it('answers 401 with a Basic challenge without credentials', async () => {
    expect(await get()).toEqual({ status: 401, challenge: 'Basic realm="layertap", charset="UTF-8"', body: 'authentication required\n' });
    expect(reached).toBe(0);
  });

  it.each([
    ['a wrong password', basic('admin:wrong')],
    ['a wrong user', basic('root:pa:ss wörd')],
    ['the password only', basic('pa:ss wörd')],
    ['the password without its part after ":"', basic('admin:pa')],
    ['a user and password swapped', basic('pa:ss wörd:admin')],
    ['a Bearer token', 'Bearer abc'],
    ['malformed base64', 'Basic !!!notbase64'],
    ['an empty Basic', 'Basic '],
    ['credentials plus a suffix', `${basic('admin:pa:ss wörd')} extra`],
  ])('answers 401 for %s', async (_what, authorization) => {
    const res = await get(authorization);
    expect(res.status).toBe(401);
    expect(res.challenge).toBe('Basic realm="layertap", charset="UTF-8"');
    expect(reached).toBe(0);
  });

  it('lets the right credentials through, with a password containing ":" and non-ASCII characters', async () => {
    expect(await get(basic('admin:pa:ss wörd'))).toEqual({ status: 200, challenge: null, body: '{"ok":true}' });
    expect(reached).toBe(1);
  });

  it('accepts the scheme in any case', async () => {
    const token = Buffer.from('admin:pa:ss wörd').toString('base64');
    expect((await get(`basic ${token}`)).status).toBe(200);
    expect((await get(`BASIC   ${token}`)).status).toBe(200);
    expect(reached).toBe(2);
  });

  it('uses the realm it was given', async () => {
    const app = express();
    app.use(basicAuth('u', 'p', 'queues'));
    const other = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    try {
      const res = await fetch(`http://127.0.0.1:${(other.address() as AddressInfo).port}/`);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Basic realm="queues", charset="UTF-8"');
    } finally {
      await new Promise((resolve) => other.close(resolve));
    }
  });
});

describe('safeEqual', () => {
  it('compares strings of any length', () => {
    expect(safeEqual('secret', 'secret')).toBe(true);
    expect(safeEqual('secret', 'secreT')).toBe(false);
    expect(safeEqual('short', 'a much longer string')).toBe(false);
    expect(safeEqual('', '')).toBe(true);
  });
});
