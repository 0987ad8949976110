// A second, independent DNS implementation reads our answers: dns2's UDP and TCP clients decode
// what the hot path and the slow path send. (dns2 is not the runtime codec: its parser reads a
// truncated question or a compression loop as "no question" instead of failing, so it cannot
// tell FORMERR from a valid query; see src/dns/wire.ts.)
import dns2 from 'dns2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdTestStore } from '../../test/support/store.js';
import { freePort } from '../../test/support/ports.js';
import { silentLogger } from '../log.js';
import { startDnsServer, type DnsServer } from './server.js';

const t = etcdTestStore();
let server: DnsServer;
let port = 0;

beforeAll(async () => {
  await t.writer.addNetwork({ name: 'lab', prefix6: '2001:db8:44::/64', prefix4: '10.44.0.0/24', domain: 'interop.example', metadata6: '2001:db8:44::1', metadata4: '10.44.0.1' });
  await t.writer.addVm({ name: 'web', network: 'lab', mac: '02:00:00:00:44:01', addresses: ['10.44.0.9'] });
  const { registry } = await t.follow();
  port = await freePort();
  server = await startDnsServer({ registry, listen: [{ host: '127.0.0.1', port }], log: silentLogger() });
});
afterAll(async () => {
  await server?.close();
  await t.close();
});

describe('dns2 reads our answers', () => {
  it('over UDP, cold and then from the hot cache', async () => {
    const resolve = dns2.UDPClient({ dns: '127.0.0.1', port, timeout: 3000 });
    for (let i = 0; i < 2; i++) {
      const r = await resolve('metadata.interop.example', 'AAAA');
      expect(r.header.aa).toBe(1);
      expect(r.answers.map((a: { address?: string }) => a.address)).toEqual(['2001:db8:44::1']);
    }
    const a = await resolve('WEB.interop.example', 'A');
    expect(a.questions[0].name).toBe('WEB.interop.example');
    expect(a.answers.map((x: { address?: string }) => x.address)).toEqual(['10.44.0.9']);
  });

  it('over TCP, including NXDOMAIN with the SOA in authority', async () => {
    const resolve = dns2.TCPClient({ dns: '127.0.0.1', port });
    const r = await resolve('web.interop.example', 'AAAA');
    expect(r.answers.map((a: { address?: string }) => a.address)).toEqual(['2001:db8:44::ff:fe00:4401']);
    const nx = await resolve('nobody.interop.example', 'A');
    expect(nx.header.rcode).toBe(3);
    expect(nx.authorities[0].type).toBe(dns2.Packet.TYPE.SOA);
    expect(nx.authorities[0].primary).toBe('metadata.interop.example');
  });
});
