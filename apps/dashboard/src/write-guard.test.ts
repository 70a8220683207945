import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Request } from 'express';
import { securityHeaders } from './security-headers';
import { FormTokens, boardWriteGuard, crossSiteRefusal } from './write-guard';

/**
 * The guards on a real express app on a free port, asked with real HTTP requests. Each route answers with
 * what it decided, and counts the writes that got through.
 */
describe('write guards (a real express app on a free port)', () => {
  let server: Server;
  let base: string;
  let writes: number;
  const tokens = new FormTokens();

  beforeAll(async () => {
    const app = express();
    app.use(securityHeaders());
    app.all('/api', (req, res) => {
      const refused = crossSiteRefusal(req);
      if (refused) return void res.status(403).json({ error: refused });
      writes++;
      res.json({ ok: true });
    });
    app.get('/page', (req, res) => void res.json({ token: tokens.tokenFor(req) }));
    app.post('/form', express.urlencoded({ extended: false }), (req, res) => {
      const refused = tokens.refusal(req, (req.body as Record<string, unknown> | undefined)?.csrf);
      if (refused) return void res.status(403).json({ error: refused });
      writes++;
      res.json({ ok: true });
    });
    for (const readOnly of [false, true]) {
      app.use(`/board-${readOnly ? 'ro' : 'rw'}`, boardWriteGuard(readOnly), (_req, res) => {
        writes++;
        res.json({ ok: true });
      });
    }
    server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });
  beforeEach(() => {
    writes = 0;
  });

  async function send(path: string, init: { method?: string; headers?: Record<string, string>; body?: string }) {
    const res = await fetch(base + path, { method: init.method ?? 'POST', headers: init.headers ?? {}, ...(init.body !== undefined ? { body: init.body } : {}) });
    const body = (await res.json()) as { error?: string };
    return { status: res.status, error: body.error, allow: res.headers.get('allow') };
  }

  it.each(([
    ['a script POST without a body', 'POST', {}, undefined, 200],
    ['a script POST with JSON', 'POST', { 'content-type': 'application/json' }, '{}', 200],
    ['a PUT without Origin (a browser sends one cross-origin only after a preflight)', 'PUT', {}, undefined, 200],
    ['the same origin by Origin', 'POST', { origin: 'SELF', 'content-type': 'text/plain' }, 'x', 200],
    ['the same origin by Sec-Fetch-Site', 'POST', { 'sec-fetch-site': 'same-origin', origin: 'null', 'content-type': 'text/plain' }, 'x', 200],
    ['a GET from anywhere', 'GET', { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }, undefined, 200],
    ['Origin: null (a sandboxed frame)', 'POST', { origin: 'null', 'content-type': 'application/x-www-form-urlencoded' }, 'a=1', 403],
    ['Origin: null on a JSON POST', 'POST', { origin: 'null', 'content-type': 'application/json' }, '{}', 403],
    ['another origin', 'POST', { origin: 'http://evil.example', 'content-type': 'application/json' }, '{}', 403],
    ['another port of this host', 'PUT', { origin: 'http://127.0.0.1:1' }, undefined, 403],
    ['Sec-Fetch-Site: cross-site', 'POST', { 'sec-fetch-site': 'cross-site' }, undefined, 403],
    ['Sec-Fetch-Site: same-site', 'POST', { 'sec-fetch-site': 'same-site' }, undefined, 403],
    ['a text/plain form without Origin (an old browser)', 'POST', { 'content-type': 'text/plain' }, '{"name":"x"}', 403],
    ['a multipart form without Origin', 'POST', { 'content-type': 'multipart/form-data; boundary=b' }, '--b--', 403],
  ] as Array<[string, string, Record<string, string>, string | undefined, number]>).map(([what, ...rest]) => [`${what} -> ${rest[3]}`, ...rest] as const))(
    'crossSiteRefusal: %s', async (_what, method, headers, body, status) => {
    const withSelf = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, v === 'SELF' ? base : v]));
    const res = await send('/api', { method, headers: withSelf, ...(body !== undefined ? { body } : {}) });
    expect(res.status).toBe(status);
    expect(writes).toBe(status === 200 ? 1 : 0);
    if (status === 403) expect(res.error).toMatch(/^cross-site request refused \(/);
  });

  it('names what it saw in the refusal', async () => {
    expect((await send('/api', { headers: { origin: 'null' } })).error).toBe(
      'cross-site request refused (Origin: null: a sandboxed frame, a local file or a redirect from another site)',
    );
    expect((await send('/api', { headers: { origin: 'http://evil.example' } })).error).toBe('cross-site request refused (Origin: http://evil.example)');
    expect((await send('/api', { headers: { 'content-type': 'text/plain' }, body: 'x' })).error).toBe(
      'cross-site request refused (a text/plain POST without Origin could come from any site; scripts: send JSON or an Origin header)',
    );
  });

  describe('FormTokens', () => {
    const alice = { authorization: `Basic ${Buffer.from('alice:pw').toString('base64')}` };
    const bob = { authorization: `Basic ${Buffer.from('bob:pw').toString('base64')}` };
    const tokenOf = async (headers: Record<string, string>) => ((await (await fetch(`${base}/page`, { headers })).json()) as { token: string }).token;
    const post = (headers: Record<string, string>, form: string) =>
      send('/form', { headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, body: form });

    it('accepts the token of the page, with a same, opaque or missing origin', async () => {
      const token = await tokenOf(alice);
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(await tokenOf(alice)).toBe(token); // stable for the same credentials
      for (const origin of [{ origin: base }, { origin: 'null' }, {}] as Array<Record<string, string>>) {
        expect((await post({ ...alice, ...origin }, `csrf=${token}&back=x`)).status).toBe(200);
      }
      expect(writes).toBe(3);
    });

    it("refuses a missing or wrong token, another credential's token, and another site even with the token", async () => {
      const token = await tokenOf(alice);
      const cases = [
        [alice, 'back=x'],
        [alice, 'csrf='],
        [alice, `csrf=${token[0] === 'A' ? 'B' : 'A'}${token.slice(1)}`],
        [bob, `csrf=${token}`],
        [{ ...alice, origin: 'http://evil.example' }, `csrf=${token}`],
        [{ ...alice, 'sec-fetch-site': 'cross-site' }, `csrf=${token}`],
      ] as const;
      const answers = await Promise.all(cases.map(([headers, form]) => post(headers, form)));
      expect(answers.map((a) => a.status)).toEqual([403, 403, 403, 403, 403, 403]);
      expect(answers[0]!.error).toBe('the form has no valid token (forms from other sites are refused): reload the page and try again');
      expect(answers[4]!.error).toBe('cross-site request refused (Origin: http://evil.example)');
      expect(writes).toBe(0);
    });

    it('gives other tokens after a restart (a new key)', async () => {
      const request = { get: (name: string) => (name === 'authorization' ? alice.authorization : undefined) } as unknown as Request;
      const restarted = new FormTokens();
      expect(restarted.tokenFor(request)).not.toBe(await tokenOf(alice));
      expect(restarted.tokenFor(request)).toBe(restarted.tokenFor(request));
    });
  });

  describe('boardWriteGuard', () => {
    it('lets reads through, and same-origin writes when writable', async () => {
      expect((await send('/board-rw/api/queues', { method: 'GET', headers: { origin: 'http://evil.example' } })).status).toBe(200);
      expect((await send('/board-rw/api/queues/chunks/pause', { method: 'PUT', headers: { origin: base } })).status).toBe(200);
      expect((await send('/board-rw/api/queues/chunks/add', { headers: { origin: base, 'content-type': 'application/json' }, body: '{}' })).status).toBe(200);
      expect(writes).toBe(3);
    });

    it('refuses cross-site writes with 403, and every write with 405 when read-only', async () => {
      const forged = await send('/board-rw/api/queues/chunks/add', { headers: { origin: 'null', 'content-type': 'text/plain' }, body: '{"name":"x"}' });
      expect([forged.status, forged.error]).toEqual([403, expect.stringMatching(/^cross-site request refused/)]);
      for (const [method, path] of [['PUT', '/api/queues/pause'], ['PUT', '/api/queues/resume'], ['POST', '/api/queues/chunks/add'], ['PATCH', '/api/queues/chunks/1/update-data']]) {
        const res = await send(`/board-ro${path}`, { method: method!, headers: { origin: base } });
        expect({ method, path, status: res.status, allow: res.allow, error: res.error }).toEqual({
          method, path, status: 405, allow: 'GET, HEAD', error: 'the dashboard is read-only: Bull Board writes are disabled',
        });
      }
      expect((await send('/board-ro/api/queues', { method: 'GET' })).status).toBe(200);
      expect(writes).toBe(1); // the GET
    });

    it("refuses with 409 what would lose samples: empty, obliterate, clean (but completed), a job's removal or new data (issue 18)", async () => {
      const refused = [
        ['PUT', '/api/queues/chunks/empty'],
        ['PUT', '/api/queues/chunks/obliterate'],
        ['PUT', '/api/queues/chunks/clean/failed'],
        ['PUT', '/api/queues/chunks/clean/waiting'],
        ['PUT', '/api/queues/chunks/ds~r0~c1/clean'],
        ['PUT', '/api/queues/datasets/ds~r0/remove-unprocessed-children'],
        ['PATCH', '/api/queues/chunks/ds~r0~c1/update-data'],
      ];
      for (const [method, path] of refused) {
        const res = await send(`/board-rw${path}`, { method: method!, headers: { origin: base } });
        expect({ path, status: res.status }).toEqual({ path, status: 409 });
        expect(res.error).toContain('`layertap cancel <dataset>`');
        expect(res.error).toContain('`layertap forget <dataset>`');
      }
      expect(writes).toBe(0);
      for (const path of ['/api/queues/chunks/clean/completed', '/api/queues/chunks/ds~r0~c1/retry', '/api/queues/chunks/retry/failed', '/api/queues/chunks/pause']) {
        expect({ path, status: (await send(`/board-rw${path}`, { method: 'PUT', headers: { origin: base } })).status }).toEqual({ path, status: 200 });
      }
    });
  });

  it('sends the security headers on every response', async () => {
    for (const path of ['/page', '/board-ro/api/queues', '/api']) {
      const res = await fetch(base + path);
      expect({ path, frame: res.headers.get('x-frame-options'), nosniff: res.headers.get('x-content-type-options') }).toEqual({ path, frame: 'DENY', nosniff: 'nosniff' });
      expect(res.headers.get('content-security-policy')).toMatch(/^default-src 'none'; .*frame-ancestors 'none'$/);
    }
  });
});
