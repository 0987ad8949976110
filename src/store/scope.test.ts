// An appliance named to some networks reads and follows only their ranges (keys.ts): their
// records, their VMs and their VMs' owners' key copies. Against real etcd: what the source hands
// the registry is recorded key by key, and writes elsewhere never reach it. The writer keeps every
// owner copy equal to its user and present exactly while the user owns a VM in that network,
// also under concurrent writers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdTestStore, eventually, ED25519 } from '../../test/support/store.js';
import { Registry } from '../registry/registry.js';
import { silentLogger } from '../log.js';
import { inRange } from './keys.js';
import type { KvChange, KvEntry } from './kv.js';
import { ownerCopiesConsistent } from './scope.test-support.js';

const ED25519_B = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPEsMmGH49oFGhIFsPDHZG3kDqz8aO4BJ5JrIWJ6CRXY bob@laptop';
const t = etcdTestStore();
afterAll(() => t.close());

describe('an appliance serving one network', () => {
  const seen: string[] = [];
  let registry: Registry;
  let close: () => Promise<void>;

  beforeAll(async () => {
    const net = (name: string, n: number) => ({ name, prefix6: `2001:db8:${n}::/64`, domain: `${name}.example`, metadata6: `2001:db8:${n}::1` });
    await t.writer.addNetwork(net('lab', 1));
    await t.writer.addNetwork(net('other', 2));
    await t.writer.addNetwork(net('lab2', 3)); // "lab" is a prefix of its name: must stay out
    await t.writer.addUserKey('alice', 'laptop', ED25519);
    await t.writer.addUserKey('bob', 'laptop', ED25519_B);
    await t.writer.addUserKey('carol', 'laptop', ED25519_B);
    await t.writer.addVm({ name: 'web1', network: 'lab', owner: 'alice', host: 'hv1', userData: 'secret-lab' });
    await t.writer.addVm({ name: 'web2', network: 'lab', owner: 'alice' });
    await t.writer.addVm({ name: 'db1', network: 'other', owner: 'bob', host: 'hv1', userData: 'secret-other' });
    await t.writer.addVm({ name: 'x1', network: 'lab2', owner: 'carol', userData: 'secret-lab2' });

    registry = new Registry({ prefix: t.prefix, networks: ['lab'], log: silentLogger() });
    // Record every key the source hands over.
    const sink = {
      reset: (entries: KvEntry[], revision: number) => { seen.push(...entries.map((e) => e.key)); registry.reset(entries, revision); },
      apply: (changes: KvChange[], revision: number) => { seen.push(...changes.map((c) => c.key)); registry.apply(changes, revision); },
    };
    const source = t.store.source(silentLogger(), t.store.keys.applianceRanges(['lab']));
    await source.start(sink);
    close = () => source.close();
  });
  afterAll(() => close());

  const ranges = () => t.store.keys.applianceRanges(['lab']);

  it('loads its network, its VMs and their owners\' keys, and nothing else', () => {
    const k = t.store.keys;
    expect(seen.sort()).toEqual([k.layout, k.network('lab'), k.vm('lab', 'web1'), k.vm('lab', 'web2'), k.owner('lab', 'alice')].sort());
    expect(registry.vmByName('lab', 'web1')?.authorizedKeys).toEqual([ED25519]);
    expect(registry.network('other')).toBeUndefined();
    expect(registry.owner('lab', 'bob')).toBeUndefined();
  });

  it('gets no event for changes elsewhere, and every change of its own', async () => {
    const before = seen.length;
    await t.writer.addVm({ name: 'db2', network: 'other', owner: 'bob' });
    await t.writer.addUserKey('bob', 'desk', ED25519);
    await t.writer.setVm('x1', 'lab2', { userData: 'changed' });
    await t.writer.addVm({ name: 'x2', network: 'lab2', owner: 'alice' }); // alice, but another network
    await t.writer.setVm('web2', 'lab', { meta: { marker: 'now' } });
    await eventually(() => registry.vmByName('lab', 'web2')?.vm.meta.marker === 'now');
    expect(seen.slice(before)).toEqual([t.store.keys.vm('lab', 'web2')]);
    for (const key of seen) expect(ranges().some((r) => inRange(r, key))).toBe(true);
  });

  it('follows its owners\' key changes through their copy in its network', async () => {
    await t.writer.addUserKey('alice', 'desk', ED25519_B);
    await eventually(() => registry.vmByName('lab', 'web1')?.authorizedKeys.length === 2);
    expect(registry.vmByName('lab', 'web2')?.authorizedKeys).toEqual([ED25519, ED25519_B]);
  });

  it('moves an owner\'s copy with the VMs: a new owner\'s arrives, the last VM takes the old one away', async () => {
    await t.writer.setVm('web2', 'lab', { owner: 'bob' });
    await eventually(() => registry.vmByName('lab', 'web2')?.owner?.name === 'bob');
    expect(registry.vmByName('lab', 'web2')?.authorizedKeys).toEqual([ED25519_B, ED25519]);
    expect(registry.owner('lab', 'alice')).toBeDefined(); // web1 still hers
    await t.writer.removeVm('web1', 'lab');
    await eventually(() => !registry.owner('lab', 'alice'));
    expect(await t.store.kv.get(t.store.keys.owner('lab', 'alice'))).toBeUndefined();
    expect(await t.store.kv.get(t.store.keys.owner('lab2', 'alice'))).toBeDefined();
    expect(await ownerCopiesConsistent(t.store.kv, t.store.keys)).toEqual([]);
  });

  it('a user who owns VMs cannot be removed; one whose last VM went can', async () => {
    await expect(t.writer.removeUser('carol')).rejects.toThrow(/owns 1 VM/);
    await t.writer.removeVm('x1', 'lab2');
    await t.writer.removeUser('carol');
    expect(await ownerCopiesConsistent(t.store.kv, t.store.keys)).toEqual([]);
  });
});

describe('owner copies under concurrent writers', () => {
  it('stay equal to the user and exist exactly while the user owns a VM in the network', async () => {
    const s = etcdTestStore();
    try {
      await s.writer.addNetwork({ name: 'n', prefix6: '2001:db8:9::/64', domain: 'n.example', metadata6: '2001:db8:9::1' });
      await s.writer.addUserKey('u', 'k0', ED25519);
      await s.writer.addUserKey('w', 'k0', ED25519_B);
      // Rounds of: VMs of u added at once, then all of them leaving u at once (removed, or given
      // to w) while u's keys change: the last to leave must take the copy, whichever it is.
      for (let round = 0; round < 6; round++) {
        await Promise.all([
          ...[0, 1, 2, 3].map((i) => s.writer.addVm({ name: `v${round}-${i}`, network: 'n', owner: 'u' })),
          s.writer.addUserKey('u', `k${round + 1}`, round % 2 ? ED25519 : ED25519_B),
        ]);
        expect(await ownerCopiesConsistent(s.store.kv, s.store.keys)).toEqual([]);
        await Promise.all([
          ...[0, 1, 3].map((i) => s.writer.removeVm(`v${round}-${i}`, 'n')),
          s.writer.setVm(`v${round}-2`, 'n', { owner: 'w' }),
          s.writer.removeUserKey('u', `k${round + 1}`),
        ]);
        expect(await s.store.kv.get(s.store.keys.owner('n', 'u'))).toBeUndefined();
        expect(await ownerCopiesConsistent(s.store.kv, s.store.keys)).toEqual([]);
        await s.writer.removeVm(`v${round}-2`, 'n');
        expect(await ownerCopiesConsistent(s.store.kv, s.store.keys)).toEqual([]);
        expect((await s.store.kv.range(s.store.keys.vmsOf('n'))).entries).toEqual([]);
      }
      // All of an owner's VMs removed at once: each sees the others, yet the copy must go.
      for (let round = 0; round < 3; round++) {
        await Promise.all([0, 1, 2, 3].map((i) => s.writer.addVm({ name: `r${round}-${i}`, network: 'n', owner: 'u' })));
        await Promise.all([0, 1, 2, 3].map((i) => s.writer.removeVm(`r${round}-${i}`, 'n')));
        expect(await s.store.kv.get(s.store.keys.owner('n', 'u'))).toBeUndefined();
      }
    } finally {
      await s.close();
    }
  }, 120_000);
});
