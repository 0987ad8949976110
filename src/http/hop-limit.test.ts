// The IMDSv2 token response leaves with IP TTL / IPv6 hop limit 1 (serve.tokenHopLimit), as AWS's
// http-put-response-hop-limit: measured on real packets. Three namespaces around the host:
//   near  -- host                 (on-link, as a VM on the bridge is)
//   far   -- router -- host       (one router hop away, as a container behind a VM, or a proxy)
// The server (in the host namespace) listens on "::" (IPv4 peers arrive IPv4-mapped). tcpdump on
// the near link reads the hop limit of the token's packet; from far, the token never arrives
// (the router drops it) while ordinary answers do, until the limit is raised to 2.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { etcdTestStore } from '../../test/support/store.js';
import { silentLogger } from '../log.js';
import { startHttpServer, type HttpServer } from './server.js';
import { run } from './testing/clients.js';

const id = randomBytes(3).toString('hex');
const NEAR = `uchln${id}`;
const FAR = `uchlf${id}`;
const ROUTER = `uchlr${id}`;
const H_NEAR = `uchn${id}h`; // host side of near's link
const H_R = `uchr${id}h`; // host side of the router's link
const R_H = `uchr${id}r`;
const R_F = `uchf${id}r`; // router side of far's link
const F_R = `uchf${id}f`;
const A = { h6: 'fd00:686f::1', r6: 'fd00:686f::2', h4: '10.214.0.1', r4: '10.214.0.2' };
const B = { r6: 'fd00:686f:1::1', f6: 'fd00:686f:1::2', r4: '10.214.1.1', f4: '10.214.1.2' };
const D = { h6: 'fd00:686f:2::1', n6: 'fd00:686f:2::2', h4: '10.214.2.1', n4: '10.214.2.2' };
const TTL = 'X-aws-ec2-metadata-token-ttl-seconds';

const t = etcdTestStore();
let hop1: HttpServer;
let hop2: HttpServer;
let close: () => Promise<void>;

async function sh(...args: string[]): Promise<void> {
  const r = await run(args[0], args.slice(1));
  if (r.code !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
}

beforeAll(async () => {
  for (const ns of [NEAR, FAR, ROUTER]) {
    await sh('ip', 'netns', 'add', ns);
    await sh('ip', '-n', ns, 'link', 'set', 'lo', 'up');
  }
  const link = async (a: string, aNs: string | undefined, b: string, bNs: string) => {
    await sh('ip', 'link', 'add', a, 'type', 'veth', 'peer', 'name', b);
    await sh('ip', 'link', 'set', b, 'netns', bNs);
    if (aNs) await sh('ip', 'link', 'set', a, 'netns', aNs);
  };
  await link(H_NEAR, undefined, `${NEAR}x`.slice(0, 15), NEAR);
  await link(H_R, undefined, R_H, ROUTER);
  await link(R_F, ROUTER, F_R, FAR);
  const nearIf = `${NEAR}x`.slice(0, 15);
  const addrs: [string | undefined, string, string][] = [
    [undefined, H_NEAR, `${D.h6}/64`], [undefined, H_NEAR, `${D.h4}/24`], [NEAR, nearIf, `${D.n6}/64`], [NEAR, nearIf, `${D.n4}/24`],
    [undefined, H_R, `${A.h6}/64`], [undefined, H_R, `${A.h4}/24`], [ROUTER, R_H, `${A.r6}/64`], [ROUTER, R_H, `${A.r4}/24`],
    [ROUTER, R_F, `${B.r6}/64`], [ROUTER, R_F, `${B.r4}/24`], [FAR, F_R, `${B.f6}/64`], [FAR, F_R, `${B.f4}/24`],
  ];
  for (const [ns, dev, a] of addrs) {
    await sh('ip', ...(ns ? ['-n', ns] : []), 'addr', 'add', a, 'dev', dev, ...(a.includes(':') ? ['nodad'] : []));
  }
  for (const [ns, dev] of [[undefined, H_NEAR], [undefined, H_R], [NEAR, nearIf], [ROUTER, R_H], [ROUTER, R_F], [FAR, F_R]] as const) {
    await sh('ip', ...(ns ? ['-n', ns] : []), 'link', 'set', dev, 'up');
  }
  await sh('ip', 'netns', 'exec', ROUTER, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1', 'net.ipv4.ip_forward=1');
  await sh('ip', '-n', FAR, 'route', 'add', 'default', 'via', B.r6);
  await sh('ip', '-n', FAR, 'route', 'add', 'default', 'via', B.r4);
  // Host routes to far's link die with H_R.
  await sh('ip', 'route', 'add', 'fd00:686f:1::/64', 'via', A.r6, 'dev', H_R);
  await sh('ip', 'route', 'add', '10.214.1.0/24', 'via', A.r4, 'dev', H_R);

  await t.writer.addNetwork({ name: 'near', prefix6: 'fd00:686f:2::/64', prefix4: '10.214.2.0/24', domain: 'near.test', metadata6: D.h6, metadata4: D.h4 });
  await t.writer.addNetwork({ name: 'far', prefix6: 'fd00:686f:1::/64', prefix4: '10.214.1.0/24', domain: 'far.test', metadata6: B.r6, metadata4: B.r4 });
  await t.writer.addVm({ name: 'n', network: 'near', mac: '52:54:00:68:00:01', addresses: [D.n6, D.n4] });
  await t.writer.addVm({ name: 'f', network: 'far', mac: '52:54:00:68:00:02', addresses: [B.f6, B.f4] });
  const f = await t.follow();
  close = f.close;
  const common = { registry: f.registry, tokenSecret: Buffer.from('hops'), log: silentLogger(), listen: [{ host: '::', port: 0 }] };
  hop1 = await startHttpServer(common);
  hop2 = await startHttpServer({ ...common, tokenHopLimit: 2 });
}, 60_000);

afterAll(async () => {
  await hop1?.close();
  await hop2?.close();
  await close?.();
  await t.close();
  for (const ns of [NEAR, FAR, ROUTER]) await run('ip', ['netns', 'del', ns]);
  for (const dev of [H_NEAR, H_R]) await run('ip', ['link', 'del', dev]);
});

/** curl inside a namespace: [exit code, HTTP status, body]; exit 28 is curl's timeout. */
async function curlIn(ns: string, url: string, put: boolean, maxTime = 4): Promise<{ code: number; status: number; body: string }> {
  const args = ['netns', 'exec', ns, 'curl', '-sS', '-g', '--max-time', String(maxTime), '-w', '\n%{http_code}'];
  if (put) args.push('-X', 'PUT', '-H', `${TTL}: 60`);
  const r = await run('ip', [...args, url]);
  const lines = r.stdout.split('\n');
  return { code: r.code, status: Number(lines.at(-1)), body: lines.slice(0, -1).join('\n') };
}

const url = (host: string, port: number, path: string) => `http://${host.includes(':') ? `[${host}]` : host}:${port}${path}`;

/** tcpdump on a host interface, verbose with payloads, until stopped. */
async function capture(dev: string, port: number): Promise<{ stop(): Promise<string> }> {
  const p: ChildProcess = spawn('tcpdump', ['-i', dev, '-n', '-v', '-A', '-l', '-U', 'tcp', 'and', 'src', 'port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout!.on('data', (d) => (out += d));
  await new Promise<void>((resolve, reject) => {
    p.once('error', reject);
    p.stderr!.on('data', (d) => { if (String(d).includes('listening on')) resolve(); });
  });
  return {
    async stop() {
      await new Promise((r) => setTimeout(r, 300));
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGINT');
      await exited;
      return out;
    },
  };
}

/** The hop limit (IPv6) or TTL (IPv4) of each captured packet whose payload contains `marker`. */
function hopsOfPacketsWith(dump: string, marker: string): number[] {
  // Each packet starts with a timestamp line; tcpdump -v puts hlim/ttl in its header.
  const packets = dump.split(/\n(?=\d{2}:\d{2}:\d{2}\.\d+ )/);
  return packets.filter((p) => p.includes(marker)).map((p) => Number(/(?:hlim|ttl) (\d+)/.exec(p)?.[1]));
}

describe('token response hop limit', () => {
  it('sends the token with hop limit 1 (IPv6) and TTL 1 (IPv4) on-link, and other answers with the default', async () => {
    const port = hop1.addresses[0].port;
    const cap = await capture(H_NEAR, port);
    const six = await curlIn(NEAR, url(D.h6, port, '/latest/api/token'), true);
    const four = await curlIn(NEAR, url(D.h4, port, '/latest/api/token'), true);
    const get = await curlIn(NEAR, url(D.h6, port, '/latest/meta-data/local-hostname'), false);
    const dump = await cap.stop();
    expect([six.status, four.status, get.status]).toEqual([200, 200, 200]);
    const tokenHops = hopsOfPacketsWith(dump, six.body).concat(hopsOfPacketsWith(dump, four.body));
    expect(tokenHops).toEqual([1, 1]);
    expect(dump).toMatch(/IP6 \(.*hlim 1,/);
    expect(dump).toMatch(/IP \(.*ttl 1,/);
    const other = hopsOfPacketsWith(dump, 'n.near.test');
    expect(other.length).toBeGreaterThan(0);
    expect(other.every((h) => h > 1)).toBe(true);
  }, 60_000);

  it('never delivers the token one router hop away, though ordinary answers arrive; serve.tokenHopLimit 2 lets it through', async () => {
    const p1 = hop1.addresses[0].port;
    for (const host of [A.h6, A.h4]) {
      const get = await curlIn(FAR, url(host, p1, '/instance'), false);
      expect(get.status, host).toBe(200);
      expect(JSON.parse(get.body).name).toBe('f');
      const put = await curlIn(FAR, url(host, p1, '/latest/api/token'), true, 3);
      expect(put.code, `${host}: curl must time out waiting`).toBe(28);
      expect(put.body).toBe('');
    }
    const p2 = hop2.addresses[0].port;
    for (const host of [A.h6, A.h4]) {
      const put = await curlIn(FAR, url(host, p2, '/latest/api/token'), true);
      expect(put.status, host).toBe(200);
      expect(put.body).toMatch(/^\d+\.[A-Za-z0-9_-]{43}$/);
    }
  }, 60_000);
});
