// Issue 16: starting and stopping VMs must not change the bridge's MAC. A Linux bridge without
// an explicit MAC takes its lowest port's; the metadata address lives on the bridge, so a change
// leaves every guest's neighbour entry for it pointing at a MAC that is gone. Here a client on
// the bridge (a veth in its own namespace, holding a VM-like address) fetches from a server on
// the bridge's metadata address in a tight loop while the agent adds and removes VMs; the
// bridge's other port has the highest unicast MAC there is, so any tap MAC could undercut it.
// Each cycle the client forgets the bridge's MAC while the new VMs run (as an idle guest does), so
// a bridge that followed its lowest port would leave it holding a MAC that vanishes with the VM.
// Zero failed requests, the bridge's MAC the same before and after. And a bridge the operator
// made without a fixed MAC (an uplink port with an ordinary NIC MAC): the agent's fe: taps never
// undercut it, and the agent warns once that it has no fixed MAC.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Netns } from '../e2e/netns.js';
import { etcdTestStore, eventually } from '../support/store.js';
import { capturingLogger, ensureQemuUser, QEMU_USER } from '../support/qemu-user.js';
import { startAgent, type Agent } from '../../src/agent/agent.js';
import { bridgeMac, tapName } from '../../src/agent/names.js';
import { VmStateSchema } from '../../src/model/schema.js';
import { figure, sleep } from './support.js';
import { killQemusOf, taps } from './agent-support.js';

const NET = 'relm';
const ADOPTED = 'relmb';
const METADATA6 = 'fd00:76::53';
const CLIENT6 = 'fd00:76::5054:ff:fe76:100';
const UPLINK_MAC = '52:54:00:99:99:99';
const CHURN_SECONDS = Number(process.env.BRIDGE_CHURN_SECONDS ?? 12);

// The client: GETs in a tight loop until told to stop (SIGTERM). A stale neighbour entry loses
// requests for seconds (until neighbour discovery gives up on the old MAC); the 5 s deadline
// catches that without counting a moment of CPU starvation on a loaded machine as a failure.
// Each failure is kept with its code, how far the request got, and ownStallMs: the longest the
// client's own timers ran late during it (a timeout with a stall that long is the client's CPU,
// not the network).
const CLIENT = `
const http = require('node:http');
let ok = 0, stop = false, beat = Date.now(), stall = 0; const errors = [];
process.on('SIGTERM', () => { stop = true; });
setInterval(() => { const now = Date.now(); stall = Math.max(stall, now - beat - 50); beat = now; }, 50).unref();
const once = () => new Promise((resolve) => {
  const at = Date.now(); let phase = 'connecting', port, done = false; stall = 0;
  const failed = (e) => { if (done) return; done = true; errors.push({ at, ms: Date.now() - at, message: e.message, code: e.code, phase, port, ownStallMs: stall }); resolve(); };
  const req = http.get({ host: '${METADATA6}', port: 80, path: '/', localAddress: '${CLIENT6}', family: 6, agent: false, timeout: 5000 }, (res) => {
    phase = 'response';
    res.on('error', failed);
    res.resume(); res.on('end', () => { if (res.statusCode !== 200) failed(new Error('status ' + res.statusCode)); else if (!done) { done = true; ok++; } });
  });
  req.on('socket', (s) => s.once('connect', () => { phase = 'connected'; port = s.localPort; }));
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', failed);
  req.on('close', () => resolve());
});
(async () => { while (!stop) await once(); process.stdout.write(JSON.stringify({ ok, failed: errors.length, errors })); })();
`;

interface ClientError { at: number; ms: number; message: string; code?: string; phase: string; port?: number; ownStallMs: number }

/** The latest of `events` at or before `at`, as "step (+ms)", times relative to t0. */
function lastBefore(events: { at: number; step: string }[], at: number, t0: number): string {
  const prior = events.filter((e) => e.at <= at).sort((a, b) => b.at - a.at)[0];
  return prior ? `${prior.step} at ${prior.at - t0} ms` : 'before the first step';
}

describe('bridge MAC while VMs come and go', () => {
  const t = etcdTestStore();
  let ns: Netns;
  let client: Netns;
  let agent: Agent | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'uncloud-rel-agentm-'));
  const logger = capturingLogger();
  const procs: { kill(): void }[] = [];
  const mac = async (dev: string) => (JSON.parse(await ns.ip(['-j', 'link', 'show', dev])) as { address: string }[])[0].address;
  const forget = () => client.ip(['-6', 'neigh', 'del', METADATA6, 'dev', 'cl1'])
    .catch((err: Error) => { if (!/No such file/.test(err.message)) throw err; return ''; });
  const running = async () => (await t.store.kv.range(t.store.keys.statesOf('hv1'))).entries
    .map((e) => VmStateSchema.parse(JSON.parse(e.value))).filter((s) => s.state === 'running').length;

  beforeAll(async () => {
    ensureQemuUser();
    ns = await Netns.create('urelam');
    client = await Netns.create('urelamc');
    await t.writer.addNetwork({ name: NET, prefix6: 'fd00:76::/64', domain: 'relm.example', metadata6: METADATA6 });
    await t.writer.addNetwork({ name: ADOPTED, prefix6: 'fd00:77::/64', domain: 'relmb.example', metadata6: 'fd00:77::53' });
    // The operator's bridge for the second network: no fixed MAC, an uplink with a NIC's MAC.
    await ns.sh(`
      ip link add br-${ADOPTED} type bridge
      ip link add up0 address ${UPLINK_MAC} type veth peer name up1
      ip link set up0 master br-${ADOPTED} up
      ip link set up1 up
      ip link set br-${ADOPTED} up
    `);
    // One VM from the start, so the agent makes the first network's bridge.
    await t.writer.addVm({ name: 'anchor', network: NET, host: 'hv1', mac: '52:54:00:76:00:01', resources: { memoryMiB: 64, cpus: 1 } });
    await t.writer.addVm({ name: 'b-anchor', network: ADOPTED, host: 'hv1', mac: '52:54:00:77:00:01', resources: { memoryMiB: 64, cpus: 1 } });
    agent = await startAgent({
      store: t.store, host: 'hv1', stateDir: join(dir, 'state'), accel: 'tcg', log: logger.log, user: QEMU_USER, imageDirs: [],
      qemu: ns.wrapper('qemu-system-x86_64'), ip: ns.wrapper('ip'), nft: ns.wrapper('nft'), cat: ns.wrapper('cat'),
      sweepMs: 200, stopTimeoutMs: 500, backoffMs: 200, heartbeatTtlSeconds: 2,
    });
    await eventually(async () => (await running()) === 2, 30_000);
    // The client's link: the bridge's port gets the highest unicast MAC, so every tap is lower.
    await ns.ip(['link', 'add', 'cl0', 'address', 'fe:ff:ff:ff:ff:fe', 'type', 'veth', 'peer', 'name', 'cl1', 'address', '52:54:00:76:01:00']);
    await ns.ip(['link', 'set', 'cl1', 'netns', client.name]);
    await ns.sh(`ip link set cl0 master br-${NET} up; ip addr add ${METADATA6}/64 dev br-${NET} nodad`);
    await client.sh(`ip link set cl1 up; ip addr add ${CLIENT6}/64 dev cl1 nodad`);
    const server = ns.spawn('node', ['-e', `require('node:http').createServer((q, r) => r.end('metadata\\n')).listen(80, '${METADATA6}')`]);
    procs.push(server);
    await eventually(() => client.exec('curl', ['-sf', '-m', '1', `http://[${METADATA6}]/`]).then(() => true), 15_000);
  }, 120_000);

  afterAll(async () => {
    await agent?.stop();
    for (const p of procs) p.kill();
    killQemusOf(NET);
    killQemusOf(ADOPTED);
    await client?.delete();
    await ns?.delete();
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`VMs added and removed for ${CHURN_SECONDS} s: no failed request, the bridge's MAC unchanged`, async () => {
    const before = await mac(`br-${NET}`);
    expect(before).toBe(bridgeMac('hv1', NET));
    expect((await ns.exec('cat', [`/sys/class/net/br-${NET}/addr_assign_type`])).trim()).toBe('3');
    const adoptedBefore = await mac(`br-${ADOPTED}`);
    expect(adoptedBefore).toBe(UPLINK_MAC);

    const loop = client.spawn('node', ['-e', CLIENT]);
    let out = '';
    loop.stdout!.on('data', (b) => (out += b));
    const ended = new Promise<void>((r) => loop.once('exit', () => r()));
    procs.push(loop);

    // VMs whose MACs are the lowest unicast ones there are, on both bridges, added and removed.
    const t0 = Date.now();
    const steps: { at: number; step: string }[] = [];
    const step = (what: string) => steps.push({ at: Date.now(), step: what });
    let cycles = 0;
    const seen = new Set<string>();
    while (Date.now() - t0 < CHURN_SECONDS * 1000) {
      const names = [0, 1, 2].map((i) => `low${cycles}x${i}`);
      step(`cycle ${cycles}: add`);
      for (const [i, n] of names.entries()) {
        await t.writer.addVm({ name: n, network: i === 2 ? ADOPTED : NET, host: 'hv1', mac: `02:00:00:00:${(cycles & 0xff).toString(16).padStart(2, '0')}:0${i}`, resources: { memoryMiB: 64, cpus: 1 } });
      }
      await eventually(async () => (await running()) === 5, 30_000);
      step(`cycle ${cycles}: running`);
      for (const l of await taps(ns)) seen.add(l.ifname);
      // The client forgets the bridge's MAC and asks again, as an idle guest does: it now holds
      // whatever MAC the bridge has while these VMs run (a tap's, if the bridge followed its ports).
      // One delete of the one entry, which the loop keeps REACHABLE: not `ip neigh flush`, which
      // deletes in rounds until none is left, so its second round caught the entry the loop had
      // just re-created, still INCOMPLETE with a SYN queued, and the kernel failed that connect
      // (EHOSTUNREACH) — an administrator's delete of a resolution in progress, nothing a guest sees.
      await forget();
      step(`cycle ${cycles}: bridge's MAC forgotten`);
      await sleep(1000);
      expect(await mac(`br-${NET}`)).toBe(before);
      expect(await mac(`br-${ADOPTED}`)).toBe(adoptedBefore);
      step(`cycle ${cycles}: remove`);
      for (const [i, n] of names.entries()) await t.writer.removeVm(n, i === 2 ? ADOPTED : NET);
      await eventually(async () => (await taps(ns)).length === 2, 30_000);
      step(`cycle ${cycles}: removed`);
      cycles++;
    }
    loop.kill('SIGTERM');
    await ended;
    const result = JSON.parse(out) as { ok: number; failed: number; errors: ClientError[] };
    // Each failure with when it happened against the test's steps and the agent's log, so a
    // failure in CI says what failed and during what.
    const agentLog = logger.lines().map((l) => ({ at: Number(l.time), step: `agent: ${String(l.msg)}` }));
    const errors = result.errors.map((e) => ({ ...e, at: e.at - t0, after: lastBefore([...steps, ...agentLog], e.at, t0) }));
    figure('bridge-mac-churn', { seconds: CHURN_SECONDS, cycles, tapsSeen: seen.size, requests: result.ok + result.failed, failed: result.failed, errors });
    expect(cycles).toBeGreaterThanOrEqual(1);
    expect(seen.has(tapName('02:00:00:00:00:00'))).toBe(true);
    expect(result.ok).toBeGreaterThan(50);
    expect(errors, 'failed requests, each with its code and the step it followed').toEqual([]);
    expect(await mac(`br-${NET}`)).toBe(before);
    expect(await mac(`br-${ADOPTED}`)).toBe(adoptedBefore);
    // The operator's bridge: one warning, naming it.
    const warnings = logger.lines().filter((l) => l.level === 40 && l.bridge === `br-${ADOPTED}`);
    expect(warnings).toHaveLength(1);
    expect(String(warnings[0].msg)).toMatch(/^bridge has no fixed MAC/);
    expect(logger.lines().some((l) => l.level === 40 && l.bridge === `br-${NET}`)).toBe(false);
  }, 180_000);
});
