// The acceptance test of the whole product, with a real VM. In a network namespace it creates:
// etcd, the operator CLI writing a network, two users and two VMs, `serve` on the network's
// metadata address (DNS :53, HTTP :80), radvd announcing the prefix with RDNSS and DNSSL (config
// from `ra-config`), and `agent` booting a Linux guest under qemu (TCG) on the network's bridge.
// The guest takes its address by SLAAC, learns the DNS server and search domain from the RA,
// resolves `metadata`, fetches its own metadata and its owner's key; then it takes another VM's
// address and asks again: the agent's nftables rules drop it and it gets nothing of that VM's.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Netns } from './netns.js';
import { Daemons } from './daemons.js';
import { etcdArgs } from '../support/etcd-global.js';
import { guestImage, readConsole, section } from './guest.js';
import { eventually, ED25519 } from '../support/store.js';
import { tapName, chainName } from '../../src/agent/names.js';
import { isOurQemu } from '../../src/agent/qemu.js';
import { ensureQemuUser, QEMU_USER } from '../support/qemu-user.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(REPO, 'dist/cli/main.js');
const STORE = 'etcd://127.0.0.1:2379';
const PREFIX = 'fd00:e2e::/64';
const METADATA6 = 'fd00:e2e::53';
const WEB_MAC = '52:54:00:e2:e0:01';
const WEB_ADDR = 'fd00:e2e::5054:ff:fee2:e001';
const VICTIM_ADDR = 'fd00:e2e::5054:ff:fee2:e002';

function ed25519(comment: string): string {
  const raw = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const str = (b: Buffer) => Buffer.concat([Buffer.alloc(4), b]).fill(0, 0, 4).map((v, i) => (i < 4 ? (b.length >> (8 * (3 - i))) & 0xff : v));
  const blob = Buffer.concat([str(Buffer.from('ssh-ed25519')), str(raw)]);
  return `ssh-ed25519 ${blob.toString('base64')} ${comment}`;
}
const BOB_KEY = ed25519('bob@desk');

const GUEST_SCRIPT = `#!/bin/sh
echo "GUEST: nslookup-begin"; nslookup metadata 2>&1; echo "GUEST: nslookup-end"
addr=$(nslookup metadata 2>/dev/null | awk '/^Address:/ && !/#/ {a=$2} END {print a}')
req() { printf "GET $1 HTTP/1.0\\r\\nHost: metadata\\r\\n\\r\\n" | timeout 10 nc "$2" 80; }
echo "GUEST: keys-begin"; req /keys metadata; echo; echo "GUEST: keys-end"
echo "GUEST: instance-begin"; req /instance "$addr"; echo; echo "GUEST: instance-end"
# Now pretend to be the other VM: drop our own address, take theirs.
sysctl -w net.ipv6.conf.eth0.autoconf=0 >/dev/null
for a in $(ip -6 addr show dev eth0 scope global | grep -o 'inet6 [^ ]*' | cut -d' ' -f2); do ip -6 addr del $a dev eth0 2>&1; done
ip -6 addr add ${VICTIM_ADDR}/64 dev eth0 2>&1
sleep 3 # duplicate address detection: nobody else holds it on the link
echo "GUEST: spoof-begin"; ip -6 addr show dev eth0 scope global; req /keys "$addr"; req /instance "$addr"; echo; echo "GUEST: spoof-end"
`;

describe('a real VM on the metadata network', () => {
  let ns: Netns;
  let work: string;
  const daemons = new Daemons();
  let consolePath: string;

  const cli = (...args: string[]) => ns.exec('node', [MAIN, ...args, '--store', STORE]);
  const daemon = (name: string, cmd: string, args: string[]) => daemons.start(name, ns, cmd, args);
  const dump = () => daemons.dump(4000) + `\n--- console\n${readConsole(consolePath).slice(-6000)}`;

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error('dist/cli/main.js is missing: build first (npm test runs `npm run build`)');
    ensureQemuUser();
    const image = guestImage(GUEST_SCRIPT);
    work = mkdtempSync(join(tmpdir(), 'uct-e2e-'));
    consolePath = join(work, 'state', 'lab', 'web1', 'console.log');
    ns = await Netns.create('uce2e');

    // etcd, private to the namespace.
    daemon('etcd', 'etcd', etcdArgs({ name: 'e2e', dataDir: join(work, 'etcd'), client: 2379, peer: 2380 }));
    await eventually(() => ns.exec('etcdctl', ['--endpoints=127.0.0.1:2379', 'endpoint', 'health']).then(() => true), 20_000);

    // The operator's view: a network, two users, two VMs; only web1 is scheduled on this host.
    await cli('network', 'add', 'lab', '--prefix6', PREFIX, '--domain', 'lab.test', '--metadata6', METADATA6);
    await cli('user', 'key', 'add', 'alice', 'laptop', ED25519);
    await cli('user', 'key', 'add', 'bob', 'desk', BOB_KEY);
    await cli('vm', 'add', 'victim', '--network', 'lab', '--owner', 'bob', '--mac', '52:54:00:e2:e0:02', '--meta', 'secret=victim-only');
    await cli('vm', 'add', 'web1', '--network', 'lab', '--owner', 'alice', '--mac', WEB_MAC, '--host', 'hv-e2e',
      '--memory', '256', '--kernel', image.kernel, '--initrd', image.initrd, '--cmdline', 'console=ttyS0 quiet panic=-1');

    // The appliance's side of the network: the bridge holds the metadata address.
    await ns.sh(`
      sysctl -qw net.ipv6.conf.all.forwarding=1
      ip link add br-lab type bridge
      ip link add uplink0 type veth peer name uplink1
      ip link set uplink0 master br-lab up
      ip link set uplink1 up
      ip link set br-lab up
      ip addr add ${METADATA6}/64 dev br-lab nodad
    `);
    writeFileSync(join(work, 'radvd.conf'), await cli('ra-config', 'lab'));
    daemon('radvd', 'radvd', ['-n', '-C', join(work, 'radvd.conf'), '-p', join(work, 'radvd.pid'), '-m', 'stderr']);

    daemon('serve', 'node', [MAIN, 'serve', '--store', STORE, '--network', 'lab', '--dns', `[${METADATA6}]:53`, '--http', `[${METADATA6}]:80`]);
    await eventually(async () => (await ns.exec('dig', ['+short', `@${METADATA6}`, 'metadata.lab.test', 'AAAA'])).includes(METADATA6), 20_000)
      .catch((err) => { throw new Error(`serve did not answer: ${err.message}\n${dump()}`); });

    daemon('agent', 'node', [MAIN, 'agent', '--store', STORE, '--host', 'hv-e2e', '--state-dir', join(work, 'state'), '--accel', 'tcg',
      '--user', QEMU_USER, '--image-dir', dirname(image.kernel), '--image-dir', dirname(image.initrd)]);
    await eventually(() => readConsole(consolePath).includes('GUEST: done'), 240_000)
      .catch((err) => { throw new Error(`the guest did not finish: ${err.message}\n${dump()}`); });
  }, 420_000);

  afterAll(async () => {
    // Kept for whoever reads a failure: the guest's console and the daemons' logs.
    if (consolePath) writeFileSync(join(REPO, '.test-cache', 'e2e-last-run.log'), dump());
    await daemons.stop({ stateDir: work && join(work, 'state'), network: 'lab', names: ['web1'] });
    await ns?.delete();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('boots and takes its EUI-64 address by SLAAC, with DNS server and search domain from the RA', () => {
    const out = readConsole(consolePath);
    expect(out).toContain(`GUEST: addr inet6 ${WEB_ADDR}/64`);
    expect(out).toMatch(new RegExp(`GUEST: resolv search lab\\.test;nameserver ${METADATA6};`));
  });

  it('resolves `metadata` through its search domain', () => {
    const out = section(readConsole(consolePath), 'nslookup');
    expect(out).toContain('metadata.lab.test');
    expect(out).toContain(METADATA6);
  });

  it('fetches its own metadata and its owner\'s key, nothing of the other VM\'s', () => {
    const out = readConsole(consolePath);
    const keys = section(out, 'keys');
    expect(keys).toMatch(/^HTTP\/1\.[01] 200/m);
    expect(keys).toContain(ED25519.split(' ')[1]);
    expect(keys).not.toContain(BOB_KEY.split(' ')[1]);
    const instance = section(out, 'instance');
    expect(instance).toMatch(/^HTTP\/1\.[01] 200/m);
    expect(instance).toContain('web1');
    expect(instance).not.toContain('victim-only');
  });

  it('holding the other VM\'s address gets nothing of that VM\'s: the agent\'s rules drop it', async () => {
    const spoof = section(readConsole(consolePath), 'spoof');
    expect(spoof).toContain(VICTIM_ADDR); // the guest really held the address
    expect(spoof).not.toContain(BOB_KEY.split(' ')[1]);
    expect(spoof).not.toContain('victim-only');
    expect(spoof).not.toMatch(/^HTTP\//m);
    const chain = await ns.exec('nft', ['list', 'chain', 'bridge', 'uncloud_agent', chainName(tapName(WEB_MAC))]);
    // The allow list of its own source addresses does not hold the victim's: it dropped these.
    const allowList = chain.split('\n').find((l) => l.includes('ip6 saddr != {'))!;
    expect(allowList).not.toContain(VICTIM_ADDR);
    expect(Number(/packets (\d+)/.exec(allowList)![1])).toBeGreaterThan(0);
  });

  it('reports the VM as running on this host, and the host as alive', async () => {
    const state = JSON.parse(await ns.exec('etcdctl', ['--endpoints=127.0.0.1:2379', 'get', '--print-value-only', '/uncloud/hosts/hv-e2e/state/lab/web1']));
    expect(state).toMatchObject({ host: 'hv-e2e', state: 'running', restarts: 0 });
    expect(isOurQemu(state.pid, 'lab/web1')).toBe(true);
    const host = JSON.parse(await ns.exec('etcdctl', ['--endpoints=127.0.0.1:2379', 'get', '--print-value-only', '/uncloud/hosts/hv-e2e']));
    expect(host).toMatchObject({ name: 'hv-e2e' });
  });
});
