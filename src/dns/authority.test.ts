// The incremental zone update must answer exactly as a zone built from scratch: random VM adds,
// changes and removals, compared after every step over every name either could know.
import { describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Authority } from './authority.js';
import { RCODE, TYPE } from './wire.js';
import { Registry, type RegistryChange } from '../registry/registry.js';
import { Keys } from '../store/keys.js';
import { silentLogger } from '../log.js';
import { parseAddress, reverseName } from '../model/ip.js';

const keys = new Keys();
const network = { v: 1, name: 'lab', prefix6: '2001:db8:1::/64', prefix4: '10.1.0.0/24', domain: 'lab.example', metadata6: '2001:db8:1::1', metadata4: '10.1.0.1', upstreams: [] };

function vmRecord(name: string, mac: string, addresses: string[]) {
  return JSON.stringify({ v: 1, id: randomUUID(), name, network: 'lab', mac, addresses, resources: { memoryMiB: 64, cpus: 1 }, meta: {}, sshKeys: [], requireToken: false, createdAt: 'x' });
}

function answers(auth: Authority, names: Iterable<string>): string {
  const out: string[] = [];
  for (const n of names) {
    for (const t of [TYPE.AAAA, TYPE.A, TYPE.PTR, TYPE.ANY]) {
      const a = auth.lookup(n, t);
      // The SOA serial follows the last change that touched the zone, not the store's revision.
      const rr = (r: { type: number; rdata: Buffer }) => `${r.type}=${(r.type === TYPE.SOA ? r.rdata.subarray(0, r.rdata.length - 20) : r.rdata).toString('hex')}`;
      out.push(`${n}/${t}:${a ? `${a.rcode}:${a.answer.map(rr).sort().join(',')}` : '-'}`);
    }
  }
  return out.join('\n');
}

describe('Authority.updateVms', () => {
  it('matches a zone built from scratch after every random change', () => {
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) >>> 16) % n;
    const registry = new Registry({ log: silentLogger() });
    registry.reset([{ key: keys.network('lab'), value: JSON.stringify(network), modRevision: 1, createRevision: 1 }], 1);
    const auth = new Authority(registry, 30);
    registry.on('change', (c: RegistryChange) => auth.updateVms(registry, c.vms));
    const names = new Set<string>(['lab.example', 'metadata.lab.example']);
    let rev = 1;
    for (let step = 0; step < 400; step++) {
      const name = `vm${rnd(12)}`;
      const mac = `02:00:00:00:${rnd(4).toString(16).padStart(2, '0')}:${rnd(16).toString(16).padStart(2, '0')}`;
      const addresses = rnd(2) ? [`2001:db8:1::${(rnd(20) + 16).toString(16)}`, `10.1.0.${rnd(20) + 10}`] : [];
      rev++;
      const remove = rnd(4) === 0;
      registry.apply([{ key: keys.vm('lab', name), value: remove ? undefined : vmRecord(name, mac, addresses), modRevision: rev }], rev);
      const view = registry.vmByName('lab', name);
      names.add(`${name}.lab.example`);
      for (const a of view ? [...view.addresses6, ...view.addresses4] : []) {
        const r = reverseName(parseAddress(a)!);
        names.add(r);
        // the empty non-terminals on the way down to it
        const labels = r.split('.');
        for (let i = 1; i < labels.length - 2; i++) names.add(labels.slice(i).join('.'));
      }
      expect(answers(auth, names)).toBe(answers(new Authority(registry, 30), names));
    }
    // The serial moved with the changes.
    const soa = auth.lookup('lab.example', TYPE.SOA)!.answer[0].rdata;
    expect(soa.readUInt32BE(soa.length - 20)).toBeGreaterThan(100);
    // And something is actually there (the comparison is not between two empty zones).
    expect(registry.vmCount).toBeGreaterThan(0);
    expect(auth.lookup([...registry.allVms()][0].fqdn, TYPE.AAAA)?.answer.length).toBeGreaterThan(0);
  }, 120_000); // 400 from-scratch rebuilds: seconds alone, much longer on a loaded 2-core box
});

describe('reverse zones of a prefix off a nibble boundary', () => {
  it('serves a /62 (read from an older store) as four /64 zones and claims nothing around it', () => {
    const wide = { ...network, prefix6: '2001:db8:1:4::/62', prefix4: '10.1.16.0/20', metadata6: '2001:db8:1:4::1', metadata4: '10.1.16.1' };
    const registry = new Registry({ log: silentLogger() });
    registry.reset([
      { key: keys.network('lab'), value: JSON.stringify(wide), modRevision: 1, createRevision: 1 },
      { key: keys.vm('lab', 'deep'), value: vmRecord('deep', '02:00:00:00:00:01', ['2001:db8:1:6::99', '10.1.31.9']), modRevision: 2, createRevision: 2 },
    ], 2);
    const auth = new Authority(registry, 30);
    const apexes = ['4', '5', '6', '7'].map((n) => `${n}.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa`);
    for (const apex of apexes) expect(auth.lookup(apex, TYPE.SOA)?.answer.map((r) => r.type)).toEqual([TYPE.SOA]);
    const ptr = (a: string) => auth.lookup(reverseName(parseAddress(a)!), TYPE.PTR);
    expect(ptr('2001:db8:1:6::99')?.answer).toHaveLength(1);
    expect(ptr('10.1.31.9')?.answer).toHaveLength(1);
    expect(ptr('2001:db8:1:6::98')?.rcode).toBe(RCODE.NXDOMAIN);
    // Around the prefixes: not ours at all (no authoritative NXDOMAIN shadowing someone else's PTR).
    for (const outside of ['2001:db8:1:3::1', '2001:db8:1:8::1', '2001:db8:1::1', '10.1.15.1', '10.1.32.1']) expect(ptr(outside)).toBeUndefined();
    expect(auth.lookup('0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa', TYPE.SOA)).toBeUndefined();
  });
});
