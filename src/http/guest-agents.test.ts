// Guest programs replayed request by request, as their source does them (read line by line):
//  - Google's guest agent (GoogleCloudPlatform/guest-agent, metadata/metadata.go): Watch()
//    long-polls "/computeMetadata/v1/" with Go's url.Values.Encode() of wait_for_change,
//    last_etag, timeout_sec=60, recursive, alt=json (sorted by key), etag starting at "NONE" and
//    then the ETag response header copied verbatim; 404 and 412 are errors.
//  - google-auth's compute_engine._metadata.ping (Python, over requests; run for real): GET the
//    root with Metadata-Flavor: Google; GCE iff 200 and the response carries it too.
//  - Go's cloud.google.com/go/compute/metadata testOnGCE: GET the root with no Metadata-Flavor;
//    GCE iff the response header Metadata-Flavor is "Google" (whatever the status).
//  - Ignition's AWS provider: PUT latest/api/token (ttl 21600), GET 2019-10-01/user-data.
//  - afterburn's AWS provider: the same token, then 2021-01-03/meta-data/... and the identity
//    document; 404 means "not there", public-keys lines are "N=name".
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { etcdTestStore, ED25519 } from '../../test/support/store.js';
import { silentLogger } from '../log.js';
import { startHttpServer, type HttpServer } from './server.js';
import { run } from './testing/clients.js';

const t = etcdTestStore();
let server: HttpServer;
let close: () => Promise<void>;
let port: number;
const IGNITION = '{"ignition":{"version":"3.3.0"},"passwd":{"users":[{"name":"core"}]}}';

beforeAll(async () => {
  await t.writer.addNetwork({ name: 'ga', prefix6: '::/64', prefix4: '127.0.0.0/8', domain: 'ga.test', metadata6: '::53', metadata4: '127.0.0.53' });
  await t.writer.addUserKey('erin', 'laptop', ED25519);
  await t.writer.addVm({ name: 'gce', network: 'ga', owner: 'erin', mac: '52:54:00:ee:00:01', addresses: ['::1', '127.0.0.1'], meta: { a: '1' } });
  await t.writer.addVm({ name: 'fcos', network: 'ga', owner: 'erin', mac: '52:54:00:ee:00:02', addresses: ['127.0.0.2'], userData: IGNITION, requireToken: true });
  const f = await t.follow();
  close = f.close;
  server = await startHttpServer({ registry: f.registry, tokenSecret: Buffer.from('agents'), log: silentLogger(), listen: [{ host: '::1', port: 0 }, { host: '127.0.0.1', port: 0 }] });
  port = server.addresses[0].port;
});
afterAll(async () => {
  await server?.close();
  await close?.();
  await t.close();
});

interface Res { status: number; headers: Record<string, string | string[] | undefined>; body: string }

/** One HTTP/1.1 request as Go's net/http sends it (Host, User-Agent, Accept-Encoding). */
function goRequest(method: string, host: string, p: number, path: string, headers: Record<string, string>, from?: string): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = request({
      host, port: p, path, method, localAddress: from, agent: false,
      headers: { 'User-Agent': 'Go-http-client/1.1', 'Accept-Encoding': 'gzip', ...headers },
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Go's url.QueryEscape. */
const queryEscape = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`).replace(/%20/g, '+');

/** guest-agent's Client: etag "NONE", Watch() = get(ctx, hang=true), updateEtag on every hang answer. */
class GuestAgentClient {
  etag = 'NONE';
  readonly sent: string[] = [];

  async watch(): Promise<{ descriptor: any; status: number }> {
    const values: Record<string, string> = {
      wait_for_change: 'true', last_etag: this.etag, timeout_sec: '60', recursive: 'true', alt: 'json',
    };
    // url.Values.Encode sorts by key.
    const query = Object.keys(values).sort().map((k) => `${queryEscape(k)}=${queryEscape(values[k])}`).join('&');
    const path = `/computeMetadata/v1/?${query}`;
    this.sent.push(path);
    const res = await goRequest('GET', '::1', port, path, { 'Metadata-Flavor': 'Google' });
    if (res.status === 404 || res.status === 412) throw new Error(`error connecting to metadata server, status code: ${res.status}`);
    // updateEtag: resp.Header.Get("etag"), verbatim, "NONE" when absent.
    this.etag = (res.headers.etag as string | undefined) || 'NONE';
    return { descriptor: JSON.parse(res.body), status: res.status };
  }
}

const pending = async <T>(p: Promise<T>, ms: number) => {
  let settled = false;
  void p.then(() => { settled = true; }, () => { settled = true; });
  await new Promise((r) => setTimeout(r, ms));
  return !settled;
};

describe("Google's guest agent (metadata.go), replayed verbatim", () => {
  it('gets the whole document at once with last_etag=NONE, then every change, twice in a row', async () => {
    const agent = new GuestAgentClient();
    const first = await agent.watch();
    expect(first.status).toBe(200);
    expect(agent.sent[0]).toBe('/computeMetadata/v1/?alt=json&last_etag=NONE&recursive=true&timeout_sec=60&wait_for_change=true');
    expect(agent.etag).toMatch(/^[0-9a-f]{16}$/);
    expect(first.descriptor.instance.attributes['ssh-keys']).toContain(ED25519);

    for (const [i, key] of [['1', 'color=blue'], ['2', 'color=green']] as const) {
      const before = agent.etag;
      const poll = agent.watch();
      expect(await pending(poll, 400), `poll ${i} waits for a change`).toBe(true);
      expect(agent.sent.at(-1)).toContain(`last_etag=${before}&`);
      const [k, v] = key.split('=');
      await t.writer.setVm('gce', 'ga', { meta: { a: '1', [k]: v } });
      const changed = await poll;
      expect(changed.status).toBe(200);
      expect(changed.descriptor.instance.attributes[k]).toBe(v);
      expect(agent.etag).not.toBe(before);
      expect(agent.etag).toMatch(/^[0-9a-f]{16}$/);
    }
  }, 60_000);

  it('takes last_etag quoted too (older servers quoted it), and answers a stale one at once', async () => {
    const now = await goRequest('GET', '::1', port, '/computeMetadata/v1/?alt=json&recursive=true', { 'Metadata-Flavor': 'Google' });
    const etag = now.headers.etag as string;
    const started = Date.now();
    const quoted = await goRequest('GET', '::1', port, `/computeMetadata/v1/?alt=json&last_etag=${queryEscape(`"${etag}"`)}&recursive=true&timeout_sec=1&wait_for_change=true`, { 'Metadata-Flavor': 'Google' });
    expect(quoted.status).toBe(200);
    // Held until timeout_sec: the quoted form named the current ETag.
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(quoted.body).toBe(now.body);
    const stale = await goRequest('GET', '::1', port, '/computeMetadata/v1/?alt=json&last_etag=0123456789abcdef&recursive=true&timeout_sec=60&wait_for_change=true', { 'Metadata-Flavor': 'Google' });
    expect(stale.body).toBe(now.body);
  });
});

describe('GCE detection pings of "/"', () => {
  it("google-auth's own _metadata.ping (Debian's python3-google-auth, over requests) says GCE", async () => {
    const r = await run('/usr/bin/python3', ['-c', `
import json
import google.auth.transport.requests as tr
from google.auth.compute_engine import _metadata
print(json.dumps(_metadata.ping(tr.Request())))
`], { env: { ...process.env, GCE_METADATA_IP: `[::1]:${port}` } });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toBe(true);
  });

  it("Go's compute/metadata testOnGCE (no request header): Metadata-Flavor: Google in the answer, also for a VM that requires tokens", async () => {
    const res = await goRequest('GET', '::1', port, '/', { 'User-Agent': 'gcloud-golang/0.1' });
    expect(res.headers['metadata-flavor']).toBe('Google');
    const locked = await goRequest('GET', '127.0.0.1', server.addresses[1].port, '/', { 'User-Agent': 'gcloud-golang/0.1' }, '127.0.0.2');
    expect(locked.status).toBe(401);
    expect(locked.headers['metadata-flavor']).toBe('Google');
    // /computeMetadata/ listings carry it as well.
    const listing = await goRequest('GET', '::1', port, '/computeMetadata/', { 'Metadata-Flavor': 'Google' });
    expect(listing.body).toBe('v1/\n');
    expect(listing.headers['metadata-flavor']).toBe('Google');
  });
});

describe('Ignition and afterburn (AWS providers), replayed', () => {
  const from = '127.0.0.2';
  const p4 = () => server.addresses[1].port;
  const token = async () => {
    const r = await goRequest('PUT', '127.0.0.1', p4(), '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '21600' }, from);
    expect(r.status).toBe(200);
    return r.body;
  };

  it('Ignition: token, then /2019-10-01/user-data is the config byte for byte (the VM requires tokens)', async () => {
    const tok = await token();
    const r = await goRequest('GET', '127.0.0.1', p4(), '/2019-10-01/user-data', { 'X-aws-ec2-metadata-token': tok }, from);
    expect(r.status).toBe(200);
    expect(r.body).toBe(IGNITION);
    // Without the token Ignition would get 401, never an empty config.
    expect((await goRequest('GET', '127.0.0.1', p4(), '/2019-10-01/user-data', {}, from)).status).toBe(401);
  });

  it("afterburn: attributes, hostname and SSH keys from /2021-01-03/meta-data", async () => {
    const tok = { 'X-aws-ec2-metadata-token': await token() };
    const get = async (key: string) => {
      const r = await goRequest('GET', '127.0.0.1', p4(), `/2021-01-03/${key}`, tok, from);
      if (r.status === 404) return undefined; // return_on_404
      expect(r.status, key).toBe(200);
      return r.body;
    };
    const attrs: Record<string, string | undefined> = {};
    for (const [name, key] of [['AWS_INSTANCE_ID', 'meta-data/instance-id'], ['AWS_INSTANCE_TYPE', 'meta-data/instance-type'],
      ['AWS_IPV4_LOCAL', 'meta-data/local-ipv4'], ['AWS_IPV4_PUBLIC', 'meta-data/public-ipv4'],
      ['AWS_AVAILABILITY_ZONE', 'meta-data/placement/availability-zone'], ['AWS_HOSTNAME', 'meta-data/hostname'],
      ['AWS_PUBLIC_HOSTNAME', 'meta-data/public-hostname']]) attrs[name] = await get(key);
    expect(attrs.AWS_INSTANCE_ID).toMatch(/^i-[0-9a-f]{17}$/);
    expect(attrs.AWS_HOSTNAME).toBe('fcos.ga.test');
    expect(attrs.AWS_IPV4_LOCAL).toBe('127.0.0.2');
    expect(attrs.AWS_AVAILABILITY_ZONE).toBeTruthy();
    const doc = JSON.parse((await get('dynamic/instance-identity/document'))!);
    expect(typeof doc.region).toBe('string');
    const keys: string[] = [];
    for (const line of (await get('meta-data/public-keys'))!.split('\n')) {
      const tokens = line.split('=');
      expect(tokens.length).toBe(2);
      keys.push((await get(`meta-data/public-keys/${tokens[0]}/openssh-key`))!);
    }
    expect(keys).toEqual([ED25519]);
  });
});
