// A store writer against the host (issue 11, item 4): with the real agent, real qemu (TCG) and
// real links in a network namespace, a --disk or --kernel value carrying qemu option syntax
// stays one file name (checked in the running qemu's argv and its block graph over QMP), a path
// outside agent.imageDirs fails the VM with one clear line (its state and a warning), a raw
// disk that a guest filled with a qcow2 header is never probed as qcow2, and qemu runs as the
// unprivileged user under seccomp.
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Netns } from '../e2e/netns.js';
import { vmAssets } from '../e2e/guest.js';
import { etcdTestStore, eventually } from '../support/store.js';
import { capturingLogger, ensureQemuUser, QEMU_USER } from '../support/qemu-user.js';
import { startAgent, type Agent } from '../../src/agent/agent.js';
import { qmpCommand } from '../../src/agent/qmp.js';
import { vmFiles } from '../../src/agent/qemu.js';
import { VmStateSchema, type VmState } from '../../src/model/schema.js';
import { figure } from './support.js';
import { killQemusOf } from './agent-support.js';

const NET = 'relh';
const until = async <T>(check: () => Promise<T | undefined>, ms: number): Promise<T> => (await eventually(check, ms)) as T;

describe('agent: what a store writer can make qemu do', () => {
  const t = etcdTestStore();
  let ns: Netns;
  let agent: Agent | undefined;
  let uid: number;
  const root = mkdtempSync(join(tmpdir(), 'uncloud-rel-agenth-'));
  const images = join(root, 'images');
  const stateDir = join(root, 'state');
  const logger = capturingLogger();
  const img = (...args: string[]) => execFileSync('qemu-img', args, { stdio: 'pipe' });

  // A file really named like an option list: if the name were parsed, qemu would open x.raw
  // without locking and make a second drive.
  const INJECTED = join(images, 'x.raw,format=raw,file.locking=off,if=none,id=evil');
  const KERNEL = join(images, 'vmlinuz,initrd=shadow.img');

  const state = async (name: string): Promise<VmState | undefined> => {
    const e = await t.store.kv.get(t.store.keys.vmState('hv1', NET, name));
    return e ? VmStateSchema.parse(JSON.parse(e.value)) : undefined;
  };
  const running = (name: string) => until(async () => { const s = await state(name); return s?.state === 'running' ? s : undefined; }, 30_000);
  const argv = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  const nodes = async (name: string) => await qmpCommand(vmFiles(join(stateDir, NET, name)).qmp, 'query-named-block-nodes', { flat: true }) as { 'node-name': string; drv: string; file: string; backing_file?: string }[];

  beforeAll(async () => {
    uid = ensureQemuUser();
    mkdirSync(images);
    img('create', '-f', 'raw', INJECTED, '1M');
    img('create', '-f', 'raw', join(images, 'x.raw'), '1M');
    // A raw disk whose guest wrote a qcow2 header naming /etc/shadow as its backing file.
    img('create', '-f', 'qcow2', '-F', 'raw', '-b', '/etc/shadow', join(images, 'guest-written.raw'));
    copyFileSync(join(vmAssets(), 'vmlinuz'), KERNEL);
    img('create', '-f', 'raw', join(images, 'base.raw'), '1M');
    img('create', '-f', 'qcow2', '-F', 'raw', '-b', join(images, 'base.raw'), join(images, 'mid.qcow2'));
    img('create', '-f', 'qcow2', '-F', 'qcow2', '-b', join(images, 'mid.qcow2'), join(images, 'top.qcow2'));
    img('create', '-f', 'qcow2', '-F', 'raw', '-b', '/etc/shadow', join(images, 'escape.qcow2'));
    ns = await Netns.create('urelah');
    await t.writer.addNetwork({ name: NET, prefix6: 'fd00:74::/64', domain: 'relh.example', metadata6: 'fd00:74::53' });
    const vm = (name: string, mac: string, resources: Record<string, unknown>) =>
      t.writer.addVm({ name, network: NET, host: 'hv1', mac, resources: { memoryMiB: 64, cpus: 1, ...resources } });
    await vm('inject', '52:54:00:74:00:01', { disk: INJECTED, diskFormat: 'raw' });
    await vm('notafile', '52:54:00:74:00:02', { disk: join(images, 'x.raw,format=raw,file.locking=off'), diskFormat: 'raw' });
    await vm('outside', '52:54:00:74:00:03', { disk: '/etc/shadow', diskFormat: 'raw' });
    await vm('probed', '52:54:00:74:00:04', { disk: join(images, 'guest-written.raw'), diskFormat: 'raw' });
    await vm('layered', '52:54:00:74:00:06', { disk: join(images, 'top.qcow2'), diskFormat: 'qcow2' });
    await vm('escape', '52:54:00:74:00:07', { disk: join(images, 'escape.qcow2'), diskFormat: 'qcow2' });
    await vm('kernel', '52:54:00:74:00:05', { kernel: KERNEL, cmdline: 'console=ttyS0,115200 panic=0' });
    agent = await startAgent({
      store: t.store, host: 'hv1', stateDir, accel: 'tcg', log: logger.log, user: QEMU_USER, imageDirs: [images],
      qemu: ns.wrapper('qemu-system-x86_64'), ip: ns.wrapper('ip'), nft: ns.wrapper('nft'), cat: ns.wrapper('cat'),
      sweepMs: 200, stopTimeoutMs: 1000, backoffMs: 200, heartbeatTtlSeconds: 2,
    });
  }, 120_000);

  afterAll(async () => {
    await agent?.stop();
    killQemusOf(NET);
    await ns?.delete();
    await t.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('an option list in --disk stays one file name: one drive, the literal file, locking on', async () => {
    const s = await running('inject');
    const args = argv(s.pid!);
    expect(args).not.toContain('-drive');
    const blockdevs = args.flatMap((a, i) => (args[i - 1] === '-blockdev' ? [JSON.parse(a) as Record<string, unknown>] : []));
    expect(blockdevs).toEqual([
      { driver: 'file', 'node-name': 'disk0-file', filename: INJECTED, 'read-only': false },
      { driver: 'raw', 'node-name': 'disk0', file: 'disk0-file', 'read-only': false },
    ]);
    const graph = await nodes('inject');
    expect(graph.map((n) => n['node-name']).sort()).toEqual(['disk0', 'disk0-file']);
    expect(graph.find((n) => n['node-name'] === 'disk0-file')).toMatchObject({ drv: 'file', file: INJECTED });
    // The qemu process holds the literal file open, and nothing else under the images.
    const open = readdirSync(`/proc/${s.pid}/fd`).map((fd) => { try { return readlinkSync(`/proc/${s.pid}/fd/${fd}`); } catch { return ''; } });
    expect(open.filter((p) => p.startsWith(images))).toEqual([INJECTED]);
    // qemu runs as the unprivileged user, without capabilities, under seccomp.
    const status = readFileSync(`/proc/${s.pid}/status`, 'utf8');
    expect(/^Uid:\s+(.*)$/m.exec(status)![1].split(/\s+/)).toEqual(Array(4).fill(String(uid)));
    expect(/^CapEff:\s+(\w+)/m.exec(status)![1]).toBe('0000000000000000');
    expect(/^Seccomp:\s+(\d)/m.exec(status)![1]).toBe('2');
    figure('agent-disk-injection', { disk: INJECTED, blockNodes: graph.length, uid: Number(/^Uid:\s+(\d+)/m.exec(status)![1]) });
  }, 60_000);

  it('an option list naming a file that exists only without it is refused, not parsed', async () => {
    const s = await until(async () => { const v = await state('notafile'); return v?.state === 'failed' ? v : undefined; }, 20_000);
    expect(s.lastError).toBe(`disk "${join(images, 'x.raw,format=raw,file.locking=off')}" cannot be opened (ENOENT)`);
  });

  it('a path outside agent.imageDirs fails the VM with one clear line, in its state and the log; no qemu', async () => {
    const s = await until(async () => { const v = await state('outside'); return v?.state === 'failed' ? v : undefined; }, 20_000);
    const line = `disk "/etc/shadow" is outside agent.imageDirs (${images})`;
    expect(s.lastError).toBe(line);
    const warned = logger.lines().filter((l) => l.vm === `${NET}/outside` && l.msg === 'VM failed');
    expect(warned.length).toBeGreaterThan(0);
    expect(warned[0]).toMatchObject({ level: 40, error: line });
    expect(readdirSync(join(stateDir, NET, 'outside'))).not.toContain('qemu.pid');
  }, 30_000);

  it('a raw disk holding a qcow2 header is opened as raw, its "backing file" never', async () => {
    const s = await running('probed');
    const graph = await nodes('probed');
    expect(graph.find((n) => n['node-name'] === 'disk0')).toMatchObject({ drv: 'raw' });
    expect(graph.some((n) => n.backing_file)).toBe(false);
    // Restarted (as after a reboot of the host): still raw.
    process.kill(s.pid!, 'SIGKILL');
    const again = await until(async () => { const v = await state('probed'); return v?.state === 'running' && v.pid !== s.pid ? v : undefined; }, 30_000);
    expect(again.pid).not.toBe(s.pid);
    expect((await nodes('probed')).find((n) => n['node-name'] === 'disk0')).toMatchObject({ drv: 'raw' });
  }, 60_000);

  it('a qcow2 chain inside the directories is given to qemu layer by layer; one reaching outside is refused', async () => {
    const s = await running('layered');
    const graph = await nodes('layered');
    expect(graph.map((n) => [n['node-name'], n.drv, n.file]).sort()).toEqual([
      ['disk0', 'qcow2', join(images, 'top.qcow2')], ['disk0-backing1', 'qcow2', join(images, 'mid.qcow2')],
      ['disk0-backing1-file', 'file', join(images, 'mid.qcow2')], ['disk0-backing2', 'raw', join(images, 'base.raw')],
      ['disk0-backing2-file', 'file', join(images, 'base.raw')], ['disk0-file', 'file', join(images, 'top.qcow2')],
    ]);
    expect(argv(s.pid!).filter((a) => a === '-blockdev')).toHaveLength(6);
    const refused = await until(async () => { const v = await state('escape'); return v?.state === 'failed' ? v : undefined; }, 20_000);
    expect(refused.lastError).toBe(`backing file "/etc/shadow" is outside agent.imageDirs (${images})`);
  }, 60_000);

  it('a kernel path with option syntax is one file name: no -initrd appears', async () => {
    const s = await running('kernel');
    const args = argv(s.pid!);
    expect(args[args.indexOf('-kernel') + 1]).toBe(KERNEL);
    expect(args).not.toContain('-initrd');
    expect(args[args.indexOf('-append') + 1]).toBe('console=ttyS0,115200 panic=0');
    await t.writer.removeVm('kernel', NET); // a panicking kernel keeps a TCG core busy
  }, 60_000);
});
