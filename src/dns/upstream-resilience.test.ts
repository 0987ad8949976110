// Forwarding against upstreams that misbehave the way real ones do (a scripted upstream), with
// Debian's dnsmasq forwarding to the same upstream as the peer in the same run, and dig as the
// client: late answers, silence, ICMP unreachable, SERVFAIL (cached, RFC 9520), truncation and
// TCP, EDNS intolerance (RFC 6891 §7), oversized answers, RFC 2181 §8/§9, RFC 2308 SOA TTLs, RD=0.
import { createSocket } from 'node:dgram';
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdTestStore } from '../../test/support/store.js';
import { freePort } from '../../test/support/ports.js';
import { silentLogger } from '../log.js';
import { startDnsServer, type DnsServer } from './server.js';
import { dig, type DigResult } from './testing/dig.js';
import { startDnsmasq, type Dnsmasq } from './testing/dnsmasq.js';
import { rr, startScriptedUpstream, type ScriptedReply, type ScriptedUpstream } from './testing/scripted-upstream.js';
import { RCODE, buildQuery, encodeName } from './wire.js';

const t = etcdTestStore();
const servers: DnsServer[] = [];
let up: ScriptedUpstream;
let silent: ScriptedUpstream;
let peer: Dnsmasq;
let port: number;

const GLUE_NS = Array.from({ length: 13 }, (_, i) => `ns${i}.a-rather-long-provider-name.example`);
const MANY = Array.from({ length: 150 }, (_, i) => `198.51.100.${i + 1}`);

function script(q: { qname: string; transport: 'udp' | 'tcp'; nth: number; ednsPayload?: number }): ScriptedReply | undefined {
  const name = q.qname;
  switch (name) {
    case 'late.test':
    case 'late.peer.test':
      // Only the first query is answered, late: retransmissions go unanswered.
      return q.nth === 1 ? { delayMs: 2500, answer: [rr.a(name, '192.0.2.31')] } : undefined;
    case 'servfail.test':
    case 'servfail2.test':
    case 'servfail3.test':
      return { rcode: RCODE.SERVFAIL };
    case 'trunc.test':
      return q.transport === 'udp' ? { flags: 0x0200 } : { answer: [rr.a(name, '192.0.2.32'), rr.txt(name, 'over tcp')] };
    case 'noedns.test':
      return q.ednsPayload !== undefined ? { rcode: RCODE.FORMERR, noOpt: true } : { answer: [rr.a(name, '192.0.2.33')] };
    case 'many.test':
      // Oversized: ~4 KB over UDP whatever the query advertised.
      return { answer: MANY.map((ip) => rr.a(name, ip)) };
    case 'glue.test':
      return {
        answer: [rr.a(name, '192.0.2.34')],
        authority: GLUE_NS.map((n) => rr.ns('glue.test', n)),
        additional: GLUE_NS.map((n, i) => rr.a(n, `192.0.2.${100 + i}`)),
      };
    case 'topbit.test':
      return { answer: [rr.a(name, '192.0.2.35', 0x80000010)] };
    case 'neg.test':
      return { rcode: RCODE.NXDOMAIN, authority: [rr.soa('test', 3600, 30)] };
    default:
      return { answer: [rr.a(name, '192.0.2.200')] };
  }
}

async function serve(upstreams: number[], extra: Partial<Parameters<typeof startDnsServer>[0]> = {}): Promise<number> {
  const p = await freePort();
  const { registry } = await t.follow();
  servers.push(await startDnsServer({
    registry, listen: [{ host: '127.0.0.1', port: p }], log: silentLogger(), upstreams: upstreams.map((u) => `127.0.0.1:${u}`), ...extra,
  }));
  return p;
}

const msgSize = (r: DigResult) => Number(/MSG SIZE\s+rcvd: (\d+)/.exec(r.raw)?.[1]);

beforeAll(async () => {
  await t.writer.addNetwork({ name: 'lab', prefix6: '2001:db8:1::/64', domain: 'lab.example', metadata6: '2001:db8:1::1' });
  up = await startScriptedUpstream(await freePort(), script);
  silent = await startScriptedUpstream(await freePort(), () => undefined);
  port = await serve([up.port]);
  peer = await startDnsmasq({ port: await freePort(), servers: [`127.0.0.1#${up.port}`], extra: ['--cache-size=1000'] });
});
afterAll(async () => {
  for (const s of servers) await s.close();
  await peer?.close();
  await up?.close();
  await silent?.close();
  await t.close();
});

describe('upstream resilience (item 4)', () => {
  it('waits for a late answer instead of giving up, as dnsmasq does', async () => {
    const [ours, theirs] = await Promise.all([
      dig('127.0.0.1', port, ['+time=8', 'late.test', 'A']),
      dig('127.0.0.1', peer.port, ['+time=8', 'late.peer.test', 'A']),
    ]);
    expect(ours.status).toBe('NOERROR');
    expect(ours.answer.map((a) => a.data)).toEqual(['192.0.2.31']);
    expect(theirs.answer.map((a) => a.data)).toEqual(['192.0.2.31']);
    // We retransmitted while waiting (the upstream ignored those), and the first query's answer counted.
    expect(up.queriesFor('late.test').length).toBeGreaterThan(1);
  }, 20_000);

  it('retries the next upstream when one stays silent, within the same query', async () => {
    const p = await serve([silent.port, up.port], { forwardRetransmitMs: 200 });
    const r = await dig('127.0.0.1', p, ['failover.test', 'A']);
    expect(r.answer.map((a) => a.data)).toEqual(['192.0.2.200']);
    expect(silent.queriesFor('failover.test')).toHaveLength(1);
    expect(up.queriesFor('failover.test')).toHaveLength(1);
    // The next question goes to the upstream that answered, not the silent one first again.
    expect((await dig('127.0.0.1', p, ['failover2.test', 'A'])).answer.map((a) => a.data)).toEqual(['192.0.2.200']);
    expect(silent.queriesFor('failover2.test')).toHaveLength(0);
  });

  it('moves to the next upstream at once when one answers SERVFAIL', async () => {
    const good = await startScriptedUpstream(await freePort(), (q) => ({ answer: [rr.a(q.qname, '192.0.2.77')] }));
    try {
      // A retransmission timer longer than dig waits: only the SERVFAIL can move us on in time.
      const p = await serve([up.port, good.port], { forwardRetransmitMs: 6000, forwardTimeoutMs: 12_000 });
      const r = await dig('127.0.0.1', p, ['servfail3.test', 'A']);
      expect(r.status).toBe('NOERROR');
      expect(r.answer.map((a) => a.data)).toEqual(['192.0.2.77']);
      expect(up.queriesFor('servfail3.test')).toHaveLength(1);
    } finally {
      await good.close();
    }
  });

  it('notices ICMP port unreachable (connected socket) and moves on long before the retransmission timer', async () => {
    const closed = await freePort();
    // The retransmission timer (6 s) is longer than dig waits (3 s): only the ICMP error can move us on in time.
    const p = await serve([closed, up.port], { forwardRetransmitMs: 6000, forwardTimeoutMs: 12_000 });
    const r = await dig('127.0.0.1', p, ['icmp.test', 'A']);
    expect(r.status).toBe('NOERROR');
    expect(r.answer.map((a) => a.data)).toEqual(['192.0.2.200']);
  });

  it('caches SERVFAIL for a few seconds (RFC 9520) instead of asking again for every client query', async () => {
    const first = await dig('127.0.0.1', port, ['servfail.test', 'A']);
    expect(first.status).toBe('SERVFAIL');
    const asked = up.queriesFor('servfail.test').length;
    expect(asked).toBeGreaterThanOrEqual(1);
    for (let i = 0; i < 3; i++) expect((await dig('127.0.0.1', port, ['servfail.test', 'A'])).status).toBe('SERVFAIL');
    expect(up.queriesFor('servfail.test')).toHaveLength(asked);
  });

  it('forgets a failure after its time and asks again', async () => {
    const p = await serve([up.port], { forwardFailureTtlMs: 1000 });
    expect((await dig('127.0.0.1', p, ['servfail2.test', 'A'])).status).toBe('SERVFAIL');
    expect((await dig('127.0.0.1', p, ['servfail2.test', 'A'])).status).toBe('SERVFAIL');
    const asked = up.queriesFor('servfail2.test').length;
    await new Promise((r) => setTimeout(r, 1200));
    expect((await dig('127.0.0.1', p, ['servfail2.test', 'A'])).status).toBe('SERVFAIL');
    expect(up.queriesFor('servfail2.test').length).toBeGreaterThan(asked);
  });

  it('a flood of unique names at a black-holed upstream: bounded sockets, own names still answered', async () => {
    const p = await serve([silent.port]);
    const fds = () => readdirSync('/proc/self/fd').length;
    const before = fds();
    const sock = createSocket('udp4');
    let servfails = 0;
    sock.on('message', (m) => { if ((m[3] & 0xf) === RCODE.SERVFAIL) servfails++; });
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    for (let i = 0; i < 5000; i++) {
      const q = buildQuery(i, encodeName(`n${i}.flood.test`), 1, 1, { edns: false });
      sock.send(q, p, '127.0.0.1');
      if (i % 500 === 0) await new Promise((r) => setImmediate(r));
    }
    // Past the first retransmission (800 ms): every question in flight holds two sockets now.
    let most = 0;
    for (let i = 0; i < 15; i++) {
      await new Promise((r) => setTimeout(r, 100));
      most = Math.max(most, fds() - before);
    }
    // At most 2048 questions in flight, each with at most 3 tries to one upstream.
    expect(most).toBeLessThan(2048 * 3 + 100);
    // Questions beyond the bound got SERVFAIL at once instead of a socket.
    expect(servfails).toBeGreaterThan(0);
    expect((await dig('127.0.0.1', p, ['metadata.lab.example', 'AAAA'])).answer).toHaveLength(1);
    sock.close();
  }, 30_000);

  it('answers SERVFAIL when nothing answers within the budget, and still serves', async () => {
    const p = await serve([silent.port], { forwardTimeoutMs: 600, forwardRetransmitMs: 100 });
    expect((await dig('127.0.0.1', p, ['nobody.test', 'A'])).status).toBe('SERVFAIL');
    expect(silent.queriesFor('nobody.test').length).toBeGreaterThan(1);
    expect((await dig('127.0.0.1', p, ['metadata.lab.example', 'AAAA'])).answer).toHaveLength(1);
  });
});

describe('what comes back from upstream (TC, EDNS intolerance, oversized)', () => {
  it('follows a truncated upstream answer over TCP, like dnsmasq', async () => {
    const ours = await dig('127.0.0.1', port, ['trunc.test', 'ANY']);
    const theirs = await dig('127.0.0.1', peer.port, ['trunc.test', 'ANY']);
    expect(ours.answer.map((a) => a.data).sort()).toEqual(['"over tcp"', '192.0.2.32']);
    expect(ours.answer.map((a) => a.data).sort()).toEqual(theirs.answer.map((a) => a.data).sort());
    expect(up.queriesFor('trunc.test', 'tcp').length).toBeGreaterThanOrEqual(1);
  });

  // dnsmasq 2.90 passes the FORMERR on to the client here.
  it('asks again without EDNS when the upstream answers FORMERR without an OPT (RFC 6891 §7)', async () => {
    const ours = await dig('127.0.0.1', port, ['noedns.test', 'A']);
    expect(ours.status).toBe('NOERROR');
    expect(ours.answer.map((a) => a.data)).toEqual(['192.0.2.33']);
    expect(up.queriesFor('noedns.test').some((q) => q.ednsPayload === undefined)).toBe(true);
  });
});

describe('sizes (item 5) and truncation (item 6)', () => {
  // dnsmasq 2.90 answers SERVFAIL to this one.
  it('never sends a UDP answer bigger than min(client size, 1232); TC, and TCP has it all', async () => {
    for (const bufsize of [4096, 1232, 700]) {
      const r = await dig('127.0.0.1', port, [`+bufsize=${bufsize}`, '+ignore', 'many.test', 'A']);
      expect(r.flags).toContain('tc');
      expect(msgSize(r)).toBeLessThanOrEqual(Math.min(bufsize, 1232));
    }
    const plain = await dig('127.0.0.1', port, ['+noedns', '+ignore', 'many.test', 'A']);
    expect(plain.flags).toContain('tc');
    expect(msgSize(plain)).toBeLessThanOrEqual(512);
    const tcp = await dig('127.0.0.1', port, ['+tcp', 'many.test', 'A']);
    expect(tcp.answer).toHaveLength(MANY.length);
  });

  it('drops additional, then authority, and sets TC only when the answer itself does not fit (RFC 2181 §9)', async () => {
    const full = await dig('127.0.0.1', port, ['+tcp', 'glue.test', 'A']);
    expect(full.authority).toHaveLength(13);
    expect(full.additional).toHaveLength(13);
    expect(msgSize(full)).toBeGreaterThan(512);
    const plain = await dig('127.0.0.1', port, ['+noedns', '+ignore', 'glue.test', 'A']);
    expect(plain.flags).not.toContain('tc');
    expect(plain.answer.map((a) => a.data)).toEqual(['192.0.2.34']);
    expect(msgSize(plain)).toBeLessThanOrEqual(512);
    // A musl-style client that never retries over TCP still gets its address; so does dnsmasq's
    // (which sends ~1.6 KB to the plain-DNS client above).
    const edns = await dig('127.0.0.1', port, ['+bufsize=512', '+ignore', 'glue.test', 'A']);
    const theirs = await dig('127.0.0.1', peer.port, ['+bufsize=512', '+ignore', 'glue.test', 'A']);
    expect(edns.flags).not.toContain('tc');
    expect(edns.answer.map((a) => a.data)).toEqual(['192.0.2.34']);
    expect(theirs.flags).not.toContain('tc');
    expect(theirs.answer.map((a) => a.data)).toEqual(edns.answer.map((a) => a.data));
  });
});

describe('smaller conformance points (item 7, forwarding side)', () => {
  it('treats a TTL with the top bit set as 0 (RFC 2181 §8): shown as 0, not cached', async () => {
    const r = await dig('127.0.0.1', port, ['topbit.test', 'A']);
    expect(r.answer.map((a) => [a.data, a.ttl])).toEqual([['192.0.2.35', 0]]);
    await dig('127.0.0.1', port, ['topbit.test', 'A']);
    expect(up.queriesFor('topbit.test')).toHaveLength(2);
  });

  it("rewrites a negative answer's SOA TTL to how long we cache it (RFC 2308 §5)", async () => {
    const r = await dig('127.0.0.1', port, ['neg.test', 'A']);
    expect(r.status).toBe('NXDOMAIN');
    expect(r.authority.map((a) => a.type)).toEqual(['SOA']);
    expect(r.authority[0].ttl).toBeLessThanOrEqual(30);
    const again = await dig('127.0.0.1', port, ['neg.test', 'A']);
    expect(again.authority[0].ttl).toBeLessThanOrEqual(30);
    expect(up.queriesFor('neg.test')).toHaveLength(1);
  });

  it('answers RD=0 for outside names from the cache only, else REFUSED; never asks upstream', async () => {
    const cold = await dig('127.0.0.1', port, ['+norec', 'norec.test', 'A']);
    expect(cold.status).toBe('REFUSED');
    expect(up.queriesFor('norec.test')).toHaveLength(0);
    await dig('127.0.0.1', port, ['norec.test', 'A']);
    const warm = await dig('127.0.0.1', port, ['+norec', 'norec.test', 'A']);
    expect(warm.status).toBe('NOERROR');
    expect(warm.answer.map((a) => a.data)).toEqual(['192.0.2.200']);
    expect(up.queriesFor('norec.test')).toHaveLength(1);
  });
});
