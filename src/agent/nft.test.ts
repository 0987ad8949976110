// The generated ruleset, checked by the kernel (`nft -c`) and with real traffic: a namespace
// "host" with a bridge, and a namespace "guest" plugged into it by a veth standing in for a tap.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { Netns } from '../../test/e2e/netns.js';
import { applyRuleset, checkRuleset, renderRuleset, TABLE, type TapPolicy } from './nft.js';
import { chainName } from './names.js';

const PROBE = fileURLToPath(new URL('../../test/e2e/probe.py', import.meta.url));

const vm: TapPolicy = {
  tap: 'vh',
  mac: '52:54:00:12:34:56',
  linkLocal: 'fe80::5054:ff:fe12:3456',
  own6: ['fd00:5::5054:ff:fe12:3456', 'fd00:5::77'],
  own4: [],
  prefix6: 'fd00:5::/64',
  foreign6: ['fd00:5::53', 'fd00:5::5054:ff:fe00:2'],
};

describe('nftables ruleset', () => {
  let ns: Netns;
  beforeAll(async () => { ns = await Netns.create('ucnft'); });
  afterAll(async () => { await ns?.delete(); });

  it('is accepted by the kernel (nft -c) for no VM, one VM, and several with IPv4', async () => {
    const nft = ns.wrapper('nft');
    await checkRuleset(renderRuleset([]), nft);
    await checkRuleset(renderRuleset([vm]), nft);
    await checkRuleset(renderRuleset([
      vm,
      { ...vm, tap: 'ucweb1-a1b2c3', mac: '02:00:00:00:00:02', linkLocal: 'fe80::ff:fe00:2', own6: ['fd00:5::ff:fe00:2'], own4: ['10.0.0.7'], foreign6: [] },
    ]), nft);
  });

  it('rejects what the kernel would reject (the check can fail)', async () => {
    await expect(checkRuleset(renderRuleset([{ ...vm, mac: 'not-a-mac' }]), ns.wrapper('nft'))).rejects.toThrow(/nft/);
  });

  it('replaces the whole table atomically, and renders deterministically', async () => {
    const nft = ns.wrapper('nft');
    const two = renderRuleset([vm, { ...vm, tap: 'other', mac: '02:00:00:00:00:09' }]);
    expect(renderRuleset([{ ...vm, tap: 'other', mac: '02:00:00:00:00:09' }, vm])).toBe(two);
    await applyRuleset(two, nft);
    await applyRuleset(renderRuleset([vm]), nft);
    const listed = await ns.exec('nft', ['list', 'table', 'bridge', TABLE]);
    expect(listed).toContain(chainName('vh'));
    expect(listed).not.toContain(chainName('other'));
  });
});

describe('nftables with real traffic', () => {
  let host: Netns;
  let guest: Netns;
  let bridgeMac: string;

  const counters = async () => {
    const text = await host.exec('nft', ['list', 'chain', 'bridge', TABLE, chainName('vh')]);
    return text.split('\n').filter((l) => l.includes('counter')).map((l) => ({ rule: l.trim(), packets: Number(/packets (\d+)/.exec(l)![1]) }));
  };
  const dropped = async (fragment: string) => (await counters()).find((c) => c.rule.includes(fragment))?.packets ?? -1;

  /** Sends one UDP datagram per source to the bridge's address; returns the sources that arrived. */
  const deliver = async (sources: string[]): Promise<string[]> => {
    const rx = host.spawn('python3', [PROBE, 'udp-recv', 'fd00:5::1', '9999', '120']);
    const exited = new Promise((r) => rx.on('exit', r));
    let out = '';
    rx.stdout!.on('data', (b) => (out += b));
    await new Promise<void>((resolve) => rx.stdout!.on('data', () => out.includes('ready') && resolve()));
    for (const src of sources) await guest.exec('python3', [PROBE, 'udp-send', src, 'fd00:5::1', '9999', src]);
    await new Promise((r) => setTimeout(r, 500)); // local delivery is immediate; this is slack for a loaded machine
    rx.kill('SIGTERM');
    await exited;
    return out.split('\n').filter((l) => l && l !== 'ready').map((l) => l.split(' ')[1]);
  };

  beforeAll(async () => {
    host = await Netns.create('uchost');
    guest = await Netns.create('ucgst');
    await host.sh(`
      ip link add br0 type bridge
      ip link set br0 up
      ip addr add fd00:5::1/64 dev br0 nodad
      ip link add vh type veth peer name vg netns ${guest.name}
      ip link set vh master br0 up
    `);
    bridgeMac = JSON.parse(await host.ip(['-j', 'link', 'show', 'br0']))[0].address;
    await guest.sh(`
      ip link set vg address ${vm.mac}
      ip link set vg up
      for a in fd00:5::5054:ff:fe12:3456 fd00:5::77 fd00:5::1234 fd00:5::53 fd00:5::5054:ff:fe00:2; do ip addr add $a/64 dev vg nodad; done
      ip addr add fd00:6::9/64 dev vg nodad
      ip -6 neigh replace fd00:5::1 lladdr ${bridgeMac} dev vg nud permanent
      ip -6 route replace default via fd00:5::1 dev vg
    `);
    await applyRuleset(renderRuleset([vm]), host.wrapper('nft'));
  });
  afterAll(async () => {
    await guest?.delete();
    await host?.delete();
  });

  it('lets the VM send from its own addresses and the prefix, drops other VMs\', the metadata service\'s and outside sources', async () => {
    const got = await deliver(['fd00:5::5054:ff:fe12:3456', 'fd00:5::77', 'fd00:5::1234', 'fd00:5::53', 'fd00:5::5054:ff:fe00:2', 'fd00:6::9']);
    expect(got.sort()).toEqual(['fd00:5::1234', 'fd00:5::5054:ff:fe12:3456', 'fd00:5::77']);
    expect(await dropped('ip6 saddr {')).toBeGreaterThanOrEqual(2); // the two foreign addresses
    expect(await dropped('ip6 saddr !=')).toBeGreaterThanOrEqual(1); // outside the prefix
  });

  it('drops every frame once the VM changes its MAC', async () => {
    const before = await dropped('ether saddr');
    await guest.ip(['link', 'set', 'vg', 'address', '52:54:00:66:66:66']);
    try {
      expect(await deliver(['fd00:5::5054:ff:fe12:3456'])).toEqual([]);
      expect(await dropped('ether saddr')).toBeGreaterThan(before);
    } finally {
      await guest.ip(['link', 'set', 'vg', 'address', vm.mac]);
    }
    expect(await deliver(['fd00:5::5054:ff:fe12:3456'])).toEqual(['fd00:5::5054:ff:fe12:3456']);
  });

  it('drops router advertisements and neighbour advertisements for addresses the VM does not own', async () => {
    const ra = await dropped('nd-router-advert');
    await guest.exec('python3', [PROBE, 'ra-send', 'vg']);
    await expect.poll(() => dropped('nd-router-advert')).toBe(ra + 1);

    const na = await dropped('nd-neighbor-advert');
    await guest.exec('python3', [PROBE, 'na-send', 'vg', 'fd00:5::5054:ff:fe12:3456']); // its own: passes
    await guest.exec('python3', [PROBE, 'na-send', 'vg', 'fd00:5::53']); // the metadata service's: dropped
    await expect.poll(() => dropped('nd-neighbor-advert')).toBe(na + 1);
    // The host's neighbour table never learned the VM's MAC for the metadata address.
    const neigh = await host.ip(['-6', 'neigh', 'show', 'fd00:5::53']);
    expect(neigh).not.toContain(vm.mac);
  });
});
