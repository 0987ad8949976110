// The generated ruleset, checked by the kernel (`nft -c`) and with real traffic: a namespace
// "host" with a bridge holding the metadata address, and a namespace "guest" plugged into it by a
// veth standing in for a tap. (Attacks from a real guest: test/e2e/attack.test.ts.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { Netns } from '../../test/e2e/netns.js';
import { applyRuleset, checkRuleset, removeTable, renderRuleset, TABLE, type NetworkPolicy, type TapPolicy } from './nft.js';
import { chainName } from './names.js';

const PROBE = fileURLToPath(new URL('../../test/e2e/probe.py', import.meta.url));

const vm: TapPolicy = {
  tap: 'vh',
  mac: '52:54:00:12:34:56',
  linkLocal: 'fe80::5054:ff:fe12:3456',
  own6: ['fd00:5::5054:ff:fe12:3456', 'fd00:5::77'],
  own4: [],
  served: true,
};
const net: NetworkPolicy = { name: 'lab', bridge: 'br0', metadata6: ['fd00:5::1'], metadata4: [], forward6: [], forward4: [] };

describe('nftables ruleset', () => {
  let ns: Netns;
  beforeAll(async () => { ns = await Netns.create('ucnft'); });
  afterAll(async () => { await ns?.delete(); });

  it('is accepted by the kernel (nft -c) for no VM, one VM, and several with IPv4', async () => {
    const nft = ns.wrapper('nft');
    await checkRuleset(renderRuleset([]), nft);
    await checkRuleset(renderRuleset([vm], [net]), nft);
    await checkRuleset(renderRuleset([
      vm,
      { ...vm, tap: 'uc020000000002', mac: '02:00:00:00:00:02', linkLocal: 'fe80::ff:fe00:2', own6: ['fd00:5::ff:fe00:2'], own4: ['10.0.0.7', '10.0.0.8'] },
      { ...vm, tap: 'uc020000000003', mac: '02:00:00:00:00:03', served: false },
    ], [
      { ...net, metadata4: ['10.0.0.1'], forward6: ['fd00:6::/64', 'fd00:7::/64'], forward4: ['10.1.0.0/24'] },
      { name: 'wan', bridge: 'br-wan', metadata6: ['fd00:6::1', 'fd00:6::2'], metadata4: [], forward6: ['::/0'], forward4: ['0.0.0.0/0'] },
    ]), nft);
  });

  it('rejects what the kernel would reject (the check can fail)', async () => {
    await expect(checkRuleset(renderRuleset([{ ...vm, mac: 'not-a-mac' }]), ns.wrapper('nft'))).rejects.toThrow(/nft/);
  });

  it('replaces the whole table atomically, and renders deterministically', async () => {
    const nft = ns.wrapper('nft');
    const two = renderRuleset([vm, { ...vm, tap: 'other', mac: '02:00:00:00:00:09' }], [net]);
    expect(renderRuleset([{ ...vm, tap: 'other', mac: '02:00:00:00:00:09' }, vm], [net])).toBe(two);
    await applyRuleset(two, nft);
    await applyRuleset(renderRuleset([vm], [net]), nft);
    const listed = await ns.exec('nft', ['list', 'table', 'bridge', TABLE]);
    expect(listed).toContain(chainName('vh'));
    expect(listed).not.toContain(chainName('other'));
  });
});

describe('nftables with real traffic', { timeout: 90_000 }, () => {
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
    const rx = host.spawn('python3', [PROBE, 'udp-recv', 'fd00:5::1', '53', '120']);
    const exited = new Promise((r) => rx.on('exit', r));
    let out = '';
    rx.stdout!.on('data', (b) => (out += b));
    await new Promise<void>((resolve) => rx.stdout!.on('data', () => out.includes('ready') && resolve()));
    for (const src of sources) await guest.exec('python3', [PROBE, 'udp-send', src, 'fd00:5::1', '53', src]);
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
      ip link add up9 type veth peer name up9p
      ip link set up9 up
      ip link set up9p up
      ip addr add fd00:99::1/64 dev up9 nodad
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
    await applyRuleset(renderRuleset([vm], [net]), host.wrapper('nft'));
  });
  afterAll(async () => {
    await guest?.delete();
    await host?.delete();
  });

  it('lets the VM send from its own addresses only: not an unused prefix address, another VM\'s, the metadata service\'s, or outside', async () => {
    const before = await dropped('ip6 saddr != {');
    const got = await deliver(['fd00:5::5054:ff:fe12:3456', 'fd00:5::77', 'fd00:5::1234', 'fd00:5::53', 'fd00:5::5054:ff:fe00:2', 'fd00:6::9']);
    expect(got.sort()).toEqual(['fd00:5::5054:ff:fe12:3456', 'fd00:5::77']);
    expect(await dropped('ip6 saddr != {')).toBeGreaterThanOrEqual(before + 4); // the allow list
  });

  it('drops solicitations carrying another MAC as source link-layer address; the host\'s neighbour table learns nothing from them', async () => {
    const victimMac = '52:54:00:aa:bb:cc';
    const rule = '@th,192,64 != 0x101525400123456'; // the SLLAO must be its own MAC
    const before = await dropped(rule);
    await guest.exec('python3', [PROBE, 'ns-send', 'vg', 'fd00:5::77', 'ff02::1:ff00:1', 'fd00:5::1', victimMac]);
    await expect.poll(() => dropped(rule)).toBe(before + 1);
    expect(await host.ip(['-6', 'neigh', 'show', 'dev', 'br0'])).not.toContain(victimMac);
    // Its own MAC passes, and the host answers it (a real resolution works).
    await guest.exec('python3', [PROBE, 'ns-send', 'vg', 'fd00:5::77', 'ff02::1:ff00:1', 'fd00:5::1', vm.mac]);
    expect(await dropped(rule)).toBe(before + 1);
  });

  it('(control) without the rules the same forged solicitation does plant the victim\'s MAC in the host\'s neighbour table', async () => {
    const victimMac = '52:54:00:aa:bb:cc';
    await removeTable(host.wrapper('nft'));
    try {
      await host.ip(['-6', 'neigh', 'flush', 'dev', 'br0']);
      await guest.exec('python3', [PROBE, 'ns-send', 'vg', 'fd00:5::77', 'ff02::1:ff00:1', 'fd00:5::1', victimMac]);
      await expect.poll(() => host.ip(['-6', 'neigh', 'show', 'fd00:5::77', 'dev', 'br0'])).toContain(victimMac);
    } finally {
      await host.ip(['-6', 'neigh', 'flush', 'dev', 'br0']);
      await applyRuleset(renderRuleset([vm], [net]), host.wrapper('nft'));
    }
  });

  it('lets the guest reach the host only on DNS and HTTP of its metadata address: not another port, not another host address', async () => {
    const listeners = [host.spawn('python3', [PROBE, 'tcp-listen', 'fd00:5::1', '80', '2222']), host.spawn('python3', [PROBE, 'tcp-listen', 'fd00:99::1', '22'])];
    try {
      for (const l of listeners) await new Promise<void>((resolve) => l.stdout!.on('data', (b) => String(b).includes('ready') && resolve()));
      const connect = async (dst: string, port: number) => (await guest.exec('python3', [PROBE, 'tcp-connect', 'fd00:5::77', dst, String(port)])).trim();
      const inputDrops = async () => Number(/counter packets (\d+)/.exec(await host.exec('nft', ['list', 'chain', 'inet', TABLE, 'input']))![1]);
      const before = await inputDrops();
      expect(await connect('fd00:5::1', 80)).toBe('connected');
      expect(await connect('fd00:5::1', 2222)).toMatch(/^failed/);
      expect(await connect('fd00:99::1', 22)).toMatch(/^failed/);
      expect(await inputDrops()).toBeGreaterThan(before);
      // The host's own connections are not guests': from the host, the same ports answer.
      expect((await host.exec('python3', [PROBE, 'tcp-connect', 'fd00:5::1', 'fd00:5::1', '2222'])).trim()).toBe('connected');
    } finally {
      for (const l of listeners) l.kill('SIGTERM');
    }
  });

  it('routes a guest to another network only where its network\'s forwardTo says', async () => {
    // fd00:8::/64 (fd00:6::/64 is on-link for the guest, see beforeAll).
    const far = await Netns.create('ucfar');
    let listener: ReturnType<Netns['spawn']> | undefined;
    try {
      await host.sh(`
        sysctl -qw net.ipv6.conf.all.forwarding=1
        ip link add hf type veth peer name ff netns ${far.name}
        ip link set hf up
        ip addr add fd00:8::1/64 dev hf nodad
      `);
      await far.sh('ip link set ff up; ip addr add fd00:8::5/64 dev ff nodad; ip -6 route add default via fd00:8::1');
      listener = far.spawn('python3', [PROBE, 'tcp-listen', 'fd00:8::5', '7']);
      await new Promise<void>((resolve) => listener!.stdout!.on('data', (b) => String(b).includes('ready') && resolve()));
      const connect = async () => (await guest.exec('python3', [PROBE, 'tcp-connect', 'fd00:5::77', 'fd00:8::5', '7'])).trim();
      expect(await connect()).toMatch(/^failed/);
      await applyRuleset(renderRuleset([vm], [{ ...net, forward6: ['fd00:8::/64'] }]), host.wrapper('nft'));
      expect(await connect()).toBe('connected');
    } finally {
      listener?.kill('SIGTERM');
      await applyRuleset(renderRuleset([vm], [net]), host.wrapper('nft'));
      await far.delete();
    }
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

    const na = await dropped('nd-neighbor-advert @th,64,128');
    await guest.exec('python3', [PROBE, 'na-send', 'vg', 'fd00:5::5054:ff:fe12:3456']); // its own: passes
    await guest.exec('python3', [PROBE, 'na-send', 'vg', 'fd00:5::53']); // the metadata service's: dropped
    await expect.poll(() => dropped('nd-neighbor-advert @th,64,128')).toBe(na + 1);
    // The host's neighbour table never learned the VM's MAC for the metadata address.
    const neigh = await host.ip(['-6', 'neigh', 'show', 'fd00:5::53']);
    expect(neigh).not.toContain(vm.mac);
  });
});
