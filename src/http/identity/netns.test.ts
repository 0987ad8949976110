// Identity from real non-loopback sources: a network namespace joined to the host by two veth
// pairs. The first host side is the network's bridge (network.bridge names it); the second is
// some other link. The server listens on the host side; clients run inside the namespace with
// chosen source addresses, so the kernel hands the server real link-local peers with zones.
//   exact address (the VM's EUI-64 address in the /64, explicit ones)  -> served, by=address
//   the VM's EUI-64 link-local, arriving on the network's bridge         -> served, by=linklocal
//   the same link-local arriving on another link                         -> 404
//   an address in the prefix no VM has (privacy, neighbour's MAC in it)  -> 404 + spoof warning
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry as PromRegistry } from 'prom-client';
import { etcdTestStore } from '../../../test/support/store.js';
import { startHttpServer, type HttpServer } from '../server.js';
import { curl, run } from '../testing/clients.js';
import { eui64Address } from '../../model/eui64.js';
import { parsePrefix } from '../../model/ip.js';

const id = randomBytes(3).toString('hex');
const NS = `uch-${id}`;
const HOST_IF = `uchh${id}`;
const NS_IF = `uchn${id}`;
const HOST_IF2 = `ucho${id}`;
const NS_IF2 = `ucha${id}`;
const P6 = 'fd00:4854:7470::/64';
const HOST6 = 'fd00:4854:7470::1';
const HOST4 = '10.213.77.1';
const LL = 'fe80::a9fe:a9fe';
const OUTSIDE_HOST6 = 'fd00:4854:7471::1';
const MAC_SLAAC = '52:54:00:cc:00:01';
const MAC_LL = '52:54:00:cc:00:02';
const MAC_FAR = '52:54:00:cc:00:03';
const EUI_SLAAC = eui64Address(parsePrefix(P6, 6)!, MAC_SLAAC);
// A VM of another network: its MAC inside this prefix is still no VM's address here.
const EUI_FAR = eui64Address(parsePrefix(P6, 6)!, MAC_FAR);
const LL_VM = eui64Address(parsePrefix('fe80::/64', 6)!, MAC_LL);
const LL_STRANGER = 'fe80::1234';
const PRIVACY = 'fd00:4854:7470:0:1a2b:3c4d:5e6f:7788';
const V4 = '10.213.77.50';
const OUTSIDE6 = 'fd00:4854:7471::5';
const SECRET = `user-data-${id}`;

const t = etcdTestStore();
const prom = new PromRegistry();
const logLines: string[] = [];
let server: HttpServer;
let close: () => Promise<void>;
let port: number;

async function sh(...args: string[]): Promise<void> {
  const r = await run(args[0], args.slice(1));
  if (r.code !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
}

beforeAll(async () => {
  await sh('ip', 'netns', 'add', NS);
  for (const [h, n] of [[HOST_IF, NS_IF], [HOST_IF2, NS_IF2]]) {
    await sh('ip', 'link', 'add', h, 'type', 'veth', 'peer', 'name', n);
    await sh('ip', 'link', 'set', n, 'netns', NS);
    // No kernel-made link-locals: the test chooses every source address.
    await sh('ip', '-n', NS, 'link', 'set', n, 'addrgenmode', 'none');
    await sh('ip', 'link', 'set', h, 'addrgenmode', 'none');
    await sh('ip', '-n', NS, 'link', 'set', n, 'address', MAC_LL);
    await sh('ip', 'addr', 'add', `${LL}/64`, 'dev', h, 'nodad');
    await sh('ip', '-n', NS, 'addr', 'add', `${LL_VM}/64`, 'dev', n, 'nodad');
  }
  await sh('ip', 'addr', 'add', `${HOST6}/64`, 'dev', HOST_IF, 'nodad');
  await sh('ip', 'addr', 'add', `${OUTSIDE_HOST6}/64`, 'dev', HOST_IF, 'nodad');
  await sh('ip', 'addr', 'add', `${HOST4}/24`, 'dev', HOST_IF);
  for (const a of [EUI_SLAAC, EUI_FAR, PRIVACY]) await sh('ip', '-n', NS, 'addr', 'add', `${a}/64`, 'dev', NS_IF, 'nodad');
  await sh('ip', '-n', NS, 'addr', 'add', `${OUTSIDE6}/64`, 'dev', NS_IF, 'nodad');
  await sh('ip', '-n', NS, 'addr', 'add', `${V4}/24`, 'dev', NS_IF);
  for (const h of [HOST_IF, HOST_IF2]) await sh('ip', 'link', 'set', h, 'up');
  for (const n of [NS_IF, NS_IF2, 'lo']) await sh('ip', '-n', NS, 'link', 'set', n, 'up');

  await t.writer.addNetwork({ name: 'lab', prefix6: P6, prefix4: '10.213.77.0/24', domain: 'lab.test', metadata6: HOST6, metadata4: HOST4, bridge: HOST_IF });
  await t.writer.addNetwork({ name: 'far', prefix6: 'fd00:4854:7472::/64', domain: 'far.test', metadata6: 'fd00:4854:7472::1' });
  await t.writer.addVm({ name: 'slaac', network: 'lab', mac: MAC_SLAAC, userData: SECRET });
  await t.writer.addVm({ name: 'll', network: 'lab', mac: MAC_LL, userData: SECRET });
  await t.writer.addVm({ name: 'far', network: 'far', mac: MAC_FAR, userData: SECRET });
  const f = await t.follow();
  close = f.close;
  const sink = new Writable({ write(chunk, _enc, done) { logLines.push(...String(chunk).split('\n').filter(Boolean)); done(); } });
  server = await startHttpServer({
    registry: f.registry, tokenSecret: Buffer.from('ns'), log: pino({ level: 'trace' }, sink), metrics: prom,
    listen: [{ host: '::', port: 0 }],
  });
  port = server.addresses[0].port;
}, 60_000);

afterAll(async () => {
  await server?.close();
  await close?.();
  await t.close();
  await run('ip', ['netns', 'del', NS]);
  await run('ip', ['link', 'del', HOST_IF]);
  await run('ip', ['link', 'del', HOST_IF2]);
});

const nameFrom = async (from: string, host = `[${HOST6}]`) => {
  const r = await curl(`http://${host}:${port}/instance`, { netns: NS, from });
  return r.status === 200 ? JSON.parse(r.body).name as string : r.status;
};

/** Node inside the namespace: http.get from a chosen (scoped) source; Node sends the zone in Host. */
async function nodeFrom(host: string, path: string, localAddress: string): Promise<{ status: number; body: string }> {
  const code = `
const http = require('node:http');
const req = http.get({ host: process.argv[1], port: ${port}, path: process.argv[2], localAddress: process.argv[3], agent: false }, (res) => {
  let b = ''; res.setEncoding('utf8'); res.on('data', (d) => (b += d));
  res.on('end', () => console.log(JSON.stringify({ status: res.statusCode, body: b })));
});
req.on('error', (e) => { console.log(JSON.stringify({ status: 0, body: e.message })); });`;
  const r = await run('ip', ['netns', 'exec', NS, process.execPath, '-e', code, host, path, localAddress]);
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

describe('identity by exact address and bridge-bound link-local', () => {
  it('serves the VM at its EUI-64 address in the /64', async () => {
    expect(await nameFrom(EUI_SLAAC)).toBe('slaac');
  });

  it('serves the VM at its EUI-64 link-local only when the request arrives on its network bridge', async () => {
    const onBridge = await nodeFrom(`${LL}%${NS_IF}`, '/instance', `${LL_VM}%${NS_IF}`);
    expect(onBridge.status).toBe(200);
    expect(JSON.parse(onBridge.body).name).toBe('ll');
    const otherLink = await nodeFrom(`${LL}%${NS_IF2}`, '/instance', `${LL_VM}%${NS_IF2}`);
    expect(otherLink.status).toBe(404);
    expect(otherLink.body).toBe('not found\n');
    // A link-local that is no VM's, on the bridge: refused (and reported, below).
    await sh('ip', '-n', NS, 'addr', 'add', `${LL_STRANGER}/64`, 'dev', NS_IF, 'nodad');
    try {
      const stranger = await nodeFrom(`${LL}%${NS_IF}`, '/instance', `${LL_STRANGER}%${NS_IF}`);
      expect(stranger.status).toBe(404);
    } finally {
      await sh('ip', '-n', NS, 'addr', 'del', `${LL_STRANGER}/64`, 'dev', NS_IF);
    }
  });

  it("accepts the zone id Python's http.client puts in Host: cloud-init's readurl over the link-local literal", async () => {
    const code = `
import json, sys, logging
logging.disable(logging.CRITICAL)
from cloudinit import url_helper
r = url_helper.readurl(sys.argv[1], timeout=10, retries=0)
print(json.dumps({'code': r.code, 'body': r.contents.decode()}))`;
    const r = await run('ip', ['netns', 'exec', NS, '/usr/bin/python3', '-c', code, `http://[${LL}%25${NS_IF}]:${port}/openstack/latest/meta_data.json`]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(out.code).toBe(200);
    expect(JSON.parse(out.body).name).toBe('ll');
  });

  it('refuses addresses in the prefix that are no VM\'s, with a warning that names no user data', async () => {
    const before = logLines.length;
    expect(await nameFrom(PRIVACY)).toBe(404);
    expect(await nameFrom(EUI_FAR)).toBe(404);
    expect(await nameFrom(V4, HOST4)).toBe(404);
    const warnings = logLines.slice(before).map((l) => JSON.parse(l)).filter((l) => l.msg === 'refused spoofed metadata request');
    expect(warnings.map((w) => w.source).sort()).toEqual([`::ffff:${V4}`, EUI_FAR, PRIVACY].sort());
    const stranger = logLines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'refused spoofed metadata request' && l.source === `${LL_STRANGER}%${HOST_IF}`);
    expect(stranger.length).toBe(1);
    for (const w of warnings) expect(w).toMatchObject({ level: 40, reason: 'unknown-source' });
    expect(logLines.join('\n')).not.toContain(SECRET);
  });

  it('answers nobody from outside the served prefixes, without calling it a spoof', async () => {
    const before = logLines.length;
    expect(await nameFrom(OUTSIDE6, `[${OUTSIDE_HOST6}]`)).toBe(404);
    expect(logLines.slice(before).filter((l) => l.includes('refused spoofed'))).toEqual([]);
  });

  it('counts which identity step served, and the refusals', async () => {
    const text = await prom.metrics();
    expect(text).toMatch(/uncloud_metadata_http_identity_total\{by="address"\} [1-9]/);
    expect(text).toMatch(/uncloud_metadata_http_identity_total\{by="linklocal"\} [1-9]/);
    expect(text).toMatch(/uncloud_metadata_http_refused_spoofs_total\{reason="unknown-source"\} [1-9]/);
  });
});
