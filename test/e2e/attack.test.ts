// A hostile guest against the agent's real rules, with real guests. In one network namespace (the
// host): etcd, `serve` on the network's metadata addresses, radvd, the agent, and two busybox
// guests under qemu (TCG) on the network's bridge: "mallory" (the attacker) and "victim". Both
// carry test/e2e/guest/attack.c, built static here, which sends raw AF_PACKET frames and opens TCP
// from a chosen source. Around them: another network ("far") with a host on its bridge, a TCP
// service on a host port other than 53/80 and one on another host address.
//
// Mallory boots first and keeps up, for the whole of the victim's life: DAD probes from :: for the
// victim's addresses, a rogue DHCPv4 server answering the victim's discoveries from port 6767,
// DHCPv6 replies to the victim from port 5470, frames with the victim's MAC as source (to steal its
// frames from the bridge) and a sniffer for the victim's secret. Then, in turn: an NS to the
// metadata address from an unused address with the victim's MAC as source link-layer option (from
// its own address too), and requests from that address; the victim's interface id in another
// /64; NAs claiming the metadata and victim addresses; TCP to host ports other than 53/80; TCP
// routed to the other network; spoofed ARP. Each result is a marker section on its serial console.
// The victim must keep its address, get no lease, and keep its data; mallory gets zero bytes of it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Netns } from './netns.js';
import { Daemons } from './daemons.js';
import { etcdArgs } from '../support/etcd-global.js';
import { guestImage, readConsole, section } from './guest.js';
import { eventually, ED25519 } from '../support/store.js';
import { chainName } from '../../src/agent/names.js';
import { ensureQemuUser, QEMU_USER } from '../support/qemu-user.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(REPO, 'dist/cli/main.js');
const PROBE = join(REPO, 'test/e2e/probe.py');
const STORE = 'etcd://127.0.0.1:2379';
const M6 = 'fd00:a77::53';
const M4 = '10.77.0.53';
const FAR = 'fd00:a78::5';
const MGMT = 'fd00:beef::1';
const BRIDGE_MAC = '02:00:00:a7:7a:53'; // fixed, so it cannot change as taps join
const MALLORY = { mac: '52:54:00:a7:7a:01', v6: 'fd00:a77::5054:ff:fea7:7a01', v4: '10.77.0.21' };
const VICTIM = { mac: '52:54:00:a7:7a:02', v6: 'fd00:a77::5054:ff:fea7:7a02', ll: 'fe80::5054:ff:fea7:7a02', v4: '10.77.0.22' };
const UNUSED = 'fd00:a77::bad';
const OTHER64 = 'fd00:a77:0:1:5054:ff:fea7:7a02'; // the victim's interface id in another /64
const SECRET = `VICTIM-SECRET-${randomBytes(8).toString('hex')}`;
const VICTIM_META = `victim-meta-${randomBytes(6).toString('hex')}`;
const BOB_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBobBobBobBobBobBobBobBobBobBobBobBobBobBobBob bob@desk';

const ATTACKER = `#!/bin/sh
ME6=${MALLORY.v6}; ME4=${MALLORY.v4}; MYMAC=$(cat /sys/class/net/eth0/address)
ip addr add $ME4/24 dev eth0
echo "GUEST: self-begin"; attack http $ME6 ${M6} 80 /instance; echo "GUEST: self-end"
BR=$(ip -6 neigh show ${M6} dev eth0 | grep -o 'lladdr [^ ]*' | cut -d' ' -f2)
echo "GUEST: bridge-mac $BR"
attack dad eth0 ${VICTIM.v6} 900 > /tmp/dad6 & P1=$!
attack dad eth0 ${VICTIM.ll} 900 > /tmp/dadll & P2=$!
attack dhcp4-rogue eth0 $ME4 10.77.0.99 900 > /tmp/dhcp4 & P3=$!
attack dhcp6-rogue eth0 ${VICTIM.mac} fe80::5054:ff:fea7:7a01 ${VICTIM.ll} 900 > /tmp/dhcp6 & P4=$!
attack poison eth0 ${VICTIM.mac} 900 > /tmp/poison & P5=$!
attack sniff eth0 VICTIM-SECRET > /tmp/sniff & P6=$!
echo "GUEST: flood-started"
echo "GUEST: wait-victim-begin"; attack udp-wait 9999 600 victim-ready; echo "GUEST: wait-victim-end"
kill $P1 $P2 $P3 $P4 $P5 $P6; wait
echo "GUEST: background-begin"; cat /tmp/dad6 /tmp/dadll /tmp/dhcp4 /tmp/dhcp6 /tmp/poison /tmp/sniff; echo "GUEST: background-end"

echo "GUEST: ns-spoof-begin"
attack ns eth0 $BR ${UNUSED} ${M6} ${M6} sll=${VICTIM.mac}
attack ns eth0 33:33:ff:00:00:53 ${UNUSED} ff02::1:ff00:53 ${M6} sll=${VICTIM.mac}
attack ns eth0 $BR $ME6 ${M6} ${M6} sll=${VICTIM.mac}
ip -6 addr add ${UNUSED}/64 dev eth0 nodad
attack http ${UNUSED} ${M6} 80 /instance
attack http ${UNUSED} ${M6} 80 /nocloud/user-data
ip -6 addr del ${UNUSED}/64 dev eth0
echo "GUEST: ns-spoof-end"
echo "GUEST: other64-begin"
ip -6 addr add ${OTHER64}/64 dev eth0 nodad
attack http ${OTHER64} ${M6} 80 /instance
ip -6 addr del ${OTHER64}/64 dev eth0
echo "GUEST: other64-end"
echo "GUEST: na-spoof-begin"
attack na eth0 ${VICTIM.mac} $ME6 ${VICTIM.v6} ${M6} $MYMAC
attack na eth0 $BR $ME6 ${M6} ${VICTIM.v6} $MYMAC
echo "GUEST: na-spoof-end"
echo "GUEST: host-ports-begin"
attack http $ME6 ${M6} 2222 /
attack http $ME6 ${MGMT} 22 /
attack http $ME4 ${M4} 2222 /
echo "GUEST: host-ports-end"
echo "GUEST: routed-begin"; ip -6 route; attack http $ME6 ${FAR} 7 /; echo "GUEST: routed-end"
echo "GUEST: arp-spoof-begin"
attack arp eth0 ${VICTIM.mac} 2 $MYMAC ${M4} ${VICTIM.v4}
attack arp eth0 ff:ff:ff:ff:ff:ff 2 $MYMAC ${M4} ${M4}
attack arp eth0 $BR 2 $MYMAC ${VICTIM.v4} ${M4}
attack arp eth0 $BR 2 ${VICTIM.mac} ${VICTIM.v4} ${M4}
echo "GUEST: arp-spoof-end"
for i in 1 2 3 4 5; do attack udp-send $ME6 ${VICTIM.v6} 9998 attacker-done >/dev/null; sleep 1; done
echo "GUEST: attacker-done"
`;

const VICTIM_SCRIPT = `#!/bin/sh
cat > /lease.sh <<'EOF'
#!/bin/sh
case "$1" in bound|renew) echo "GUEST: lease-got ip=$ip router=$router dns=$dns";; esac
EOF
chmod +x /lease.sh
echo "GUEST: victim-addr-begin"; ip -6 addr show dev eth0; echo "GUEST: victim-addr-end"
ip addr add ${VICTIM.v4}/24 dev eth0
echo "GUEST: victim-data-begin"; attack http ${VICTIM.v6} ${M6} 80 /instance; attack http ${VICTIM.v4} ${M4} 80 /instance; echo "GUEST: victim-data-end"
attack udp-count 546 25 > /tmp/dhcp6 & D6=$!
echo "GUEST: victim-dhcp4-begin"; udhcpc -i eth0 -n -q -t 5 -T 2 -A 1 -s /lease.sh 2>&1; echo "GUEST: victim-dhcp4-end"
wait $D6
echo "GUEST: victim-dhcp6-begin"; cat /tmp/dhcp6; echo "GUEST: victim-dhcp6-end"
echo "GUEST: victim-userdata-begin"; for i in 1 2 3; do attack http ${VICTIM.v6} ${M6} 80 /nocloud/user-data; done; echo "GUEST: victim-userdata-end"
for i in 1 2 3 4 5; do attack udp-send ${VICTIM.v6} ${MALLORY.v6} 9999 victim-ready >/dev/null; sleep 1; done
echo "GUEST: victim-wait-begin"; attack udp-wait 9998 600 attacker-done; echo "GUEST: victim-wait-end"
echo "GUEST: victim-final-begin"; ip -6 addr show dev eth0; ip -6 neigh show dev eth0; ip -4 neigh show dev eth0; attack http ${VICTIM.v6} ${M6} 80 /instance; echo "GUEST: victim-final-end"
`;

describe('a hostile guest on the agent\'s network', () => {
  let ns: Netns;
  let farvm: Netns;
  let work: string;
  const daemons = new Daemons();
  const logs = daemons.logs;
  const consoles = { mallory: '', victim: '' };
  let victimId = '';
  const out = (who: keyof typeof consoles) => readConsole(consoles[who]);

  const cli = (...args: string[]) => ns.exec('node', [MAIN, ...args, '--store', STORE]);
  const daemon = (name: string, where: Netns, cmd: string, args: string[]) => daemons.start(name, where, cmd, args);
  const dump = () => daemons.dump(3000)
    + `\n--- mallory\n${out('mallory').slice(-6000)}\n--- victim\n${out('victim').slice(-4000)}`;
  const counter = (chain: string, fragment: string) => {
    const line = chain.split('\n').find((l) => l.includes(fragment));
    if (!line) throw new Error(`no rule with "${fragment}" in\n${chain}`);
    return Number(/packets (\d+)/.exec(line)![1]);
  };
  let malloryChain = '';
  let hostChains = '';

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error('dist/cli/main.js is missing: build first (npm test runs `npm run build`)');
    ensureQemuUser();
    work = mkdtempSync(join(tmpdir(), 'uct-attack-'));
    const helper = join(work, 'attack');
    execFileSync('gcc', ['-static', '-O2', '-D_GNU_SOURCE', '-o', helper, join(REPO, 'test/e2e/guest/attack.c')]);
    const attacker = guestImage(ATTACKER, { attack: helper });
    const victim = guestImage(VICTIM_SCRIPT, { attack: helper });
    consoles.mallory = join(work, 'state', 'lab', 'mallory', 'console.log');
    consoles.victim = join(work, 'state', 'lab', 'victim', 'console.log');
    ns = await Netns.create('ucatk');
    farvm = await Netns.create('ucfar');

    daemon('etcd', ns, 'etcd', etcdArgs({ name: 'atk', dataDir: join(work, 'etcd'), client: 2379, peer: 2380 }));
    await eventually(() => ns.exec('etcdctl', ['--endpoints=127.0.0.1:2379', 'endpoint', 'health']).then(() => true), 20_000);

    await cli('network', 'add', 'lab', '--prefix6', 'fd00:a77::/64', '--prefix4', '10.77.0.0/24', '--domain', 'lab.test', '--metadata6', M6, '--metadata4', M4);
    await cli('network', 'add', 'far', '--prefix6', 'fd00:a78::/64', '--domain', 'far.test', '--metadata6', 'fd00:a78::53');
    await cli('user', 'key', 'add', 'alice', 'laptop', ED25519);
    await cli('user', 'key', 'add', 'bob', 'desk', BOB_KEY);
    const vm = ['--memory', '256', '--cmdline', 'console=ttyS0 quiet panic=-1'];
    await cli('vm', 'add', 'mallory', '--network', 'lab', '--owner', 'alice', '--mac', MALLORY.mac, '--address', MALLORY.v4, '--host', 'hv-atk',
      '--kernel', attacker.kernel, '--initrd', attacker.initrd, ...vm);
    // The victim is scheduled once mallory's floods run, so its whole life is under attack.
    writeFileSync(join(work, 'victim-user-data'), `#cloud-config\n# ${SECRET}\n`);
    const added = await cli('vm', 'add', 'victim', '--network', 'lab', '--owner', 'bob', '--mac', VICTIM.mac, '--address', VICTIM.v4,
      '--user-data', join(work, 'victim-user-data'), '--meta', `secret=${VICTIM_META}`, '--kernel', victim.kernel, '--initrd', victim.initrd, ...vm);

    victimId = /added: ([0-9a-f-]{36})/.exec(added)![1];
    await ns.sh(`
      sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv4.ip_forward=1
      ip link add br-lab type bridge
      ip link set br-lab address ${BRIDGE_MAC}
      ip link set br-lab up
      ip addr add ${M6}/64 dev br-lab nodad
      ip addr add ${M4}/24 dev br-lab
      ip link add br-far type bridge
      ip link set br-far up
      ip addr add fd00:a78::53/64 dev br-far nodad
      ip link add farh type veth peer name farg netns ${farvm.name}
      ip link set farh master br-far up
      ip link add mgmt0 type veth peer name mgmt1
      ip link set mgmt0 up
      ip link set mgmt1 up
      ip addr add ${MGMT}/64 dev mgmt0 nodad
    `);
    await farvm.sh(`
      ip link set farg up
      ip addr add ${FAR}/64 dev farg nodad
      ip -6 route add default via fd00:a78::53
    `);
    writeFileSync(join(work, 'radvd.conf'), await cli('ra-config', 'lab'));
    daemon('radvd', ns, 'radvd', ['-n', '-C', join(work, 'radvd.conf'), '-p', join(work, 'radvd.pid'), '-m', 'stderr']);
    // What must never see a guest's connection: a host port beside the metadata service, a service
    // on another of the host's addresses, a host in another network.
    daemon('host-services', ns, 'python3', [PROBE, 'tcp-listen', M6, '2222']);
    daemon('host-services4', ns, 'python3', [PROBE, 'tcp-listen', `::ffff:${M4}`, '2222']);
    daemon('mgmt-service', ns, 'python3', [PROBE, 'tcp-listen', MGMT, '22']);
    daemon('far-host', farvm, 'python3', [PROBE, 'tcp-listen', FAR, '7']);

    daemon('serve', ns, 'node', [MAIN, 'serve', '--store', STORE, '--network', 'lab', '--dns', `[${M6}]:53`, '--http', `[${M6}]:80`, '--http', `${M4}:80`]);
    await eventually(async () => (await ns.exec('dig', ['+short', `@${M6}`, 'metadata.lab.test', 'AAAA'])).includes(M6), 60_000)
      .catch((err) => { throw new Error(`serve did not answer: ${err.message}\n${dump()}`); });

    daemon('agent', ns, 'node', [MAIN, 'agent', '--store', STORE, '--host', 'hv-atk', '--state-dir', join(work, 'state'), '--accel', 'tcg',
      '--user', QEMU_USER, ...[attacker, victim].flatMap((i) => ['--image-dir', dirname(i.kernel), '--image-dir', dirname(i.initrd)])]);
    await eventually(() => out('mallory').includes('GUEST: flood-started'), 240_000)
      .catch((err) => { throw new Error(`mallory did not start: ${err.message}\n${dump()}`); });
    await cli('vm', 'set', 'victim', '--network', 'lab', '--host', 'hv-atk');
    await eventually(() => out('mallory').includes('GUEST: attacker-done') && out('victim').includes('GUEST: victim-final-end'), 300_000)
      .catch((err) => { throw new Error(`the guests did not finish: ${err.message}\n${dump()}`); });
    malloryChain = await ns.exec('nft', ['list', 'chain', 'bridge', 'uncloud_agent', chainName(await tapOf('mallory'))]);
    hostChains = await ns.exec('nft', ['list', 'table', 'inet', 'uncloud_agent']);
  }, 600_000);

  /** The tap the agent plugged a VM into (named by the agent, found by its alias). */
  async function tapOf(name: string): Promise<string> {
    const links = JSON.parse(await ns.ip(['-j', 'link', 'show'])) as { ifname: string; ifalias?: string }[];
    return links.find((l) => l.ifalias?.endsWith(`lab/${name}`))!.ifname;
  }

  afterAll(async () => {
    if (work) writeFileSync(join(REPO, '.test-cache', 'attack-last-run.log'), `${dump()}\n--- mallory chain\n${malloryChain}\n--- host chains\n${hostChains}`);
    await daemons.stop({ stateDir: work && join(work, 'state'), network: 'lab', names: ['mallory', 'victim'] });
    await farvm?.delete();
    await ns?.delete();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('the attacker is a working guest: it reaches its own metadata, and its floods really ran against the victim', () => {
    const self = section(out('mallory'), 'self');
    expect(self).toMatch(/^HTTP\/1\.[01] 200/m);
    expect(self).toContain('mallory');
    const bg = section(out('mallory'), 'background');
    expect(Number(/dhcp4-rogue requests (\d+)/.exec(bg)![1])).toBeGreaterThan(0); // it saw the victim's discoveries
    expect(Number(/dhcp4-rogue requests \d+ answered (\d+)/.exec(bg)![1])).toBeGreaterThan(0);
    expect(Number(/dhcp6-rogue sent (\d+)/.exec(bg)![1])).toBeGreaterThan(0);
    expect([...bg.matchAll(/dad sent (\d+)/g)].map((m) => Number(m[1]))).toEqual([expect.any(Number), expect.any(Number)]);
    expect(Math.min(...[...bg.matchAll(/dad sent (\d+)/g)].map((m) => Number(m[1])))).toBeGreaterThan(10);
    expect(Number(/poison sent (\d+)/.exec(bg)![1])).toBeGreaterThan(10);
  });

  it('DAD denial fails: the victim keeps its link-local and EUI-64 addresses; its DAD probes came from :: and the attacker\'s were dropped', () => {
    for (const s of [section(out('victim'), 'victim-addr'), section(out('victim'), 'victim-final')]) {
      expect(s).toContain(`inet6 ${VICTIM.v6}/64`);
      expect(s).toContain(`inet6 ${VICTIM.ll}/64`);
      expect(s).not.toMatch(/dadfailed|tentative/);
    }
    expect(counter(malloryChain, 'ip6 saddr :: icmpv6 type nd-neighbor-solicit @th,64,128')).toBeGreaterThan(10);
  });

  it('the victim keeps its data, by IPv6 and IPv4, and after every attack', () => {
    const data = section(out('victim'), 'victim-data');
    expect(data.match(/^HTTP\/1\.[01] 200/gm)).toHaveLength(2);
    expect(data).toContain(VICTIM_META);
    expect(section(out('victim'), 'victim-userdata')).toContain(SECRET);
    const final = section(out('victim'), 'victim-final');
    expect(final).toMatch(/^HTTP\/1\.[01] 200/m);
    expect(final).toContain(VICTIM_META);
  });

  it('zero bytes of the victim\'s data reach the attacker: not by its requests, not on the wire', () => {
    const all = out('mallory');
    expect(section(out('victim'), 'victim-data')).toContain(victimId); // what the victim's data looks like
    for (const marker of [SECRET, VICTIM_META, victimId, BOB_KEY.split(' ')[1], VICTIM.mac, '"victim"']) expect(all).not.toContain(marker);
    expect(section(all, 'background')).toMatch(/sniff frames [1-9]\d* hits 0\r?\n/);
    expect(counter(malloryChain, `ether saddr != ${MALLORY.mac}`)).toBeGreaterThan(10); // the FDB poisoning frames
  });

  it('a forged NS (the victim\'s MAC as source link-layer option) is dropped, from an unused address and from its own; requests from the unused address get nothing', async () => {
    const s = section(out('mallory'), 'ns-spoof');
    expect(s.match(/connect failed/g)).toHaveLength(2);
    expect(s).not.toMatch(/^HTTP\//m);
    expect(counter(malloryChain, 'ip6 saddr != {')).toBeGreaterThan(0);
    expect(counter(malloryChain, `ip6 length 32 @th,192,64 != 0x101${MALLORY.mac.replace(/:/g, '')}`)).toBeGreaterThan(0); // from its own address
    const neigh = await ns.ip(['-6', 'neigh', 'show', 'dev', 'br-lab']);
    for (const line of neigh.split('\n').filter((l) => l.includes(VICTIM.mac))) expect([VICTIM.v6, VICTIM.ll]).toContain(line.split(' ')[0]);
  });

  it('the victim\'s interface id in another /64 is refused at network creation, and dropped by the rules', async () => {
    const s = section(out('mallory'), 'other64');
    expect(s).toContain('connect failed');
    expect(s).not.toMatch(/^HTTP\//m);
    await expect(cli('network', 'add', 'wide', '--prefix6', 'fd00:a79::/56', '--domain', 'wide.test', '--metadata6', 'fd00:a79::53'))
      .rejects.toThrow(/prefix6 must be a \/64/);
  });

  it('NAs for the metadata address or the victim\'s address are dropped: neither the host nor the victim learns the attacker\'s MAC for them', async () => {
    expect(counter(malloryChain, 'icmpv6 type nd-neighbor-advert @th,64,128')).toBeGreaterThanOrEqual(2);
    const final = section(out('victim'), 'victim-final');
    expect(out('mallory')).toContain(`GUEST: bridge-mac ${BRIDGE_MAC}`);
    expect(final).toMatch(new RegExp(`^${M6} lladdr ${BRIDGE_MAC}`, 'm'));
    // The victim knows the attacker's MAC for the attacker's own addresses, and for nothing else.
    for (const line of final.split('\n').filter((l) => l.includes(MALLORY.mac))) expect([MALLORY.v6, 'fe80::5054:ff:fea7:7a01', MALLORY.v4]).toContain(line.split(' ')[0]);
    expect(await ns.ip(['-6', 'neigh', 'show', VICTIM.v6])).not.toContain(MALLORY.mac);
  });

  it('rogue DHCPv4 and DHCPv6 from non-standard source ports never reach the victim', () => {
    expect(section(out('victim'), 'victim-dhcp4')).not.toContain('lease-got');
    expect(section(out('victim'), 'victim-dhcp6')).toMatch(/^received 0\r?$/m);
    expect(counter(malloryChain, 'udp dport 68')).toBeGreaterThan(0);
    expect(counter(malloryChain, 'udp dport 546')).toBeGreaterThan(0);
  });

  it('the host answers a guest only on DNS and HTTP of the metadata addresses: other ports and other host addresses are closed to it', () => {
    const s = section(out('mallory'), 'host-ports');
    expect(s.match(/connect failed/g)).toHaveLength(3);
    expect(logs.get('host-services')).toBe('ready\n');
    expect(logs.get('host-services4')).toBe('ready\n');
    expect(logs.get('mgmt-service')).toBe('ready\n');
    expect(counter(hostChains.slice(hostChains.indexOf('chain input')), 'counter packets')).toBeGreaterThan(0);
  });

  it('nothing is routed to another network (the network record does not ask for it)', () => {
    const s = section(out('mallory'), 'routed');
    expect(s).toMatch(/default via fe80::/); // the RA made the host its router
    expect(s).toContain('connect failed');
    expect(logs.get('far-host')).toBe('ready\n');
    expect(counter(hostChains.slice(hostChains.indexOf('chain forward')), 'counter packets')).toBeGreaterThan(0);
  });

  it('spoofed ARP is dropped: the victim still has the host\'s MAC for the metadata address, the host the victim\'s for its address', async () => {
    const final = section(out('victim'), 'victim-final');
    expect(final).toMatch(new RegExp(`^${M4.replace(/\./g, '\\.')} lladdr ${BRIDGE_MAC}`, 'm'));
    expect(await ns.ip(['-4', 'neigh', 'show', VICTIM.v4])).not.toContain(MALLORY.mac);
    expect(counter(malloryChain, 'arp saddr ip != ')).toBeGreaterThanOrEqual(2);
    expect(counter(malloryChain, 'arp saddr ether != ')).toBeGreaterThanOrEqual(1);
  });
});
