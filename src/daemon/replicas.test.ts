// Two appliance replicas of one network, as deploy/README.md sets them up: the network names both
// metadata addresses, DNS answers both for `metadata`, router advertisements list both as RDNSS,
// and an IMDSv2 token, a GCE ETag and every document are the same whichever replica answers.
// Then a guest-like client (glibc's resolver with both replicas as nameservers, a fetch loop and
// a GCE long-poller) keeps going while one replica is killed: no failed lookup or fetch beyond the
// client's own retries, and every change written afterwards reaches the long-poller.
// Everything (etcd, both replicas, the CLI, the client) runs inside one network namespace, each
// replica on its own address of it; the client's resolv.conf is the namespace's (/etc/netns/NS/).
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Netns } from '../../test/e2e/netns.js';
import { etcdArgs } from '../../test/support/etcd-global.js';
import { BIN } from '../../test/support/daemon.js';
import { eventually, ED25519 } from '../../test/support/store.js';

const exec = promisify(execFile);
const CLIENT = join(import.meta.dirname, 'testing/replica-client.py');
const A = 'fd00:14::a';
const B = 'fd00:14::b';
const VM = 'fd00:14::100';
const dir = mkdtempSync(join(tmpdir(), 'uncloud-replicas-'));
let ns: Netns;
let etcd: ChildProcess | undefined;
const procs: ChildProcess[] = [];
let store = '';

interface Event { kind: 'fetch' | 'poll'; ok: boolean; t: number; addr?: string; etag?: string; attributes?: Record<string, string>; error?: string; lookupMs?: number }

/** The CLI, run inside the namespace (where etcd is). */
async function cli(...args: string[]): Promise<string> {
  return ns.exec(process.execPath, [BIN, ...args, '--store', store]);
}

function startReplica(addr: string, admin: number): Promise<ChildProcess> {
  const proc = ns.spawn(process.execPath, [BIN, 'serve', '--store', store, '--network', 'lab', '--dns', `[${addr}]:53`, '--http', `[${addr}]:80`,
    '--admin', `[::1]:${admin}`, '--token-secret-file', join(dir, 'token.key'), '--log-level', 'info']);
  procs.push(proc);
  let out = '';
  proc.stdout!.on('data', (b) => (out += b));
  proc.stderr!.on('data', (b) => (out += b));
  return eventually(() => {
    if (proc.exitCode !== null) throw new Error(`replica ${addr} exited: ${out}`);
    return out.includes('"msg":"serving"');
  }, 30_000).then(() => proc);
}

async function http(addr: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; body: string; headers: Record<string, string> }> {
  // curl inside the namespace, from the VM's address (identity is by source address).
  const args = ['-sS', '--max-time', '5', '--interface', VM, '-X', method, '-D', '-', ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]), `http://[${addr}]${path}`];
  const raw = await ns.exec('curl', args);
  const [head, ...rest] = raw.split('\r\n\r\n');
  const lines = head.split('\r\n');
  return {
    status: Number(lines[0].split(' ')[1]),
    headers: Object.fromEntries(lines.slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()])),
    body: rest.join('\r\n\r\n'),
  };
}

beforeAll(async () => {
  ns = await Netns.create('ucrep');
  for (const a of [A, B, VM]) await ns.ip(['addr', 'add', `${a}/128`, 'dev', 'lo', 'nodad']);
  writeFileSync(join(dir, 'token.key'), 'a shared secret of more than sixteen bytes');
  etcd = ns.spawn('etcd', etcdArgs({ name: 'rep', dataDir: join(dir, 'etcd'), client: 2379, peer: 2380 }));
  store = 'etcd://127.0.0.1:2379';
  await eventually(async () => (await ns.exec('curl', ['-sf', 'http://127.0.0.1:2379/health'])).includes('true'), 20_000);
  await cli('network', 'add', 'lab', '--prefix6', 'fd00:14::/64', '--domain', 'lab.test', '--metadata6', A, '--replica6', B);
  await cli('user', 'key', 'add', 'alice', 'laptop', ED25519);
  await cli('vm', 'add', 'self', '--network', 'lab', '--owner', 'alice', '--address', VM, '--meta', 'v=0');
  await startReplica(A, 9153);
  await startReplica(B, 9154);
  // The client's resolver: both replicas, the network's search domain, a short timeout.
  mkdirSync(`/etc/netns/${ns.name}`, { recursive: true });
  writeFileSync(`/etc/netns/${ns.name}/resolv.conf`, `nameserver ${A}\nnameserver ${B}\nsearch lab.test\noptions timeout:1 attempts:2\n`);
}, 90_000);

afterAll(async () => {
  for (const p of procs) p.kill('SIGKILL');
  etcd?.kill('SIGKILL');
  await ns?.delete();
  rmSync(`/etc/netns/${ns?.name}`, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
});

describe('two replicas of one network', () => {
  it('DNS answers both addresses on either replica; ra-config lists both as RDNSS', async () => {
    for (const server of [A, B]) {
      const r = await ns.exec('dig', ['+short', '+tries=1', '+time=2', `@${server}`, 'metadata.lab.test', 'AAAA']);
      expect(r.trim().split('\n').sort()).toEqual([A, B]);
    }
    const radvd = await cli('ra-config', 'lab');
    expect(radvd).toContain(`RDNSS ${A} ${B}`);
    const dnsmasq = await cli('ra-config', 'lab', '--format', 'dnsmasq');
    expect(dnsmasq).toContain(`dhcp-option=option6:dns-server,[${A}],[${B}]`);
  });

  it('a token from one replica works on the other; ETags and documents are the same on both', async () => {
    const token = await http(A, '/latest/api/token', { 'X-aws-ec2-metadata-token-ttl-seconds': '60' }, 'PUT');
    expect(token.status).toBe(200);
    const withToken = await http(B, '/latest/meta-data/instance-id', { 'X-aws-ec2-metadata-token': token.body });
    expect(withToken.status).toBe(200);
    const forged = await http(B, '/latest/meta-data/instance-id', { 'X-aws-ec2-metadata-token': `${token.body.slice(0, -2)}xx` });
    expect(forged.status).toBe(401);
    for (const path of ['/openstack/latest/meta_data.json', '/openstack/latest/network_data.json', '/latest/meta-data/', '/nocloud/meta-data',
      '/nocloud/network-config', '/latest/dynamic/instance-identity/document', '/keys']) {
      const [a, b] = [await http(A, path), await http(B, path)];
      expect(a.status, path).toBe(200);
      expect(b.body, path).toBe(a.body);
    }
    // What guests configure their resolvers from names every replica.
    const networkData = JSON.parse((await http(A, '/openstack/latest/network_data.json')).body) as { services: { address: string }[] };
    expect(networkData.services.map((x) => x.address)).toEqual([A, B]);
    expect((await http(A, '/nocloud/network-config')).body).toMatch(new RegExp(`${A}[\\s\\S]*${B}`));
    const gce = { 'Metadata-Flavor': 'Google' };
    const [a, b] = [await http(A, '/computeMetadata/v1/?recursive=true', gce), await http(B, '/computeMetadata/v1/?recursive=true', gce)];
    expect(a.headers.etag).toMatch(/^[0-9a-f]{16}$/);
    expect(b.headers.etag).toBe(a.headers.etag);
    expect(b.body).toBe(a.body);
  });

  it('a client keeps resolving, fetching and long-polling while one replica is killed, and loses no change', async () => {
    const events: Event[] = [];
    const client = ns.spawn('python3', [CLIENT, VM]);
    procs.push(client);
    let buf = '';
    let stderr = '';
    client.stderr!.on('data', (b: Buffer) => (stderr += b));
    const progress = () => `client stderr: ${stderr.slice(-500)}; last events: ${JSON.stringify(events.slice(-4))}`;
    client.stdout!.on('data', (b: Buffer) => {
      buf += b;
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) if (l.trim()) events.push(JSON.parse(l) as Event);
    });
    const polled = (v: string) => events.some((e) => e.kind === 'poll' && e.ok && e.attributes?.v === v);
    await eventually(() => events.filter((e) => e.kind === 'fetch' && e.ok).length >= 5 && polled('0'), 20_000).catch((err: Error) => {
      throw new Error(`${err.message}; ${progress()}`);
    });

    const [a] = procs.filter((p) => p.spawnargs.includes(`[${A}]:53`));
    a.kill('SIGKILL');
    const killedAt = Date.now() / 1000;
    await new Promise((r) => setTimeout(r, 1500));
    await cli('vm', 'set', 'self', '--network', 'lab', '--meta', 'v=1');
    await eventually(() => polled('1'), 20_000);
    await cli('vm', 'set', 'self', '--network', 'lab', '--meta', 'v=2');
    await eventually(() => polled('2'), 20_000);
    const after = events.filter((e) => e.kind === 'fetch' && e.t > killedAt);
    await eventually(() => events.filter((e) => e.kind === 'fetch' && e.t > killedAt + 3).length >= 5, 20_000);
    client.kill('SIGKILL');

    const fetches = events.filter((e) => e.kind === 'fetch');
    const lookups = fetches.filter((e) => e.t > killedAt).map((e) => e.lookupMs ?? 0);
    console.log(`[figure] ${JSON.stringify({ scenario: 'replica-killed', fetches: fetches.length, afterKill: lookups.length, maxLookupMsAfterKill: Math.max(...lookups), polls: events.filter((e) => e.kind === 'poll').length, pollErrors: events.filter((e) => e.kind === 'poll' && !e.ok).length })}`);
    expect(fetches.filter((e) => !e.ok)).toEqual([]);
    expect(after.length).toBeGreaterThan(0);
    // After the kill, every answer came from the survivor.
    expect(new Set(events.filter((e) => e.kind === 'fetch' && e.t > killedAt + 0.5).map((e) => e.addr))).toEqual(new Set([B]));
    // The long-poller saw every value in order, none skipped.
    const seen = events.filter((e) => e.kind === 'poll' && e.ok).map((e) => e.attributes!.v);
    expect([...new Set(seen)]).toEqual(['0', '1', '2']);
  }, 120_000);
});
