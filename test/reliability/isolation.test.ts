// Guests cannot read each other's data, and secrets stay where they belong. Two VMs on loopback
// addresses (127.0.0.11 and 127.0.0.12; identity rests on the source address), each with its
// own user-data secret, key and metadata. Each crawls every flavour's whole tree (native,
// OpenStack, EC2 with and without IMDSv2 tokens, NoCloud, GCE recursive) and tries to name the
// other VM in paths, queries, Host headers and tokens: the other's data never comes back. The
// daemon logs at trace level and its log, metrics and DNS hold no secret.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdTestStore, ED25519 } from '../support/store.js';
import { figure, httpGet, startDaemon, type Daemon } from './support.js';

const BOB_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBobBobBobBobBobBobBobBobBobBobBobBobBobBobBob bob@desk';
const A = '127.0.0.11';
const B = '127.0.0.12';
const NOBODY = '127.0.0.13';

describe('guest isolation and secrets', () => {
  const t = etcdTestStore();
  let d: Daemon;
  const secretA = `SECRET-A-${randomBytes(8).toString('hex')}`;
  const secretB = `SECRET-B-${randomBytes(8).toString('hex')}`;
  const metaB = `metaB-${randomBytes(6).toString('hex')}`;
  const vendorB = `VENDOR-B-${randomBytes(6).toString('hex')}`;
  let vmA: { id: string; mac: string };
  let vmB: { id: string; mac: string };
  /** What identifies B's data wherever it shows up. */
  let markersB: string[];
  let markersA: string[];

  beforeAll(async () => {
    await t.writer.addNetwork({ name: 'loop', prefix6: '::/64', prefix4: '127.0.0.0/8', domain: 'loop.test', metadata6: '::2', metadata4: '127.0.0.2' });
    await t.writer.addUserKey('alice', 'laptop', ED25519);
    await t.writer.addUserKey('bob', 'desk', BOB_KEY);
    vmA = await t.writer.addVm({ name: 'vm-alpha', network: 'loop', owner: 'alice', addresses: [A], userData: `#cloud-config\npassword: ${secretA}\n`, meta: { role: 'alpha' } });
    vmB = await t.writer.addVm({
      name: 'vm-bravo', network: 'loop', owner: 'bob', addresses: [B], userData: `#cloud-config\npassword: ${secretB}\n`,
      vendorData: `#cloud-config\nvendor: ${vendorB}\n`, meta: { token: metaB }, sshKeys: [BOB_KEY.replace('bob@desk', 'bob@vm')],
    });
    markersB = [secretB, metaB, vendorB, 'vm-bravo', vmB.id, vmB.mac, BOB_KEY.split(' ')[1], B];
    markersA = [secretA, 'vm-alpha', vmA.id, vmA.mac, ED25519.split(' ')[1]];
    d = await startDaemon(t.url, t.prefix, ['--log-level', 'trace']);
  });
  afterAll(async () => {
    await d?.run.stop('SIGKILL');
    await t.close();
  });

  const base = () => `http://127.0.0.1:${d.httpPort}`;
  const get = (from: string, path: string, headers: Record<string, string> = {}) => httpGet(`${base()}${path}`, { localAddress: from, headers });

  /** Walks every flavour's tree from one source address; returns every body it saw, by path. */
  async function crawl(from: string): Promise<Map<string, { status: number; body: string }>> {
    const seen = new Map<string, { status: number; body: string }>();
    const token = await httpGet(`${base()}/latest/api/token`, { localAddress: from, method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' } });
    const tokenHeaders: Record<string, string> = token.status === 200 ? { 'X-aws-ec2-metadata-token': token.body } : {};
    const queue: { path: string; headers: Record<string, string> }[] = [
      { path: '/', headers: {} }, { path: '/instance', headers: {} }, { path: '/keys', headers: {} },
      { path: '/openstack/', headers: {} }, { path: '/openstack/latest/', headers: {} },
      { path: '/latest/', headers: {} }, { path: '/latest/', headers: tokenHeaders }, { path: '/2009-04-04/', headers: {} },
      { path: '/nocloud/', headers: {} }, { path: '/nocloud/meta-data', headers: {} }, { path: '/nocloud/user-data', headers: {} },
      { path: '/nocloud/vendor-data', headers: {} }, { path: '/nocloud/network-config', headers: {} },
      { path: '/computeMetadata/v1/?recursive=true', headers: { 'Metadata-Flavor': 'Google' } },
      { path: '/computeMetadata/v1/?recursive=true&alt=text', headers: { 'Metadata-Flavor': 'Google' } },
      { path: '/computeMetadata/v1/instance/attributes/user-data', headers: { 'Metadata-Flavor': 'Google' } },
      { path: '/computeMetadata/v1/instance/attributes/ssh-keys', headers: { 'Metadata-Flavor': 'Google' } },
      { path: '/computeMetadata/v1/project/attributes/ssh-keys', headers: { 'Metadata-Flavor': 'Google' } },
    ];
    while (queue.length && seen.size < 600) {
      const { path, headers } = queue.shift()!;
      const key = `${path}${headers['X-aws-ec2-metadata-token'] ? ' (token)' : ''}`;
      if (seen.has(key)) continue;
      const r = await get(from, path, headers);
      seen.set(key, { status: r.status, body: r.body });
      // Directory listings: one entry per line, sub-directories end in "/", keys as "0=name".
      if (r.status === 200 && path.endsWith('/') && !path.includes('?') && !/^[[{]/.test(r.body.trim())) {
        for (const line of r.body.split('\n').map((l) => l.trim()).filter(Boolean)) {
          if (line.length > 200 || /\s/.test(line)) continue;
          const entry = /^(\d+)=/.test(line) ? `${line.split('=')[0]}/` : line;
          queue.push({ path: `${path}${entry}`, headers });
        }
      }
    }
    return seen;
  }

  it('a guest crawling every flavour sees only its own data; an unknown address sees nothing', async () => {
    const fromA = await crawl(A);
    const fromB = await crawl(B);
    const fromNobody = await crawl(NOBODY);
    const textA = [...fromA.values()].map((r) => r.body).join('\n');
    const textB = [...fromB.values()].map((r) => r.body).join('\n');
    // The crawl works: each VM finds its own secret, name and keys (this test can fail).
    for (const m of [secretA, 'vm-alpha', vmA.id, ED25519.split(' ')[1]]) expect(textA).toContain(m);
    for (const m of [secretB, 'vm-bravo', vmB.id, metaB, vendorB, BOB_KEY.split(' ')[1]]) expect(textB).toContain(m);
    // ...and nothing of the other's.
    const leaks = (text: Map<string, { body: string }>, markers: string[]) =>
      [...text].flatMap(([path, r]) => markers.filter((m) => r.body.includes(m)).map((m) => `${path}: ${m}`));
    expect(leaks(fromA, markersB)).toEqual([]);
    expect(leaks(fromB, markersA)).toEqual([]);
    expect([...fromNobody.values()].filter((r) => r.status < 400)).toEqual([]);
    expect(leaks(fromNobody, [...markersA, ...markersB])).toEqual([]);
    figure('isolation-crawl', { pathsFromA: fromA.size, pathsFromB: fromB.size, pathsFromUnknown: fromNobody.size, leaks: 0 });
  }, 120_000);

  it('naming the other VM in paths, queries, Host headers or a borrowed IMDSv2 token gets nothing of it', async () => {
    const attempts: [string, Record<string, string>][] = [
      ['/instance?name=vm-bravo', {}], [`/instance?id=${vmB.id}`, {}], ['/vms/vm-bravo', {}], ['/vm-bravo/instance', {}],
      ['/keys?user=bob', {}], ['/users/bob/keys', {}], ['/nocloud/vm-bravo/user-data', {}], [`/openstack/latest/meta_data.json?uuid=${vmB.id}`, {}],
      [`/openstack/${vmB.id}/user_data`, {}], ['/latest/meta-data/?instance=vm-bravo', {}],
      ['/computeMetadata/v1/instance/?recursive=true&instance=vm-bravo', { 'Metadata-Flavor': 'Google' }],
      ['/openstack/latest/user_data', { Host: 'vm-bravo.loop.test' }], ['/openstack/latest/user_data', { Host: B }],
      ['/openstack/latest/user_data', { 'X-Real-IP': B }], ['/openstack/latest/user_data', { 'Client-IP': B }],
      ['/openstack/latest/user_data', { 'X-Forwarded-For': B }], ['/openstack/latest/user_data', { Forwarded: `for=${B}` }],
      ['/openstack/latest/user_data', { 'X-Originating-IP': B, 'True-Client-IP': B, 'CF-Connecting-IP': B }],
    ];
    const leaks: string[] = [];
    for (const [path, headers] of attempts) {
      const r = await get(A, path, headers);
      for (const m of markersB) if (r.body.includes(m)) leaks.push(`${path} ${JSON.stringify(headers)}: ${m}`);
      // A Host naming a VM is refused (400), a proxy header too (403); an address literal Host is A's own answer.
      if (headers.Host?.startsWith('vm-')) expect(r.status, headers.Host).toBe(400);
      if (Object.keys(headers).some((h) => /^(x-real-ip|client-ip|x-forwarded-for|forwarded|true-client-ip|cf-connecting-ip|x-originating-ip)$/i.test(h))) {
        expect(r.status, JSON.stringify(headers)).toBe(403);
      }
    }
    // B's token used from A's address, and A's token from B's.
    const tokenB = (await httpGet(`${base()}/latest/api/token`, { localAddress: B, method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' } })).body;
    const withB = await get(A, '/latest/user-data', { 'X-aws-ec2-metadata-token': tokenB });
    for (const m of markersB) if (withB.body.includes(m)) leaks.push(`B's token from A: ${m}`);
    const tokenA = (await httpGet(`${base()}/latest/api/token`, { localAddress: A, method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' } })).body;
    const withA = await get(B, '/latest/user-data', { 'X-aws-ec2-metadata-token': tokenA });
    for (const m of markersA) if (withA.body.includes(m)) leaks.push(`A's token from B: ${m}`);
    expect(leaks).toEqual([]);
    figure('isolation-naming', { attempts: attempts.length + 2, leaks: leaks.length, borrowedTokenStatus: withB.status });
  }, 60_000);

  it('user-data and keys never reach the log (trace level), the metrics or DNS', async () => {
    // Exercise the paths that serve secrets once more, including failures around them.
    for (const from of [A, B, NOBODY]) {
      await get(from, '/openstack/latest/user_data');
      await get(from, '/latest/user-data');
      await get(from, '/nocloud/user-data');
      await get(from, '/computeMetadata/v1/instance/attributes/user-data', { 'Metadata-Flavor': 'Google' });
      await get(from, '/keys');
      await get(from, '/latest/user-data', { 'X-aws-ec2-metadata-token': 'forged' });
    }
    await t.writer.setVm('vm-bravo', 'loop', { meta: { token: metaB, touched: 'yes' } }); // a change flows through the log too
    // Invalid records holding secrets (written past the CLI): the registry skips them with a
    // warning, which must name the key and the problem, never the values.
    const bad = (name: string, vm: Record<string, unknown>) => t.store.kv.txn({ compares: [], deletes: [], puts: [{ key: t.store.keys.vm('loop', name), value: JSON.stringify(vm) }] });
    const base = { v: 1, id: '0b4f1a7e-2c7b-4f8e-9a53-6f0e1c2d3e4f', name: 'vm-broken', network: 'loop', createdAt: new Date().toISOString(), resources: {} };
    await bad('vm-broken', { ...base, mac: 'not-a-mac', userData: secretB, vendorData: secretB, meta: { k: secretB } });
    await bad('vm-broken2', { ...base, name: 'vm-broken2', mac: '02:00:00:00:00:99', userData: { nested: secretB } });
    await bad('vm-broken3', { ...base, name: 'vm-broken3', mac: '02:00:00:00:00:98', meta: { k: secretB.repeat(300) } });
    await bad('vm-broken4', { ...base, name: 'vm-broken4', mac: '02:00:00:00:00:97', userData: secretB.repeat(43_000) });
    const warned = (n: number) => (d.run.output().match(/skipping invalid record/g) ?? []).length >= n;
    for (let i = 0; i < 100 && !warned(4); i++) await new Promise((res) => setTimeout(res, 50));
    expect(warned(4)).toBe(true);
    const r = d.resolver();
    const dnsText = JSON.stringify(await Promise.all(['vm-alpha.loop.test', 'vm-bravo.loop.test', 'metadata.loop.test'].flatMap((n) => [
      r.resolveTxt(n).catch((e) => e.code), r.resolveAny(n).catch((e) => e.code),
    ])));
    const metrics = (await httpGet(`http://[::1]:${d.adminPort}/metrics`)).body;
    const log = d.run.output();
    expect(log.length).toBeGreaterThan(1000); // trace logging is on and says things
    const secrets = [secretA, secretB, metaB, vendorB, ED25519.split(' ')[1], BOB_KEY.split(' ')[1]];
    expect(secrets.filter((s) => log.includes(s))).toEqual([]);
    expect(secrets.filter((s) => metrics.includes(s))).toEqual([]);
    expect(secrets.filter((s) => dnsText.includes(s))).toEqual([]);
    figure('secrets-not-logged', { logBytes: log.length, logLines: log.split('\n').length, metricsBytes: metrics.length, secretsChecked: secrets.length, found: 0 });
  }, 60_000);
});
