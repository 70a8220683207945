import { ErrorCode, ValidationError } from '@layertap/contracts';
import { readDashboardConfig } from './config';

function refusal(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error('expected a ValidationError, nothing was thrown');
}

const creds = { LAYERTAP_DASHBOARD_USER: 'admin', LAYERTAP_DASHBOARD_PASSWORD: 's3cret' };

describe('readDashboardConfig', () => {
  it.each([
    ['no credentials', {}],
    ['a user only', { LAYERTAP_DASHBOARD_USER: 'admin' }],
    ['a password only', { LAYERTAP_DASHBOARD_PASSWORD: 's3cret' }],
  ])('refuses to start with %s', (_what, env) => {
    const err = refusal(() => readDashboardConfig({}, env));
    expect(err.code).toBe(ErrorCode.InvalidRequest);
    expect(err.message).toContain('LAYERTAP_DASHBOARD_USER and LAYERTAP_DASHBOARD_PASSWORD');
    expect(err.message).toContain('--insecure-no-auth');
  });

  it('treats an empty user as missing: refused, pointing at the variables', () => {
    const err = refusal(() => readDashboardConfig({}, { LAYERTAP_DASHBOARD_USER: '', LAYERTAP_DASHBOARD_PASSWORD: 's3cret' }));
    expect(err.message).toMatch(/needs LAYERTAP_DASHBOARD_USER and LAYERTAP_DASHBOARD_PASSWORD/);
  });

  it('starts without auth only when insecureNoAuth is set, even if credentials exist', () => {
    expect(readDashboardConfig({ insecureNoAuth: true }, {}).auth).toBeUndefined();
    expect(readDashboardConfig({ insecureNoAuth: true }, creds).auth).toBeUndefined();
  });

  it('carries the credentials and defaults to 127.0.0.1:3000, read-write', () => {
    const config = readDashboardConfig({}, creds);
    expect(config).toMatchObject({ auth: { user: 'admin', password: 's3cret' }, host: '127.0.0.1', port: 3000, readOnly: false });
    expect(config.redis).toEqual({ url: 'redis://127.0.0.1:6379', prefix: 'layertap' });
    expect(config.images).toEqual({ fileRoots: [], allowHosts: [], maxBytes: 50 * 1024 * 1024, timeoutMs: 30_000 });
  });

  it("reads the source-image limits the worker uses, for montages", () => {
    const env = { ...creds, LAYERTAP_FILE_ROOTS: '/data/a: /data/b', LAYERTAP_ALLOW_HOSTS: 'minio.internal, 10.0.0.5', LAYERTAP_MAX_IMAGE_BYTES: '1000', LAYERTAP_FETCH_TIMEOUT_MS: '500' };
    expect(readDashboardConfig({}, env).images).toEqual({ fileRoots: ['/data/a', '/data/b'], allowHosts: ['minio.internal', '10.0.0.5'], maxBytes: 1000, timeoutMs: 500 });
    expect(() => readDashboardConfig({}, { ...creds, LAYERTAP_MAX_IMAGE_BYTES: '0' })).toThrow(/^invalid environment: LAYERTAP_MAX_IMAGE_BYTES: /);
  });

  it('refuses a LAYERTAP_ALLOW_HOSTS entry it cannot parse, naming it and the accepted forms', () => {
    expect(readDashboardConfig({}, { ...creds, LAYERTAP_ALLOW_HOSTS: 'minio:9000,10.0.0.0/8' }).images.allowHosts).toEqual(['minio:9000', '10.0.0.0/8']);
    const err = refusal(() => readDashboardConfig({}, { ...creds, LAYERTAP_ALLOW_HOSTS: '10.0.0.0/33' }));
    expect(err.message).toMatch(/^LAYERTAP_ALLOW_HOSTS: invalid allow-list entry "10\.0\.0\.0\/33": not a CIDR range .*; write .*host:port.*\[IPv6\]:port.*CIDR range/);
  });

  it('reads host, port and read-only mode from the environment, and flags beat them', () => {
    const env = { ...creds, LAYERTAP_DASHBOARD_HOST: '0.0.0.0', PORT: '8080', LAYERTAP_DASHBOARD_READ_ONLY: 'Yes' };
    expect(readDashboardConfig({}, env)).toMatchObject({ host: '0.0.0.0', port: 8080, readOnly: true });
    expect(readDashboardConfig({ host: '::1', port: 0, readOnly: false }, env)).toMatchObject({ host: '::1', port: 0, readOnly: false });
  });

  it('serves no metrics listener by default; its port and address from the environment, --metrics-port beats it', () => {
    expect(readDashboardConfig({}, creds).metrics).toEqual({ port: 0, host: '0.0.0.0' });
    const env = { ...creds, LAYERTAP_DASHBOARD_METRICS_PORT: '9465', LAYERTAP_DASHBOARD_METRICS_HOST: '127.0.0.1' };
    expect(readDashboardConfig({}, env).metrics).toEqual({ port: 9465, host: '127.0.0.1' });
    expect(readDashboardConfig({ metricsPort: 0 }, env).metrics).toEqual({ port: 0, host: '127.0.0.1' });
    expect(readDashboardConfig({ metricsPort: 9100 }, creds).metrics.port).toBe(9100);
    expect(refusal(() => readDashboardConfig({}, { ...creds, LAYERTAP_DASHBOARD_METRICS_PORT: '65536' })).message).toMatch(
      /^invalid environment: LAYERTAP_DASHBOARD_METRICS_PORT: /,
    );
  });

  it.each([['70000'], ['-1'], ['http']])('refuses PORT=%j naming it', (port) => {
    const err = refusal(() => readDashboardConfig({}, { ...creds, PORT: port }));
    expect(err.message).toMatch(/^invalid environment: PORT: /);
  });
});
