// The incremental zone update must answer exactly as a zone built from scratch: random VM adds,
// changes and removals, compared after every step over every name either could know.
import { describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Authority } from './authority.js';
import { TYPE } from './wire.js';
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
  });
});
