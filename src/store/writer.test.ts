// The operator's writes against a real etcd: validation, uniqueness, MAC allocation races.
import { afterAll, describe, expect, it } from 'vitest';
import { etcdTestStore, ED25519 } from '../../test/support/store.js';
import { StoreError } from './errors.js';

const t = etcdTestStore();
afterAll(() => t.close());

const lab = { name: 'lab', prefix6: '2001:db8:1::/64', prefix4: '10.1.0.0/24', domain: 'lab.example', metadata6: '2001:db8:1::1', metadata4: '10.1.0.1' };

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    if (err instanceof StoreError) return err.code;
    throw err;
  }
}

describe('StoreWriter on etcd', () => {
  it('adds a network once and refuses duplicates, overlaps and bad input', async () => {
    await t.writer.addNetwork(lab);
    expect(await code(t.writer.addNetwork(lab))).toBe('exists');
    expect(await code(t.writer.addNetwork({ ...lab, name: 'lab2', domain: 'other.example', prefix6: '2001:db8:1::/64', metadata6: '2001:db8:1::1', prefix4: undefined, metadata4: undefined }))).toBe('exists');
    // SLAAC and the EUI-64 identity need exactly a /64: shorter prefixes are refused on write.
    await expect(t.writer.addNetwork({ ...lab, name: 'wide', domain: 'wide.example', prefix6: '2001:db8:2::/56', metadata6: '2001:db8:2::1', prefix4: undefined, metadata4: undefined }))
      .rejects.toThrow(/^prefix6 must be a \/64 .*not 2001:db8:2::\/56$/);
    expect(await code(t.writer.addNetwork({ ...lab, name: 'x', domain: 'x.example', prefix6: '2001:db8:9::/64', metadata6: '2001:db8:1::1', prefix4: undefined, metadata4: undefined }))).toBe('invalid');
    expect(await code(t.writer.addNetwork({ ...lab, name: 'Bad Name' }))).toBe('invalid');
    expect((await t.writer.listNetworks()).map((n) => n.name)).toEqual(['lab']);
  });

  it('takes neighbouring networks whose prefixes share a reverse label, and refuses a zone that overlaps another network\'s in one line', async () => {
    // Two IPv4 /20s under one /16: their reverse zones are sixteen /24s each, disjoint.
    await t.writer.addNetwork({ name: 'na', prefix6: '2001:db8:a0::/64', prefix4: '10.9.0.0/20', domain: 'na.example', metadata6: '2001:db8:a0::1' });
    await t.writer.addNetwork({ name: 'nb', prefix6: '2001:db8:b0::/64', prefix4: '10.9.16.0/20', domain: 'nb.example', metadata6: '2001:db8:b0::1' });
    // A search domain that is one of those reverse zones, or above it, would answer for na's PTRs.
    for (const domain of ['3.9.10.in-addr.arpa', '9.10.in-addr.arpa', '0.a.0.0.8.b.d.0.1.0.0.2.ip6.arpa']) {
      const err = await t.writer.addNetwork({ name: 'nc', prefix6: '2001:db8:c0::/64', domain, metadata6: '2001:db8:c0::1' }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(StoreError);
      expect((err as StoreError).message).toMatch(/^domain \S+ of network "nc" overlaps reverse zone \S+ of network "na"$/);
    }
    const own = await t.writer.addNetwork({ name: 'nd', prefix6: '2001:db8:d0::/64', domain: '0.d.0.0.8.b.d.0.1.0.0.2.ip6.arpa', metadata6: '2001:db8:d0::1' }).catch((e: Error) => e);
    expect((own as StoreError).code).toBe('invalid');
    expect((own as StoreError).message).toMatch(/^reverse zone \S+ of network "nd" overlaps zone 0\.d\.0\.0\.8\.b\.d\.0\.1\.0\.0\.2\.ip6\.arpa$/);
    for (const n of ['na', 'nb']) await t.writer.removeNetwork(n);
  });

  it('manages user keys with names', async () => {
    await t.writer.addUserKey('alice', 'laptop', ED25519);
    expect(await code(t.writer.addUserKey('alice', 'laptop', ED25519))).toBe('exists');
    expect(await code(t.writer.addUserKey('bob', 'k', 'ssh-ed25519 AAAA'))).toBe('invalid');
    expect(await code(t.writer.getUser('bob'))).toBe('not-found');
    expect((await t.writer.getUser('alice')).keys).toHaveLength(1);
  });

  it('creates VMs with unique names, derived addresses claimed, explicit ones checked', async () => {
    const vm = await t.writer.addVm({ name: 'web1', network: 'lab', owner: 'alice', mac: '52:54:00:00:00:01', addresses: ['2001:db8:1::10', '10.1.0.10'] });
    expect(vm.mac).toBe('52:54:00:00:00:01');
    expect(await code(t.writer.addVm({ name: 'web1', network: 'lab' }))).toBe('exists');
    expect(await code(t.writer.addVm({ name: 'web2', network: 'lab', mac: '52:54:00:00:00:01' }))).toBe('exists');
    expect(await code(t.writer.addVm({ name: 'web2', network: 'lab', addresses: ['2001:db8:1::10'] }))).toBe('exists');
    // web1's EUI-64 address is claimed too
    expect(await code(t.writer.addVm({ name: 'web2', network: 'lab', addresses: ['2001:db8:1:0:5054:ff:fe00:1'] }))).toBe('exists');
    expect(await code(t.writer.addVm({ name: 'web2', network: 'lab', addresses: ['2001:db8:2::1'] }))).toBe('invalid');
    expect(await code(t.writer.addVm({ name: 'web2', network: 'nope' }))).toBe('not-found');
    expect(await code(t.writer.addVm({ name: 'web2', network: 'lab', owner: 'nobody' }))).toBe('not-found');
    expect(await code(t.writer.removeNetwork('lab'))).toBe('in-use');
    expect(await code(t.writer.removeUser('alice'))).toBe('in-use');
  });

  it('allocates unique MACs under 40 concurrent creates', async () => {
    const vms = await Promise.all(Array.from({ length: 40 }, (_, i) => t.writer.addVm({ name: `c${i}`, network: 'lab' })));
    expect(new Set(vms.map((v) => v.mac)).size).toBe(40);
    for (const v of vms) expect(parseInt(v.mac.slice(0, 2), 16) & 3).toBe(2);
    expect((await t.writer.listVms('lab')).length).toBe(41);
  });

  it('sets fields without losing others, and moves claims with the MAC', async () => {
    await t.writer.setVm('web1', undefined, { meta: { role: 'web' } });
    const v = await t.writer.setVm('web1', 'lab', { mac: '52:54:00:00:00:02' });
    expect(v.meta).toEqual({ role: 'web' });
    expect(v.addresses).toEqual(['2001:db8:1::10', '10.1.0.10']);
    // the old MAC is free again, the new one taken
    expect(await t.store.kv.get(t.store.keys.mac('52:54:00:00:00:01'))).toBeUndefined();
    expect((await t.store.kv.get(t.store.keys.mac('52:54:00:00:00:02')))?.value).toBe('lab/web1');
    const racers = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => t.writer.setVm('web1', 'lab', { meta: { [`k${i}`]: 'x' } })));
    expect(racers).toHaveLength(6);
  });

  it('removes a VM with all its claims', async () => {
    await t.writer.removeVm('web1');
    const claims = (await t.store.kv.range(t.store.keys.address(''))).entries.filter((e) => e.value === 'lab/web1');
    expect(claims).toEqual([]);
    expect(await code(t.writer.removeVm('web1'))).toBe('not-found');
  });
});
