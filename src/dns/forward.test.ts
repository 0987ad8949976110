// Forwarding against real upstreams: Debian's dnsmasq (answers, TTL-honouring cache, RFC 2308
// negative caching, per-network upstreams), the recursion ACL, and a hostile upstream that sends
// spoofed replies before the real one.
import { createSocket, type Socket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdTestStore, eventually } from '../../test/support/store.js';
import { freePort } from '../../test/support/ports.js';
import { silentLogger } from '../log.js';
import { startDnsServer, type DnsServer } from './server.js';
import { dig } from './testing/dig.js';
import { startDnsmasq, type Dnsmasq } from './testing/dnsmasq.js';
import { parseQuery } from './wire.js';

const t = etcdTestStore();
let upstream: Dnsmasq;
let other: Dnsmasq;
const servers: DnsServer[] = [];
let port: number;

async function serve(opts: Partial<Parameters<typeof startDnsServer>[0]> & { registry: Parameters<typeof startDnsServer>[0]['registry'] }): Promise<number> {
  const p = await freePort();
  servers.push(await startDnsServer({ listen: [{ host: '127.0.0.1', port: p }, { host: '::1', port: p }], log: silentLogger(), ...opts }));
  return p;
}

beforeAll(async () => {
  upstream = await startDnsmasq({ port: await freePort(), zone: 'example.org', hostRecords: ['ext.example.org,192.0.2.7,2001:db8:ff::7', 'short.example.org,192.0.2.8'], ttl: 2 });
  other = await startDnsmasq({ port: await freePort(), zone: 'example.org', hostRecords: ['ext.example.org,198.51.100.9'], ttl: 60 });
  await t.writer.addNetwork({ name: 'lab', prefix6: '2001:db8:1::/64', domain: 'lab.example', metadata6: '2001:db8:1::1' });
  const { registry } = await t.follow();
  port = await serve({ registry, upstreams: [`127.0.0.1:${upstream.port}`] });
});
afterAll(async () => {
  for (const s of servers) await s.close();
  await upstream?.close();
  await other?.close();
  await t.close();
});

describe('forwarding', () => {
  it('forwards names it does not own, as a recursive (RA, not AA) answer, and still answers its own', async () => {
    const r = await dig('127.0.0.1', port, ['ext.example.org', 'AAAA']);
    expect(r.status).toBe('NOERROR');
    expect(r.flags).toContain('ra');
    expect(r.flags).not.toContain('aa');
    expect(r.answer.map((a) => a.data)).toEqual(['2001:db8:ff::7']);
    expect(r.edns).toMatch(/udp: 1232/);
    const own = await dig('127.0.0.1', port, ['metadata.lab.example', 'AAAA']);
    expect(own.answer.map((a) => a.data)).toEqual(['2001:db8:1::1']);
    expect(upstream.queriesFor('metadata.lab.example')).toBe(0);
    // Over TCP and IPv6 too, with the question's case echoed.
    const tcp = await dig('::1', port, ['+tcp', 'EXT.example.ORG', 'A']);
    expect(tcp.answer.map((a) => [a.name, a.data])).toEqual([['EXT.example.ORG.', '192.0.2.7']]);
  });

  // Counting upstream queries inside a TTL needs a TTL longer than a loaded machine's pauses: the
  // cache assertions use `other` (TTL 60), the expiry ones `upstream` (TTL 2).
  it('caches answers for their TTL, ageing them, then asks again', async () => {
    const registry = (await t.follow()).registry;
    const p = await serve({ registry, upstreams: [`127.0.0.1:${other.port}`] });
    const before = other.queriesFor('ext.example.org', 'A');
    const first = await dig('127.0.0.1', p, ['+noedns', 'ext.example.org', 'A']);
    expect(first.answer.map((a) => [a.data, a.ttl])).toEqual([['198.51.100.9', 60]]);
    for (let i = 0; i < 5; i++) {
      const again = await dig('127.0.0.1', p, ['+noedns', 'ext.example.org', 'A']);
      expect(again.answer.map((a) => a.data)).toEqual(['198.51.100.9']);
      expect(again.answer[0].ttl).toBeLessThanOrEqual(60);
    }
    expect(other.queriesFor('ext.example.org', 'A')).toBe(before + 1);
    // A VM change touches only our own zone: the forwarded answer stays cached.
    await t.writer.addVm({ name: 'cachekeeper', network: 'lab' });
    await eventually(() => registry.vmByName('lab', 'cachekeeper'));
    expect((await dig('127.0.0.1', p, ['+noedns', 'cachekeeper.lab.example', 'AAAA'])).answer).toHaveLength(1);
    expect((await dig('127.0.0.1', p, ['+noedns', 'ext.example.org', 'A'])).answer.map((a) => a.data)).toEqual(['198.51.100.9']);
    expect(other.queriesFor('ext.example.org', 'A')).toBe(before + 1);

    await dig('127.0.0.1', port, ['+noedns', 'short.example.org', 'A']);
    const asked = upstream.queriesFor('short.example.org', 'A');
    await new Promise((r) => setTimeout(r, 2100));
    const after = await dig('127.0.0.1', port, ['+noedns', 'short.example.org', 'A']);
    expect(after.answer.map((a) => [a.data, a.ttl])).toEqual([['192.0.2.8', 2]]);
    expect(upstream.queriesFor('short.example.org', 'A')).toBe(asked + 1);
  });

  it('caches NXDOMAIN and NODATA for the SOA minimum (RFC 2308), with the SOA passed on', async () => {
    const registry = (await t.follow()).registry;
    const p = await serve({ registry, upstreams: [`127.0.0.1:${other.port}`] });
    const nx = await dig('127.0.0.1', p, ['missing.example.org', 'A']);
    expect(nx.status).toBe('NXDOMAIN');
    expect(nx.authority.map((a) => a.type)).toEqual(['SOA']);
    const nodata = await dig('127.0.0.1', p, ['ext.example.org', 'MX']);
    expect(nodata.status).toBe('NOERROR');
    expect(nodata.answer).toEqual([]);
    expect(nodata.authority.map((a) => a.type)).toEqual(['SOA']);
    for (let i = 0; i < 3; i++) {
      expect((await dig('127.0.0.1', p, ['missing.example.org', 'A'])).status).toBe('NXDOMAIN');
      expect((await dig('127.0.0.1', p, ['ext.example.org', 'MX'])).status).toBe('NOERROR');
    }
    expect(other.queriesFor('missing.example.org', 'A')).toBe(1);
    expect(other.queriesFor('ext.example.org', 'MX')).toBe(1);

    // With a 2 s SOA minimum upstream, the negative entry expires and is asked for again.
    await dig('127.0.0.1', port, ['gone.example.org', 'A']);
    const asked = upstream.queriesFor('gone.example.org', 'A');
    await new Promise((r) => setTimeout(r, 2100));
    expect((await dig('127.0.0.1', port, ['gone.example.org', 'A'])).status).toBe('NXDOMAIN');
    expect(upstream.queriesFor('gone.example.org', 'A')).toBe(asked + 1);
  });

  it('refuses recursion outside the ACL, even for cached names, and its own zone too (issue 13 item 8: closed to outsiders)', async () => {
    const registry = (await t.follow()).registry;
    const p = await serve({ registry, upstreams: [`127.0.0.1:${upstream.port}`], recursionAcl: ['127.0.0.1/32'] });
    expect((await dig('127.0.0.1', p, ['ext.example.org', 'A'])).answer.map((a) => a.data)).toEqual(['192.0.2.7']);
    // Same name, now in the cache, from clients outside the ACL.
    const v6 = await dig('::1', p, ['ext.example.org', 'A']);
    expect(v6.status).toBe('REFUSED');
    expect(v6.answer).toEqual([]);
    const other4 = await dig('127.0.0.1', p, ['-b', '127.0.0.2', 'ext.example.org', 'A']);
    expect(other4.status).toBe('REFUSED');
    const own = await dig('::1', p, ['metadata.lab.example', 'AAAA']);
    expect(own.status).toBe('REFUSED');
    expect((await dig('127.0.0.1', p, ['metadata.lab.example', 'AAAA'])).answer.map((a) => a.data)).toEqual(['2001:db8:1::1']);
  });

  it("uses a network's own upstreams for clients inside its prefixes", async () => {
    const t2 = etcdTestStore();
    try {
      await t2.writer.addNetwork({
        name: 'own', prefix6: '2001:db8:2::/64', prefix4: '127.0.0.0/8', domain: 'own.example', metadata6: '2001:db8:2::1',
        upstreams: [`127.0.0.1:${other.port}`],
      });
      const { registry } = await t2.follow();
      const p = await serve({ registry, upstreams: [`127.0.0.1:${upstream.port}`] });
      expect((await dig('127.0.0.1', p, ['ext.example.org', 'A'])).answer.map((a) => a.data)).toEqual(['198.51.100.9']);
      expect((await dig('::1', p, ['ext.example.org', 'A'])).answer.map((a) => a.data)).toEqual(['192.0.2.7']);
      // And again, from the cache: still kept apart.
      expect((await dig('127.0.0.1', p, ['ext.example.org', 'A'])).answer.map((a) => a.data)).toEqual(['198.51.100.9']);
      expect((await dig('::1', p, ['ext.example.org', 'A'])).answer.map((a) => a.data)).toEqual(['192.0.2.7']);
    } finally {
      await t2.close();
    }
  });
});

describe('forwarding to a hostile or absent upstream', () => {
  let fake: Socket;
  let fakePort: number;
  const seen: { id: number; port: number }[] = [];

  beforeAll(async () => {
    fakePort = await freePort();
    fake = createSocket('udp4');
    // Answers every query three times: wrong ID, wrong name, then right; only the last may count.
    fake.on('message', (msg, rinfo) => {
      const p = parseQuery(msg);
      if (!p.ok) return;
      seen.push({ id: p.query.id, port: rinfo.port });
      const reply = (id: number, name: string, address: number[]) => {
        const qname = Buffer.concat([...name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
        const b = Buffer.alloc(12 + qname.length + 4 + 16);
        b.writeUInt16BE(id, 0);
        b.writeUInt16BE(0x8180, 2);
        b.writeUInt16BE(1, 4);
        b.writeUInt16BE(1, 6);
        qname.copy(b, 12);
        let o = 12 + qname.length;
        b.writeUInt16BE(1, o); b.writeUInt16BE(1, o + 2);
        o += 4;
        b.writeUInt16BE(0xc00c, o); b.writeUInt16BE(1, o + 2); b.writeUInt16BE(1, o + 4); b.writeUInt32BE(60, o + 6); b.writeUInt16BE(4, o + 10);
        Buffer.from(address).copy(b, o + 12);
        fake.send(b, rinfo.port, rinfo.address);
      };
      reply((p.query.id + 1) & 0xffff, p.query.qname, [6, 6, 6, 6]);
      reply(p.query.id, `evil.${p.query.qname}`, [6, 6, 6, 7]);
      reply(p.query.id, p.query.qname, [192, 0, 2, 99]);
    });
    await new Promise<void>((r) => fake.bind(fakePort, '127.0.0.1', () => r()));
  });
  afterAll(() => new Promise<void>((r) => fake.close(() => r())));

  it('ignores replies that do not match the question, and randomises ID and source port', async () => {
    const registry = (await t.follow()).registry;
    const p = await serve({ registry, upstreams: [`127.0.0.1:${fakePort}`] });
    for (let i = 0; i < 8; i++) {
      const r = await dig('127.0.0.1', p, [`n${i}.spoof.test`, 'A']);
      expect(r.answer.map((a) => a.data)).toEqual(['192.0.2.99']);
    }
    expect(seen).toHaveLength(8);
    expect(new Set(seen.map((s) => s.id)).size).toBeGreaterThan(6);
    expect(new Set(seen.map((s) => s.port)).size).toBeGreaterThan(6);
  });

  it('answers SERVFAIL when no upstream answers, and keeps serving', async () => {
    const dead = await freePort();
    const registry = (await t.follow()).registry;
    const p = await serve({ registry, upstreams: [`127.0.0.1:${dead}`], forwardTimeoutMs: 300 });
    const r = await dig('127.0.0.1', p, ['nowhere.example.net', 'A']);
    expect(r.status).toBe('SERVFAIL');
    expect((await dig('127.0.0.1', p, ['metadata.lab.example', 'AAAA'])).answer).toHaveLength(1);
  });
});
