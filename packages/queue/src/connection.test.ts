import { Cluster } from 'ioredis';
import { ValidationError } from '@layertap/contracts';
import { createRedis, hasHashTag, isCluster, isClusterUrl, parseClusterUrl, safeRedisUrl } from './connection';
import { LayertapQueues } from './queues';

describe('Redis Cluster URLs', () => {
  it('parses nodes, credentials and TLS', () => {
    expect(parseClusterUrl('redis-cluster://127.0.0.1:7000,127.0.0.1:7001')).toEqual({
      nodes: [{ host: '127.0.0.1', port: 7000 }, { host: '127.0.0.1', port: 7001 }],
      tls: false,
    });
    expect(parseClusterUrl('rediss-cluster://app:p%40ss@redis-0.redis:6379,[::1]:6380/')).toEqual({
      nodes: [{ host: 'redis-0.redis', port: 6379 }, { host: '::1', port: 6380 }],
      username: 'app',
      password: 'p@ss',
      tls: true,
    });
    expect(parseClusterUrl('redis-cluster://:secret@h:1')).toMatchObject({ password: 'secret' });
    expect(parseClusterUrl('redis-cluster://secret@h:1')).toMatchObject({ password: 'secret' });
    expect(isClusterUrl('redis-cluster://h:1')).toBe(true);
    expect(isClusterUrl('redis://h:1')).toBe(false);
  });

  it.each([
    ['redis-cluster://h', /node "h" is not host:port/],
    ['redis-cluster://h:1,', /node "" is not host:port/],
    ['redis-cluster://h:70000', /not host:port/],
    ['redis-cluster://h:1/2', /no database number/],
    ['redis://h:1', /does not start with redis-cluster/],
  ])('refuses %s', (url, message) => {
    expect(() => parseClusterUrl(url)).toThrow(ValidationError);
    expect(() => parseClusterUrl(url)).toThrow(message);
  });

  it('shows cluster URLs without the password', () => {
    expect(safeRedisUrl('redis-cluster://:hunter2@10.0.0.1:7000,10.0.0.2:7000')).toBe('redis-cluster://:***@10.0.0.1:7000,10.0.0.2:7000');
    expect(safeRedisUrl('rediss-cluster://u:hunter2@h:1')).toBe('rediss-cluster://u:***@h:1');
    expect(safeRedisUrl('redis-cluster://h')).toBe('<invalid Redis Cluster URL>');
    expect(safeRedisUrl('redis://:hunter2@h:1/0')).toBe('redis://:***@h:1/0');
    // Issue 18: ioredis reads a password from the query too.
    expect(safeRedisUrl('redis://h:1?password=hunter2&db=2')).toBe('redis://h:1?password=***&db=2');
  });

  it('refuses an unknown scheme with a message that does not carry the password (issue 18)', () => {
    expect(() => createRedis('redsi://:hunter2@h:1')).toThrow(ValidationError);
    expect(() => createRedis('redsi://:hunter2@h:1')).toThrow(/unknown scheme "redsi:"/);
    let message = '';
    try {
      createRedis('redsi://:hunter2@h:1?password=hunter3');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).not.toMatch(/hunter/);
  });
});

describe('hash tags', () => {
  it.each([
    ['{layertap}', true],
    ['lt-{prod}', true],
    ['{a}b{c}', true],
    ['layertap', false],
    ['{}', false],
    ['{layertap', false],
    ['}x{', false],
  ])('%s -> %s', (prefix, expected) => {
    expect(hasHashTag(prefix)).toBe(expected);
  });

  it('refuses a cluster connection whose prefix has no hash tag, naming the fix', () => {
    const cluster = new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true });
    expect(isCluster(cluster)).toBe(true);
    expect(() => new LayertapQueues({ connection: cluster, prefix: 'layertap' })).toThrow(
      /queue prefix "layertap" has no hash tag: on Redis Cluster.*LAYERTAP_QUEUE_PREFIX.*\{layertap\}/,
    );
    cluster.disconnect();
  });

  it('makes a Cluster client for cluster URLs, with maxRetriesPerRequest null on its nodes when blocking', () => {
    const client = createRedis('redis-cluster://:pw@127.0.0.1:1,127.0.0.1:2', { redisOptions: { lazyConnect: true } });
    expect(isCluster(client)).toBe(true);
    const options = (client as Cluster).options;
    expect(options.redisOptions).toMatchObject({ maxRetriesPerRequest: null, password: 'pw' });
    client.disconnect();
    const single = createRedis('redis://127.0.0.1:1', { redisOptions: { lazyConnect: true } });
    expect(isCluster(single)).toBe(false);
    single.disconnect();
  });
});
