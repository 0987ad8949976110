// Who sees authoritative data: clients in a served network, loopback and the ACL do; others
// get REFUSED (a reverse walk would list the VMs), unless the network is dnsPublic. Clients
// outside that set are response-rate limited over UDP, BIND RRL style: past the rate, answers
// are dropped and every second one slips out truncated, and TCP still answers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSocket } from 'node:dgram';
import { etcdTestStore } from '../../test/support/store.js';
import { freePort } from '../../test/support/ports.js';
import { silentLogger } from '../log.js';
import { startDnsServer, type DnsServer } from './server.js';
import { dig } from './testing/dig.js';
import { buildQuery, encodeName } from './wire.js';

const t = etcdTestStore();
let server: DnsServer;
let port: number;
const OUTSIDER = '127.0.0.2';
const WEB6 = '2001:db8:1:0:5054:ff:fe00:a';
const RATE = 5;

beforeAll(async () => {
  await t.writer.addNetwork({ name: 'lab', prefix6: '2001:db8:1::/64', prefix4: '10.1.0.0/24', domain: 'lab.example', metadata6: '2001:db8:1::1', metadata4: '10.1.0.1' });
  await t.writer.addNetwork({ name: 'pub', prefix6: '2001:db8:2::/64', domain: 'pub.example', metadata6: '2001:db8:2::1', dnsPublic: true });
  await t.writer.addVm({ name: 'web', network: 'lab', mac: '52:54:00:00:00:0a', addresses: ['10.1.0.10'] });
  await t.writer.addVm({ name: 'www', network: 'pub', mac: '52:54:00:00:00:0b' });
  const { registry } = await t.follow();
  port = await freePort();
  server = await startDnsServer({
    registry, listen: [{ host: '127.0.0.1', port }], log: silentLogger(),
    // 127.0.0.1 is the operator's side; 127.0.0.2 lies in no served network and not in the ACL.
    recursionAcl: ['127.0.0.1/32'], rateLimit: { responsesPerSecond: RATE, slip: 2 },
  });
});
afterAll(async () => {
  await server?.close();
  await t.close();
});

describe('authoritative data only for the served networks and the ACL', () => {
  const closed: [string, string[]][] = [
    ['a VM name', ['web.lab.example', 'AAAA']],
    ['a VM reverse name', ['-x', WEB6]],
    ['an IPv4 reverse name', ['-x', '10.1.0.10']],
    ['a reverse empty non-terminal (a walk step)', ['-t', 'PTR', '0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa']],
    ['the metadata name', ['metadata.lab.example', 'AAAA']],
    ['the zone SOA', ['lab.example', 'SOA']],
    ['a missing name (no NXDOMAIN oracle either)', ['nope.lab.example', 'A']],
  ];
  for (const [what, args] of closed) {
    it(`${what}: answered inside, REFUSED outside, even once cached`, async () => {
      const inside = await dig('127.0.0.1', port, args);
      expect(inside.flags).toContain('aa');
      // The inside answer is now in the hot-path cache; the outsider must not be served from it.
      const outside = await dig('127.0.0.1', port, ['-b', OUTSIDER, '+tcp', ...args]);
      expect(outside.status).toBe('REFUSED');
      expect(outside.flags).not.toContain('aa');
      expect(outside.answer).toEqual([]);
      expect(outside.authority).toEqual([]);
    });
  }

  it('a network with dnsPublic answers everyone', async () => {
    const out = await dig('127.0.0.1', port, ['-b', OUTSIDER, '+tcp', 'www.pub.example', 'AAAA']);
    expect(out.status).toBe('NOERROR');
    expect(out.flags).toContain('aa');
    expect(out.answer.map((a) => a.data)).toEqual(['2001:db8:2:0:5054:ff:fe00:b']);
    expect((await dig('127.0.0.1', port, ['-b', OUTSIDER, '+tcp', '-x', '2001:db8:2:0:5054:ff:fe00:b'])).answer.map((a) => a.data)).toEqual(['www.pub.example.']);
  });
});

/** Sends `n` queries at once from `from`; sorts the replies into full answers and slipped (TC, no records). */
async function burst(from: string, n: number): Promise<{ full: number; slipped: number; none: number }> {
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, from, () => r()));
  const seen = new Map<number, Buffer>();
  sock.on('message', (m) => seen.set(m.readUInt16BE(0), m));
  for (let i = 1; i <= n; i++) sock.send(buildQuery(i, encodeName('www.pub.example'), 28, 1), port, '127.0.0.1');
  await new Promise((r) => setTimeout(r, 1500));
  sock.close();
  let full = 0;
  let slipped = 0;
  for (const m of seen.values()) {
    if (m[2] & 0x02 && m.readUInt16BE(6) === 0) slipped++;
    else if (m.readUInt16BE(6) > 0) full++;
  }
  return { full, slipped, none: n - seen.size };
}

describe('response-rate limiting of outsiders (BIND RRL style)', () => {
  it('past the rate, answers are dropped and every second one slips out truncated; TCP still answers', async () => {
    const r = await burst(OUTSIDER, 100);
    // About one second's worth get through in full (the burst, plus what refills while sending).
    expect(r.full).toBeGreaterThanOrEqual(1);
    expect(r.full).toBeLessThanOrEqual(RATE * 3);
    // The rest: half slip (TC, so a real client retries over TCP), half are dropped.
    const limited = 100 - r.full;
    expect(r.slipped).toBe(Math.floor(limited / 2));
    expect(r.none).toBe(limited - r.slipped);
    // dig over UDP gets TC (or a full answer) and over TCP the answer.
    const tcp = await dig('127.0.0.1', port, ['-b', OUTSIDER, '+tcp', 'www.pub.example', 'AAAA']);
    expect(tcp.answer).toHaveLength(1);
    // A neighbour in the same /24 shares the budget.
    const neighbour = await burst('127.0.0.3', 20);
    expect(neighbour.full).toBeLessThan(20);
  });

  it('clients in the trusted set are not limited', async () => {
    const r = await burst('127.0.0.1', 100);
    expect(r).toEqual({ full: 100, slipped: 0, none: 0 });
  });
});
