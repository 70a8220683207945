import { classifyAddress, isBlockedAddress, parseAddress } from './address-classifier';

describe('parseAddress (ipaddr.js underneath)', () => {
  it('takes dotted quads of exactly four decimal octets and nothing looser', () => {
    expect(parseAddress('192.168.1.20')?.toString()).toBe('192.168.1.20');
    expect(parseAddress('255.255.255.255')?.kind()).toBe('ipv4');
    for (const bad of ['256.1.1.1', '1.2.3', '1.2.3.4.5', '0x7f.0.0.1', '127.1', '2130706433', '', ' 1.2.3.4', 'example.com']) {
      expect({ bad, parsed: parseAddress(bad) }).toEqual({ bad, parsed: undefined });
    }
  });

  it('takes IPv6 with ::, an embedded IPv4, brackets and zones', () => {
    expect(parseAddress('::1')?.toNormalizedString()).toBe('0:0:0:0:0:0:0:1');
    expect(parseAddress('[fe80::1%eth0]')?.toNormalizedString()).toBe('fe80:0:0:0:0:0:0:1%eth0');
    expect(parseAddress('::ffff:169.254.169.254')?.toNormalizedString()).toBe('0:0:0:0:0:ffff:a9fe:a9fe');
    expect(parseAddress('1:2:3:4:5:6:7.8.9.10')?.toNormalizedString()).toBe('1:2:3:4:5:6:708:90a');
    expect(parseAddress('1::')?.toNormalizedString()).toBe('1:0:0:0:0:0:0:0');
    for (const bad of ['::ffff:1.2.3', '1:2:3:4:5:6:7:8:9', 'fe80::g', '[::1']) {
      expect({ bad, parsed: parseAddress(bad) }).toEqual({ bad, parsed: undefined });
    }
  });
});

describe('classifyAddress', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['::1', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.0.10', 'private'],
    ['169.254.169.254', 'link-local'], // cloud metadata service
    ['169.254.0.1', 'link-local'],
    ['fe80::1', 'link-local'],
    ['fd00:ec2::254', 'unique-local'], // AWS metadata over IPv6
    ['fc00::1', 'unique-local'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['100.64.0.1', 'shared'],
    ['224.0.0.1', 'multicast'],
    ['ff02::1', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['192.0.2.1', 'reserved'],
    ['198.18.0.1', 'reserved'],
    ['2001:db8::1', 'reserved'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'reserved'], // Teredo
    // IPv4 hidden inside IPv6 is judged by the IPv4 address.
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:169.254.169.254', 'link-local'],
    ['::ffff:8.8.8.8', 'public'],
    ['::127.0.0.1', 'loopback'],
    ['64:ff9b::10.0.0.1', 'private'], // NAT64
    ['64:ff9b::8.8.8.8', 'public'],
    ['2002:c0a8:0101::1', 'private'], // 6to4 of 192.168.1.1
    ['2002:0808:0808::1', 'public'],
    ['8.8.8.8', 'public'],
    ['172.15.255.255', 'public'],
    ['172.32.0.0', 'public'],
    ['100.128.0.0', 'public'],
    ['2606:4700:4700::1111', 'public'],
    ['not-an-ip', 'invalid'],
  ])('%s is %s', (address, kind) => {
    expect(classifyAddress(address)).toBe(kind);
    expect(isBlockedAddress(address)).toBe(kind !== 'public');
  });
});
