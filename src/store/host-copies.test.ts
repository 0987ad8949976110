// The agent of a host reads only hosts/<host>/ (keys.ts agentRanges): its launch specs, its
// reports and the copies of the networks its VMs use, which the writer keeps in step with the
// network records (forwarding resolved to the targets' prefixes) in the same transactions. Against
// real etcd: what the agent's source hands its registry is recorded key by key; changes to other
// networks and hosts never reach it; the copies stay exact under concurrent writers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdTestStore, eventually } from '../../test/support/store.js';
import { Registry } from '../registry/registry.js';
import { silentLogger } from '../log.js';
import { inRange } from './keys.js';
import type { KvChange, KvEntry } from './kv.js';
import { hostCopiesConsistent } from './scope.test-support.js';
import { StoreError } from './errors.js';
import { StoreWriter } from './writer.js';
import type { Kv } from './kv.js';

const net = (name: string, n: number, extra: Record<string, unknown> = {}) => ({
  name, prefix6: `2001:db8:${n}::/64`, prefix4: `10.${n}.0.0/24`, domain: `${name}.example`, metadata6: `2001:db8:${n}::1`, ...extra,
});
const t = etcdTestStore();
afterAll(() => t.close());

describe('the agent of one host', () => {
  const seen: string[] = [];
  let registry: Registry;
  let close: () => Promise<void>;

  beforeAll(async () => {
    await t.writer.addNetwork(net('lab', 1, { forwardTo: ['db', 'later'] }));
    await t.writer.addNetwork(net('db', 2));
    await t.writer.addNetwork(net('other', 3));
    await t.writer.addVm({ name: 'web1', network: 'lab', host: 'hv1', userData: 'secret-lab' });
    await t.writer.addVm({ name: 'web2', network: 'lab', host: 'hv1' });
    await t.writer.addVm({ name: 'db1', network: 'db', host: 'hv2' });
    await t.writer.addVm({ name: 'o1', network: 'other', host: 'hv2' });

    registry = new Registry({ prefix: t.prefix, vmsFrom: 'launch', log: silentLogger() });
    const sink = {
      reset: (entries: KvEntry[], revision: number) => { seen.push(...entries.map((e) => e.key)); registry.reset(entries, revision); },
      apply: (changes: KvChange[], revision: number) => { seen.push(...changes.map((c) => c.key)); registry.apply(changes, revision); },
    };
    const source = t.store.source(silentLogger(), t.store.keys.agentRanges('hv1'));
    await source.start(sink);
    close = () => source.close();
  });
  afterAll(() => close());

  it('loads the layout, its network copy and its launch specs, and nothing else', async () => {
    const k = t.store.keys;
    expect(seen.sort()).toEqual([k.layout, k.hostNetwork('hv1', 'lab'), k.launch('hv1', 'lab', 'web1'), k.launch('hv1', 'lab', 'web2')].sort());
    expect(registry.networks().map((n) => n.network.name)).toEqual(['lab']);
    // Forwarding resolved by the writer: db exists, "later" does not (yet).
    expect(registry.network('lab')?.forward).toEqual({ v6: ['2001:db8:2::/64'], v4: ['10.2.0.0/24'] });
    expect(registry.vmByName('lab', 'web1')?.vm.userData).toBeUndefined();
    expect(await hostCopiesConsistent(t.store.kv, t.store.keys)).toEqual([]);
  });

  it('gets no event for other networks and hosts, and each change to what it runs', async () => {
    const before = seen.length;
    await t.writer.setNetworkPlacement('other', { region: 'eu-west-1' });
    await t.writer.setNetworkForwarding('db', ['*']);
    await t.writer.addVm({ name: 'db2', network: 'db', host: 'hv2' });
    await t.writer.addVm({ name: 'web3', network: 'lab', host: 'hv2' }); // lab, but another host
    await t.writer.setNetworkPlacement('lab', { region: 'eu-west-1' }); // not in the copy: no event
    await t.writer.setVm('web2', 'lab', { meta: { marker: 'now' } }); // not in the launch spec: no event
    await t.writer.addNetwork(net('later', 4)); // lab forwards to it: its prefixes join the copy
    await eventually(() => registry.network('lab')?.forward?.v6.includes('2001:db8:4::/64') === true);
    expect(seen.slice(before)).toEqual([t.store.keys.hostNetwork('hv1', 'lab')]);
    for (const key of seen) expect(t.store.keys.agentRanges('hv1').some((r) => inRange(r, key))).toBe(true);
    expect(await hostCopiesConsistent(t.store.kv, t.store.keys)).toEqual([]);
  });

  it('follows forwarding changes and a target network going away', async () => {
    await t.writer.setNetworkForwarding('lab', ['later']);
    await eventually(() => registry.network('lab')?.forward?.v6.join() === '2001:db8:4::/64');
    await t.writer.removeNetwork('later');
    await eventually(() => registry.network('lab')?.forward?.v6.length === 0);
    await t.writer.setNetworkForwarding('lab', ['*']);
    await eventually(() => registry.network('lab')?.forward?.v6.join() === '::/0');
    expect(registry.network('lab')?.forward?.v4).toEqual(['0.0.0.0/0']);
    expect(await hostCopiesConsistent(t.store.kv, t.store.keys)).toEqual([]);
  });

  it('gets a network copy with the first VM moved in, and loses it with the last moved out', async () => {
    await t.writer.setVm('db1', 'db', { host: 'hv1' });
    await eventually(() => registry.vmByName('db', 'db1') !== undefined);
    expect(registry.network('db')?.forward?.v6).toEqual(['::/0']);
    expect(await t.store.kv.get(t.store.keys.hostNetwork('hv2', 'db'))).toBeDefined(); // db2 still there
    await t.writer.setVm('db1', 'db', { host: 'hv2' });
    await eventually(() => registry.network('db') === undefined);
    for (const name of ['web1', 'web2']) await t.writer.removeVm(name, 'lab');
    await eventually(() => registry.network('lab') === undefined);
    expect(await t.store.kv.get(t.store.keys.hostNetwork('hv1', 'lab'))).toBeUndefined();
    expect(await t.store.kv.get(t.store.keys.placed('lab', 'hv1'))).toBeUndefined();
    expect(await hostCopiesConsistent(t.store.kv, t.store.keys)).toEqual([]);
  });
});

describe('host network copies under concurrent writers', () => {
  it('stay equal to their network and exist exactly while the host runs a VM of it', async () => {
    const s = etcdTestStore();
    try {
      await s.writer.addNetwork(net('n', 9, { forwardTo: ['m'] }));
      await s.writer.addNetwork(net('p', 12));
      await s.writer.addVm({ name: 'p0', network: 'p', host: 'h0' });
      // Rounds of: VMs landing on new hosts while the network's forwarding changes and its target
      // comes and goes; then all of them leaving at once (removed, or moved to another host).
      const VMS = [0, 1, 2, 3, 4, 5, 6, 7];
      for (let round = 0; round < 10; round++) {
        await Promise.all([
          ...VMS.map((i) => s.writer.addVm({ name: `v${round}-${i}`, network: 'n', host: `h${i % 3}` })),
          // n starts or stops forwarding to m while m comes or goes: neither may pass the other.
          s.writer.setNetworkForwarding('n', round % 4 < 2 ? ['m'] : []),
          s.writer.setNetworkForwarding('p', round % 4 < 2 ? [] : ['m']),
          round % 2 ? s.writer.removeNetwork('m') : s.writer.addNetwork(net('m', 8)),
        ]);
        expect(await hostCopiesConsistent(s.store.kv, s.store.keys)).toEqual([]);
        await Promise.all([
          ...VMS.filter((i) => i !== 2).map((i) => s.writer.removeVm(`v${round}-${i}`, 'n')),
          s.writer.setVm(`v${round}-2`, 'n', { host: 'h7' }),
          s.writer.setNetworkForwarding('n', ['m']),
        ]);
        expect(await hostCopiesConsistent(s.store.kv, s.store.keys)).toEqual([]);
        await s.writer.removeVm(`v${round}-2`, 'n');
        expect(await hostCopiesConsistent(s.store.kv, s.store.keys)).toEqual([]);
        expect((await s.store.kv.range(s.store.keys.placedOf('n'))).entries).toEqual([]);
      }
    } finally {
      await s.close();
    }
  }, 120_000);
});

describe('a forwarding change and the add or removal of its target, interleaved', () => {
  /** A Kv whose next transaction waits until `release()`: the writer has read, and not yet committed. */
  function gated(kv: Kv): { kv: Kv; reached: Promise<void>; release: () => void } {
    let release!: () => void;
    let reach!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const reached = new Promise<void>((r) => (reach = r));
    let first = true;
    const wrapped = Object.create(kv) as Kv;
    wrapped.txn = async (t) => {
      if (first) {
        first = false;
        reach();
        await gate;
      }
      return kv.txn(t);
    };
    return { kv: wrapped, reached, release };
  }

  for (const target of ['removed', 'added'] as const) {
    it(`the target ${target} on what it read before the forwarding changed: the copies still end right`, async () => {
      const s = etcdTestStore();
      try {
        await s.writer.addNetwork(net('x', 20));
        await s.writer.addVm({ name: 'x0', network: 'x', host: 'h0' });
        if (target === 'removed') await s.writer.addNetwork(net('m', 21));
        const g = gated(s.store.kv);
        const slow = new StoreWriter(g.kv, s.store.keys);
        const pending = target === 'removed' ? slow.removeNetwork('m') : slow.addNetwork(net('m', 21));
        await g.reached; // it has read which networks forward to m: none yet
        await s.writer.setNetworkForwarding('x', ['m']);
        g.release();
        await pending;
        expect(await hostCopiesConsistent(s.store.kv, s.store.keys)).toEqual([]);
        const copy = JSON.parse((await s.store.kv.get(s.store.keys.hostNetwork('h0', 'x')))!.value) as { forward6: string[] };
        expect(copy.forward6).toEqual(target === 'removed' ? [] : ['2001:db8:21::/64']);
      } finally {
        await s.close();
      }
    });
  }
});

describe('a network on more hosts than one etcd transaction can update', () => {
  it('refuses the change in one line and writes nothing', async () => {
    const s = etcdTestStore();
    try {
      await s.writer.addNetwork(net('wide', 10));
      await s.writer.addNetwork(net('peer', 11));
      for (let i = 0; i < 130; i += 10) await Promise.all(Array.from({ length: 10 }, (_, j) => s.writer.addVm({ name: `w${i + j}`, network: 'wide', host: `h${i + j}` })));
      const before = (await s.store.kv.range(s.store.keys.root)).entries;
      const err = await s.writer.setNetworkForwarding('wide', ['peer']).catch((e: Error) => e);
      expect(err).toBeInstanceOf(StoreError);
      expect((err as StoreError).message).toMatch(/^etcd:\/\/\S+: this change must update more records in one transaction than etcd allows \(--max-txn-ops, default 128\); nothing was written: raise --max-txn-ops on the etcd members$/);
      expect((await s.store.kv.range(s.store.keys.root)).entries).toEqual(before);
    } finally {
      await s.close();
    }
  }, 60_000);
});
