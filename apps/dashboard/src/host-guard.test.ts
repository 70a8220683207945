import { defaultAllowedHosts, hostOf } from './host-guard';
import { LoginLimiter } from './login-limit';

describe('hostOf', () => {
  it.each([
    ['localhost:3000', 'localhost'],
    ['Dash.Internal', 'dash.internal'],
    ['[::1]:3000', '::1'],
    ['[::1]', '::1'],
    ['::1', '::1'],
    ['127.0.0.1:80', '127.0.0.1'],
  ])('%s -> %s', (header, host) => expect(hostOf(header)).toBe(host));
});

describe('defaultAllowedHosts', () => {
  it('is the listen address and the loopback names', () => {
    expect(defaultAllowedHosts('127.0.0.1').sort()).toEqual(['127.0.0.1', '::1', 'localhost']);
    expect(defaultAllowedHosts('10.1.2.3')).toContain('10.1.2.3');
    expect(defaultAllowedHosts('10.1.2.3')).not.toContain('evil.example');
  });
});

describe('LoginLimiter', () => {
  it('blocks an address after its failures until the window ends, and counts each address apart', () => {
    let now = 1_000_000;
    const limiter = new LoginLimiter({ maxFailures: 3, windowMs: 60_000, now: () => now });
    for (let i = 0; i < 3; i++) {
      expect(limiter.retryAfter('a')).toBe(0);
      limiter.fail('a');
    }
    expect(limiter.retryAfter('a')).toBe(60);
    expect(limiter.retryAfter('b')).toBe(0);
    now += 59_500;
    expect(limiter.retryAfter('a')).toBe(1);
    now += 500;
    expect(limiter.retryAfter('a')).toBe(0);
  });

  it('tracks at most maxClients addresses, dropping the oldest', () => {
    const limiter = new LoginLimiter({ maxFailures: 1, maxClients: 2 });
    limiter.fail('a');
    limiter.fail('b');
    limiter.fail('c');
    expect([limiter.retryAfter('a'), limiter.retryAfter('b') > 0, limiter.retryAfter('c') > 0]).toEqual([0, true, true]);
  });
});
