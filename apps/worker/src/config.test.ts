import { ErrorCode, ValidationError } from '@layertap/contracts';
import { readWorkerConfig } from './config';

describe('readWorkerConfig', () => {
  it('has defaults for everything', () => {
    const config = readWorkerConfig({}, {});
    expect(config).toMatchObject({
      concurrency: 1,
      backend: 'auto',
      exitWhenIdle: false,
      lockDurationMs: 30_000,
      shutdownTimeoutMs: 30_000,
      decodeConcurrency: 4,
      uploadConcurrency: 8,
      maxPixels: 100_000_000,
      maxImageBytes: 50 * 1024 * 1024,
      fetchTimeoutMs: 30_000,
      fileRoots: [],
      allowHosts: [],
      redis: { url: 'redis://127.0.0.1:6379', prefix: 'layertap' },
      logLevel: 'info',
    });
  });

  it('reads the environment', () => {
    const config = readWorkerConfig(
      {},
      {
        LAYERTAP_CONCURRENCY: '4',
        LAYERTAP_BACKEND: 'wasm',
        LAYERTAP_LOCK_DURATION_MS: '60000',
        LAYERTAP_SHUTDOWN_TIMEOUT_MS: '5000',
        LAYERTAP_MAX_PIXELS: '1000',
        LAYERTAP_MAX_IMAGE_BYTES: '2048',
        LAYERTAP_FETCH_TIMEOUT_MS: '100',
        LAYERTAP_DECODE_CONCURRENCY: '2',
        LAYERTAP_UPLOAD_CONCURRENCY: '16',
        REDIS_URL: 'redis://queue:6379',
        LAYERTAP_QUEUE_PREFIX: '{lt}',
      },
    );
    expect(config).toMatchObject({
      concurrency: 4,
      backend: 'wasm',
      lockDurationMs: 60_000,
      shutdownTimeoutMs: 5_000,
      maxPixels: 1000,
      maxImageBytes: 2048,
      fetchTimeoutMs: 100,
      decodeConcurrency: 2,
      uploadConcurrency: 16,
      redis: { url: 'redis://queue:6379', prefix: '{lt}' },
    });
  });

  it('lets flags beat the environment', () => {
    const env = { LAYERTAP_CONCURRENCY: '4', LAYERTAP_BACKEND: 'wasm', LAYERTAP_LOCK_DURATION_MS: '60000' };
    const config = readWorkerConfig({ concurrency: 2, backend: 'cpu', lockDuration: 5_000, exitWhenIdle: true }, env);
    expect(config).toMatchObject({ concurrency: 2, backend: 'cpu', lockDurationMs: 5_000, exitWhenIdle: true });
  });

  it('splits LAYERTAP_FILE_ROOTS on ":" and LAYERTAP_ALLOW_HOSTS on ",", trimming and dropping empties', () => {
    const config = readWorkerConfig({}, { LAYERTAP_FILE_ROOTS: ' /data/images : /mnt/nfs/set ::', LAYERTAP_ALLOW_HOSTS: 'minio, images.internal,,' });
    expect(config.fileRoots).toEqual(['/data/images', '/mnt/nfs/set']);
    expect(config.allowHosts).toEqual(['minio', 'images.internal']);
  });

  it('takes host:port, [v6]:port and CIDR entries in LAYERTAP_ALLOW_HOSTS, and refuses one it cannot parse, naming it', () => {
    const entries = 'minio:9000, [fd00::5]:8080, 10.0.0.0/8, fd00::/8, 127.0.0.2';
    expect(readWorkerConfig({}, { LAYERTAP_ALLOW_HOSTS: entries }).allowHosts).toEqual(['minio:9000', '[fd00::5]:8080', '10.0.0.0/8', 'fd00::/8', '127.0.0.2']);
    const err = (() => {
      try {
        readWorkerConfig({}, { LAYERTAP_ALLOW_HOSTS: 'minio, 127.0.0.2:99999' });
      } catch (e) {
        return e as Error;
      }
      throw new Error('accepted');
    })();
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.message).toMatch(/^LAYERTAP_ALLOW_HOSTS: invalid allow-list entry "127\.0\.0\.2:99999": "99999" is not a port \(1-65535\); write a host name/);
  });

  it.each([
    ['LAYERTAP_CONCURRENCY', '0'],
    ['LAYERTAP_CONCURRENCY', 'two'],
    ['LAYERTAP_CONCURRENCY', '1.5'],
    ['LAYERTAP_BACKEND', 'opencl'],
    ['LAYERTAP_ENGINE', 'torch'],
    ['LAYERTAP_MAX_PIXELS', '-1'],
    ['LOG_LEVEL', 'chatty'],
  ])('refuses %s=%j with a ValidationError naming it', (name, value) => {
    let err: unknown;
    try {
      readWorkerConfig({}, { [name]: value });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).code).toBe(ErrorCode.InvalidRequest);
    expect((err as ValidationError).message).toMatch(new RegExp(`^invalid environment: ${name}: `));
  });

  it.each([
    [{ engine: 'onnx', backend: 'wasm' }, {}],
    [{ engine: 'tfjs', backend: 'cuda' }, {}],
    [{}, { LAYERTAP_ENGINE: 'null', LAYERTAP_BACKEND: 'webgpu' }],
  ] as const)('refuses the impossible engine pair %j %j, listing the valid ones', (flags, env) => {
    let err: unknown;
    try {
      readWorkerConfig(flags, env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).code).toBe(ErrorCode.InvalidRequest);
    expect((err as ValidationError).message).toMatch(/^--engine \w+ --backend \w+ is not a combination layertap has; valid: --engine onnx --backend auto\|cuda\|webgpu\|cpu; /);
  });

  it('turns on TF.js WebGPU im2col from LAYERTAP_WEBGPU_IM2COL', () => {
    expect(readWorkerConfig({}, { LAYERTAP_WEBGPU_IM2COL: '1' }).im2col).toBe(true);
    expect(readWorkerConfig({}, {}).im2col).toBeUndefined();
  });

  it('reads LAYERTAP_WORKERS_DIR, where workers register to share the cores (default: left to the pipeline)', () => {
    expect(readWorkerConfig({}, { LAYERTAP_WORKERS_DIR: '/run/layertap/workers' }).workersDir).toBe('/run/layertap/workers');
    expect(readWorkerConfig({}, {}).workersDir).toBeUndefined();
  });

  it('takes every pair the bench takes, onnx on the CPU included', () => {
    expect(readWorkerConfig({ engine: 'onnx', backend: 'cpu' }, {})).toMatchObject({ engine: 'onnx', backend: 'cpu' });
    expect(readWorkerConfig({}, { LAYERTAP_ENGINE: 'auto', LAYERTAP_BACKEND: 'webgpu' })).toMatchObject({ engine: 'auto', backend: 'webgpu' });
    expect(readWorkerConfig({ engine: 'null' }, {})).toMatchObject({ engine: 'null', backend: 'auto' });
  });

  it("--exit-when-idle: the flag's seconds beat LAYERTAP_EXIT_WHEN_IDLE_SECONDS, which beats 60", () => {
    expect(readWorkerConfig({}, {})).toMatchObject({ exitWhenIdle: false, idleGraceMs: 60_000 });
    expect(readWorkerConfig({ exitWhenIdle: true }, {})).toMatchObject({ exitWhenIdle: true, idleGraceMs: 60_000 });
    expect(readWorkerConfig({ exitWhenIdle: true }, { LAYERTAP_EXIT_WHEN_IDLE_SECONDS: '5' })).toMatchObject({ exitWhenIdle: true, idleGraceMs: 5_000 });
    expect(readWorkerConfig({ exitWhenIdle: 0.5 }, { LAYERTAP_EXIT_WHEN_IDLE_SECONDS: '5' })).toMatchObject({ exitWhenIdle: true, idleGraceMs: 500 });
    expect(() => readWorkerConfig({}, { LAYERTAP_EXIT_WHEN_IDLE_SECONDS: 'soon' })).toThrow(/LAYERTAP_EXIT_WHEN_IDLE_SECONDS/);
  });
});
