// The watch-fed registry against a real etcd: convergence after put and delete, invalid records
// skipped, and a reload after compaction.
import { afterAll, describe, expect, it } from 'vitest';
import { etcdTestStore, eventually, ED25519 } from '../../test/support/store.js';
import { EtcdKv } from '../store/etcd/kv.js';
import { EtcdSource } from '../store/etcd/source.js';
import { Registry } from './registry.js';
import { silentLogger } from '../log.js';

const t = etcdTestStore();
afterAll(() => t.close());

describe('Registry following etcd', () => {
  it('loads, then converges on puts and deletes through the watch', async () => {
    await t.writer.addNetwork({ name: 'lab', prefix6: '2001:db8:1::/64', domain: 'lab.example', metadata6: '2001:db8:1::1' });
    await t.writer.addUserKey('alice', 'laptop', ED25519);
    await t.writer.addVm({ name: 'a', network: 'lab', owner: 'alice', mac: '52:54:00:00:00:0a' });
    const { registry } = await t.follow();
    expect(registry.loaded).toBe(true);
    const a = registry.vmByAddress('2001:db8:1:0:5054:ff:fe00:a')!;
    expect(a.vm.name).toBe('a');
    expect(a.fqdn).toBe('a.lab.example');
    expect(a.authorizedKeys).toEqual([ED25519]);
    expect(registry.vmByMac('52:54:00:00:00:0a')).toBe(a);
    expect(registry.vmByFqdn('A.Lab.Example.')).toBe(a);
    expect(registry.networkByDomain('lab.example')?.network.name).toBe('lab');

    await t.writer.addVm({ name: 'b', network: 'lab', mac: '52:54:00:00:00:0b' });
    await eventually(() => registry.vmByName('lab', 'b'));
    await t.writer.removeUserKey('alice', 'laptop');
    await eventually(() => registry.vmByName('lab', 'a')?.authorizedKeys.length === 0);
    await t.writer.removeVm('a');
    await eventually(() => !registry.vmByAddress('2001:db8:1:0:5054:ff:fe00:a'));
    expect(registry.vmByMac('52:54:00:00:00:0a')).toBeUndefined();
  });

  it('skips an invalid record without losing the rest', async () => {
    const { registry } = await t.follow();
    await t.store.kv.txn({ compares: [], puts: [{ key: t.store.keys.vm('lab', 'broken'), value: '{"v":1,"name":"broken"}' }], deletes: [] });
    await t.writer.addVm({ name: 'c', network: 'lab' });
    await eventually(() => registry.vmByName('lab', 'c'));
    expect(registry.vmByName('lab', 'broken')).toBeUndefined();
    expect(registry.skipped).toBeGreaterThan(0);
  });

  it('reloads everything when the revision it needs was compacted', async () => {
    // The source reads at revision R and then watches from R+1. Between the two, more writes
    // land and etcd compacts past R+1: the watch is refused and the source must reload.
    const etcd = (t.store.kv as EtcdKv).client;
    const kv = new EtcdKv({ endpoints: [] }, etcd);
    let once = true;
    let reads = 0;
    const ranges = t.store.keys.applianceRanges();
    const rangeInto = kv.rangeInto.bind(kv);
    kv.rangeInto = async (...args: Parameters<EtcdKv['rangeInto']>) => {
      const r = await rangeInto(...args);
      // After the load's last range: between the read and the watch.
      if (once && ++reads === ranges.length) {
        once = false;
        await t.writer.addVm({ name: 'late1', network: 'lab' });
        await t.writer.addVm({ name: 'late2', network: 'lab' });
        const rev = Number((await etcd.kv.range({ key: Buffer.from('x') })).header.revision);
        await etcd.kv.compact({ revision: rev, physical: true });
      }
      return r;
    };
    const registry = new Registry({ prefix: t.prefix, log: silentLogger() });
    const source = new EtcdSource(kv, { ranges, log: silentLogger() });
    await source.start(registry);
    expect(registry.vmByName('lab', 'late2')).toBeUndefined();
    await eventually(() => source.health().reloads === 1);
    expect(registry.vmByName('lab', 'late1')).toBeDefined();
    expect(registry.vmByName('lab', 'late2')).toBeDefined();
    await t.writer.addVm({ name: 'after', network: 'lab' });
    await eventually(() => registry.vmByName('lab', 'after'));
    await source.close();
  });
});
