// A real Debian 12 cloud guest on the metadata network, launched by the agent. The image is built
// from Debian's packages with nothing added for cloud-init or the network (scripts/debian-guest.sh).
// In a network namespace: etcd, the operator CLI writing a network, users with keys and two VMs
// with user-data, `serve` on the metadata address, radvd from `ra-config`, and `agent` booting
// both guests under qemu (TCG) on copy-on-write overlays:
// - web1, the stock image: cloud-init finds NoCloud in the SMBIOS serial the agent gives and
//   fetches its seed from the appliance's address; the test logs in with the owner's key (another
//   key is refused) and checks hostname, user-data and that `metadata` resolves;
// - web2, the image with deploy/guest/ installed exactly as deploy/README.md says, booted with a
//   direct kernel whose command line ends with nocloud-kernel-cmdline.txt: the seed comes by name,
//   systemd-resolved answers `metadata`, sshd takes keys from the appliance at login, and the
//   README's networkd drop-in, run over SSH, gives the RA's search domain.
// web1 also publishes its SSH host keys with deploy/guest/uncloud-publish-hostkeys (from its
// user-data): `vm known-hosts` lines let ssh in with strict host key checking, and the DNS's
// SSHFP records equal `ssh-keygen -r` in the guest.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Netns } from './netns.js';
import { Daemons } from './daemons.js';
import { ssh, sshKey, type SshKey } from './ssh.js';
import { readConsole } from './guest.js';
import { etcdArgs } from '../support/etcd-global.js';
import { eventually } from '../support/store.js';
import { ensureQemuUser, QEMU_USER } from '../support/qemu-user.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(REPO, 'dist/cli/main.js');
const GUEST_FILES = join(REPO, 'deploy/guest');
const STORE = 'etcd://127.0.0.1:2379';
const METADATA6 = 'fd00:deb::53';
const VMS = {
  web1: { mac: '52:54:00:de:b0:01', address: 'fd00:deb::5054:ff:fede:b001', image: 'base.qcow2' },
  web2: { mac: '52:54:00:de:b0:02', address: 'fd00:deb::5054:ff:fede:b002', image: 'deploy.qcow2' },
} as const;
type VmName = keyof typeof VMS;
const BOOT_MS = 900_000; // two TCG guests at once on a shared, loaded machine
const IT_MS = 300_000; // a login to a TCG guest takes seconds on a loaded machine

/** Like `eventually`, but a few seconds apart: each try is an SSH login to a slow guest. */
function paced<T>(check: () => Promise<T>, ms: number): Promise<T> {
  return eventually(async () => {
    try {
      const v = await check();
      if (!v) throw new Error('not yet');
      return v;
    } catch (err) {
      await new Promise((r) => setTimeout(r, 3000));
      throw err;
    }
  }, ms);
}

/** The shell block after `<!-- marker -->` in deploy/README.md, verbatim. */
function readmeBlock(marker: string): string {
  const m = new RegExp(`<!-- ${marker} -->\\n\`\`\`sh\\n([\\s\\S]*?)\\n\`\`\``).exec(readFileSync(join(REPO, 'deploy/README.md'), 'utf8'));
  if (!m) throw new Error(`deploy/README.md has no <!-- ${marker} --> block`);
  return m[1];
}

// web1 also gets deploy/guest/uncloud-publish-hostkeys, byte for byte, the way deploy/README.md
// says to deliver it in user-data (write_files, then runcmd): it publishes the host keys.
const publisher = readFileSync(join(GUEST_FILES, 'uncloud-publish-hostkeys')).toString('base64');
const userData = (vm: VmName) => `#cloud-config
write_files:
  - path: /var/lib/uncloud-test/marker
    content: "user-data of ${vm} applied\\n"
${vm === 'web1' ? `  - path: /usr/local/sbin/uncloud-publish-hostkeys
    permissions: '0755'
    encoding: b64
    content: ${publisher}
runcmd:
  - [/usr/local/sbin/uncloud-publish-hostkeys]
` : ''}`;

describe('a Debian 12 cloud guest launched by the agent', () => {
  let ns: Netns;
  let work: string;
  let images: string;
  const daemons = new Daemons();
  const keys = {} as Record<'alice' | 'mallory' | 'alice2', SshKey>;
  const ids = {} as Record<VmName, string>;
  const bootSeconds = {} as Record<VmName, number>;

  const cli = (...args: string[]) => ns.exec('node', [MAIN, ...args, '--store', STORE]);
  const daemon = (name: string, cmd: string, args: string[]) => daemons.start(name, ns, cmd, args);
  const consoleOf = (vm: VmName) => readConsole(join(work, 'state', 'lab', vm, 'console.log'));
  const dump = () => daemons.dump(3000)
    + (Object.keys(VMS) as VmName[]).map((vm) => `\n--- console ${vm}\n${consoleOf(vm).slice(-5000)}`).join('');
  const as = (vm: VmName, key: SshKey, command: string, timeoutMs?: number) => ssh(ns.name, key, VMS[vm].address, command, timeoutMs);
  /** Runs `command` in the guest as the owner; fails the test with its stderr when it fails. */
  const inGuest = async (vm: VmName, command: string, timeoutMs?: number) => {
    const r = await as(vm, keys.alice, command, timeoutMs);
    if (!r.ok) throw new Error(`${vm}: ${command}: ${r.stderr}`);
    return r.stdout;
  };

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error('dist/cli/main.js is missing: build first (npm test runs `npm run build`)');
    const qemuUid = ensureQemuUser();
    images = execFileSync('bash', [join(REPO, 'scripts/debian-guest.sh')], { encoding: 'utf8', timeout: 900_000, stdio: ['ignore', 'pipe', 'inherit'] })
      .trim().split('\n').pop()!;
    work = mkdtempSync(join(tmpdir(), 'uct-debian-'));
    chmodSync(work, 0o755);
    for (const name of ['alice', 'mallory', 'alice2'] as const) keys[name] = sshKey(work, name);

    // Each VM's disk: a copy-on-write overlay of the cached image, writable by qemu's user.
    const disks = join(work, 'disks');
    mkdirSync(disks);
    for (const [vm, { image }] of Object.entries(VMS)) {
      const disk = join(disks, `${vm}.qcow2`);
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', join(images, image), '-F', 'qcow2', disk]);
      chownSync(disk, qemuUid, -1);
    }

    ns = await Netns.create('ucdeb');
    daemon('etcd', 'etcd', etcdArgs({ name: 'deb', dataDir: join(work, 'etcd'), client: 2379, peer: 2380 }));
    await eventually(() => ns.exec('etcdctl', ['--endpoints=127.0.0.1:2379', 'endpoint', 'health']).then(() => true), 30_000);

    // The operator: a network, the owner with a key, another user, two VMs with user-data.
    await cli('network', 'add', 'lab', '--prefix6', 'fd00:deb::/64', '--domain', 'lab.test', '--metadata6', METADATA6);
    await cli('user', 'key', 'add', 'alice', 'laptop', keys.alice.pub);
    await cli('user', 'key', 'add', 'mallory', 'desk', keys.mallory.pub);
    const cmdline = `root=PARTUUID=${readFileSync(join(images, 'root-partuuid'), 'utf8').trim()} ro console=ttyS0,115200 `
      + readFileSync(join(GUEST_FILES, 'nocloud-kernel-cmdline.txt'), 'utf8').trim();
    for (const [vm, { mac }] of Object.entries(VMS) as [VmName, (typeof VMS)[VmName]][]) {
      writeFileSync(join(work, `${vm}.user-data`), userData(vm));
      await cli('vm', 'add', vm, '--network', 'lab', '--owner', 'alice', '--mac', mac, '--host', 'hv-deb',
        '--memory', '512', '--cpus', '1', '--disk', join(disks, `${vm}.qcow2`), '--disk-format', 'qcow2',
        '--user-data', join(work, `${vm}.user-data`),
        ...(vm === 'web2' ? ['--kernel', join(images, 'vmlinuz'), '--initrd', join(images, 'initrd.img'), '--cmdline', cmdline] : []));
      ids[vm] = JSON.parse(await cli('vm', 'show', vm, '--json')).id;
    }

    // The appliance's side of the network: the bridge holds the metadata address.
    await ns.sh(`
      sysctl -qw net.ipv6.conf.all.forwarding=1
      ip link add br-lab type bridge
      ip link set br-lab up
      ip addr add ${METADATA6}/64 dev br-lab nodad
    `);
    writeFileSync(join(work, 'radvd.conf'), await cli('ra-config', 'lab'));
    daemon('radvd', 'radvd', ['-n', '-C', join(work, 'radvd.conf'), '-p', join(work, 'radvd.pid'), '-m', 'stderr']);
    daemon('serve', 'node', [MAIN, 'serve', '--store', STORE, '--network', 'lab', '--dns', `[${METADATA6}]:53`, '--http', `[${METADATA6}]:80`]);
    await eventually(async () => (await ns.exec('dig', ['+short', `@${METADATA6}`, 'metadata.lab.test', 'AAAA'])).includes(METADATA6), 30_000)
      .catch((err) => { throw new Error(`serve did not answer: ${err.message}\n${dump()}`); });

    const started = Date.now();
    daemon('agent', 'node', [MAIN, 'agent', '--store', STORE, '--host', 'hv-deb', '--state-dir', join(work, 'state'), '--accel', 'tcg',
      '--user', QEMU_USER, '--image-dir', images, '--image-dir', disks]);
    // Boot to the first login with the owner's key, both guests at once.
    await Promise.all((Object.keys(VMS) as VmName[]).map(async (vm) => {
      await paced(async () => {
        const r = await as(vm, keys.alice, 'true');
        if (!r.ok) throw new Error(r.stderr);
        return true;
      }, BOOT_MS).catch((err) => { throw new Error(`${vm}: no SSH login: ${err.message}\n${dump()}`); });
      bootSeconds[vm] = Math.round((Date.now() - started) / 1000);
    }));
    process.stdout.write(`[figure] Debian 12 guest, agent start to SSH login (TCG, 1 vCPU, 512 MiB, both booting at once): stock ${bootSeconds.web1} s, deploy/guest ${bootSeconds.web2} s\n`);
    // cloud-init's last stage may still run after sshd is up.
    await Promise.all((Object.keys(VMS) as VmName[]).map((vm) => inGuest(vm, 'cloud-init status --wait >/dev/null; true', 600_000)));
  }, BOOT_MS + 900_000);

  afterAll(async () => {
    if (work) writeFileSync(join(REPO, '.test-cache', 'debian-guest-last-run.log'), dump());
    await daemons.stop({ stateDir: work && join(work, 'state'), network: 'lab', names: Object.keys(VMS) });
    await ns?.delete();
    if (work) rmSync(work, { recursive: true, force: true });
  }, 60_000);

  describe('web1: the stock image, nothing added', () => {
    it('cloud-init found NoCloud in the SMBIOS serial and read the seed from the appliance\'s address', async () => {
      const status = await inGuest('web1', 'cloud-init status --long');
      expect(status).toMatch(/^status: done$/m);
      expect(status).toContain(`DataSourceNoCloudNet [seed=dmi,http://[${METADATA6}]/nocloud/][dsmode=net]`);
      expect((await inGuest('web1', 'sudo cat /sys/class/dmi/id/product_uuid')).trim()).toBe(ids.web1);
      expect(await inGuest('web1', 'sudo grep -h "^DMI_PRODUCT_SERIAL=\\|^Found" /run/cloud-init/ds-identify.log'))
        .toContain(`DMI_PRODUCT_SERIAL=ds=nocloud-net;s=http://[${METADATA6}]/nocloud/`);
    }, IT_MS);

    it('has its hostname and its user-data applied', async () => {
      expect((await inGuest('web1', 'hostname')).trim()).toBe('web1');
      expect(await inGuest('web1', 'cat /var/lib/uncloud-test/marker')).toBe('user-data of web1 applied\n');
    }, IT_MS);

    it('lets the owner in with their key and refuses another user\'s key', async () => {
      expect((await inGuest('web1', 'id -un')).trim()).toBe('debian');
      const other = await as('web1', keys.mallory, 'true');
      expect(other.ok).toBe(false);
      expect(other.stderr).toMatch(/Permission denied \(publickey/);
    }, IT_MS);

    it('resolves `metadata` for glibc programs (bare name to the RA\'s DNS server), not through systemd-resolved, and has no search domain', async () => {
      expect(await inGuest('web1', 'getent ahostsv6 metadata')).toContain(METADATA6);
      expect(await inGuest('web1', 'curl -fsS http://metadata/nocloud/meta-data')).toContain(`instance-id: ${ids.web1}`);
      const resolv = await inGuest('web1', 'readlink /etc/resolv.conf; grep -v "^#" /etc/resolv.conf');
      expect(resolv).toContain('/run/systemd/resolve/resolv.conf');
      expect(resolv).toContain(`nameserver ${METADATA6}`);
      expect(resolv).not.toContain('lab.test'); // networkd ignores the RA's DNSSL without UseDomains=yes
      // systemd-resolved itself never sends a single-label name to unicast DNS.
      expect((await as('web1', keys.alice, 'resolvectl query metadata')).ok).toBe(false);
    }, IT_MS);
  });

  describe('web1: host keys published, so nobody trusts on first use (issue 15)', () => {
    it('`vm known-hosts` lets ssh in with StrictHostKeyChecking=yes; a wrong host key is refused', async () => {
      const known = join(work, 'known_hosts');
      writeFileSync(known, await paced(() => cli('vm', 'known-hosts', 'web1'), 120_000));
      expect(readFileSync(known, 'utf8')).toMatch(new RegExp(`^web1,web1\\.lab\\.test,${VMS.web1.address} ssh-ed25519 `, 'm'));
      const checked = await ssh(ns.name, keys.alice, VMS.web1.address, 'true', 120_000, 'debian', known);
      expect(checked.stderr).toBe('');
      expect(checked.ok).toBe(true);
      // The same lines with another key in place of each: ssh must refuse the host.
      const wrong = join(work, 'known_hosts.wrong');
      writeFileSync(wrong, readFileSync(known, 'utf8').split('\n').filter(Boolean).map((l) => `${l.split(' ')[0]} ${keys.mallory.pub.split(' ').slice(0, 2).join(' ')}`).join('\n') + '\n');
      const refused = await ssh(ns.name, keys.alice, VMS.web1.address, 'true', 120_000, 'debian', wrong);
      expect(refused.ok).toBe(false);
      expect(refused.stderr).toMatch(/Host key verification failed/);
    }, IT_MS);

    it('the DNS answers SSHFP for its name equal to `ssh-keygen -r` inside the guest (SHA-256 records)', async () => {
      const inside = (await inGuest('web1', 'ssh-keygen -r web1.lab.test'))
        .split('\n').filter((l) => / IN SSHFP \d+ 2 /.test(l)).map((l) => l.split(' IN SSHFP ')[1].toLowerCase()).sort();
      const dug = (await ns.exec('dig', ['+short', `@${METADATA6}`, 'web1.lab.test', 'SSHFP'])).trim().split('\n')
        .map((l) => { const [a, t, ...hex] = l.split(' '); return `${a} ${t} ${hex.join('').toLowerCase()}`; }).sort();
      expect(inside.length).toBeGreaterThanOrEqual(2); // Debian generates ed25519, ecdsa and rsa keys
      expect(dug).toEqual(inside);
    }, IT_MS);
  });

  describe('web2: deploy/guest installed as deploy/README.md says', () => {
    it('fetched its seed by name, as cloud-init-uncloud.cfg says: `metadata` resolved in cloud-init\'s network stage', async () => {
      const status = await inGuest('web2', 'cloud-init status --long');
      expect(status).toMatch(/^status: done$/m);
      expect(status).toMatch(/DataSourceNoCloudNet \[seed=dmi,cmdline,ds_config_seedfrom,http:\/\/metadata\/nocloud\/\]\[dsmode=net\]/);
      expect(await inGuest('web2', 'cat /proc/cmdline')).toContain(readFileSync(join(GUEST_FILES, 'nocloud-kernel-cmdline.txt'), 'utf8').trim());
      expect((await inGuest('web2', 'hostname')).trim()).toBe('web2');
      expect(await inGuest('web2', 'cat /var/lib/uncloud-test/marker')).toBe('user-data of web2 applied\n');
    }, IT_MS);

    it('resolves `metadata` through systemd-resolved too (resolved-single-label.conf)', async () => {
      expect(await inGuest('web2', 'resolvectl query metadata')).toContain(METADATA6);
      expect(await inGuest('web2', 'getent ahostsv6 metadata')).toContain(METADATA6);
    }, IT_MS);

    it('takes the owner\'s keys from the appliance at each login: a key added now works at once, another user\'s never', async () => {
      expect((await as('web2', keys.alice2, 'true')).ok).toBe(false);
      await cli('user', 'key', 'add', 'alice', 'second', keys.alice2.pub);
      await paced(async () => (await as('web2', keys.alice2, 'true')).ok, 120_000);
      // Only the command knows the new key: cloud-init wrote the first one at boot.
      expect(await inGuest('web2', 'cat ~/.ssh/authorized_keys')).not.toContain(keys.alice2.pub.split(' ')[1]);
      const other = await as('web2', keys.mallory, 'true');
      expect(other.ok).toBe(false);
      expect(other.stderr).toMatch(/Permission denied \(publickey/);
    }, IT_MS);

    it('takes the RA\'s search domain once the README\'s networkd drop-in is installed', async () => {
      const dropIn = readFileSync(join(GUEST_FILES, 'networkd-ra-domains.conf'), 'utf8');
      await inGuest('web2', `cat > /tmp/networkd-ra-domains.conf <<'EOF'\n${dropIn}EOF`);
      await inGuest('web2', `cd /tmp && sudo sh -ec '${readmeBlock('guest-networkd').replace(/'/g, `'\\''`)}'`);
      await paced(async () => (await inGuest('web2', 'cat /etc/resolv.conf')).includes('search lab.test'), 180_000);
      // The other VM by its short name, through the search list.
      expect(await inGuest('web2', 'getent ahostsv6 web1')).toContain(VMS.web1.address);
    }, IT_MS);
  });
});
