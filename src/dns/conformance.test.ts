// Authoritative conformance beside Knot serving the same zone: ISC's EDNS compliance set
// (genreport's tests as dig options, judged by genreport's rules), hand-built malformed queries
// (RFC 6891 §7, RFC 7873 §5.2.2), other classes (RFC 4892 CHAOS identity, REFUSED otherwise),
// RA towards clients outside the ACL, and NODATA with a SOA for the bare `metadata` (RFC 2308 §5).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdTestStore } from '../../test/support/store.js';
import { freePort } from '../../test/support/ports.js';
import { silentLogger } from '../log.js';
import { startDnsServer, type DnsServer } from './server.js';
import { dig, type DigResult } from './testing/dig.js';
import { knotZoneHead, startKnot, type Knot } from './testing/knot.js';
import { readReply, udpAsk } from './testing/raw.js';
import { RCODE, buildQuery, encodeName } from './wire.js';

const t = etcdTestStore();
const ZONE = 'lab.example';
const NET = { name: 'lab', prefix6: '2001:db8:1::/64', prefix4: '10.1.0.0/24', domain: ZONE, metadata6: '2001:db8:1::1', metadata4: '10.1.0.1' };
const WEB6 = '2001:db8:1:0:5054:ff:fe00:a';

/** `plain`: ours with no CHAOS identity; Knot with both turned off. `identity`: both configured alike, plus an upstream and a narrow ACL. */
let plain: DnsServer;
let identity: DnsServer;
let knotPlain: Knot;
let knotIdentity: Knot;
const ports = { plain: 0, identity: 0 };

function zones(): Record<string, string> {
  const meta = (apex: string) => [knotZoneHead(apex, ZONE), `@ AAAA ${NET.metadata6}`, `@ A ${NET.metadata4}`].join('\n');
  return {
    [ZONE]: [knotZoneHead(ZONE, ZONE), `metadata AAAA ${NET.metadata6}`, `metadata A ${NET.metadata4}`, `web AAAA ${WEB6}`, 'web A 10.1.0.10'].join('\n'),
    // What a bare `metadata.` and `metadata.google.internal.` are to a client: a zone apex of their own.
    metadata: meta('metadata'),
    'metadata.google.internal': meta('metadata.google.internal'),
  };
}

beforeAll(async () => {
  await t.writer.addNetwork(NET);
  await t.writer.addVm({ name: 'web', network: 'lab', mac: '52:54:00:00:00:0a', addresses: ['10.1.0.10'] });
  const { registry } = await t.follow();
  ports.plain = await freePort();
  ports.identity = await freePort();
  plain = await startDnsServer({ registry, listen: [{ host: '127.0.0.1', port: ports.plain }], log: silentLogger() });
  identity = await startDnsServer({
    registry, listen: [{ host: '127.0.0.1', port: ports.identity }], log: silentLogger(),
    chaos: { version: '9.9-test', identity: 'unc-1' },
    // An upstream nobody listens on: recursion is offered (RA), to 127.0.0.1 only.
    upstreams: [`127.0.0.1:${await freePort()}`], recursionAcl: ['127.0.0.1/32'], forwardTimeoutMs: 200,
  });
  knotPlain = await startKnot({ port: await freePort(), zones: zones(), server: ['identity: ""', 'version: ""'] });
  knotIdentity = await startKnot({ port: await freePort(), zones: zones(), server: ['identity: "unc-1"', 'version: "9.9-test"'] });
}, 60_000);
afterAll(async () => {
  await plain?.close();
  await identity?.close();
  await knotPlain?.close();
  await knotIdentity?.close();
  await t.close();
});

// ---- ISC's EDNS compliance set (genreport; RFC 6891, RFC 8906) ----

interface EdnsTest { name: string; args: string[]; edns: boolean; rcode: string; soa: boolean }
const soaQ = ['SOA', ZONE];
const dnskeyQ = ['DNSKEY', ZONE];
const EDNS_SET: EdnsTest[] = [
  { name: 'plain', args: ['+norec', '+cookie', ...soaQ], edns: true, rcode: 'NOERROR', soa: true },
  { name: 'noedns', args: ['+noedns', '+noad', '+norec', ...soaQ], edns: false, rcode: 'NOERROR', soa: true },
  { name: 'edns', args: ['+edns=0', '+nocookie', '+noad', '+norec', ...soaQ], edns: true, rcode: 'NOERROR', soa: true },
  { name: 'edns1', args: ['+edns=1', '+noednsneg', '+nocookie', '+noad', '+norec', ...soaQ], edns: true, rcode: 'BADVERS', soa: false },
  { name: 'edns@512', args: ['+edns=0', '+nocookie', '+noad', '+norec', '+dnssec', '+ignore', '+bufsize=512', ...dnskeyQ], edns: true, rcode: 'NOERROR', soa: false },
  { name: 'ednsopt', args: ['+edns=0', '+nocookie', '+noad', '+norec', '+ednsopt=100', ...soaQ], edns: true, rcode: 'NOERROR', soa: true },
  { name: 'edns1opt', args: ['+edns=1', '+noednsneg', '+nocookie', '+noad', '+norec', '+ednsopt=100', ...soaQ], edns: true, rcode: 'BADVERS', soa: false },
  { name: 'do', args: ['+edns=0', '+nocookie', '+noad', '+norec', '+dnssec', ...soaQ], edns: true, rcode: 'NOERROR', soa: true },
  { name: 'ednsflags', args: ['+edns=0', '+nocookie', '+noad', '+norec', '+ednsflags=0x0080', ...soaQ], edns: true, rcode: 'NOERROR', soa: true },
  { name: 'optlist', args: ['+edns=0', '+noad', '+norec', '+nsid', '+subnet=0.0.0.0/0', '+expire', '+cookie=0102030405060708', ...soaQ], edns: true, rcode: 'NOERROR', soa: true },
  // Padding (RFC 7830) with non-zero octets in a query: ignored, never echoed.
  { name: 'badpad', args: ['+edns=0', '+nocookie', '+noad', '+norec', '+ednsopt=12:ff00ff00', ...soaQ], edns: true, rcode: 'NOERROR', soa: true },
  { name: 'zflag', args: ['+noedns', '+noad', '+norec', '+zflag', ...soaQ], edns: false, rcode: 'NOERROR', soa: true },
  { name: 'cookie', args: ['+edns=0', '+noad', '+norec', '+cookie=0102030405060708', ...soaQ], edns: true, rcode: 'NOERROR', soa: true },
  { name: 'nsid', args: ['+edns=0', '+nocookie', '+noad', '+norec', '+nsid', ...soaQ], edns: true, rcode: 'NOERROR', soa: true },
  { name: 'subnet', args: ['+edns=0', '+nocookie', '+noad', '+norec', '+subnet=0.0.0.0/0', ...soaQ], edns: true, rcode: 'NOERROR', soa: true },
  { name: 'tcp', args: ['+edns=0', '+nocookie', '+noad', '+norec', '+dnssec', '+bufsize=512', '+tcp', ...dnskeyQ], edns: true, rcode: 'NOERROR', soa: false },
];

/** genreport's judgement of one reply: "ok", or the problems it names (status, noopt, echoed, mbz, ...). */
function genreportVerdict(test: EdnsTest, r: DigResult): string {
  if (r.status === 'NONE') return 'timeout';
  const bad: string[] = [];
  if (r.status !== test.rcode) bad.push('status');
  if (test.edns && !r.edns) bad.push('noopt');
  if (!test.edns && r.edns) bad.push('opt');
  if (r.edns && !/version: 0,/.test(r.edns)) bad.push('version');
  if (r.edns && /MBZ/.test(r.edns)) bad.push('mbz');
  if (/^;; flags:.*MBZ/m.test(r.raw)) bad.push('zflag');
  if (/; OPT=100|; PAD|; OPT=12/.test(r.raw)) bad.push('echoed');
  const soa = r.answer.some((a) => a.type === 'SOA');
  if (test.soa && !soa) bad.push('nosoa');
  if (!test.soa && test.rcode !== 'NOERROR' && soa) bad.push('soa');
  if (test.name === 'do' && !/flags: do;/.test(r.edns ?? '')) bad.push('nodo');
  const size = Number(/MSG SIZE\s+rcvd: (\d+)/.exec(r.raw)?.[1] ?? 0);
  if (test.name === 'edns@512' && size > 512) bad.push('toobig');
  if (test.name === 'tcp' && !/\(TCP\)/.test(r.raw)) bad.push('notcp');
  return bad.length ? bad.join(',') : 'ok';
}

describe("ISC's EDNS compliance set, ours and Knot", () => {
  for (const test of EDNS_SET) {
    it(test.name, async () => {
      const [ours, knots] = await Promise.all([dig('127.0.0.1', ports.plain, test.args), dig('127.0.0.1', knotPlain.port, test.args)]);
      expect({ test: test.name, ours: genreportVerdict(test, ours) }).toEqual({ test: test.name, ours: genreportVerdict(test, knots) });
      expect(genreportVerdict(test, ours)).toBe('ok');
    });
  }
});

// ---- hand-built malformed queries ----

function withOpt(options: Buffer, name = ZONE, qtype = 6): Buffer {
  const q = buildQuery(0x4242, encodeName(name), qtype, 1);
  q.writeUInt16BE(options.length, q.length - 2);
  return Buffer.concat([q, options]);
}
function option(code: number, data: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt16BE(code, 0);
  head.writeUInt16BE(data.length, 2);
  return Buffer.concat([head, data]);
}

describe('malformed queries get FORMERR, with an OPT when the query had one (RFC 6891 §7)', () => {
  const cases: [string, () => Buffer, boolean][] = [
    ['bytes after the OPT', () => Buffer.concat([withOpt(Buffer.alloc(0)), Buffer.from([1, 2, 3])]), true],
    ['bytes after the question, no OPT', () => {
      const q = buildQuery(0x4242, encodeName(ZONE), 6, 1);
      const bare = Buffer.from(q.subarray(0, q.length - 11));
      bare.writeUInt16BE(0, 10);
      return Buffer.concat([bare, Buffer.from([0xde, 0xad])]);
    }, false],
    ['an EDNS option running past the OPT', () => {
      const opt = option(100, Buffer.alloc(4));
      opt.writeUInt16BE(40, 2);
      return withOpt(opt);
    }, true],
    ['half an option header', () => withOpt(Buffer.from([0, 100])), true],
    ['a 4-byte COOKIE (RFC 7873 §5.2.2)', () => withOpt(option(10, Buffer.from([1, 2, 3, 4]))), true],
    ['a 12-byte COOKIE (client cookie plus a too-short server cookie)', () => withOpt(option(10, Buffer.alloc(12, 7))), true],
    ['a 41-byte COOKIE', () => withOpt(option(10, Buffer.alloc(41, 7))), true],
    ['two OPT records', () => {
      const q = withOpt(Buffer.alloc(0));
      const twice = Buffer.concat([q, q.subarray(q.length - 11)]);
      twice.writeUInt16BE(2, 10);
      return twice;
    }, true],
  ];
  for (const [what, build, hasOpt] of cases) {
    it(what, async () => {
      const packet = build();
      // Twice: the second must not come from a cache the first filled.
      for (let i = 0; i < 2; i++) {
        const r = readReply(await udpAsk(ports.plain, packet));
        expect(r).toMatchObject({ rcode: RCODE.FORMERR, opt: hasOpt });
      }
    });
  }

  it('a well-formed 8-byte client COOKIE and a full 16..40-byte one are answered', async () => {
    for (const len of [8, 16, 40]) {
      expect(readReply(await udpAsk(ports.plain, withOpt(option(10, Buffer.alloc(len, 9)))))).toMatchObject({ rcode: RCODE.NOERROR, opt: true });
    }
  });

  it('an unknown opcode is NOTIMP with an OPT, as Knot answers', async () => {
    for (const args of [['+opcode=15', '+header-only'], ['+opcode=15', ZONE], ['+noedns', '+opcode=15', ZONE]]) {
      const [ours, knots] = await Promise.all([dig('127.0.0.1', ports.plain, args), dig('127.0.0.1', knotPlain.port, args)]);
      expect(ours.status).toBe('NOTIMP');
      expect({ status: ours.status, opt: !!ours.edns }).toEqual({ status: knots.status, opt: !!knots.edns });
    }
  });
});

// ---- classes other than IN ----

describe('CH and HS classes, as Knot answers them', () => {
  const questions = [
    ['-c', 'CH', '-t', 'TXT', 'version.bind'], ['-c', 'CH', '-t', 'TXT', 'version.server'],
    ['-c', 'CH', '-t', 'TXT', 'id.server'], ['-c', 'CH', '-t', 'TXT', 'hostname.bind'],
    ['-c', 'CH', '-t', 'TXT', 'authors.bind'], ['-c', 'CH', '-t', 'SOA', ZONE],
    ['-c', 'HS', '-t', 'SOA', ZONE], ['-c', 'CLASS42', '-t', 'A', 'metadata.lab.example'],
  ];
  const view = (r: DigResult) => ({ status: r.status, aa: r.flags.includes('aa'), answer: r.answer.map((a) => `${a.name} ${a.ttl} ${a.type} ${a.data}`) });
  for (const q of questions) {
    it(`${q[1]} ${q[3]} ${q[4]}`, async () => {
      const [ours, knots] = await Promise.all([dig('127.0.0.1', ports.plain, ['+norec', ...q]), dig('127.0.0.1', knotPlain.port, ['+norec', ...q])]);
      expect(view(ours)).toEqual(view(knots));
      expect(ours.status).toBe('REFUSED');
      const [oursId, knotId] = await Promise.all([dig('127.0.0.1', ports.identity, ['+norec', ...q]), dig('127.0.0.1', knotIdentity.port, ['+norec', ...q])]);
      expect(view(oursId)).toEqual(view(knotId));
    });
  }
});

// ---- RA towards clients outside the ACL ----

describe('RA is offered only to clients that may recurse', () => {
  it('a REFUSED to a client outside the ACL has no RA; one inside sees RA on our answers', async () => {
    const outside = await dig('127.0.0.1', ports.identity, ['-b', '127.0.0.2', 'www.example.org', 'A']);
    expect(outside.status).toBe('REFUSED');
    expect(outside.flags).not.toContain('ra');
    const inside = await dig('127.0.0.1', ports.identity, [`metadata.${ZONE}`, 'AAAA']);
    expect(inside.status).toBe('NOERROR');
    expect(inside.flags).toContain('ra');
  });
});

// ---- the bare `metadata` and metadata.google.internal ----

describe('metadata. and metadata.google.internal answer like a zone apex, as Knot serves one', () => {
  const view = (r: DigResult) => ({
    status: r.status, aa: r.flags.includes('aa'),
    answer: r.answer.map((a) => `${a.name} ${a.type} ${a.type === 'SOA' ? a.data.replace(/ \d+ /, ' SERIAL ') : a.data}`).sort(),
    authority: r.authority.map((a) => `${a.name} ${a.ttl} ${a.type} ${a.type === 'SOA' ? a.data.replace(/ \d+ /, ' SERIAL ') : a.data}`),
  });
  for (const name of ['metadata.', 'metadata.google.internal.']) {
    for (const type of ['AAAA', 'A', 'MX', 'HTTPS', 'TXT', 'SOA', 'NS']) {
      it(`${name} ${type}`, async () => {
        const [ours, knots] = await Promise.all([dig('127.0.0.1', ports.plain, ['+norec', name, type]), dig('127.0.0.1', knotPlain.port, ['+norec', name, type])]);
        expect(view(ours)).toEqual(view(knots));
        // NODATA carries the SOA whose MINIMUM a stub caches it by (RFC 2308 §5).
        if (!ours.answer.length) expect(ours.authority.map((a) => a.type)).toEqual(['SOA']);
      });
    }
  }
});

describe('metadata.google.internal can be turned off per network', () => {
  const t2 = etcdTestStore();
  let s2: DnsServer;
  let p2: number;
  beforeAll(async () => {
    await t2.writer.addNetwork({ ...NET, dnsGoogleInternal: false });
    const { registry } = await t2.follow();
    p2 = await freePort();
    s2 = await startDnsServer({ registry, listen: [{ host: '127.0.0.1', port: p2 }], log: silentLogger() });
  });
  afterAll(async () => {
    await s2?.close();
    await t2.close();
  });
  it('is then not ours: refused here, with no upstream to forward it to', async () => {
    const r = await dig('127.0.0.1', p2, ['metadata.google.internal', 'AAAA']);
    expect(r.status).toBe('REFUSED');
    expect(r.flags).not.toContain('aa');
    expect((await dig('127.0.0.1', p2, ['metadata.', 'AAAA'])).answer.map((a) => a.data)).toEqual([NET.metadata6]);
  });
});

describe('RA on cached answers follows the asking client', () => {
  const t3 = etcdTestStore();
  let s3: DnsServer;
  let p3: number;
  beforeAll(async () => {
    // 127.0.0.0/8 is a served prefix (so 127.0.0.2 sees our data) but only 127.0.0.1 may recurse.
    await t3.writer.addNetwork({ ...NET, prefix4: '127.0.0.0/8', metadata4: '127.0.0.53' });
    const { registry } = await t3.follow();
    p3 = await freePort();
    s3 = await startDnsServer({
      registry, listen: [{ host: '127.0.0.1', port: p3 }], log: silentLogger(),
      upstreams: [`127.0.0.1:${await freePort()}`], recursionAcl: ['127.0.0.1/32'], forwardTimeoutMs: 200,
    });
  });
  afterAll(async () => {
    await s3?.close();
    await t3.close();
  });
  it('one cached answer, RA for the client that may recurse only, in either order', async () => {
    for (const name of ['metadata.lab.example', 'nope.lab.example']) {
      const first = await dig('127.0.0.1', p3, [name, 'AAAA']);
      const other = await dig('127.0.0.1', p3, ['-b', '127.0.0.2', name, 'AAAA']);
      const again = await dig('127.0.0.1', p3, [name, 'AAAA']);
      expect([first, other, again].map((r) => r.flags.includes('aa'))).toEqual([true, true, true]);
      expect([first, other, again].map((r) => r.flags.includes('ra'))).toEqual([true, false, true]);
    }
  });
});
