// The operator CLI as a user runs it: the built binary, against the run's real etcd and a file
// store. Every error is one line on stderr, a non-zero exit, and no write (revision unchanged).
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdEndpoint, uniquePrefix, ED25519 } from '../../test/support/store.js';
import { openStore } from '../store/open.js';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '../../dist/cli/main.js');

interface Result { code: number; stdout: string; stderr: string }

async function cli(args: string[], env: Record<string, string> = {}): Promise<Result> {
  try {
    const r = await run(process.execPath, [BIN, ...args], { env: { ...process.env, UNCLOUD_METADATA_STORE: '', ...env } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const dir = mkdtempSync(join(tmpdir(), 'uncloud-cli-'));
const keyFile = join(dir, 'id.pub');
writeFileSync(keyFile, `${ED25519}\n`);
writeFileSync(join(dir, 'user-data'), '#cloud-config\nhostname: x\n');

for (const kind of ['etcd', 'file'] as const) {
  describe(`CLI on ${kind}`, () => {
    const prefix = uniquePrefix();
    let url = '';
    let base: string[] = [];
    // What this test's prefix holds (keys and their mod revisions): etcd's global revision moves
    // with other test files' writes, so "no write" is judged on our own keys.
    const revision = async () => {
      const s = openStore(url, { prefix });
      try {
        return JSON.stringify((await s.kv.range(`${prefix}/`)).entries.map((e) => [e.key, e.modRevision]));
      } finally {
        await s.kv.close();
      }
    };

    beforeAll(async () => {
      url = kind === 'etcd' ? `etcd://${etcdEndpoint()}` : `file:${join(dir, 'state.json')}`;
      base = ['--store', url, '--prefix', prefix];
      const ok = async (args: string[]) => {
        const r = await cli([...args, ...base]);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        return r;
      };
      await ok(['network', 'add', 'lab', '--prefix6', '2001:db8:7::/64', '--prefix4', '10.7.0.0/24', '--domain', 'lab.example', '--metadata6', '2001:db8:7::1', '--upstream', '[::1]:5353']);
      await ok(['user', 'key', 'add', 'alice', 'laptop', '--file', keyFile]);
      await ok(['vm', 'add', 'web1', '--network', 'lab', '--owner', 'alice', '--mac', '52:54:00:07:00:01', '--user-data', join(dir, 'user-data'), '--meta', 'role=web']);
    });

    it('prints records as tables and JSON', async () => {
      const list = await cli(['vm', 'list', ...base]);
      expect(list.stdout).toMatch(/web1\s+lab\s+52:54:00:07:00:01\s+2001:db8:7:0:5054:ff:fe07:1\s+alice/);
      const json = JSON.parse((await cli(['vm', 'show', 'web1', '--json', ...base])).stdout);
      expect(json).toMatchObject({ name: 'web1', network: 'lab', owner: 'alice', meta: { role: 'web' }, userData: '#cloud-config\nhostname: x\n' });
      expect(JSON.parse((await cli(['network', 'list', '--json', ...base])).stdout)[0].upstreams).toEqual(['[::1]:5353']);
      expect((await cli(['user', 'show', 'alice', ...base])).stdout).toContain(ED25519);
    });

    it('status shows the store, its networks and where VMs run', async () => {
      const r = await cli(['status', ...base]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^store\s+(etcd|file):/);
      expect(r.stdout).toMatch(/lab\s+2001:db8:7::\/64\s+lab\.example\s+2001:db8:7::1\s+1/);
      expect(r.stdout).toMatch(/\(unscheduled\)/);
      const json = JSON.parse((await cli(['status', '--json', ...base])).stdout);
      expect(json.store.reachable).toBe(true);
      expect(json.networks).toEqual([{ name: 'lab', prefix6: '2001:db8:7::/64', domain: 'lab.example', metadata6: '2001:db8:7::1', vms: 1 }]);
    });

    it('ra-config prints radvd and dnsmasq configs for a network', async () => {
      const radvd = await cli(['ra-config', 'lab', ...base]);
      expect(radvd.stdout).toMatch(/interface br-lab/);
      expect(radvd.stdout).toMatch(/RDNSS 2001:db8:7::1/);
      expect(radvd.stdout).toMatch(/DNSSL lab\.example/);
      const dnsmasq = await cli(['ra-config', 'lab', '--format', 'dnsmasq', ...base]);
      expect(dnsmasq.stdout).toMatch(/dhcp-option=option6:dns-server,\[2001:db8:7::1\]/);
      const bad = await cli(['ra-config', 'lab', '--format', 'bird', ...base]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    });

    it('vm set changes only what it names', async () => {
      expect((await cli(['vm', 'set', 'web1', '--meta', 'tier=1', '--memory', '1024', ...base])).code).toBe(0);
      expect((await cli(['vm', 'set', 'web1', '--meta', 'role=', ...base])).code).toBe(0);
      const json = JSON.parse((await cli(['vm', 'show', 'web1', '--json', ...base])).stdout);
      expect(json.meta).toEqual({ tier: '1' });
      expect(json.resources.memoryMiB).toBe(1024);
      expect(json.owner).toBe('alice');
    });

    const bad: [string, string[], RegExp][] = [
      ['a name that is not a DNS label', ['vm', 'add', 'Web_1', '--network', 'lab'], /name: must be a DNS label/],
      ['an unknown network', ['vm', 'add', 'web2', '--network', 'nope'], /network "nope" does not exist/],
      ['a malformed MAC', ['vm', 'add', 'web2', '--network', 'lab', '--mac', '52:54:00:zz:00:01'], /not a unicast MAC/],
      ['a duplicate MAC', ['vm', 'add', 'web2', '--network', 'lab', '--mac', '52:54:00:07:00:01'], /MAC 52:54:00:07:00:01 is already used/],
      ['a duplicate name', ['vm', 'add', 'web1', '--network', 'lab'], /already exists/],
      ['an address outside the network', ['vm', 'add', 'web2', '--network', 'lab', '--address', '2001:db8:8::5'], /not inside 2001:db8:7::\/64/],
      ['a malformed address', ['vm', 'add', 'web2', '--network', 'lab', '--address', '2001:db8:7::zz'], /not an IPv4\/IPv6 address/],
      ['an unknown owner', ['vm', 'add', 'web2', '--network', 'lab', '--owner', 'mallory'], /user "mallory" does not exist/],
      ['a bad memory size', ['vm', 'add', 'web2', '--network', 'lab', '--memory', 'lots'], /memory must be a positive whole number/],
      ['bad meta', ['vm', 'add', 'web2', '--network', 'lab', '--meta', 'novalue'], /meta must be KEY=VALUE/],
      ['a missing user-data file', ['vm', 'add', 'web2', '--network', 'lab', '--user-data', join(dir, 'missing')], /cannot read .*missing: ENOENT/],
      ['a disk whose format cannot be read here', ['vm', 'add', 'web2', '--network', 'lab', '--disk', join(dir, 'nope.raw'), '--kernel', 'vmlinuz'], /--disk .*nope\.raw: cannot read it here to detect its format \(ENOENT\); give --disk-format raw\|qcow2/],
      ['an unsupported disk format', ['vm', 'add', 'web2', '--network', 'lab', '--disk', 'a.img', '--disk-format', 'vmdk'], /argument 'vmdk' is invalid. Allowed choices are raw, qcow2/],
      ['a command line without a kernel', ['vm', 'add', 'web2', '--network', 'lab', '--disk', 'a.img', '--disk-format', 'raw', '--cmdline', 'ro'], /initrd and cmdline need a kernel/],
      ['a malformed CIDR', ['network', 'add', 'n2', '--prefix6', '2001:db8::1/64', '--domain', 'n2.example', '--metadata6', '2001:db8::1'], /prefix6: must be an IPv6 prefix/],
      ['a prefix longer than /64', ['network', 'add', 'n2', '--prefix6', '2001:db8:9::/80', '--domain', 'n2.example', '--metadata6', '2001:db8:9::1'], /must be \/64 or shorter/],
      ['a prefix shorter than /64', ['network', 'add', 'n2', '--prefix6', '2001:db8:9::/56', '--domain', 'n2.example', '--metadata6', '2001:db8:9::1'], /prefix6 must be a \/64 .*not 2001:db8:9::\/56/],
      ['an overlapping prefix', ['network', 'add', 'n2', '--prefix6', '2001:db8:7::/64', '--domain', 'n2.example', '--metadata6', '2001:db8:7::99'], /overlaps network "lab"/],
      ['a duplicate network', ['network', 'add', 'lab', '--prefix6', '2001:db8:9::/64', '--domain', 'x.example', '--metadata6', '2001:db8:9::1'], /network "lab" already exists/],
      ['a metadata address outside the prefix', ['network', 'add', 'n2', '--prefix6', '2001:db8:9::/64', '--domain', 'n2.example', '--metadata6', '2001:db8:a::1'], /metadata6 .* is not inside/],
      ['a missing required option', ['network', 'add', 'n2', '--domain', 'n2.example'], /required option '--prefix6 <cidr>' not specified/],
      ['a bad domain', ['network', 'add', 'n2', '--prefix6', '2001:db8:9::/64', '--domain', 'bad_domain!', '--metadata6', '2001:db8:9::1'], /is not a domain name/],
      ['a malformed key', ['user', 'key', 'add', 'bob', 'k', 'ssh-ed25519 AAAAnotakey'], /SSH key data/],
      ['a key of the wrong type', ['user', 'key', 'add', 'bob', 'k', ED25519.replace('ssh-ed25519', 'ssh-rsa')], /does not match its type/],
      ['a duplicate key name', ['user', 'key', 'add', 'alice', 'laptop', ED25519], /already has a key named "laptop"/],
      ['a missing key file', ['user', 'key', 'add', 'bob', 'k', '--file', join(dir, 'nope.pub')], /cannot read/],
      ['removing a network in use', ['network', 'rm', 'lab'], /still has 1 VM/],
      ['removing a user who owns VMs', ['user', 'rm', 'alice'], /owns 1 VM/],
      ['removing an unknown VM', ['vm', 'rm', 'ghost'], /VM "ghost" does not exist/],
      ['an unknown command', ['vm', 'explode'], /unknown command 'explode'/],
      ['an unknown option', ['vm', 'list', '--colour'], /unknown option '--colour'/],
    ];
    for (const [what, args, message] of bad) {
      it(`refuses ${what}: one line, non-zero, no write`, async () => {
        const before = await revision();
        const r = await cli([...args, ...base]);
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(message);
        expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
        expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/);
        expect(await revision()).toBe(before);
      });
    }
  });
}

describe('CLI store selection', () => {
  it('explains a missing or malformed store URL in one line', async () => {
    const none = await cli(['vm', 'list']);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/^error: no store given/);
    const bad = await cli(['vm', 'list', '--store', 'redis://x']);
    expect(bad.stderr).toMatch(/must start with etcd:\/\/ or file:/);
  });
  it('reports an unreachable etcd in one line with its own exit code', async () => {
    const r = await cli(['vm', 'list', '--store', 'etcd://127.0.0.1:1']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^error: store unavailable/);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  }, 20_000);
  it('takes the store from the environment', async () => {
    const r = await cli(['network', 'list'], { UNCLOUD_METADATA_STORE: `file:${join(dir, 'empty.json')}` });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^NAME/);
  });
});

afterAll(() => undefined);
