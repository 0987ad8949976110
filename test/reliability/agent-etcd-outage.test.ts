// The agent while etcd is away: running VMs are neither stopped nor restarted (the agent keeps
// its last known desired state), and when etcd is back the agent adopts them again as they are.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Netns } from '../e2e/netns.js';
import { openStore, type OpenedStore } from '../../src/store/open.js';
import { StoreWriter } from '../../src/store/writer.js';
import { silentLogger } from '../../src/log.js';
import { startAgent, type Agent } from '../../src/agent/agent.js';
import { VmStateSchema } from '../../src/model/schema.js';
import { qmpCommand } from '../../src/agent/qmp.js';
import { vmFiles } from '../../src/agent/qemu.js';
import { figure, OwnEtcd, sleep, within } from './support.js';
import { killQemusOf, qemusOf, taps } from './agent-support.js';
import { ensureQemuUser, QEMU_USER } from '../support/qemu-user.js';

const NET = 'relo';
const DOWN_SECONDS = Number(process.env.AGENT_ETCD_DOWN_SECONDS ?? 8);

describe('agent with etcd down', () => {
  let etcd: OwnEtcd;
  let store: OpenedStore;
  let writer: StoreWriter;
  let ns: Netns;
  let agent: Agent | undefined;
  const stateDir = mkdtempSync(join(tmpdir(), 'uncloud-rel-agent-'));

  const states = async () => {
    const out = new Map<string, ReturnType<typeof VmStateSchema.parse>>();
    for (const e of (await store.kv.range(store.keys.statesOf('hv1'))).entries) out.set(e.key.split('/').slice(-2).join('/'), VmStateSchema.parse(JSON.parse(e.value)));
    return out;
  };

  beforeAll(async () => {
    etcd = await OwnEtcd.start();
    store = openStore(etcd.url, { prefix: '/rel-agent' });
    writer = new StoreWriter(store.kv, store.keys);
    ensureQemuUser();
    ns = await Netns.create('urelag');
    await writer.addNetwork({ name: NET, prefix6: 'fd00:71::/64', domain: 'relo.example', metadata6: 'fd00:71::53' });
    for (const n of ['a1', 'a2']) await writer.addVm({ name: n, network: NET, host: 'hv1', resources: { memoryMiB: 64, cpus: 1 } });
    agent = await startAgent({
      store, host: 'hv1', stateDir, accel: 'tcg', log: silentLogger(), user: QEMU_USER, imageDirs: [],
      qemu: ns.wrapper('qemu-system-x86_64'), ip: ns.wrapper('ip'), nft: ns.wrapper('nft'), cat: ns.wrapper('cat'),
      sweepMs: 200, stopTimeoutMs: 1000, backoffMs: 200, heartbeatTtlSeconds: 2,
    });
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    killQemusOf(NET);
    await ns?.delete();
    await store?.kv.close();
    await etcd?.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it(`etcd down for ${DOWN_SECONDS} s: no VM stopped or restarted, taps and rules stay; etcd back: adopted unchanged`, async () => {
    await within(30_000, async () => [...(await states()).values()].filter((s) => s.state === 'running').length === 2, 'both VMs running');
    const before = await states();
    const pids = new Map([...before].map(([k, s]) => [k, s.pid!]));
    const tapsBefore = (await taps(ns)).map((l) => l.ifname).sort();
    const rulesBefore = await ns.exec('nft', ['-s', 'list', 'ruleset']);

    await etcd.kill();
    const t0 = Date.now();
    let checks = 0;
    while (Date.now() - t0 < DOWN_SECONDS * 1000) {
      const live = qemusOf(NET);
      expect([...live.entries()].sort()).toEqual([...pids.entries()].map(([k, p]) => [p, k]).sort());
      checks++;
      await sleep(500);
    }
    for (const k of pids.keys()) expect(await qmpCommand(vmFiles(join(stateDir, ...k.split('/'))).qmp, 'query-status')).toMatchObject({ running: true });
    expect((await taps(ns)).map((l) => l.ifname).sort()).toEqual(tapsBefore);
    expect(await ns.exec('nft', ['-s', 'list', 'ruleset'])).toBe(rulesBefore);

    await etcd.up();
    const backMs = await within(20_000, async () => !!(await store.kv.get(store.keys.host('hv1'))), 'heartbeat back');
    await sleep(1500); // a reconcile pass after the reload
    const after = await states();
    for (const [k, s] of after) expect(s).toMatchObject({ state: 'running', pid: pids.get(k), restarts: 0, since: before.get(k)!.since });
    expect([...qemusOf(NET).keys()].sort()).toEqual([...pids.values()].sort());
    figure('agent-etcd-down', { downSeconds: DOWN_SECONDS, vms: pids.size, checks, restarts: 0, heartbeatBackMs: backMs });
  }, 120_000);
});
