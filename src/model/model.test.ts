import { describe, expect, it } from 'vitest';
import { eui64Address, macFromEui64 } from './eui64.js';
import { normalizeMac, randomLocalMac } from './mac.js';
import { parseAddress, parsePrefix, reverseName, reverseZones, parseHostPort } from './ip.js';
import { NetworkSchema, UserSchema, VmSchema, describeIssues } from './schema.js';
import { checkSshKey } from './ssh.js';
import { ED25519 } from '../../test/support/store.js';

describe('EUI-64', () => {
  it('derives the SLAAC address as RFC 4291 does (U/L bit flipped, ff:fe inserted)', () => {
    const p = parsePrefix('2001:db8:1::/64')!;
    expect(eui64Address(p, '52:54:00:12:34:56')).toBe('2001:db8:1:0:5054:ff:fe12:3456');
    expect(eui64Address(p, '02:00:00:00:00:01')).toBe('2001:db8:1::ff:fe00:1');
  });
  it('takes the upper 64 bits of a shorter prefix', () => {
    expect(eui64Address(parsePrefix('2001:db8::/48')!, '00:11:22:33:44:55')).toBe('2001:db8::211:22ff:fe33:4455');
  });
  it('decodes the MAC back from an EUI-64 address and refuses other interface ids', () => {
    const a = parseAddress('2001:db8:1:0:5054:ff:fe12:3456')!;
    expect(macFromEui64(a as never)).toBe('52:54:00:12:34:56');
    expect(macFromEui64(parseAddress('2001:db8:1::1') as never)).toBeUndefined();
  });
});

describe('MAC', () => {
  it('normalises forms and refuses malformed and multicast', () => {
    expect(normalizeMac('52-54-00-AB-CD-EF')).toBe('52:54:00:ab:cd:ef');
    expect(normalizeMac('525400abcdef')).toBe('52:54:00:ab:cd:ef');
    expect(normalizeMac('52:54:00:ab:cd')).toBeUndefined();
    expect(normalizeMac('52:54-00:ab:cd:ef')).toBeUndefined();
    expect(normalizeMac('01:00:5e:00:00:01')).toBeUndefined();
  });
  it('allocates locally administered unicast MACs', () => {
    for (let i = 0; i < 200; i++) {
      const first = parseInt(randomLocalMac().slice(0, 2), 16);
      expect(first & 0x03).toBe(0x02);
    }
  });
});

describe('IP', () => {
  it('parses, normalises and reverses', () => {
    expect(parseAddress('::ffff:10.0.0.1')!.toString()).toBe('10.0.0.1');
    expect(parseAddress('2001:DB8:0:0::1')!.toString()).toBe('2001:db8::1');
    expect(parseAddress('10.1')).toBeUndefined();
    expect(reverseName(parseAddress('10.0.0.1')!)).toBe('1.0.0.10.in-addr.arpa');
    expect(reverseName(parseAddress('2001:db8::1')!)).toBe('1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa');
    expect(reverseZones(parsePrefix('2001:db8:1::/64')!)).toEqual(['0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa']);
    expect(reverseZones(parsePrefix('10.0.0.0/24')!)).toEqual(['0.0.10.in-addr.arpa']);
  });
  it('splits a prefix off a label boundary into the zones just below it, never above (RFC 2317 / RFC 3596 cuts)', () => {
    const v4 = reverseZones(parsePrefix('10.1.16.0/20')!);
    expect(v4).toHaveLength(16);
    expect(v4[0]).toBe('16.1.10.in-addr.arpa');
    expect(v4[15]).toBe('31.1.10.in-addr.arpa');
    expect(reverseZones(parsePrefix('2001:db8:1:4::/62')!)).toEqual(['4.0.0.0', '5.0.0.0', '6.0.0.0', '7.0.0.0'].map((n) => `${n}.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa`));
    expect(reverseZones(parsePrefix('192.0.2.128/25')!)).toHaveLength(128);
    expect(reverseZones(parsePrefix('192.0.2.128/25')!)[127]).toBe('255.2.0.192.in-addr.arpa');
    expect(reverseZones(parsePrefix('2001:db8::/29')!)).toEqual(['8', '9', 'a', 'b', 'c', 'd', 'e', 'f'].map((n) => `${n}.b.d.0.1.0.0.2.ip6.arpa`));
    expect(reverseZones(parsePrefix('10.0.0.0/8')!)).toEqual(['10.in-addr.arpa']);
  });
  it('refuses prefixes with host bits and the wrong family', () => {
    expect(parsePrefix('2001:db8::1/64')).toBeUndefined();
    expect(parsePrefix('10.0.0.0/24', 6)).toBeUndefined();
    expect(parsePrefix('nonsense')).toBeUndefined();
  });
  it('splits host:port forms', () => {
    expect(parseHostPort('[::1]:53')).toEqual({ host: '::1', port: 53 });
    expect(parseHostPort('127.0.0.1:5353')).toEqual({ host: '127.0.0.1', port: 5353 });
    expect(parseHostPort('::1', 53)).toEqual({ host: '::1', port: 53 });
    expect(parseHostPort('[::1]:99999')).toBeUndefined();
  });
});

describe('schemas', () => {
  const net = { v: 1, name: 'lab', prefix6: '2001:db8:1::/64', domain: 'Lab.Example.', metadata6: '2001:db8:1::1' };
  it('normalises a valid network', () => {
    const n = NetworkSchema.parse(net);
    expect(n.domain).toBe('lab.example');
    expect(n.upstreams).toEqual([]);
  });
  it('names the first problem', () => {
    const bad = NetworkSchema.safeParse({ ...net, prefix6: '2001:db8::1/64' });
    expect(bad.success).toBe(false);
    expect(describeIssues(bad.error!)).toMatch(/^prefix6: must be an IPv6 prefix/);
    expect(NetworkSchema.safeParse({ ...net, prefix6: '2001:db8::/96' }).success).toBe(false);
    expect(NetworkSchema.safeParse({ ...net, name: 'Not_A_Label' }).success).toBe(false);
    expect(NetworkSchema.safeParse({ ...net, v: 2 }).success).toBe(false);
    expect(NetworkSchema.safeParse({ ...net, extra: 1 }).success).toBe(false);
  });
  it('checks users, keys and VMs', () => {
    expect(UserSchema.safeParse({ v: 1, name: 'alice', keys: [{ name: 'laptop', key: ED25519 }] }).success).toBe(true);
    expect(UserSchema.safeParse({ v: 1, name: 'alice', keys: [{ name: 'laptop', key: 'ssh-ed25519 AAAA' }] }).success).toBe(false);
    const vm = { v: 1, id: '0b0c5e0e-7f4f-4b8e-9a59-6c1d7c1b1e2a', name: 'web1', network: 'lab', mac: '52:54:00:12:34:56', createdAt: 'x' };
    const ok = VmSchema.parse(vm);
    expect(ok.resources).toEqual({ memoryMiB: 512, cpus: 1 });
    expect(VmSchema.safeParse({ ...vm, mac: 'zz' }).success).toBe(false);
    // A disk with a direct-boot kernel is the common fast path (issue 12); what stays refused:
    expect(VmSchema.safeParse({ ...vm, resources: { disk: 'a', kernel: 'b', diskFormat: 'raw' } }).success).toBe(true);
    expect(VmSchema.safeParse({ ...vm, resources: { initrd: 'i' } }).success).toBe(false);
    expect(VmSchema.safeParse({ ...vm, resources: { cmdline: 'console=ttyS0' } }).success).toBe(false);
    expect(VmSchema.safeParse({ ...vm, resources: { kernel: 'k', diskFormat: 'qcow2' } }).success).toBe(false);
    expect(VmSchema.safeParse({ ...vm, resources: { disk: 'a', diskFormat: 'vmdk' } }).success).toBe(false);
  });
  it('checks SSH keys against their own type', () => {
    expect(checkSshKey(ED25519)).toEqual({ key: ED25519 });
    expect(checkSshKey(ED25519.replace('ssh-ed25519', 'ssh-rsa'))).toHaveProperty('error');
    expect(checkSshKey('ssh-ed25519 !!!')).toHaveProperty('error');
    expect(checkSshKey(`${ED25519}\nssh-rsa x`)).toHaveProperty('error');
  });
});
