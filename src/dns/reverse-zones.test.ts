// Reverse zones cut below a prefix that does not end on a label boundary (RFC 2317's idea, and
// RFC 3596 nibbles): two neighbouring IPv4 /20s under one /16 each serve sixteen /24 zones. Our
// answers are compared with Knot serving the zones the prefixes call for, built here by hand.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdTestStore } from '../../test/support/store.js';
import { freePort } from '../../test/support/ports.js';
import { silentLogger } from '../log.js';
import { startDnsServer, type DnsServer } from './server.js';
import { dig, type DigResult } from './testing/dig.js';
import { knotZoneHead, startKnot, type Knot } from './testing/knot.js';

const t = etcdTestStore();
let server: DnsServer;
let knot: Knot;
let port: number;

const NETS = [
  { name: 'na', prefix6: '2001:db8:a0::/64', prefix4: '10.9.0.0/20', domain: 'na.example', metadata6: '2001:db8:a0::1', metadata4: '10.9.0.1', vm: { name: 'va', mac: '52:54:00:00:a0:07', v4: '10.9.3.7', v6: '2001:db8:a0:0:5054:ff:fe00:a007' } },
  { name: 'nb', prefix6: '2001:db8:b0::/64', prefix4: '10.9.16.0/20', domain: 'nb.example', metadata6: '2001:db8:b0::1', metadata4: '10.9.16.1', vm: { name: 'vb', mac: '52:54:00:00:b0:09', v4: '10.9.17.9', v6: '2001:db8:b0:0:5054:ff:fe00:b009' } },
];

/** The zones an operator would write for these networks: the /20s as sixteen /24s each. */
function knotZones(): Record<string, string> {
  const zones: Record<string, string> = {};
  for (const n of NETS) {
    const third = Number(n.prefix4.split('.')[2]);
    for (let i = 0; i < 16; i++) zones[`${third + i}.9.10.in-addr.arpa`] = knotZoneHead(`${third + i}.9.10.in-addr.arpa`, n.domain);
    const ptr4 = (a: string, target: string) => {
      const o = a.split('.');
      zones[`${o[2]}.9.10.in-addr.arpa`] += `\n${o[3]} PTR ${target}.`;
    };
    ptr4(n.metadata4, `metadata.${n.domain}`);
    ptr4(n.vm.v4, `${n.vm.name}.${n.domain}`);
    const apex6 = `0.0.0.0.0.${n.prefix6 === '2001:db8:a0::/64' ? 'a' : 'b'}.0.0.8.b.d.0.1.0.0.2.ip6.arpa`;
    zones[apex6] = [
      knotZoneHead(apex6, n.domain),
      `1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0 PTR metadata.${n.domain}.`,
      `${[...n.vm.v6.split(':').slice(4).map((g) => g.padStart(4, '0')).join('')].reverse().join('.')} PTR ${n.vm.name}.${n.domain}.`,
    ].join('\n');
    zones[n.domain] = [knotZoneHead(n.domain, n.domain), `metadata AAAA ${n.metadata6}`, `metadata A ${n.metadata4}`, `${n.vm.name} AAAA ${n.vm.v6}`, `${n.vm.name} A ${n.vm.v4}`].join('\n');
  }
  return zones;
}

/** What an operator compares: rcode, AA, the answer, and the owner/type of the authority records. */
function verdict(r: DigResult) {
  return {
    status: r.status,
    aa: r.flags.includes('aa'),
    // SOA serials differ by design (ours is the store revision).
    answer: r.answer.map((a) => `${a.name} ${a.type} ${a.type === 'SOA' ? a.data.replace(/ \d+ /, ' SERIAL ') : a.data}`).sort(),
    authority: r.authority.map((a) => `${a.name} ${a.type}`),
  };
}

beforeAll(async () => {
  for (const n of NETS) {
    const { vm, ...net } = n;
    await t.writer.addNetwork(net);
    await t.writer.addVm({ name: vm.name, network: n.name, mac: vm.mac, addresses: [vm.v4] });
  }
  const { registry } = await t.follow();
  port = await freePort();
  server = await startDnsServer({ registry, listen: [{ host: '127.0.0.1', port }], log: silentLogger() });
  knot = await startKnot({ port: await freePort(), zones: knotZones() });
}, 60_000);
afterAll(async () => {
  await server?.close();
  await knot?.close();
  await t.close();
});

describe('reverse zones of prefixes off a label boundary, beside Knot', () => {
  const questions: [string, string[]][] = [
    ['VM PTR in the first /20', ['-x', '10.9.3.7']],
    ['VM PTR in the second /20 (its zones shared the first one\'s /16 apex before)', ['-x', '10.9.17.9']],
    ['metadata PTR of each network', ['-x', '10.9.16.1']],
    ['metadata PTR of the first', ['-x', '10.9.0.1']],
    ['no VM, inside a prefix: NXDOMAIN with that /24 zone\'s SOA', ['-x', '10.9.15.200']],
    ['outside both prefixes under the same /16: not ours at all', ['-x', '10.9.40.1']],
    ['the /16 the old code claimed is no zone', ['9.10.in-addr.arpa', 'SOA']],
    ['a /24 apex', ['3.9.10.in-addr.arpa', 'SOA']],
    ['a /24 apex NS', ['31.9.10.in-addr.arpa', 'NS']],
    ['IPv6 VM PTR', ['-x', '2001:db8:b0:0:5054:ff:fe00:b009']],
    ['IPv6 empty non-terminal', ['-t', 'PTR', 'f.f.0.0.4.5.0.5.0.0.0.0.0.a.0.0.8.b.d.0.1.0.0.2.ip6.arpa']],
  ];
  for (const [what, args] of questions) {
    it(what, async () => {
      const [ours, theirs] = await Promise.all([dig('127.0.0.1', port, ['+norec', ...args]), dig('127.0.0.1', knot.port, ['+norec', ...args])]);
      expect(verdict(ours)).toEqual(verdict(theirs));
      // The comparison is between real answers, not two timeouts.
      expect(theirs.status).not.toBe('NONE');
    });
  }
});
