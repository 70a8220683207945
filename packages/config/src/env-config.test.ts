import { ErrorCode, ValidationError } from '@layertap/contracts';
import { applyProcessDefaults, devServicesEnv, nodeSupportNotice, readCommonConfig } from './env-config';

function thrownBy(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error('expected a ValidationError, nothing was thrown');
}

describe('readCommonConfig', () => {
  it('defaults to a local Redis, the layertap prefix, us-east-1, virtual-host S3 and info logs', () => {
    expect(readCommonConfig({})).toEqual({
      redis: { url: 'redis://127.0.0.1:6379', prefix: 'layertap' },
      s3: { region: 'us-east-1', forcePathStyle: false },
      logLevel: 'info',
    });
  });

  it('turns path-style addressing on when a custom endpoint is set', () => {
    const config = readCommonConfig({ AWS_ENDPOINT_URL: 'http://127.0.0.1:9000' });
    expect(config.s3.endpoint).toBe('http://127.0.0.1:9000');
    expect(config.s3.forcePathStyle).toBe(true);
  });

  it('prefers AWS_ENDPOINT_URL_S3 over AWS_ENDPOINT_URL, and AWS_REGION over AWS_DEFAULT_REGION', () => {
    const config = readCommonConfig({
      AWS_ENDPOINT_URL: 'http://generic:1',
      AWS_ENDPOINT_URL_S3: 'http://s3-only:2',
      AWS_REGION: 'eu-west-3',
      AWS_DEFAULT_REGION: 'ap-south-1',
    });
    expect(config.s3.endpoint).toBe('http://s3-only:2');
    expect(config.s3.region).toBe('eu-west-3');
    expect(readCommonConfig({ AWS_DEFAULT_REGION: 'ap-south-1' }).s3.region).toBe('ap-south-1');
  });

  it('lets AWS_S3_FORCE_PATH_STYLE override the endpoint rule either way', () => {
    expect(readCommonConfig({ AWS_ENDPOINT_URL_S3: 'http://minio:9000', AWS_S3_FORCE_PATH_STYLE: 'false' }).s3.forcePathStyle).toBe(false);
    expect(readCommonConfig({ AWS_S3_FORCE_PATH_STYLE: ' YES ' }).s3.forcePathStyle).toBe(true);
    expect(readCommonConfig({ AWS_S3_FORCE_PATH_STYLE: '1' }).s3.forcePathStyle).toBe(true);
    expect(readCommonConfig({ AWS_S3_FORCE_PATH_STYLE: 'off' }).s3.forcePathStyle).toBe(false);
  });

  it('sets credentials only when both the key id and the secret are given', () => {
    expect(readCommonConfig({ AWS_ACCESS_KEY_ID: 'AKIA' }).s3.credentials).toBeUndefined();
    expect(readCommonConfig({ AWS_SECRET_ACCESS_KEY: 'secret' }).s3.credentials).toBeUndefined();
    expect(readCommonConfig({ AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: 'secret' }).s3.credentials).toBeUndefined();
    expect(readCommonConfig({ AWS_ACCESS_KEY_ID: 'AKIA', AWS_SECRET_ACCESS_KEY: 'secret' }).s3.credentials).toEqual({
      accessKeyId: 'AKIA',
      secretAccessKey: 'secret',
    });
    expect(
      readCommonConfig({ AWS_ACCESS_KEY_ID: 'AKIA', AWS_SECRET_ACCESS_KEY: 'secret', AWS_SESSION_TOKEN: 'tok' }).s3.credentials,
    ).toEqual({ accessKeyId: 'AKIA', secretAccessKey: 'secret', sessionToken: 'tok' });
  });

  it('reads REDIS_URL, LAYERTAP_QUEUE_PREFIX and LOG_LEVEL', () => {
    const config = readCommonConfig({ REDIS_URL: 'rediss://:pw@redis.internal:6380/2', LAYERTAP_QUEUE_PREFIX: '{lt}', LOG_LEVEL: 'debug' });
    expect(config.redis).toEqual({ url: 'rediss://:pw@redis.internal:6380/2', prefix: '{lt}' });
    expect(config.logLevel).toBe('debug');
  });

  it('reads a Redis Cluster from REDIS_URL or REDIS_CLUSTER_NODES, with {layertap} as the default prefix there', () => {
    expect(readCommonConfig({ REDIS_URL: 'redis-cluster://10.0.0.1:7000,10.0.0.2:7000' }).redis).toEqual({
      url: 'redis-cluster://10.0.0.1:7000,10.0.0.2:7000',
      prefix: '{layertap}',
    });
    expect(readCommonConfig({ REDIS_CLUSTER_NODES: ' redis-0:6379 , redis-1:6379 ', LAYERTAP_QUEUE_PREFIX: 'lt-{prod}' }).redis).toEqual({
      url: 'redis-cluster://redis-0:6379,redis-1:6379',
      prefix: 'lt-{prod}',
    });
  });

  it('refuses a cluster with a prefix that has no hash tag, and both Redis variables at once', () => {
    const noTag = thrownBy(() => readCommonConfig({ REDIS_URL: 'rediss-cluster://h:1', LAYERTAP_QUEUE_PREFIX: 'layertap' }));
    expect(noTag.code).toBe(ErrorCode.InvalidRequest);
    expect(noTag.message).toBe(
      'invalid environment: LAYERTAP_QUEUE_PREFIX "layertap" has no hash tag, which Redis Cluster needs (BullMQ keeps each queue\'s keys in one slot): use one such as {layertap}',
    );
    expect(thrownBy(() => readCommonConfig({ REDIS_URL: 'redis://h:1', REDIS_CLUSTER_NODES: 'h:1' })).message).toMatch(/set REDIS_URL or REDIS_CLUSTER_NODES, not both/);
    expect(thrownBy(() => readCommonConfig({ REDIS_CLUSTER_NODES: ' , ' })).message).toMatch(/REDIS_CLUSTER_NODES lists no host:port/);
  });

  it('refuses an unknown LOG_LEVEL with a ValidationError naming the variable', () => {
    const err = thrownBy(() => readCommonConfig({ LOG_LEVEL: 'verbose' }));
    expect(err.code).toBe(ErrorCode.InvalidRequest);
    expect(err.name).toBe('ValidationError');
    expect(err.message).toMatch(/^invalid environment: LOG_LEVEL: /);
  });

  it('names every wrong variable in one error', () => {
    const err = thrownBy(() => readCommonConfig({ AWS_ENDPOINT_URL: 'not a url', LAYERTAP_QUEUE_PREFIX: 'x', AWS_REGION: 'y', LOG_LEVEL: 'loud' }));
    const named = err.message
      .replace(/^invalid environment: /, '')
      .split('; ')
      .map((part) => part.split(':')[0])
      .sort();
    expect(named).toEqual(['AWS_ENDPOINT_URL', 'LOG_LEVEL']);
  });

  it('treats a variable set to an empty string as unset (docker-compose writes VAR= for unset ones)', () => {
    const config = readCommonConfig({ LAYERTAP_QUEUE_PREFIX: '', AWS_ENDPOINT_URL_S3: '', LOG_LEVEL: '' });
    expect(config.redis.prefix).toBe('layertap');
    expect(config.s3.endpoint).toBeUndefined();
    expect(config.logLevel).toBe('info');
  });
});

describe('devServicesEnv', () => {
  it('round-trips through readCommonConfig', () => {
    const s3 = { endpoint: 'http://127.0.0.1:4568', region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, forcePathStyle: true };
    const config = readCommonConfig(devServicesEnv('redis://127.0.0.1:7000', s3));
    expect(config.redis.url).toBe('redis://127.0.0.1:7000');
    expect(config.s3).toEqual(s3);
  });
});

describe('applyProcessDefaults', () => {
  it('silences the SDK notice without overriding an explicit choice', () => {
    const env: NodeJS.ProcessEnv = {};
    applyProcessDefaults(env);
    expect(env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED).toBe('true');
    const chosen: NodeJS.ProcessEnv = { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'false' };
    applyProcessDefaults(chosen);
    expect(chosen.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED).toBe('false');
  });
});

describe('nodeSupportNotice', () => {
  it('names the running version below Node 22', () => {
    expect(nodeSupportNotice('v20.19.0')).toBe(
      'running on Node v20.19.0: AWS SDK releases after January 2027 need Node 22; layertap runs on both',
    );
    expect(nodeSupportNotice('21.7.3')).toContain('Node 21.7.3');
  });

  it('is silent from Node 22 on', () => {
    expect(nodeSupportNotice('v22.0.0')).toBeUndefined();
    expect(nodeSupportNotice('v24.11.1')).toBeUndefined();
  });
});
