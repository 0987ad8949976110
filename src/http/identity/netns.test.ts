// Identity from a real non-loopback source: a network namespace joined to the host by a veth
// pair. The server listens on the host side; curl runs inside the namespace with chosen source
// addresses and a chosen MAC, so the host's kernel holds real neighbour entries.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { etcdTestStore } from '../../../test/support/store.js';
import { silentLogger } from '../../log.js';
import { startHttpServer, type HttpServer } from '../server.js';
import { curl, run } from '../testing/clients.js';
import { eui64Address } from '../../model/eui64.js';
import { parsePrefix } from '../../model/ip.js';

const id = randomBytes(3).toString('hex');
const NS = `uch-${id}`;
const HOST_IF = `uchh${id}`;
const NS_IF = `uchn${id}`;
const P6 = 'fd00:4854:7470::/48';
const HOST6 = 'fd00:4854:7470::1';
const HOST4 = '10.213.77.1';
const OUTSIDE_HOST6 = 'fd00:4854:7471::1';
const MAC_SLAAC = '52:54:00:cc:00:01';
const MAC_NEIGH = '52:54:00:cc:00:02';
const MAC_FAR = '52:54:00:cc:00:03';
const MAC_UNKNOWN = '52:54:00:cc:00:99';
// In the served /48 but another /64 than the VM's own EUI-64 address: no exact match possible.
const EUI_SLAAC = eui64Address(parsePrefix('fd00:4854:7470:1::/64', 6)!, MAC_SLAAC);
const EUI_FAR = eui64Address(parsePrefix('fd00:4854:7470:1::/64', 6)!, MAC_FAR);
const PRIVACY = 'fd00:4854:7470:2::1234';
const LATER = 'fd00:4854:7470:2::5678';
const V4 = '10.213.77.50';
const OUTSIDE6 = 'fd00:4854:7471::5';

const t = etcdTestStore();
let server: HttpServer;
let close: () => Promise<void>;
let url6: string;
let url4: string;

async function sh(...args: string[]): Promise<void> {
  const r = await run(args[0], args.slice(1));
  if (r.code !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
}

beforeAll(async () => {
  await sh('ip', 'netns', 'add', NS);
  await sh('ip', 'link', 'add', HOST_IF, 'type', 'veth', 'peer', 'name', NS_IF);
  await sh('ip', 'link', 'set', NS_IF, 'netns', NS);
  await sh('ip', '-n', NS, 'link', 'set', NS_IF, 'address', MAC_NEIGH);
  await sh('ip', 'addr', 'add', `${HOST6}/48`, 'dev', HOST_IF, 'nodad');
  await sh('ip', 'addr', 'add', `${OUTSIDE_HOST6}/64`, 'dev', HOST_IF, 'nodad');
  await sh('ip', 'addr', 'add', `${HOST4}/24`, 'dev', HOST_IF);
  for (const a of [EUI_SLAAC, EUI_FAR, PRIVACY, LATER]) await sh('ip', '-n', NS, 'addr', 'add', `${a}/48`, 'dev', NS_IF, 'nodad');
  await sh('ip', '-n', NS, 'addr', 'add', `${OUTSIDE6}/64`, 'dev', NS_IF, 'nodad');
  await sh('ip', '-n', NS, 'addr', 'add', `${V4}/24`, 'dev', NS_IF);
  await sh('ip', 'link', 'set', HOST_IF, 'up');
  await sh('ip', '-n', NS, 'link', 'set', NS_IF, 'up');
  await sh('ip', '-n', NS, 'link', 'set', 'lo', 'up');

  await t.writer.addNetwork({ name: 'lab', prefix6: P6, prefix4: '10.213.77.0/24', domain: 'lab.test', metadata6: HOST6, metadata4: HOST4 });
  await t.writer.addNetwork({ name: 'far', prefix6: 'fd00:4854:7472::/48', domain: 'far.test', metadata6: 'fd00:4854:7472::1' });
  await t.writer.addVm({ name: 'slaac', network: 'lab', mac: MAC_SLAAC });
  await t.writer.addVm({ name: 'neigh', network: 'lab', mac: MAC_NEIGH });
  await t.writer.addVm({ name: 'far', network: 'far', mac: MAC_FAR });
  const f = await t.follow();
  close = f.close;
  server = await startHttpServer({
    registry: f.registry, tokenSecret: Buffer.from('ns'), log: silentLogger(),
    listen: [{ host: HOST6, port: 0 }, { host: HOST4, port: 0 }],
  });
  url6 = `http://[${HOST6}]:${server.addresses[0].port}/instance`;
  url4 = `http://${HOST4}:${server.addresses[1].port}/instance`;
}, 60_000);

afterAll(async () => {
  await server?.close();
  await close?.();
  await t.close();
  await run('ip', ['netns', 'del', NS]);
  await run('ip', ['link', 'del', HOST_IF]);
});

const nameFrom = async (from: string, url = url6) => {
  const r = await curl(url, { netns: NS, from });
  return r.status === 200 ? JSON.parse(r.body).name as string : r.status;
};

describe('identity beyond exact addresses', () => {
  it('decodes the MAC from an EUI-64 interface id inside a served prefix', async () => {
    expect(await nameFrom(EUI_SLAAC)).toBe('slaac');
  });

  it('finds a privacy-style address through the host neighbour table, over IPv6 and IPv4', async () => {
    expect(await nameFrom(PRIVACY)).toBe('neigh');
    expect(await nameFrom(V4, url4)).toBe('neigh');
    const neigh = await run('ip', ['-j', 'neigh', 'show', 'dev', HOST_IF]);
    expect(neigh.stdout).toContain(MAC_NEIGH);
  });

  it('answers nobody from outside the served prefixes, even with a known MAC behind the address', async () => {
    expect(await nameFrom(OUTSIDE6)).toBe(404);
  });

  it('refuses an EUI-64 address naming a VM of another network, and an unknown MAC', async () => {
    // The link's MAC becomes one no VM has: the neighbour table cannot vouch any more.
    await sh('ip', '-n', NS, 'link', 'set', NS_IF, 'address', MAC_UNKNOWN);
    await sh('ip', 'neigh', 'flush', 'dev', HOST_IF);
    expect(await nameFrom(EUI_FAR)).toBe(404);
    expect(await nameFrom(LATER)).toBe(404);
    // The EUI-64 path needs no neighbour entry at all.
    expect(await nameFrom(EUI_SLAAC)).toBe('slaac');
  });
});
