// What the agent asks nftables for, from registry views: own addresses per tap, destinations per
// network, forwarding only where the network record asks (resolved by the writer into the host's
// copy of the network), and nothing at all for a network whose prefix is not a /64.
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { Writable } from 'node:stream';
import type { NetworkView, VmView } from '../registry/registry.js';
import { HostNetworkSchema, NetworkSchema, VmSchema } from '../model/schema.js';
import { hostNetworkCopy } from '../store/derived.js';
import { parsePrefix } from '../model/ip.js';
import { HostRules, networkPolicy, tapPolicy } from './policy.js';

const network = (name: string, prefix6: string, extra: Record<string, unknown> = {}) => NetworkSchema.parse({
  v: 1, name, prefix6, domain: `${name}.test`, metadata6: prefix6.replace(/::\/\d+$/, '::53'), ...extra,
});
const view = (n: ReturnType<typeof network>): NetworkView => ({ network: n, prefix6: parsePrefix(n.prefix6, 6)!, reverseZones: [] });
/** The agent's view of a network: the host copy the writer makes, resolved against `all`. */
const copied = (n: ReturnType<typeof network>, all: ReturnType<typeof network>[]): NetworkView => {
  const c = HostNetworkSchema.parse(JSON.parse(hostNetworkCopy(n, (name) => all.find((o) => o.name === name))));
  return { ...view(c.network), forward: { v6: c.forward6, v4: c.forward4 } };
};
const vm = (n: ReturnType<typeof network>, mac: string, addresses6: string[], addresses4: string[] = []): VmView => ({
  key: `${n.name}/vm`, network: n, fqdn: `vm.${n.domain}`, addresses6, addresses4, authorizedKeys: [], revision: 1,
  vm: VmSchema.parse({ v: 1, id: '0b6f6a9e-4c39-4a55-9d0b-8f3f1d2a8c01', name: 'vm', network: n.name, mac, createdAt: '2026-01-01T00:00:00Z' }),
});

function capture() {
  const lines: string[] = [];
  const log = pino({ level: 'info' }, new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } }));
  return { log, lines };
}

describe('host rules from the registry', () => {
  const lab = network('lab', 'fd00:7::/64', { prefix4: '10.7.0.0/24', metadata4: '10.7.0.53', replicas6: ['fd00:7::54'], forwardTo: ['db'] });
  const db = network('db', 'fd00:8::/64', { prefix4: '10.8.0.0/24' });
  const wan = network('wan', 'fd00:9::/64', { forwardTo: ['*'] });
  const all = [lab, db, wan];

  it('a tap may send from its link-local, EUI-64 and explicit addresses only', () => {
    const p = tapPolicy(vm(lab, '52:54:00:aa:00:01', ['fd00:7::5054:ff:feaa:1', 'fd00:7::77'], ['10.7.0.9']), 'uc525400aa0001');
    expect(p).toEqual({
      tap: 'uc525400aa0001', mac: '52:54:00:aa:00:01', linkLocal: 'fe80::5054:ff:feaa:1',
      own6: ['fd00:7::5054:ff:feaa:1', 'fd00:7::77'], own4: ['10.7.0.9'], served: true,
    });
  });

  it('opens every metadata address (replicas too); forwards only to the networks the record names, "*" anywhere, and nowhere by default', () => {
    expect(networkPolicy(copied(lab, all))).toMatchObject({ bridge: 'br-lab', metadata6: ['fd00:7::53', 'fd00:7::54'], metadata4: ['10.7.0.53'], forward6: ['fd00:8::/64'], forward4: ['10.8.0.0/24'] });
    expect(networkPolicy(copied(db, all))).toMatchObject({ forward6: [], forward4: [] });
    expect(networkPolicy(copied(wan, all))).toMatchObject({ forward6: ['::/0'], forward4: ['0.0.0.0/0'] });
    expect(networkPolicy(copied(network('x', 'fd00:a::/64', { forwardTo: ['gone', 'x'] }), all))).toMatchObject({ forward6: [], forward4: [] });
    // A network record without a host copy's resolution forwards nowhere.
    expect(networkPolicy(view(lab))).toMatchObject({ forward6: [], forward4: [] });
  });

  it('a host copy keeps what the agent needs and leaves placement, upstreams and DNS switches out', () => {
    const full = network('full', 'fd00:c::/64', { region: 'eu-west-1', zone: 'eu-west-1b', upstreams: ['[fd00::1]:53'], dnsPublic: true, bridge: 'brfull', forwardTo: ['db'] });
    expect(JSON.parse(hostNetworkCopy(full, (name) => all.find((o) => o.name === name)))).toEqual({
      v: 1,
      network: { v: 1, name: 'full', prefix6: 'fd00:c::/64', domain: 'full.test', metadata6: 'fd00:c::53', bridge: 'brfull' },
      forward6: ['fd00:8::/64'], forward4: ['10.8.0.0/24'],
    });
  });

  it('cuts off every VM of a network whose prefix is not a /64, and says so once', () => {
    const { log, lines } = capture();
    const rules = new HostRules(log);
    const wide = network('wide', 'fd00:b::/56');
    const vms = [{ view: vm(wide, '52:54:00:bb:00:01', ['fd00:b::5054:ff:febb:1']), tap: 'uc525400bb0001' }];
    const text = rules.render(vms, () => view(wide));
    rules.render(vms, () => view(wide));
    expect(text).toMatch(/chain vm_uc525400bb0001 \{\n\s+counter drop\n\s+\}/);
    expect(text).not.toContain('fd00:b::53'); // no host service for it either
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('prefix6 is not a /64');
  });
});
