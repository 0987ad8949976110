// DNSSEC through the forwarder, with Knot signing a zone as the upstream, Debian's dnsmasq with
// --proxy-dnssec forwarding to the same Knot as the peer, and delv (BIND's validator) as the
// validating client, trusting Knot's KSK: signatures and denial proofs arrive as Knot sent them,
// entries are kept per DO, and AD is passed on only from an upstream the operator trusts.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdTestStore } from '../../test/support/store.js';
import { freePort } from '../../test/support/ports.js';
import { silentLogger } from '../log.js';
import { startDnsServer, type DnsServer } from './server.js';
import { dig, type DigRecord } from './testing/dig.js';
import { startDnsmasq, type Dnsmasq } from './testing/dnsmasq.js';
import { startKnot, type Knot } from './testing/knot.js';
import { rr, startScriptedUpstream, type ScriptedUpstream } from './testing/scripted-upstream.js';
import { FLAG } from './wire.js';

const t = etcdTestStore();
const servers: DnsServer[] = [];
let knot: Knot;
let knot3: Knot;
let port3: number;
let peer: Dnsmasq;
let adUpstream: ScriptedUpstream;
let port: number;
let dir: string;
let anchors: string;

const ZONE = [
  '$ORIGIN signed.test.', '$TTL 300', '@ SOA ns hostmaster 1 3600 600 86400 60', '@ NS ns', 'ns A 127.0.0.1',
  'www A 192.0.2.50', 'www AAAA 2001:db8::50', 'mail MX 10 www',
].join('\n');

async function serve(upstream: number, extra: Partial<Parameters<typeof startDnsServer>[0]> = {}): Promise<number> {
  const p = await freePort();
  const { registry } = await t.follow();
  servers.push(await startDnsServer({ registry, listen: [{ host: '127.0.0.1', port: p }], log: silentLogger(), upstreams: [`127.0.0.1:${upstream}`], ...extra }));
  return p;
}

function delv(serverPort: number, name: string, type: string): Promise<string> {
  return new Promise((resolve) => {
    execFile('delv', [`@127.0.0.1`, '-p', String(serverPort), '-a', anchors, '+root=signed.test', name, type], { timeout: 15_000 }, (_err, stdout, stderr) => resolve(`${stdout}${stderr}`));
  });
}

const shape = (rs: DigRecord[]) => rs.map((r) => `${r.name} ${r.type} ${r.data}`).sort();

beforeAll(async () => {
  await t.writer.addNetwork({ name: 'lab', prefix6: '2001:db8:1::/64', domain: 'lab.example', metadata6: '2001:db8:1::1' });
  knot = await startKnot({ port: await freePort(), zones: { 'signed.test': ZONE }, template: ['dnssec-signing: on'] });
  port = await serve(knot.port);
  // The same zone with NSEC3 denial (RFC 5155), from a second Knot.
  knot3 = await startKnot({
    port: await freePort(), zones: { 'signed.test': ZONE }, template: ['dnssec-signing: on', 'dnssec-policy: nsec3'],
    sections: ['policy:', '  - id: nsec3', '    nsec3: on'],
  });
  port3 = await serve(knot3.port);
  peer = await startDnsmasq({ port: await freePort(), servers: [`127.0.0.1#${knot.port}`], extra: ['--proxy-dnssec'] });
  // delv trusts the zone's KSK as Knot published it.
  const keys = await dig('127.0.0.1', knot.port, ['+norec', 'signed.test', 'DNSKEY']);
  const ksk = keys.answer.find((a) => a.data.startsWith('257 '));
  if (!ksk) throw new Error(`Knot published no KSK: ${keys.raw}`);
  const [flags, proto, alg, ...key] = ksk.data.split(' ');
  dir = mkdtempSync(join(tmpdir(), 'uncloud-dnssec-'));
  anchors = join(dir, 'anchors.conf');
  writeFileSync(anchors, `trust-anchors { signed.test. static-key ${flags} ${proto} ${alg} "${key.join('')}"; };\n`);
  // An upstream that claims to have validated everything (AD=1), for the trust switch.
  adUpstream = await startScriptedUpstream(await freePort(), (q) => ({ flags: FLAG.AD, answer: [rr.a(q.qname, '192.0.2.60')] }));
}, 60_000);
afterAll(async () => {
  for (const s of servers) await s.close();
  await peer?.close();
  await knot?.close();
  await knot3?.close();
  await adUpstream?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  await t.close();
});

describe('DNSSEC pass-through (signed Knot zone upstream)', () => {
  it('a validating client (delv) validates answers and denials through us, as through dnsmasq --proxy-dnssec', async () => {
    for (const p of [port, peer.port]) {
      expect(await delv(p, 'www.signed.test', 'A')).toMatch(/; fully validated\nwww\.signed\.test\.\s+\d+\s+IN\s+A\s+192\.0\.2\.50/);
      expect(await delv(p, 'nx.signed.test', 'A')).toMatch(/; negative response, fully validated/);
      expect(await delv(p, 'www.signed.test', 'MX')).toMatch(/; negative response, fully validated/);
    }
  }, 60_000);

  it('returns RRSIG and NSEC exactly as Knot sends them', async () => {
    for (const [name, type] of [['www.signed.test', 'AAAA'], ['nx.signed.test', 'A'], ['mail.signed.test', 'A']]) {
      const direct = await dig('127.0.0.1', knot.port, ['+dnssec', '+norec', name, type]);
      const ours = await dig('127.0.0.1', port, ['+dnssec', name, type]);
      expect(ours.status).toBe(direct.status);
      expect(shape(ours.answer)).toEqual(shape(direct.answer));
      expect(shape(ours.authority)).toEqual(shape(direct.authority));
      expect([...ours.answer, ...ours.authority].some((r) => r.type === 'RRSIG')).toBe(true);
      expect(ours.edns).toMatch(/flags: do;/);
    }
    const nx = await dig('127.0.0.1', port, ['+dnssec', 'nx2.signed.test', 'A']);
    expect(nx.authority.map((r) => r.type)).toContain('NSEC');
  });

  it('returns NSEC3 denials as Knot sends them', async () => {
    const direct = await dig('127.0.0.1', knot3.port, ['+dnssec', '+norec', 'nx3.signed.test', 'A']);
    const ours = await dig('127.0.0.1', port3, ['+dnssec', 'nx3.signed.test', 'A']);
    expect(ours.status).toBe('NXDOMAIN');
    expect(ours.authority.map((r) => r.type)).toContain('NSEC3');
    expect(shape(ours.authority)).toEqual(shape(direct.authority));
  });

  it('keeps entries per DO: a plain client never gets signatures, a DO client always does', async () => {
    const seq: [string, boolean][] = [['-', false], ['+', true], ['-', false], ['+', true]];
    for (const [name, firstDo] of [['www.signed.test', false], ['ns.signed.test', true]] as const) {
      for (const [, wantSigs] of firstDo ? seq.slice(1) : seq) {
        const r = await dig('127.0.0.1', port, [...(wantSigs ? ['+dnssec'] : []), name, 'A']);
        expect(r.answer.some((a) => a.type === 'RRSIG')).toBe(wantSigs);
        expect(r.answer.some((a) => a.type === 'A')).toBe(true);
      }
    }
  });

  it('passes DO and CD upstream as the client set them', async () => {
    const p = await serve(adUpstream.port);
    await dig('127.0.0.1', p, ['+dnssec', '+cd', 'cd.example', 'A']);
    await dig('127.0.0.1', p, ['plain.example', 'A']);
    const [cd] = adUpstream.queriesFor('cd.example');
    const [plain] = adUpstream.queriesFor('plain.example');
    expect(cd.dnssecOk).toBe(true);
    expect(cd.flags & FLAG.CD).toBe(FLAG.CD);
    expect(plain.dnssecOk).toBe(false);
    expect(plain.flags & FLAG.CD).toBe(0);
  });

  it('clears AD unless the operator trusts the upstream (then as dnsmasq --proxy-dnssec: to clients that ask)', async () => {
    const untrusted = await serve(adUpstream.port);
    const trusted = await serve(adUpstream.port, { trustUpstreamAd: true });
    const proxy = await startDnsmasq({ port: await freePort(), servers: [`127.0.0.1#${adUpstream.port}`], extra: ['--proxy-dnssec'] });
    try {
      for (const args of [['+dnssec'], ['+adflag'], []]) {
        expect((await dig('127.0.0.1', untrusted, [...args, 'ad.example', 'A'])).flags).not.toContain('ad');
      }
      for (let i = 0; i < 2; i++) { // the second round comes from the cache
        expect((await dig('127.0.0.1', trusted, ['+dnssec', 'ad.example', 'A'])).flags).toContain('ad');
        expect((await dig('127.0.0.1', trusted, ['+adflag', 'ad.example', 'A'])).flags).toContain('ad');
        // RFC 6840 §5.8: neither DO nor AD in the query, no AD in the answer.
        expect((await dig('127.0.0.1', trusted, ['+noadflag', 'ad.example', 'A'])).flags).not.toContain('ad');
      }
      expect((await dig('127.0.0.1', proxy.port, ['+dnssec', 'ad.example', 'A'])).flags).toContain('ad');
    } finally {
      await proxy.close();
    }
  });
});
