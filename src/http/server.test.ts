// The metadata server over real HTTP on loopback, fed by a registry following a real etcd:
// identity by source address, every flavour with curl, IMDSv2 tokens, every guard, live change.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { Registry as PromRegistry } from 'prom-client';
import { etcdTestStore, ED25519 } from '../../test/support/store.js';
import { silentLogger } from '../log.js';
import { startHttpServer, type HttpServer } from './server.js';
import { curl } from './testing/clients.js';
import { etagOf } from './render/rendered.js';

/** A well-formed ed25519 public key whose 32 key bytes are all `fill`. */
export function fakeKey(fill: number, comment: string): string {
  const t = Buffer.from('ssh-ed25519');
  const b = Buffer.alloc(4 + t.length + 4 + 32, fill);
  b.writeUInt32BE(t.length, 0);
  t.copy(b, 4);
  b.writeUInt32BE(32, 4 + t.length);
  return `ssh-ed25519 ${b.toString('base64')} ${comment}`;
}

const t = etcdTestStore();
const VM_KEY = fakeKey(7, 'web-own');
let server: HttpServer;
let close: () => Promise<void>;
let base6: string;
let base4: string;
const prom = new PromRegistry();

beforeAll(async () => {
  await t.writer.addNetwork({ name: 'loop', prefix6: '::/64', prefix4: '127.0.0.0/8', domain: 'loop.test', metadata6: '::53', metadata4: '127.0.0.53' });
  await t.writer.addUserKey('alice', 'laptop', ED25519);
  await t.writer.addVm({
    name: 'web', network: 'loop', owner: 'alice', mac: '52:54:00:aa:00:01', addresses: ['::1', '127.0.0.1'],
    userData: '#cloud-config\nhostname: web\n', meta: { role: 'frontend' }, sshKeys: [VM_KEY],
  });
  await t.writer.addVm({ name: 'db', network: 'loop', mac: '52:54:00:aa:00:02', addresses: ['127.0.0.2'], requireToken: true });
  const f = await t.follow();
  close = f.close;
  server = await startHttpServer({
    registry: f.registry, tokenSecret: Buffer.from('test-secret'), log: silentLogger(), metrics: prom,
    listen: [{ host: '::1', port: 0 }, { host: '127.0.0.1', port: 0 }],
    maxWaitersPerVm: 2,
    limits: { headersTimeoutMs: 600, requestTimeoutMs: 1000, checkIntervalMs: 200 },
  });
  base6 = `http://[::1]:${server.addresses[0].port}`;
  base4 = `http://127.0.0.1:${server.addresses[1].port}`;
});
afterAll(async () => {
  await server?.close();
  await close?.();
  await t.close();
});

describe('identity by source address', () => {
  it('knows the VM at ::1 and at 127.0.0.1, and only that VM', async () => {
    const six = await curl(`${base6}/instance`);
    expect(six.status).toBe(200);
    const doc = JSON.parse(six.body);
    expect(doc).toMatchObject({ name: 'web', fqdn: 'web.loop.test', network: 'loop', owner: 'alice', mac: '52:54:00:aa:00:01', meta: { role: 'frontend' } });
    expect(doc.addresses.ipv6).toEqual(['::5054:ff:feaa:1', '::1']);
    expect(doc.sshKeys).toEqual([ED25519, VM_KEY]);
    const four = await curl(`${base4}/instance`);
    expect(JSON.parse(four.body).name).toBe('web');
    // db requires a token: Metadata-Flavor: Google stands in for one (see "tokens in every flavour").
    const db = await curl(`${base4}/nocloud/meta-data`, { from: '127.0.0.2', headers: { 'Metadata-Flavor': 'Google' } });
    expect(db.status).toBe(200);
    expect(db.body).toContain('local-hostname: db.loop.test');
  });

  it('answers nobody else: a short 404 that names no VM', async () => {
    const r = await curl(`${base4}/instance`, { from: '127.0.0.9' });
    expect(r.status).toBe(404);
    expect(r.body).toBe('not found\n');
    const keys = await curl(`${base4}/keys`, { from: '127.0.0.9' });
    expect(keys.status).toBe(404);
    expect(keys.body).toBe('not found\n');
    const text = await prom.metrics();
    expect(text).toMatch(/uncloud_metadata_http_identity_failures_total\{reason="unknown"\} [1-9]/);
  });
});

describe('flavours over curl', () => {
  it('serves /keys as authorized_keys, owner first', async () => {
    const r = await curl(`${base6}/keys`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain/);
    expect(r.body).toBe(`${ED25519}\n${VM_KEY}\n`);
    expect(r.headers.etag).toBe(`"${etagOf(r.body)}"`);
  });

  it('serves OpenStack versions and files', async () => {
    const versions = await curl(`${base6}/openstack`);
    expect(versions.body.split('\n')).toContain('2018-08-27');
    expect(versions.body.split('\n').at(-1)).toBe('latest');
    const listing = await curl(`${base6}/openstack/latest/`);
    expect(listing.body.split('\n')).toEqual(['meta_data.json', 'user_data', 'vendor_data.json', 'vendor_data2.json', 'network_data.json']);
    const md = JSON.parse((await curl(`${base6}/openstack/2018-08-27/meta_data.json`)).body);
    expect(md).toMatchObject({ name: 'web', hostname: 'web.loop.test', public_keys: { laptop: ED25519, 'vm-0': VM_KEY }, meta: { role: 'frontend' } });
    expect((await curl(`${base6}/openstack/latest/user_data`)).body).toBe('#cloud-config\nhostname: web\n');
    const nd = JSON.parse((await curl(`${base6}/openstack/latest/network_data.json`)).body);
    expect(nd.links[0].ethernet_mac_address).toBe('52:54:00:aa:00:01');
    expect(nd.networks[0]).toMatchObject({ type: 'ipv6_slaac', ip_address: '::5054:ff:feaa:1' });
    expect(nd.services).toContainEqual({ type: 'dns', address: '::53' });
    // db has no user data: 404, as Nova does.
    expect((await curl(`${base4}/openstack/latest/user_data`, { from: '127.0.0.2', headers: { 'Metadata-Flavor': 'Google' } })).status).toBe(404);
  });

  it('serves the EC2 tree with listings, keys, user-data and identity document (IMDSv1 allowed for web)', async () => {
    const top = await curl(`${base6}/latest/meta-data/`);
    expect(top.body.split('\n')).toEqual(expect.arrayContaining(['instance-id', 'hostname', 'local-hostname', 'mac', 'public-keys/', 'network/', 'placement/', 'tags/']));
    expect((await curl(`${base6}/2009-04-04/meta-data/public-keys/`)).body).toBe('0=laptop\n1=vm-0'.replace('\n', '\n'));
    expect((await curl(`${base6}/latest/meta-data/public-keys/1/openssh-key`)).body).toBe(VM_KEY);
    expect((await curl(`${base6}/latest/meta-data/network/interfaces/macs/52:54:00:aa:00:01/ipv6s`)).body).toBe('::5054:ff:feaa:1\n::1');
    expect((await curl(`${base6}/latest/meta-data/tags/instance/role`)).body).toBe('frontend');
    expect((await curl(`${base6}/latest/user-data`)).body).toBe('#cloud-config\nhostname: web\n');
    const doc = JSON.parse((await curl(`${base6}/latest/dynamic/instance-identity/document`)).body);
    expect(doc.instanceId).toMatch(/^i-[0-9a-f]{17}$/);
    expect(doc.region).toBe('loop');
    expect(doc.availabilityZone).toBe('loopa');
    expect((await curl(`${base6}/latest/meta-data/nope`)).status).toBe(404);
  });

  it('serves a NoCloud seed', async () => {
    expect((await curl(`${base6}/nocloud/`)).body.split('\n')).toEqual(['meta-data', 'user-data', 'vendor-data', 'network-config']);
    const md = (await curl(`${base6}/nocloud/meta-data`)).body;
    expect(md).toContain('local-hostname: web.loop.test');
    expect(md).toContain(VM_KEY);
    const nc = (await curl(`${base6}/nocloud/network-config`)).body;
    expect(nc).toContain('macaddress: 52:54:00:aa:00:01');
    expect(nc).toContain('loop.test');
  });

  it('serves GCE-style metadata with Metadata-Flavor, recursive, alt and ETags', async () => {
    const g = { 'Metadata-Flavor': 'Google' };
    const host = await curl(`${base6}/computeMetadata/v1/instance/hostname`, { headers: g });
    expect(host.status).toBe(200);
    expect(host.body).toBe('web.loop.test');
    expect(host.headers['metadata-flavor']).toBe('Google');
    // Bare, as GCE sends it (Google's guest agent echoes it verbatim as last_etag).
    expect(host.headers.etag).toBe(etagOf(host.body));
    expect(host.headers.etag).toMatch(/^[0-9a-f]{16}$/);
    expect((await curl(`${base6}/computeMetadata/v1/instance/`, { headers: g })).body).toContain('network-interfaces/');
    const keys = await curl(`${base6}/computeMetadata/v1/instance/attributes/ssh-keys`, { headers: g });
    expect(keys.body).toBe(`alice:${ED25519}\nalice:${VM_KEY}`);
    const rec = JSON.parse((await curl(`${base6}/computeMetadata/v1/instance/?recursive=true`, { headers: g })).body);
    expect(rec).toMatchObject({ name: 'web', hostname: 'web.loop.test', zone: 'projects/0/zones/loopa', attributes: { role: 'frontend', 'user-data': '#cloud-config\nhostname: web\n' } });
    expect(rec.networkInterfaces[0].mac).toBe('52:54:00:aa:00:01');
    expect((await curl(`${base6}/computeMetadata/v1/instance/name?alt=json`, { headers: g })).body).toBe('"web"');
    const text = await curl(`${base6}/computeMetadata/v1/instance/network-interfaces/?recursive=true&alt=text`, { headers: g });
    expect(text.body).toContain('0/mac 52:54:00:aa:00:01');
    expect((await curl(`${base6}/computeMetadata/v1/instance/zzz`, { headers: g })).status).toBe(404);
    expect((await curl(`${base6}/computeMetadata/v1/instance/name?alt=xml`, { headers: g })).status).toBe(400);
  });

  it('answers HEAD like GET without a body', async () => {
    const out = await raw(server.addresses[1].port, 'HEAD /keys HTTP/1.1\r\nHost: metadata\r\nConnection: close\r\n\r\n');
    expect(out).toMatch(/^HTTP\/1\.1 200/);
    expect(out).toMatch(/\r\netag: "[0-9a-f]{16}"\r\n/i);
    expect(out.endsWith('\r\n\r\n')).toBe(true);
  });
});

describe('IMDSv2 tokens', () => {
  it('issues tokens for 1-21600 s and refuses anything else with 400', async () => {
    for (const bad of ['0', '21601', 'abc', '-5', '1.5']) {
      const r = await curl(`${base4}/latest/api/token`, { method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': bad } });
      expect(r.status, bad).toBe(400);
    }
    expect((await curl(`${base4}/latest/api/token`, { method: 'PUT' })).status).toBe(400);
    const ok = await curl(`${base4}/latest/api/token`, { method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '21600' } });
    expect(ok.status).toBe(200);
    expect(ok.headers['x-aws-ec2-metadata-token-ttl-seconds']).toBe('21600');
  });

  it('requires a token for a VM that says so, binds tokens to their VM, and refuses bad ones with 401', async () => {
    const db = { from: '127.0.0.2' };
    expect((await curl(`${base4}/latest/meta-data/instance-id`, db)).status).toBe(401);
    const tok = (await curl(`${base4}/latest/api/token`, { ...db, method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' } })).body;
    const withTok = await curl(`${base4}/latest/meta-data/local-hostname`, { ...db, headers: { 'X-aws-ec2-metadata-token': tok } });
    expect(withTok.status).toBe(200);
    expect(withTok.body).toBe('db.loop.test');
    // web's own GETs work without a token, but not with db's token nor a forged one.
    expect((await curl(`${base4}/latest/meta-data/local-hostname`)).status).toBe(200);
    expect((await curl(`${base4}/latest/meta-data/local-hostname`, { headers: { 'X-aws-ec2-metadata-token': tok } })).status).toBe(401);
    const [exp, mac] = tok.split('.');
    const forged = `${Number(exp) + 1_000_000}.${mac}`;
    expect((await curl(`${base4}/latest/meta-data/local-hostname`, { ...db, headers: { 'X-aws-ec2-metadata-token': forged } })).status).toBe(401);
    expect((await curl(`${base4}/latest/meta-data/local-hostname`, { ...db, headers: { 'X-aws-ec2-metadata-token': 'junk' } })).status).toBe(401);
  });

  it('lets a token expire', async () => {
    const db = { from: '127.0.0.2' };
    const tok = (await curl(`${base4}/latest/api/token`, { ...db, method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '1' } })).body;
    expect((await curl(`${base4}/latest/meta-data/instance-id`, { ...db, headers: { 'X-aws-ec2-metadata-token': tok } })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 2100));
    expect((await curl(`${base4}/latest/meta-data/instance-id`, { ...db, headers: { 'X-aws-ec2-metadata-token': tok } })).status).toBe(401);
  });
});

/** In-process fetch for the timing tests: a spawned curl's start-up would blur the clock. */
async function get(url: string, headers: Record<string, string> = {}) {
  const started = Date.now();
  const r = await fetch(url, { headers });
  const body = await r.text();
  return { status: r.status, headers: Object.fromEntries(r.headers), body, ms: Date.now() - started };
}

/** Sends raw bytes and returns what comes back until the server closes or `ms` pass. */
function raw(port: number, data: string, ms = 3000): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let out = '';
    s.on('data', (b) => (out += b.toString('latin1')));
    const done = () => { s.destroy(); resolve(out); };
    s.on('close', done);
    s.on('error', done);
    setTimeout(done, ms);
    s.write(data);
  });
}

describe('guards', () => {
  it('refuses every proxy header with 403, on GETs and on the token PUT', async () => {
    const proxyHeaders: Record<string, string>[] = [
      { 'X-Forwarded-For': '10.0.0.1' }, { Forwarded: 'for=10.0.0.1' }, { Via: '1.1 squid' }, { 'X-Real-IP': '10.0.0.1' },
      { 'X-Forwarded-Host': 'metadata' }, { 'X-Forwarded-Proto': 'http' }, { 'x-forwarded-port': '80' }, { 'X-Forwarded-Server': 'p' },
    ];
    for (const h of proxyHeaders) {
      for (const path of ['/keys', '/instance', '/openstack/latest/meta_data.json', '/nocloud/meta-data', '/latest/meta-data/', '/2019-10-01/user-data']) {
        const r = await curl(`${base6}${path}`, { headers: h });
        expect(r.status, `${path} ${JSON.stringify(h)}`).toBe(403);
        expect(r.body).toBe('forbidden\n');
      }
      const put = await curl(`${base6}/latest/api/token`, { method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60', ...h } });
      expect(put.status, `PUT ${JSON.stringify(h)}`).toBe(403);
      const gce = await curl(`${base6}/computeMetadata/v1/`, { headers: { 'Metadata-Flavor': 'Google', ...h } });
      expect(gce.status).toBe(403);
      expect(gce.headers['metadata-flavor']).toBe('Google');
    }
    // Many headers cannot push the proxy's header out of sight.
    const many = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`X-Junk-${i}`, 'j']));
    expect((await curl(`${base6}/keys`, { headers: { ...many, 'X-Forwarded-For': '10.0.0.1' } })).status).toBe(403);
    // Even from an address that is no VM: refused before any lookup.
    expect((await curl(`${base4}/keys`, { from: '127.0.0.9', headers: { 'X-Forwarded-For': '127.0.0.1' } })).status).toBe(403);
  });

  it('requires Metadata-Flavor: Google on /computeMetadata, and says Metadata-Flavor: Google on every answer there', async () => {
    const r = await curl(`${base6}/computeMetadata/v1/instance/hostname`);
    expect(r.status).toBe(403);
    const g = { 'Metadata-Flavor': 'Google' };
    for (const [path, method, status] of [
      ['/computeMetadata/v1/instance/hostname', 'GET', 403], ['/computeMetadata/v1/instance/nope', 'GET', 404],
      ['/computeMetadata/v1/instance/name?alt=xml', 'GET', 400], ['/computeMetadata/v1/instance/%2e%2e/x', 'GET', 400],
      [`/computeMetadata/v1/${'a'.repeat(2100)}`, 'GET', 414], ['/computeMetadata/v1/', 'PUT', 405], ['/computeMetadata/', 'GET', 200],
      ['/computeMetadata/v1beta1/', 'GET', 404], ['/', 'GET', 200],
    ] as const) {
      const a = await curl(`${base6}${path}`, { method, headers: status === 403 ? {} : g, pathAsIs: true });
      expect(a.status, path).toBe(status);
      expect(a.headers['metadata-flavor'], `${method} ${path}`).toBe('Google');
    }
    const unknown = await curl(`${base4}/computeMetadata/v1/`, { from: '127.0.0.9', headers: g });
    expect([unknown.status, unknown.headers['metadata-flavor']]).toEqual([404, 'Google']);
    expect((await curl(`${base6}/computeMetadata/v1/instance/hostname`, { headers: { 'Metadata-Flavor': 'Googlish' } })).status).toBe(403);
  });

  it('allows only GET and HEAD (and the token PUT): 405 otherwise', async () => {
    for (const m of ['POST', 'DELETE', 'PATCH', 'OPTIONS']) {
      const r = await curl(`${base6}/keys`, { method: m });
      expect(r.status, m).toBe(405);
      expect(r.headers.allow).toBe('GET, HEAD');
    }
    expect((await curl(`${base6}/keys`, { method: 'PUT' })).status).toBe(405);
    expect((await curl(`${base6}/latest/api/token`)).status).toBe(405);
  });

  it('keeps traversal, NUL and odd targets away from lookups: 4xx, never 5xx', async () => {
    const targets = [
      '/openstack/../keys', '/openstack/latest/../../keys', '/latest/meta-data/%2e%2e/user-data', '/keys%00', '/nocloud/meta-data%00.txt',
      '/latest/meta-data/public-keys/0/openssh-key/..', '//keys/..', '/latest/meta-data/%2fetc%2fpasswd',
      '/computeMetadata/v1/instance/name?alt=json%00', '/openstack/latest/meta_data.json\\..\\x',
    ];
    for (const p of targets) {
      const r = await curl(`${base6}${p}`, { pathAsIs: true, headers: { 'Metadata-Flavor': 'Google' } });
      expect(r.status, p).toBeGreaterThanOrEqual(400);
      expect(r.status, p).toBeLessThan(500);
    }
    // Empty segments are squeezed (AWS's SDK sends "//latest/..."), nothing else is rewritten.
    expect((await curl(`${base6}//nocloud//meta-data`, { pathAsIs: true })).body).toContain('instance-id:');
    // Absolute-form targets (a proxy's) and a missing or hostile Host.
    expect(await raw(server.addresses[1].port, 'GET http://evil/keys HTTP/1.1\r\nHost: evil\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 400/);
    expect(await raw(server.addresses[1].port, 'GET /keys HTTP/1.0\r\n\r\n')).toMatch(/^HTTP\/1\.1 200/);
    expect(await raw(server.addresses[1].port, 'GET /keys HTTP/1.1\r\nHost: a/b@c\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 4\d\d/);
  });

  it('bounds the URL and header sizes', async () => {
    expect((await curl(`${base6}/latest/meta-data/${'a'.repeat(3000)}`)).status).toBe(414);
    expect((await curl(`${base6}/keys`, { headers: { 'X-Big': 'b'.repeat(10_000) } })).status).toBe(431);
  });

  it('times out a client that never finishes its headers', async () => {
    const started = Date.now();
    const out = await raw(server.addresses[1].port, 'GET /keys HTTP/1.1\r\nHost: x\r\n', 5000);
    expect(out).toMatch(/^HTTP\/1\.1 408/);
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it('keeps serving after all of that', async () => {
    expect((await curl(`${base6}/keys`)).status).toBe(200);
    const text = await prom.metrics();
    expect(text).toMatch(/uncloud_metadata_http_requests_total\{route="native",status="200"\} \d+/);
    expect(text).not.toMatch(/status="5\d\d"/);
  });
});

describe('live change', () => {
  it('shows a new key and new user-data in every flavour within a second', async () => {
    const g = { 'Metadata-Flavor': 'Google' };
    // Warm every cache first, so a stale answer would show.
    const urls = [`${base6}/keys`, `${base6}/openstack/latest/meta_data.json`, `${base6}/latest/meta-data/public-keys/`, `${base6}/nocloud/meta-data`, `${base6}/computeMetadata/v1/instance/attributes/ssh-keys`];
    for (const u of urls) await get(u, g);
    const added = fakeKey(9, 'desk');
    await t.writer.addUserKey('alice', 'desk', added);
    await t.writer.setVm('web', 'loop', { userData: '#cloud-config\nhostname: changed\n' });
    // From the moment both writes are committed in etcd.
    const started = Date.now();
    const seen = async () => {
      const bodies = await Promise.all(urls.map((u) => get(u, g).then((r) => r.body)));
      const ud = await Promise.all([
        get(`${base6}/openstack/latest/user_data`), get(`${base6}/latest/user-data`), get(`${base6}/nocloud/user-data`),
        get(`${base6}/computeMetadata/v1/instance/attributes/user-data`, g),
      ]);
      return bodies.every((b) => b.includes(added.split(' ')[1]) || b.includes('=desk')) && ud.every((r) => r.body.includes('changed'));
    };
    for (;;) {
      if (await seen()) break;
      if (Date.now() - started > 1000) throw new Error('change not visible within a second');
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe('wait_for_change', () => {
  const g = { 'Metadata-Flavor': 'Google' };
  it('returns at once when last_etag is stale, and within a second of a change otherwise (past the request timeout)', async () => {
    const now = await get(`${base6}/computeMetadata/v1/instance/attributes/?recursive=true`, g);
    const etag = now.headers.etag.replace(/"/g, '');
    const stale = await get(`${base6}/computeMetadata/v1/instance/attributes/?recursive=true&wait_for_change=true&last_etag=0000`, g);
    expect(stale.body).toBe(now.body);
    expect(stale.ms).toBeLessThan(1000);

    const waiting = get(`${base6}/computeMetadata/v1/instance/attributes/?recursive=true&wait_for_change=true&last_etag=${etag}&timeout_sec=30`, g);
    // Longer than the server's request timeout (1 s here): a long-poll must outlive it.
    await new Promise((r) => setTimeout(r, 1500));
    const changedAt = Date.now();
    await t.writer.setVm('web', 'loop', { meta: { role: 'frontend', color: 'blue' } });
    const r = await waiting;
    const lag = Date.now() - changedAt;
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).color).toBe('blue');
    expect(r.headers.etag).not.toBe(`"${etag}"`);
    expect(lag).toBeLessThan(1000);
  });

  it('keeps waiting through changes that do not touch the resource, and answers the same at timeout_sec', async () => {
    const now = await get(`${base6}/computeMetadata/v1/instance/hostname`, g);
    const etag = now.headers.etag.replace(/"/g, '');
    const waiting = get(`${base6}/computeMetadata/v1/instance/hostname?wait_for_change=true&last_etag=${etag}&timeout_sec=2`, g);
    await new Promise((r) => setTimeout(r, 300));
    await t.writer.setVm('web', 'loop', { meta: { role: 'frontend', color: 'green' } });
    const r = await waiting;
    expect(r.body).toBe('web.loop.test');
    expect(r.ms).toBeGreaterThanOrEqual(1900);
    expect(r.ms).toBeLessThan(4000);
  });

  it('bounds waiters per VM with 429', async () => {
    const now = await get(`${base6}/computeMetadata/v1/instance/name`, g);
    const etag = now.headers.etag.replace(/"/g, '');
    const url = `${base6}/computeMetadata/v1/instance/name?wait_for_change=true&last_etag=${etag}&timeout_sec=3`;
    const first = [get(url, g), get(url, g)];
    await new Promise((r) => setTimeout(r, 400));
    const third = await get(url, g);
    expect(third.status).toBe(429);
    // Another VM is not affected by web's waiters.
    const dbNow = await curl(`${base4}/computeMetadata/v1/instance/name?wait_for_change=true&last_etag=x&timeout_sec=3`, { headers: g, from: '127.0.0.2' });
    expect(dbNow.status).toBe(200);
    await Promise.all(first);
  });
});

describe('tokens in every flavour (requireToken)', () => {
  const db = { from: '127.0.0.2' };
  const paths = [
    '/instance', '/keys', '/openstack/latest/meta_data.json', '/openstack/latest/network_data.json', '/nocloud/meta-data',
    '/latest/meta-data/instance-id', '/2019-10-01/meta-data/local-hostname', '/1.0/meta-data/hostname', '/latest/dynamic/instance-identity/document',
  ];
  const dbMarkers = ['db.loop.test', '52:54:00:aa:00:02', '127.0.0.2'];

  it('answers 401 with nothing of the VM to a request with neither a token nor Metadata-Flavor', async () => {
    for (const path of [...paths, '/nocloud/user-data', '/openstack/latest/user_data', '/latest/user-data']) {
      const r = await curl(`${base4}${path}`, db);
      expect(r.status, path).toBe(401);
      expect(r.body).toBe('unauthorized\n');
      for (const m of dbMarkers) expect(JSON.stringify(r.headers)).not.toContain(m);
    }
    // A browser-driven SSRF sends neither header: the same for any simple request header it can set.
    expect((await curl(`${base4}/instance`, { ...db, headers: { Accept: 'text/html', 'Content-Type': 'text/plain' } })).status).toBe(401);
  });

  it('serves every flavour with a valid token, or with Metadata-Flavor: Google', async () => {
    const tok = (await curl(`${base4}/latest/api/token`, { ...db, method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' } })).body;
    for (const path of paths) {
      const withToken = await curl(`${base4}${path}`, { ...db, headers: { 'X-aws-ec2-metadata-token': tok } });
      expect(withToken.status, path).toBe(200);
      const withFlavor = await curl(`${base4}${path}`, { ...db, headers: { 'Metadata-Flavor': 'Google' } });
      expect(withFlavor.status, path).toBe(200);
      expect(withFlavor.body).toBe(withToken.body);
    }
    const gce = await curl(`${base4}/computeMetadata/v1/instance/hostname`, { ...db, headers: { 'Metadata-Flavor': 'Google' } });
    expect(gce.body).toBe('db.loop.test');
    // A bad token is refused even beside Metadata-Flavor: a token that is sent must be valid.
    expect((await curl(`${base4}/instance`, { ...db, headers: { 'Metadata-Flavor': 'Google', 'X-aws-ec2-metadata-token': 'junk' } })).status).toBe(401);
  });
});

describe('Host header (DNS rebinding)', () => {
  const port4 = () => server.addresses[1].port;
  const status = async (host: string | undefined, path = '/keys', version = '1.1') => {
    const out = await raw(port4(), `GET ${path} HTTP/${version}\r\n${host === undefined ? '' : `Host: ${host}\r\n`}Connection: close\r\n\r\n`);
    return Number(/^HTTP\/1\.[01] (\d{3})/.exec(out)?.[1]);
  };

  it('accepts the names a guest uses and every address literal, with or without port and zone id', async () => {
    const good = [
      'metadata', 'METADATA', 'metadata.', 'metadata:80', 'metadata.loop.test', 'metadata.LOOP.test.', 'metadata.google.internal',
      'metadata.google.internal:80', '127.0.0.1', '127.0.0.1:8775', '169.254.169.254', '[::1]', `[::1]:${port4()}`, '[fd00:ec2::254]',
      '[fe80::a9fe:a9fe%eth0]', '[fe80::a9fe:a9fe%25eth0]', '[fe80::a9fe:a9fe%25eth0]:80', '[fe80::1%br-net.10]:8775',
    ];
    for (const h of good) {
      expect(await status(h), h).toBe(200);
      expect(await status(h, '/openstack/latest/meta_data.json'), h).toBe(200);
      expect(await status(h, '/computeMetadata/v1/instance/name'), h).toBe(403); // no Metadata-Flavor: past the Host check
    }
    // HTTP/1.0 may send no Host.
    expect(await status(undefined, '/keys', '1.0')).toBe(200);
  });

  it('refuses any other name, and malformed literals, with 400 on every route', async () => {
    const bad = [
      'attacker.example', 'attacker.example:80', 'metadata.evil.test', 'metadata.loop.test.evil', 'metadata-loop.test', 'localhost',
      'metadata.google.internal.evil', '[::1', '[::1]x', '[::1]:', '[::1]:http', '[fe80::1%]', '[fe80::1%25]', '[fe80::1%a/b]',
      '[zz::1]', '[127.0.0.1]', '999.1.1.1', '1.2.3', '', 'meta data',
    ];
    for (const h of bad) {
      for (const path of ['/keys', '/instance', '/openstack/latest/user_data', '/latest/user-data', '/nocloud/user-data', '/2019-10-01/user-data', '/']) {
        expect(await status(h, path), `${JSON.stringify(h)} ${path}`).toBe(400);
      }
    }
    const gce = await raw(port4(), 'GET /computeMetadata/v1/instance/name HTTP/1.1\r\nHost: attacker.example\r\nMetadata-Flavor: Google\r\nConnection: close\r\n\r\n');
    expect(gce).toMatch(/^HTTP\/1\.1 400/);
    expect(gce).toMatch(/\r\nmetadata-flavor: Google\r\n/i);
    // Two Host headers are one too many.
    const two = await raw(port4(), 'GET /keys HTTP/1.1\r\nHost: metadata\r\nHost: attacker.example\r\nConnection: close\r\n\r\n');
    expect(two).toMatch(/^HTTP\/1\.1 400/);
    const text = await prom.metrics();
    expect(text).toMatch(/uncloud_metadata_http_refused_spoofs_total\{reason="bad-host"\} [1-9]/);
  });

  it('serves the same bytes whatever the zone spelling (the URL is built without the zone)', async () => {
    const bodies = new Set<string>();
    for (const h of ['[fe80::a9fe:a9fe%eth0]', '[fe80::a9fe:a9fe%25eth0]:80', '[fe80::a9fe:a9fe]', 'metadata']) {
      const out = await raw(port4(), `GET /openstack/latest/meta_data.json HTTP/1.1\r\nHost: ${h}\r\nConnection: close\r\n\r\n`);
      bodies.add(out.slice(out.indexOf('\r\n\r\n')));
    }
    expect(bodies.size).toBe(1);
  });
});

describe('EC2 versions', () => {
  it('serves every YYYY-MM-DD version as AWS does, lists the known ones at "/", and 404s what is no date', async () => {
    const latest = (await curl(`${base6}/latest/meta-data/local-hostname`)).body;
    const userData = (await curl(`${base6}/latest/user-data`)).body;
    for (const v of ['2019-10-01', '2021-01-03', '2007-01-19', '2024-04-11', '2009-04-04', '1.0']) {
      const r = await curl(`${base6}/${v}/meta-data/local-hostname`);
      expect(r.status, v).toBe(200);
      expect(r.body).toBe(latest);
      expect((await curl(`${base6}/${v}/user-data`)).body).toBe(userData);
      expect((await curl(`${base6}/${v}/`)).body.split('\n')).toEqual(expect.arrayContaining(['meta-data/', 'user-data']));
    }
    for (const v of ['2019-13-01', '2019-10-32', '2019-00-10', '19-10-01', '2019-1-01', 'latest2']) {
      expect((await curl(`${base6}/${v}/meta-data/local-hostname`)).status, v).toBe(404);
    }
    const root = (await curl(`${base6}/`)).body.split('\n');
    expect(root).toEqual(expect.arrayContaining(['1.0', '2009-04-04', '2021-03-23', 'latest']));
  });
});
