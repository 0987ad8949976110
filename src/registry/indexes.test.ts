// The owner and network indexes: an owner copy or network change re-indexes exactly that owner's
// VMs in that network, or that network's VMs, and follows VMs that change owner; every lookup
// index lets go of a VM whose view is gone. And the memory layout's one shared empty list.
import { describe, expect, it } from 'vitest';
import { Registry, type RegistryChange } from './registry.js';
import { silentLogger } from '../log.js';

const KEY_A = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGvN7Ajs2mYH+Iu0GyXnBrqQq03W7nVlz1YqvqZ3GA6j alice@laptop';
const KEY_B = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPEsMmGH49oFGhIFsPDHZG3kDqz8aO4BJ5JrIWJ6CRXY bob@laptop';

describe('Registry indexes', () => {
  it('re-indexes only the VMs of the changed user or network', () => {
    const r = new Registry({ prefix: '/t', log: silentLogger() });
    const k = r.keys;
    let rev = 0;
    const e = (key: string, value: unknown) => ({ key, value: JSON.stringify(value), modRevision: ++rev, createRevision: rev });
    const net = (name: string, n: number) => ({ v: 1, name, prefix6: `2001:db8:${n}::/64`, domain: `${name}.example`, metadata6: `2001:db8:${n}::1` });
    const user = (name: string, key: string) => ({ v: 1, name, keys: [{ name: 'k', key }] });
    const vm = (name: string, network: string, owner: string, i: number) => ({
      v: 1, id: `00000000-0000-4000-8000-00000000000${i}`, name, network, owner, mac: `02:00:00:00:00:0${i}`, createdAt: 'x',
    });
    r.reset([
      e(k.vm('a', 'v1'), vm('v1', 'a', 'alice', 1)), e(k.network('a', ), net('a', 1)), e(k.network('b'), net('b', 2)),
      e(k.owner('a', 'alice'), user('alice', KEY_A)), e(k.owner('b', 'bob'), user('bob', KEY_B)),
      e(k.vm('a', 'v2'), vm('v2', 'a', 'alice', 2)), e(k.vm('b', 'v3'), vm('v3', 'b', 'bob', 3)),
    ], rev);
    expect(r.vmCount).toBe(3);
    expect(r.vmByName('a', 'v1')!.authorizedKeys).toEqual([KEY_A]);
    const changes: RegistryChange[] = [];
    r.on('change', (c: RegistryChange) => changes.push(c));

    r.apply([e(k.owner('a', 'alice'), user('alice', KEY_B))], rev);
    expect(changes.at(-1)!.vms.sort()).toEqual(['a/v1', 'a/v2']);
    expect(r.vmByName('a', 'v2')!.authorizedKeys).toEqual([KEY_B]);
    // A copy re-put unchanged (a VM joining) changes nothing.
    const before = changes.length;
    r.apply([e(k.owner('a', 'alice'), user('alice', KEY_B))], rev);
    expect(changes.length).toBe(before);

    // v2 moves to bob (the writer puts bob's copy in "a" in the same transaction): bob's changes in
    // "a" now reach it, alice's no longer do; bob's copy in "b" serves b's VMs only.
    r.apply([e(k.vm('a', 'v2'), vm('v2', 'a', 'bob', 2)), e(k.owner('a', 'bob'), user('bob', KEY_B))], rev);
    expect(r.vmByName('a', 'v2')!.authorizedKeys).toEqual([KEY_B]);
    r.apply([e(k.owner('a', 'bob'), user('bob', KEY_A)), e(k.owner('b', 'bob'), user('bob', KEY_A))], rev);
    expect(changes.at(-1)!.vms.sort()).toEqual(['a/v2', 'b/v3']);
    expect(r.vmByName('a', 'v2')!.authorizedKeys).toEqual([KEY_A]);
    r.apply([{ key: k.owner('a', 'alice'), value: undefined, modRevision: ++rev }], rev);
    expect(changes.at(-1)!.vms).toEqual(['a/v1']);
    expect(r.vmByName('a', 'v1')!.authorizedKeys).toEqual([]);
    expect(r.owner('b', 'alice')).toBeUndefined();

    // A network change touches its VMs only; deleting it drops their views, re-adding restores them.
    r.apply([e(k.network('b'), { ...net('b', 2), domain: 'bee.example' })], rev);
    expect(changes.at(-1)!.vms).toEqual(['b/v3']);
    expect(r.vmByFqdn('v3.bee.example')?.key).toBe('b/v3');
    r.apply([{ key: k.network('a'), value: undefined, modRevision: ++rev }], rev);
    expect(changes.at(-1)!.vms.sort()).toEqual(['a/v1', 'a/v2']);
    expect(r.vmByName('a', 'v1')).toBeUndefined();
    expect(r.vmByFqdn('v1.a.example')).toBeUndefined();
    expect(r.vmByAddress('2001:db8:1::ff:fe00:1')).toBeUndefined();
    expect(r.vmByMac('02:00:00:00:00:01')).toBeUndefined();
    expect(r.vmCount).toBe(1);
    expect([...r.allVms()].map((v) => v.key)).toEqual(['b/v3']);
    r.apply([e(k.network('a'), net('a', 1))], rev);
    expect(r.vmByName('a', 'v1')?.addresses6[0]).toBe('2001:db8:1::ff:fe00:1');
    expect(r.vmByAddress('2001:db8:1::ff:fe00:1')?.key).toBe('a/v1');
    expect(r.vmByFqdn('V1.A.Example.')?.fqdn).toBe('v1.a.example');
    expect(r.vmCount).toBe(3);

    // A deleted VM leaves the indexes.
    r.apply([{ key: k.vm('a', 'v1'), value: undefined, modRevision: ++rev }], rev);
    expect(r.vmByAddress('2001:db8:1::ff:fe00:1')).toBeUndefined();
    expect(r.vmByMac('02:00:00:00:00:01')).toBeUndefined();
    expect(r.vmCount).toBe(2);
    r.apply([e(k.network('a'), { ...net('a', 1), domain: 'ay.example' })], rev);
    expect(changes.at(-1)!.vms).toEqual(['a/v2']);
    expect(r.vmByFqdn('v2.ay.example')?.key).toBe('a/v2');
    expect(r.vmByFqdn('v2.a.example')).toBeUndefined();
  });

  it('shares one frozen empty list among VMs without addresses or keys of their own', () => {
    const r = new Registry({ prefix: '/t', log: silentLogger() });
    const k = r.keys;
    const e = (key: string, value: unknown) => ({ key, value: JSON.stringify(value), modRevision: 1, createRevision: 1 });
    const vm = (name: string, i: number, extra: object = {}) => ({
      v: 1, id: `00000000-0000-4000-8000-00000000000${i}`, name, network: 'a', mac: `02:00:00:00:00:0${i}`, createdAt: 'x', ...extra,
    });
    r.reset([
      e(k.network('a'), { v: 1, name: 'a', prefix6: '2001:db8:1::/64', prefix4: '10.0.0.0/24', domain: 'a.example', metadata6: '2001:db8:1::1' }),
      e(k.vm('a', 'p'), vm('p', 1)), e(k.vm('a', 'q'), vm('q', 2)),
      e(k.vm('a', 'r'), vm('r', 3, { addresses: ['10.0.0.3', '2001:db8:1::3'], sshKeys: [KEY_A] })),
    ], 1);
    const [p, q, rv] = ['p', 'q', 'r'].map((n) => r.vmByName('a', n)!);
    expect(p.vm.addresses).toBe(q.vm.addresses);
    expect(p.vm.sshKeys).toBe(q.vm.addresses);
    expect(p.addresses4).toBe(q.addresses4);
    expect(Object.isFrozen(p.addresses4)).toBe(true);
    expect(() => (p.addresses4 as string[]).push('10.0.0.9')).toThrow(TypeError);
    expect(q.addresses4).toEqual([]);
    // A VM with its own gets its own.
    expect(rv.addresses4).toEqual(['10.0.0.3']);
    expect(rv.addresses6).toEqual(['2001:db8:1::ff:fe00:3', '2001:db8:1::3']);
    expect(rv.vm.sshKeys).toEqual([KEY_A]);
    expect(rv.authorizedKeys).toEqual([KEY_A]);
    expect(r.vmByAddress('10.0.0.3')).toBe(rv);
  });
});
