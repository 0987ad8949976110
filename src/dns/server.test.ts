// The authoritative side against real `dig`, fed by a live registry on real etcd: names, reverse
// names, SOA/NS, NXDOMAIN vs NODATA, case, EDNS, truncation then TCP, IPv6, propagation of
// writes, and REFUSED for recursion with nowhere to go.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdTestStore, eventually } from '../../test/support/store.js';
import { freePort } from '../../test/support/ports.js';
import { silentLogger } from '../log.js';
import { createMetricsRegistry } from '../metrics.js';
import { startDnsServer, type DnsServer } from './server.js';
import { dig } from './testing/dig.js';

const t = etcdTestStore();
let server: DnsServer;
let port: number;
const metrics = createMetricsRegistry(false);
const q = (...args: string[]) => dig('127.0.0.1', port, args);

const WEB6 = '2001:db8:1:0:5054:ff:fe00:a';
const BIG = Array.from({ length: 30 }, (_, i) => `2001:db8:1::b:${(i + 1).toString(16)}`);

beforeAll(async () => {
  await t.writer.addNetwork({
    name: 'lab', prefix6: '2001:db8:1::/64', prefix4: '10.1.0.0/24', domain: 'lab.example',
    metadata6: '2001:db8:1::1', metadata4: '10.1.0.1',
  });
  await t.writer.addVm({ name: 'web', network: 'lab', mac: '52:54:00:00:00:0a', addresses: ['10.1.0.10'] });
  await t.writer.addVm({ name: 'big', network: 'lab', mac: '52:54:00:00:00:0b', addresses: BIG });
  const { registry } = await t.follow();
  port = await freePort();
  server = await startDnsServer({
    registry, listen: [{ host: '127.0.0.1', port }, { host: '::1', port }], log: silentLogger(), metrics,
  });
});
afterAll(async () => {
  await server?.close();
  await t.close();
});

describe('authoritative answers from the registry', () => {
  it('answers metadata.<domain> AAAA and A, authoritatively, with the configured TTL', async () => {
    const r6 = await q('metadata.lab.example', 'AAAA');
    expect(r6.status).toBe('NOERROR');
    expect(r6.flags).toContain('aa');
    expect(r6.answer).toEqual([{ name: 'metadata.lab.example.', ttl: 30, type: 'AAAA', data: '2001:db8:1::1' }]);
    const r4 = await q('metadata.lab.example', 'A');
    expect(r4.answer.map((a) => a.data)).toEqual(['10.1.0.1']);
  });

  it('answers the bare single-label metadata. for a loopback client when one network is served', async () => {
    const r = await q('metadata.', 'AAAA');
    expect(r.status).toBe('NOERROR');
    expect(r.answer.map((a) => [a.name, a.data])).toEqual([['metadata.', '2001:db8:1::1']]);
  });

  it('answers VM names with their EUI-64 and explicit addresses', async () => {
    expect((await q('web.lab.example', 'AAAA')).answer.map((a) => a.data)).toEqual([WEB6]);
    expect((await q('web.lab.example', 'A')).answer.map((a) => a.data)).toEqual(['10.1.0.10']);
    const any = await q('web.lab.example', 'ANY');
    expect(any.answer.map((a) => a.type).sort()).toEqual(['A', 'AAAA']);
  });

  it('answers PTR for VM and metadata addresses, IPv6 and IPv4', async () => {
    expect((await q('-x', WEB6)).answer.map((a) => a.data)).toEqual(['web.lab.example.']);
    expect((await q('-x', '10.1.0.10')).answer.map((a) => a.data)).toEqual(['web.lab.example.']);
    const meta = await q('-x', '2001:db8:1::1');
    expect(meta.answer.map((a) => a.data)).toEqual(['metadata.lab.example.']);
    expect(meta.flags).toContain('aa');
  });

  it('has SOA and NS at every apex, with the NS address as additional data', async () => {
    const soa = await q('lab.example', 'SOA');
    expect(soa.flags).toContain('aa');
    expect(soa.answer[0].type).toBe('SOA');
    expect(soa.answer[0].data).toMatch(/^metadata\.lab\.example\. hostmaster\.lab\.example\. \d+ 3600 600 86400 30$/);
    const ns = await q('lab.example', 'NS');
    expect(ns.answer.map((a) => a.data)).toEqual(['metadata.lab.example.']);
    expect(ns.additional.map((a) => a.data).sort()).toEqual(['10.1.0.1', '2001:db8:1::1']);
    for (const zone of ['0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa', '0.1.10.in-addr.arpa']) {
      const r = await q(zone, 'SOA');
      expect(r.status).toBe('NOERROR');
      expect(r.answer[0]?.type).toBe('SOA');
    }
  });

  it('tells NXDOMAIN from NODATA, both with the SOA in the authority section', async () => {
    const nx = await q('nope.lab.example', 'AAAA');
    expect(nx.status).toBe('NXDOMAIN');
    expect(nx.flags).toContain('aa');
    expect(nx.answer).toEqual([]);
    expect(nx.authority.map((a) => [a.name, a.type])).toEqual([['lab.example.', 'SOA']]);
    // Below an existing name is still NXDOMAIN.
    expect((await q('x.web.lab.example', 'A')).status).toBe('NXDOMAIN');

    const nodata = await q('web.lab.example', 'MX');
    expect(nodata.status).toBe('NOERROR');
    expect(nodata.answer).toEqual([]);
    expect(nodata.authority.map((a) => a.type)).toEqual(['SOA']);
    // An empty non-terminal in the reverse zone (a nibble on the way to a VM's PTR) exists: NODATA.
    const ent = await q('f.f.0.0.4.5.0.5.0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa', 'PTR');
    expect(ent.status).toBe('NOERROR');
    expect(ent.answer).toEqual([]);
    const noVm = await q('-x', '2001:db8:1::dead');
    expect(noVm.status).toBe('NXDOMAIN');
  });

  it('is case-insensitive and echoes the question as asked', async () => {
    const r = await q('MeTaDaTa.LAB.Example', 'AAAA');
    expect(r.status).toBe('NOERROR');
    expect(r.question).toBe('MeTaDaTa.LAB.Example.');
    expect(r.answer[0].name).toBe('MeTaDaTa.LAB.Example.');
    expect(r.answer[0].data).toBe('2001:db8:1::1');
    // A second, differently cased query hits the cache entry the first one made, still echoed.
    const again = await q('METADATA.lab.EXAMPLE', 'AAAA');
    expect(again.question).toBe('METADATA.lab.EXAMPLE.');
    expect(again.answer[0].data).toBe('2001:db8:1::1');
  });

  it('answers EDNS with an OPT of its own, plain DNS without, and BADVERS for unknown versions', async () => {
    const withOpt = await q('metadata.lab.example', 'AAAA');
    expect(withOpt.edns).toMatch(/version: 0, flags:; udp: 1232/);
    const plain = await q('+noedns', 'metadata.lab.example', 'AAAA');
    expect(plain.edns).toBeUndefined();
    expect(plain.answer).toHaveLength(1);
    const v1 = await q('+edns=1', '+noednsnegotiation', 'metadata.lab.example', 'AAAA');
    expect(v1.status).toBe('BADVERS');
    const dnssec = await q('+dnssec', 'metadata.lab.example', 'AAAA');
    expect(dnssec.edns).toMatch(/flags: do;/);
  });

  it('sets TC when the answer does not fit (512 without EDNS, else the advertised size); TCP gets it all', async () => {
    const small = await q('+noedns', '+ignore', 'big.lab.example', 'AAAA');
    expect(small.flags).toContain('tc');
    expect(small.answer).toEqual([]);
    const advertised = await q('+bufsize=600', '+ignore', 'big.lab.example', 'AAAA');
    expect(advertised.flags).toContain('tc');
    const fits = await q('+bufsize=1232', 'big.lab.example', 'AAAA');
    expect(fits.flags).not.toContain('tc');
    expect(fits.answer).toHaveLength(31);
    const tcp = await q('+tcp', '+noedns', 'big.lab.example', 'AAAA');
    expect(tcp.answer).toHaveLength(31);
    // dig's own fallback: truncated over UDP, retried over TCP.
    const fallback = await q('+noedns', 'big.lab.example', 'AAAA');
    expect(fallback.answer).toHaveLength(31);
    expect(fallback.raw).toMatch(/Truncated, retrying in TCP mode/);
  });

  it('serves TCP with several queries on one connection and IPv6 listeners', async () => {
    const r = await q('+tcp', '+keepopen', 'metadata.lab.example', 'AAAA', 'web.lab.example', 'A', 'nope.lab.example', 'A');
    expect(r.raw.match(/status: NOERROR/g)).toHaveLength(2);
    expect(r.raw).toMatch(/status: NXDOMAIN/);
    const v6 = await dig('::1', port, ['metadata.lab.example', 'AAAA']);
    expect(v6.answer.map((a) => a.data)).toEqual(['2001:db8:1::1']);
    const v6tcp = await dig('::1', port, ['+tcp', '-x', WEB6]);
    expect(v6tcp.answer.map((a) => a.data)).toEqual(['web.lab.example.']);
  });

  it('shows added and removed VMs within a second of the etcd write', async () => {
    // Prime the cache with the negative answer first: the change must invalidate it.
    expect((await q('fresh.lab.example', 'AAAA')).status).toBe('NXDOMAIN');
    await t.writer.addVm({ name: 'fresh', network: 'lab', mac: '52:54:00:00:00:0c' });
    await eventually(async () => (await q('fresh.lab.example', 'AAAA')).answer[0]?.data === '2001:db8:1:0:5054:ff:fe00:c', 1000);
    expect((await q('-x', '2001:db8:1:0:5054:ff:fe00:c')).answer.map((a) => a.data)).toEqual(['fresh.lab.example.']);
    await t.writer.removeVm('fresh', 'lab');
    await eventually(async () => (await q('fresh.lab.example', 'AAAA')).status === 'NXDOMAIN', 1000);
    expect((await q('-x', '2001:db8:1:0:5054:ff:fe00:c')).status).toBe('NXDOMAIN');
  });

  it('refuses recursion when there is no upstream, and counts queries in metrics', async () => {
    const r = await q('www.example.org', 'A');
    expect(r.status).toBe('REFUSED');
    expect(r.answer).toEqual([]);
    const text = await metrics.metrics();
    expect(text).toMatch(/uncloud_metadata_dns_queries_total\{qtype="AAAA",rcode="NOERROR"\} \d+/);
    expect(text).toMatch(/uncloud_metadata_dns_queries_total\{qtype="A",rcode="REFUSED"\} \d+/);
    expect(text).toMatch(/uncloud_metadata_dns_cache_hits_total [1-9]/);
  });
});

describe('bare metadata. with several networks', () => {
  const t2 = etcdTestStore();
  let s2: DnsServer;
  let p2: number;
  beforeAll(async () => {
    await t2.writer.addNetwork({ name: 'a', prefix6: '2001:db8:a::/64', domain: 'a.example', metadata6: '2001:db8:a::1' });
    await t2.writer.addNetwork({ name: 'b', prefix6: '2001:db8:b::/64', prefix4: '127.0.0.0/8', domain: 'b.example', metadata6: '2001:db8:b::1' });
    const { registry } = await t2.follow();
    p2 = await freePort();
    s2 = await startDnsServer({ registry, listen: [{ host: '127.0.0.1', port: p2 }, { host: '::1', port: p2 }], log: silentLogger() });
  });
  afterAll(async () => {
    await s2?.close();
    await t2.close();
  });

  it('answers with the network holding the client address, and not at all when none does', async () => {
    // 127.0.0.1 lies in network b's IPv4 prefix; ::1 lies in none, and two networks are served.
    const viaB = await dig('127.0.0.1', p2, ['metadata.', 'AAAA']);
    expect(viaB.answer.map((a) => a.data)).toEqual(['2001:db8:b::1']);
    const none = await dig('::1', p2, ['metadata.', 'AAAA']);
    expect(none.status).toBe('REFUSED');
    // Answers are cached per client network: asking again does not mix them up.
    expect((await dig('127.0.0.1', p2, ['metadata.', 'AAAA'])).answer.map((a) => a.data)).toEqual(['2001:db8:b::1']);
    expect((await dig('::1', p2, ['metadata.', 'AAAA'])).status).toBe('REFUSED');
  });
});
