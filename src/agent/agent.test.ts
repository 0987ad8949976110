// The agent against real etcd, real qemu (TCG, no guest OS: the firmware idles), real links and
// nftables inside a network namespace (ip, nft and qemu run through `ip netns exec` wrappers).
import { createMetricsRegistry } from '../metrics.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, mkdirSync, readdirSync, rmSync, existsSync, writeFileSync, chmodSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdTestStore, eventually, type TestStore } from '../../test/support/store.js';
import { Netns } from '../../test/e2e/netns.js';
import { silentLogger } from '../log.js';
import { startAgent, type Agent, type AgentOptions } from './agent.js';
import { isOurQemu, probeAccel, readPid, vmFiles } from './qemu.js';
import { qmpCommand } from './qmp.js';
import { bridgeMac, tapName } from './names.js';
import { ensureQemuUser, QEMU_USER } from '../../test/support/qemu-user.js';
import { TABLE } from './nft.js';
import { Links, TapTaken } from './links.js';
import { VmStateSchema, HostSchema } from '../model/schema.js';


describe('probeAccel', () => {
  const fake = (body: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'uct-fakeqemu-'));
    const p = join(dir, 'qemu');
    writeFileSync(p, `#!/bin/sh\n${body}\n`);
    chmodSync(p, 0o755);
    return p;
  };
  it('picks kvm only when the probe guest ran (exit 3), tcg when it hangs or fails', async () => {
    expect(await probeAccel(fake('exit 3'))).toBe('kvm');
    expect(await probeAccel(fake('exit 1'))).toBe('tcg');
    expect(await probeAccel(fake('sleep 30'), 500)).toBe('tcg');
  });
});

describe('agent', () => {
  let ts: TestStore;
  let ns: Netns;
  let stateDir: string;
  let agent: Agent | undefined;
  let base: AgentOptions;
  const key = 'lab/web1';
  const MAC = '52:54:00:aa:00:01';
  let uid: number;

  const state = async () => {
    const e = await ts.store.kv.get(ts.store.keys.vmState('hv1', 'lab', 'web1'));
    return e ? VmStateSchema.parse(JSON.parse(e.value)) : undefined;
  };

  beforeAll(async () => {
    uid = ensureQemuUser();
    ts = etcdTestStore();
    ns = await Netns.create('ucagt');
    stateDir = mkdtempSync(join(tmpdir(), 'uct-agent-'));
    base = {
      store: ts.store, host: 'hv1', stateDir, accel: 'tcg', log: silentLogger(), imageDirs: [], user: QEMU_USER,
      qemu: ns.wrapper('qemu-system-x86_64'), ip: ns.wrapper('ip'), nft: ns.wrapper('nft'), cat: ns.wrapper('cat'),
      sweepMs: 200, stopTimeoutMs: 1000, backoffMs: 200, heartbeatTtlSeconds: 2,
    };
    await ts.writer.addNetwork({ name: 'lab', prefix6: 'fd00:7::/64', domain: 'lab.example', metadata6: 'fd00:7::53' });
    await ts.writer.addVm({ name: 'web1', network: 'lab', host: 'hv1', mac: MAC, resources: { memoryMiB: 64, cpus: 1 } });
    await ts.writer.addVm({ name: 'db1', network: 'lab', host: 'hv2', mac: '52:54:00:aa:00:02', resources: { memoryMiB: 64, cpus: 1 } });
  });

  afterAll(async () => {
    await agent?.stop();
    // Every qemu this test's agent started (found by its state dir), also after a failed test.
    for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
      try {
        if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(`${stateDir}/`)) process.kill(Number(d), 'SIGKILL');
      } catch { /* gone */ }
    }
    await ns?.delete();
    await ts?.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('starts the VMs scheduled to its host, on a bridge and tap, behind its rules, and reports them', async () => {
    const metrics = createMetricsRegistry(false);
    agent = await startAgent({ ...base, metrics });
    const s = await eventually(async () => { const v = await state(); return v?.state === 'running' ? v : undefined; }, 20_000);
    expect(s).toMatchObject({ host: 'hv1', state: 'running', restarts: 0 });
    const actions = await metrics.getSingleMetricAsString('uncloud_metadata_agent_actions_total');
    expect(actions).toMatch(/action="started"} 1/);
    expect(actions).toMatch(/action="rules_applied"} [1-9]/);
    expect(agent.ready()).toBe(true);
    expect(isOurQemu(s!.pid!, key)).toBe(true);
    // Only its own VM: db1 belongs to hv2.
    expect(await ts.store.kv.get(ts.store.keys.vmState('hv2', 'lab', 'db1'))).toBeUndefined();
    expect(existsSync(join(stateDir, 'lab', 'db1'))).toBe(false);

    const tap = tapName(MAC);
    expect(tap).toBe('uc525400aa0001');
    const link = JSON.parse(await ns.ip(['-d', '-j', 'link', 'show', tap]))[0];
    expect(link.master).toBe('br-lab');
    expect(link.ifalias).toBe('uncloud-agent:lab/web1');
    expect(link.address).toMatch(/^fe:/); // never the lowest port of a bridge
    expect(link.linkinfo.info_data.user).toBe(QEMU_USER); // the tap belongs to qemu's user
    const bridge = JSON.parse(await ns.ip(['-j', 'link', 'show', 'br-lab']))[0];
    expect(bridge.address).toBe(bridgeMac('hv1', 'lab'));
    expect((await ns.exec('cat', ['/sys/class/net/br-lab/addr_assign_type'])).trim()).toBe('3'); // set, not inherited

    // qemu runs as the unprivileged user, under seccomp, with the VM's id and NoCloud hints.
    const status = readFileSync(`/proc/${s!.pid}/status`, 'utf8');
    expect(/^Uid:\s+(.*)$/m.exec(status)![1].split(/\s+/)).toEqual([String(uid), String(uid), String(uid), String(uid)]);
    expect(/^CapEff:\s+(\w+)/m.exec(status)![1]).toBe('0000000000000000');
    expect(/^Seccomp:\s+(\d)/m.exec(status)![1]).toBe('2');
    const argv = readFileSync(`/proc/${s!.pid}/cmdline`, 'utf8').split('\0');
    const vm = await ts.writer.findVm('web1', 'lab');
    expect(argv[argv.indexOf('-uuid') + 1]).toBe(vm.vm.id);
    expect(argv[argv.indexOf('-smbios') + 1]).toBe('type=1,manufacturer=uncloud,product=uncloud-metadata,serial=ds=nocloud-net;s=http://[fd00:7::53]/nocloud/');
    expect(argv[argv.indexOf('-runas') + 1]).toBe(QEMU_USER);
    const rules = await ns.exec('nft', ['list', 'table', 'bridge', TABLE]);
    expect(rules).toContain(`iifname "${tap}"`);
    expect(rules).toContain('ether saddr != 52:54:00:aa:00:01');
    // The allow list of its sources holds its own address, never the metadata address or db1's.
    const sources = rules.split('\n').find((l) => l.includes('ip6 saddr != {'))!;
    expect(sources).toContain('fd00:7::5054:ff:feaa:1');
    expect(sources).not.toContain('fd00:7::53');
    expect(sources).not.toContain('fd00:7::5054:ff:feaa:2');
    // From guests, the host takes only DNS and HTTP on the network's metadata address.
    expect(await ns.exec('nft', ['list', 'chain', 'inet', TABLE, 'input'])).toContain('iifname "br-lab" ip6 daddr { fd00:7::53, fe80::/64 } tcp dport { 53, 80 } accept');

    expect(await qmpCommand(vmFiles(join(stateDir, 'lab', 'web1')).qmp, 'query-status')).toMatchObject({ running: true });
    const host = await ts.store.kv.get(ts.store.keys.host('hv1'));
    expect(HostSchema.parse(JSON.parse(host!.value))).toMatchObject({ name: 'hv1', vms: 1 });
  }, 60_000);

  it('adopts the running VM after a restart instead of starting a second one', async () => {
    const before = (await state())!;
    await agent!.stop();
    agent = undefined;
    expect(isOurQemu(before.pid!, key)).toBe(true); // stopping the agent leaves VMs running
    await eventually(async () => !(await ts.store.kv.get(ts.store.keys.host('hv1'))), 5000); // lease revoked
    const metrics = createMetricsRegistry(false);
    agent = await startAgent({ ...base, metrics });
    await new Promise((r) => setTimeout(r, 1000));
    expect(await metrics.getSingleMetricAsString('uncloud_metadata_agent_actions_total')).toMatch(/action="adopted"} 1/);
    const after = (await state())!;
    expect(after).toMatchObject({ state: 'running', pid: before.pid, since: before.since, restarts: 0 });
    expect(readPid(join(stateDir, 'lab', 'web1'))).toBe(before.pid);
    expect(await ts.store.kv.get(ts.store.keys.host('hv1'))).toBeDefined();
  }, 60_000);

  it('restarts a qemu that died, and records it', async () => {
    const before = (await state())!;
    process.kill(before.pid!, 'SIGKILL');
    const after = await eventually(async () => {
      const s = await state();
      return s?.state === 'running' && s.pid !== before.pid ? s : undefined;
    }, 20_000);
    expect(after).toMatchObject({ restarts: 1, lastError: 'qemu exited' });
    expect(isOurQemu(after!.pid!, key)).toBe(true);
    expect(isOurQemu(before.pid!, key)).toBe(false);
  }, 60_000);

  it('restarts the VM when its configuration changes', async () => {
    const before = (await state())!;
    await ts.writer.setVm('web1', 'lab', { resources: { memoryMiB: 96 } });
    const after = await eventually(async () => {
      const s = await state();
      return s?.state === 'running' && s.pid !== before.pid ? s : undefined;
    }, 20_000);
    expect(isOurQemu(before.pid!, key)).toBe(false);
    expect(readFileSync(`/proc/${after!.pid}/cmdline`, 'utf8').split('\0')).toContain('96');
  }, 60_000);

  it('stops the VM, removes its tap, rules and state when it moves to another host', async () => {
    const pid = (await state())!.pid!;
    const tap = tapName(MAC);
    await ts.writer.setVm('web1', 'lab', { host: 'hv9' });
    await eventually(() => !isOurQemu(pid, key), 15_000);
    await eventually(async () => !(await state()), 10_000);
    await eventually(async () => !(await ns.ip(['-j', 'link', 'show']).then((o) => o.includes(`"${tap}"`))), 5000);
    const rules = await ns.exec('nft', ['list', 'table', 'bridge', TABLE]);
    expect(rules).not.toContain(tap);
    // The bridge stays: it is the network's, not the VM's.
    expect(await ns.ip(['link', 'show', 'br-lab'])).toContain('br-lab');
  }, 60_000);

  it('removes a tap left unlabelled by an agent killed between creating and labelling it', async () => {
    // What the killed agent left: the VM's directory (written before the tap) and a bare tap.
    const tap = tapName('52:54:00:aa:00:99');
    mkdirSync(join(stateDir, 'lab', 'gone1'), { recursive: true });
    writeFileSync(vmFiles(join(stateDir, 'lab', 'gone1')).tap, tap);
    await ns.ip(['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
    await agent?.stop();
    agent = await startAgent(base);
    await eventually(async () => !(await ns.ip(['-j', 'link', 'show']).then((o) => o.includes(`"${tap}"`))), 10_000);
    await eventually(() => !existsSync(join(stateDir, 'lab', 'gone1')), 5000);
    expect(readdirSync(join(stateDir, '.retired')).some((d) => d.startsWith('lab-gone1-'))).toBe(true);
  }, 60_000);

  it('moves a VM still running on a tap under the old naming to its new tap, and deletes the old one', async () => {
    // What an upgrade finds: the VM's qemu on a tap named by the old scheme, labelled for it.
    await ts.writer.setVm('web1', 'lab', { host: 'hv1' });
    const before = await eventually(async () => { const v = await state(); return v?.state === 'running' ? v : undefined; }, 20_000);
    await agent!.stop();
    agent = undefined;
    const old = 'ucweb1-4bf145';
    await ns.ip(['tuntap', 'add', 'dev', old, 'mode', 'tap']);
    await ns.ip(['link', 'set', 'dev', old, 'alias', 'uncloud-agent:lab/web1', 'master', 'br-lab', 'up']);
    const specPath = vmFiles(join(stateDir, 'lab', 'web1')).spec;
    writeFileSync(specPath, JSON.stringify({ ...JSON.parse(readFileSync(specPath, 'utf8')), tap: old }));
    agent = await startAgent(base);
    const after = await eventually(async () => { const v = await state(); return v?.state === 'running' && v.pid !== before!.pid ? v : undefined; }, 20_000);
    expect(isOurQemu(before!.pid!, key)).toBe(false);
    const argv = readFileSync(`/proc/${after!.pid}/cmdline`, 'utf8');
    expect(argv).toContain(`"ifname":"${tapName(MAC)}"`);
    await eventually(async () => !(await ns.ip(['-j', 'link', 'show']).then((o) => o.includes(`"${old}"`))), 10_000);
    expect(await ns.exec('nft', ['list', 'table', 'bridge', TABLE])).not.toContain(old);
  }, 60_000);

  it('never uses or deletes a tap it does not know: an unlabelled one under a new VM\'s name', async () => {
    const stray = tapName('52:54:00:aa:00:12');
    await ns.ip(['tuntap', 'add', 'dev', stray, 'mode', 'tap']);
    await ts.writer.addVm({ name: 'clash2', network: 'lab', host: 'hv1', mac: '52:54:00:aa:00:12', resources: { memoryMiB: 64, cpus: 1 } });
    const failed = async (name: string) => {
      const e = await ts.store.kv.get(ts.store.keys.vmState('hv1', 'lab', name));
      const v = e ? VmStateSchema.parse(JSON.parse(e.value)) : undefined;
      return v?.state === 'failed' ? v : undefined;
    };
    expect((await eventually(() => failed('clash2'), 15_000))!.lastError).toBe(`network setup: tap ${stray} already exists and belongs to someone else (alias "")`);
    expect(await ns.exec('nft', ['list', 'table', 'bridge', TABLE])).not.toContain(stray);
    // Removing the VM retires it and leaves the tap as it was.
    await ts.writer.removeVm('clash2', 'lab');
    await eventually(() => !existsSync(join(stateDir, 'lab', 'clash2')), 15_000);
    const link = (JSON.parse(await ns.ip(['-j', 'link', 'show', 'type', 'tun'])) as { ifname: string; ifalias?: string; master?: string }[]).find((l) => l.ifname === stray);
    expect(link).toBeDefined();
    expect(link?.ifalias).toBeUndefined();
    expect(link?.master).toBeUndefined();
  }, 60_000);

  it('refuses a tap labelled for another VM: not relabelled, not attached', async () => {
    // On one host this happens while a VM whose MAC changed still runs on its old tap and
    // another VM got that MAC: the newcomer waits until the old owner moved off it.
    // Links alone: a running agent would rightly retire a tap labelled for web1 that web1 no longer uses.
    await agent?.stop();
    agent = undefined;
    const theirs = tapName('52:54:00:aa:00:11');
    await ns.ip(['tuntap', 'add', 'dev', theirs, 'mode', 'tap']);
    await ns.ip(['link', 'set', 'dev', theirs, 'alias', 'uncloud-agent:lab/web1']);
    const links = new Links(ns.wrapper('ip'));
    await expect(links.ensureTap(theirs, 'br-lab', 'lab/clash1', { uid, mac: 'fe:00:00:00:00:01', recorded: true, beforeCreate: () => undefined }))
      .rejects.toThrow(new TapTaken(`tap ${theirs} already exists and belongs to lab/web1`));
    await expect(links.removeTap(theirs, 'lab/clash1', true)).resolves.toBeUndefined();
    const link = JSON.parse(await ns.ip(['-j', 'link', 'show', theirs]))[0];
    expect(link).toMatchObject({ ifalias: 'uncloud-agent:lab/web1' });
    expect(link.master).toBeUndefined();
    await ns.ip(['link', 'del', theirs]);
  });

  it('refuses to start, in one line, when agent.user does not exist', async () => {
    await expect(startAgent({ ...base, user: 'uncloud-nosuchuser' })).rejects.toThrow(/^agent\.user "uncloud-nosuchuser" does not exist on this host: create it with useradd [^\n]*$/);
  });
});
