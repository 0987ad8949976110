// The agent SIGKILLed at arbitrary points of its first reconcile (links, rules, qemu launches),
// again and again: once one finally runs through, every VM has exactly one qemu, one labelled
// tap on its bridge and its rules, and nothing half-made is left. And a qemu that keeps dying
// right after it starts is restarted with a growing delay, not in a tight loop.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Netns } from '../e2e/netns.js';
import { etcdTestStore } from '../support/store.js';
import { silentLogger } from '../../src/log.js';
import { startAgent, type Agent } from '../../src/agent/agent.js';
import { VmStateSchema } from '../../src/model/schema.js';
import { tapName } from '../../src/agent/names.js';
import { TABLE } from '../../src/agent/nft.js';
import { figure, sleep, within } from './support.js';
import { killQemusOf, qemuInstancesOf, qemusOf, taps } from './agent-support.js';
import { ensureQemuUser, QEMU_USER } from '../support/qemu-user.js';

const AGENT = join(import.meta.dirname, 'fixtures/agent.mjs');

describe('agent killed mid-reconcile', () => {
  const t = etcdTestStore();
  const NET = 'relk';
  const VMS = ['k1', 'k2', 'k3'];
  let ns: Netns;
  let proc: ChildProcess | undefined;
  const stateDir = mkdtempSync(join(tmpdir(), 'uncloud-rel-agentk-'));

  const startProc = () => {
    const p = spawn(process.execPath, [AGENT, JSON.stringify({
      url: t.url, prefix: t.prefix, host: 'hv1', stateDir, user: QEMU_USER, imageDirs: [],
      qemu: ns.wrapper('qemu-system-x86_64'), ip: ns.wrapper('ip'), nft: ns.wrapper('nft'), cat: ns.wrapper('cat'),
    })], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout!.on('data', (b) => (out += b));
    p.stderr!.on('data', (b) => (out += b));
    return Object.assign(p, { output: () => out });
  };
  const kill = (p: ChildProcess) => new Promise<void>((r) => { if (p.exitCode !== null || p.signalCode) return r(); p.once('exit', () => r()); p.kill('SIGKILL'); });

  beforeAll(async () => {
    ensureQemuUser();
    ns = await Netns.create('urelak');
    await t.writer.addNetwork({ name: NET, prefix6: 'fd00:72::/64', domain: 'relk.example', metadata6: 'fd00:72::53' });
    for (const [i, n] of VMS.entries()) await t.writer.addVm({ name: n, network: NET, host: 'hv1', mac: `52:54:00:72:00:0${i + 1}`, resources: { memoryMiB: 64, cpus: 1 } });
  }, 60_000);

  afterAll(async () => {
    if (proc) await kill(proc);
    killQemusOf(NET);
    await ns?.delete();
    await t.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('killed again and again while bringing VMs up: no duplicate qemu, no stray tap, every rule in place', async () => {
    // Kill points keyed to the agent's progress: while links are being made, right after the
    // rules, and while qemus are being launched (a qemu exists but has not daemonized yet).
    const triggers: [string, (out: string) => Promise<boolean>][] = [
      ['first tap', async () => (await taps(ns)).length >= 1],
      ['rules applied', async (out) => out.includes('nftables rules applied')],
      ['first qemu process', async () => qemusOf(NET).size >= 1],
      ['second qemu process', async () => qemusOf(NET).size >= 2],
      ['third qemu process', async () => qemusOf(NET).size >= 3],
    ];
    const log: string[] = [];
    for (const [name, hit] of triggers) {
      const p = startProc();
      const t0 = Date.now();
      await within(60_000, async () => (await hit(p.output())) || p.exitCode !== null, `trigger ${name}`);
      await kill(p);
      log.push(`${name} after ${Date.now() - t0} ms: ${qemusOf(NET).size} qemu, ${(await taps(ns)).length} taps`);
      // A qemu caught daemonizing shows twice for a moment (qemu forks twice); once it settles,
      // no VM may have two.
      await within(5000, () => [...qemuInstancesOf(NET).values()].every((n) => n === 1), `one qemu per VM after the kill at ${name}`);
    }
    proc = startProc();
    const convergedMs = await within(60_000, async () => {
      const states = (await t.store.kv.range(t.store.keys.statesOf('hv1'))).entries.map((e) => VmStateSchema.parse(JSON.parse(e.value)));
      return states.length === VMS.length && states.every((s) => s.state === 'running') && qemusOf(NET).size === VMS.length;
    }, 'all VMs running once');
    await sleep(1500); // let a sweep and a pass run: nothing may change any more

    const live = qemusOf(NET);
    expect([...live.values()].sort()).toEqual(VMS.map((n) => `${NET}/${n}`).sort());
    expect([...qemuInstancesOf(NET).values()]).toEqual(VMS.map(() => 1));
    const states = new Map((await t.store.kv.range(t.store.keys.statesOf('hv1'))).entries.map((e) => [e.key.split('/').pop()!, VmStateSchema.parse(JSON.parse(e.value))]));
    for (const n of VMS) expect(live.get(states.get(n)!.pid!)).toBe(`${NET}/${n}`);
    const links = await taps(ns);
    const taps0 = VMS.map((_, i) => tapName(`52:54:00:72:00:0${i + 1}`));
    expect(links.map((l) => l.ifname).sort()).toEqual([...taps0].sort());
    for (const l of links) {
      expect(l.ifalias).toMatch(/^uncloud-agent:relk\/k\d$/);
      expect(l.master).toBe(`br-${NET}`);
    }
    const rules = await ns.exec('nft', ['list', 'table', 'bridge', TABLE]);
    for (const tap of taps0) expect(rules).toContain(`iifname "${tap}"`);
    figure('agent-killed-mid-reconcile', { kills: triggers.length, seen: log, convergedMs, qemus: live.size, taps: links.length });
  }, 180_000);
});

describe('crash-looping qemu', () => {
  const t = etcdTestStore();
  const NET = 'relc';
  let ns: Netns;
  let agent: Agent | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'uncloud-rel-agentc-'));
  const launches = join(dir, 'launches.txt');

  beforeAll(async () => {
    ensureQemuUser();
    ns = await Netns.create('urelac');
    await t.writer.addNetwork({ name: NET, prefix6: 'fd00:73::/64', domain: 'relc.example', metadata6: 'fd00:73::53' });
    await t.writer.addVm({ name: 'crashy', network: NET, host: 'hv1', resources: { memoryMiB: 64, cpus: 1 } });
  }, 60_000);
  afterAll(async () => {
    await agent?.stop();
    killQemusOf(NET);
    await ns?.delete();
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a qemu that dies right after starting is restarted with a doubling delay', async () => {
    // A qemu that starts (answers on QMP) and is killed 500 ms later, every time.
    const real = ns.wrapper('qemu-system-x86_64');
    const wrapper = join(dir, 'qemu');
    writeFileSync(wrapper, `#!/bin/sh
date +%s%3N >> ${launches}
pidfile=""; qmp=""; prev=""
for a in "$@"; do [ "$prev" = "-pidfile" ] && pidfile="$a"; prev="$a"; done
qmp="$(dirname "$pidfile")/qmp.sock"
# The kill's time is taken just before the kill: a late \`date\` on a loaded machine must not shorten the measured wait.
( while [ ! -S "$qmp" ]; do sleep 0.05; done; sleep 0.5; t=$(date +%s%3N); kill -9 "$(cat "$pidfile")"; echo "$t" >> ${launches}.killed ) >/dev/null 2>&1 &
exec "${real}" "$@"
`);
    chmodSync(wrapper, 0o755);
    const WINDOW_MS = Number(process.env.CRASHLOOP_WINDOW_MS ?? 9000);
    agent = await startAgent({
      store: t.store, host: 'hv1', stateDir: join(dir, 'state'), accel: 'tcg', log: silentLogger(), user: QEMU_USER, imageDirs: [],
      qemu: wrapper, ip: ns.wrapper('ip'), nft: ns.wrapper('nft'), cat: ns.wrapper('cat'), sweepMs: 100, stopTimeoutMs: 1000, backoffMs: 200, heartbeatTtlSeconds: 2,
    });
    await sleep(WINDOW_MS);
    await agent.stop();
    agent = undefined;
    const at = readFileSync(launches, 'utf8').trim().split('\n').map(Number);
    const killed = readFileSync(`${launches}.killed`, 'utf8').trim().split('\n').map(Number);
    // The agent's wait before each relaunch: from the kill to the next launch. Backoff makes it at
    // least 200, 400, 800, ... ms, whatever the machine's load adds on top.
    const waits = at.slice(1).map((x, i) => x - killed[i]);
    const state = VmStateSchema.parse(JSON.parse((await t.store.kv.get(t.store.keys.vmState('hv1', NET, 'crashy')))!.value));
    figure('qemu-crash-loop', { windowMs: WINDOW_MS, launches: at.length, waitsAfterCrashMs: waits, restarts: state.restarts, lastError: state.lastError });
    // Without backoff a 100 ms sweep would relaunch ~20 times in the window; with it, a handful.
    expect(at.length).toBeGreaterThanOrEqual(3);
    expect(at.length).toBeLessThanOrEqual(8);
    waits.forEach((w, i) => expect(w, `wait ${i}`).toBeGreaterThanOrEqual(200 * 2 ** i - 20));
    expect(state.restarts).toBeGreaterThanOrEqual(at.length - 1);
    expect(state.lastError).toBe('qemu exited');
  }, 60_000);
});
