// The host agent: follows the VMs scheduled to this host (a Registry fed by the store's watch)
// and makes the host match: bridge, tap, nftables, qemu. Reconciliation runs on every registry
// change, one pass at a time, and is idempotent, so the agent is safe to restart at any moment:
// running VMs are adopted by pidfile, never duplicated. A slow sweep only notices dead qemus.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { OpenedStore } from '../store/open.js';
import { LAYOUT } from '../store/keys.js';
import { Registry, type VmView } from '../registry/registry.js';
import { bridgeMac, bridgeName, tapHostMac, tapName, vmDir } from './names.js';
import { Links } from './links.js';
import { applyRuleset } from './nft.js';
import { HostRules } from './policy.js';
import { probeAccel, vmFiles, type Accel, type QemuSpec } from './qemu.js';
import { resolveImageDirs } from './images.js';
import { lookupUser } from './user.js';
import { Heartbeat } from './heartbeat.js';
import type { Managed } from './managed.js';
import { VmStateWriter } from './state-writer.js';
import { VmLifecycle } from './lifecycle.js';
import { Retirer, recordedTap } from './retire.js';
import { Counter, Gauge } from 'prom-client';

export interface AgentOptions {
  store: OpenedStore;
  /** This hypervisor's name; the agent manages the VMs whose vm.host === host. */
  host: string;
  /** Per-VM directories (console.log, qmp.sock, qemu.pid) live under it. */
  stateDir: string;
  /** agent.imageDirs: disks, kernels and initrds must resolve to regular files inside one of them. */
  imageDirs: string[];
  /** agent.bridges: existing bridges the agent may put guests on besides its own; none: any bridge. */
  bridges?: string[];
  /** agent.user: qemu drops to it (-runas) and owns the taps. The agent refuses to start without it. */
  user: string;
  accel?: Accel;
  qemu?: string;
  qemuImg?: string;
  nft?: string;
  ip?: string;
  /** Reads a sysfs file (default: directly); tests pass a wrapper that runs `cat` in their namespace. */
  cat?: string;
  log: Logger;
  /** How often to look for qemus that died (default 5 s). */
  sweepMs?: number;
  /** Grace for an ACPI power-down before the kill (default 30 s). */
  stopTimeoutMs?: number;
  /** First restart delay after a failure, doubled up to 60 s (default 1 s). */
  backoffMs?: number;
  heartbeatTtlSeconds?: number;
  /** Prometheus registry for reconcile actions (served by `agent --admin`). */
  metrics?: import('prom-client').Registry;
}

export interface Agent {
  /** Loaded and following the store (VMs keep running either way). */
  ready(): boolean;
  /** Stops the loop and the heartbeat; VMs keep running and are adopted on the next start. */
  stop(): Promise<void>;
}

/** The store is in another layout: this agent would not see its VMs (one line; nothing is touched). */
export class LayoutRefused extends Error {}

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export async function startAgent(opts: AgentOptions): Promise<Agent> {
  const qemuUser = await lookupUser(opts.user); // throws NoSuchUser: one line, nothing started
  const imageDirs = resolveImageDirs(opts.imageDirs);
  if (imageDirs.length < opts.imageDirs.length) opts.log.warn({ configured: opts.imageDirs, usable: imageDirs }, 'some agent.imageDirs are not existing absolute directories; nothing inside them can boot');
  const qemu = opts.qemu ?? 'qemu-system-x86_64';
  const accel = opts.accel ?? await probeAccel(qemu);
  opts.log.info({ host: opts.host, accel, user: opts.user, imageDirs }, 'agent starting');
  // Only what this host needs (store/keys.ts agentRanges): its VMs come from their launch specs.
  const registry = new Registry({ prefix: opts.store.keys.prefix, vmsFrom: 'launch', log: opts.log });
  const agent = new HostAgent(opts, registry, qemu, accel, qemuUser.uid, imageDirs);
  const source = opts.store.source(opts.log, opts.store.keys.agentRanges(opts.host));
  await source.start(registry);
  // Only a store already in our layout: one that gets there while we follow it (store migrate
  // writes the marker last) could show us the marker before all of this host's launch specs and
  // network copies, and a VM missing from those would be stopped.
  if (registry.layout !== LAYOUT) {
    await source.close();
    const why = registry.layout === undefined
      ? 'has no layout marker (layout 1, or no network created yet): run `uncloud-metadata store migrate`, or create a network first'
      : `has layout ${registry.layout}: run \`uncloud-metadata store migrate\``;
    throw new LayoutRefused(`store at ${opts.store.keys.root} ${why} (this agent reads layout ${LAYOUT}); no VM was touched`);
  }
  registry.on('change', () => agent.schedule()); // what changed before this, the first pass sees
  await agent.start();
  return {
    ready: () => registry.loaded && source.health().connected,
    async stop() {
      await source.close();
      await agent.stop();
    },
  };
}

/** The reconcile loop: one pass at a time, re-run when the registry changed meanwhile. */
class HostAgent {
  private readonly links: Links;
  private readonly heartbeat: Heartbeat;
  private readonly states: VmStateWriter;
  private readonly lifecycle: VmLifecycle;
  private readonly retirer: Retirer;
  private readonly managed = new Map<string, Managed>();
  private appliedRules?: string;
  /** Bridges already warned about (no fixed MAC), once each. */
  private readonly floatingWarned = new Set<string>();
  /** The layout last warned about (the store not in ours), once per layout seen. */
  private layoutWarned?: number | null = null;
  private readonly rules: HostRules;
  private running?: Promise<void>;
  private again = false;
  private stopped = false;
  private sweepTimer?: NodeJS.Timeout;
  private wakeTimer?: NodeJS.Timeout;

  private readonly actions?: Counter<'action'>;

  constructor(
    private readonly opts: AgentOptions, private readonly registry: Registry, qemu: string, accel: Accel,
    private readonly qemuUid: number, imageDirs: string[],
  ) {
    if (opts.metrics) {
      this.actions = new Counter({ name: 'uncloud_metadata_agent_actions_total', help: 'reconcile actions by kind', labelNames: ['action'], registers: [opts.metrics] });
      const managed = this.managed;
      new Gauge({ name: 'uncloud_metadata_agent_vms', help: 'VMs this agent manages', registers: [opts.metrics], collect() { this.set(managed.size); } });
    }
    this.links = new Links(opts.ip, opts.cat);
    this.rules = new HostRules(opts.log);
    this.heartbeat = new Heartbeat({
      kv: opts.store.kv, keys: opts.store.keys, host: opts.host, version: packageVersion(),
      ttlSeconds: opts.heartbeatTtlSeconds, log: opts.log,
    });
    const stopTimeoutMs = opts.stopTimeoutMs ?? 30_000;
    this.states = new VmStateWriter(opts.store, opts.host, opts.log);
    this.lifecycle = new VmLifecycle({
      host: opts.host, qemu, accel, registry, imageDirs, qemuImg: opts.qemuImg, states: this.states, log: opts.log, stopTimeoutMs,
      backoffMs: opts.backoffMs ?? 1000, actions: this.actions, wakeAt: (at) => this.wakeAt(at),
    });
    this.retirer = new Retirer({
      stateDir: opts.stateDir, links: this.links, states: this.states, log: opts.log, stopTimeoutMs,
      actions: this.actions, done: () => this.schedule(),
    });
  }

  async start(): Promise<void> {
    await this.heartbeat.start();
    this.schedule();
    await this.running;
    this.sweepTimer = setInterval(() => this.sweep(), this.opts.sweepMs ?? 5000);
    this.sweepTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.sweepTimer);
    clearTimeout(this.wakeTimer);
    await this.running;
    await this.retirer.settle();
    await this.heartbeat.stop();
  }

  /** Runs a reconcile pass now, or right after the one in progress. */
  schedule(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          await this.reconcile();
        } catch (err) {
          this.opts.log.error({ err: (err as Error).message }, 'reconcile failed');
        }
      } while (this.again && !this.stopped);
      this.running = undefined;
    })();
  }

  private wakeAt(at: number): void {
    const delay = Math.max(0, at - Date.now());
    clearTimeout(this.wakeTimer);
    this.wakeTimer = setTimeout(() => this.schedule(), delay);
    this.wakeTimer.unref();
  }

  // ---- one pass ----

  private async reconcile(): Promise<void> {
    if (!this.registry.loaded) return;
    // The marker gone or changed under us (a restored or rewritten store): this host's VMs may
    // simply be invisible here, and stopping them for that would be the worst answer. Wait instead.
    if (this.registry.layout !== LAYOUT) {
      if (this.layoutWarned !== this.registry.layout) {
        this.layoutWarned = this.registry.layout;
        this.opts.log.warn({ layout: this.registry.layout ?? null, reads: LAYOUT }, 'store is not in the layout this agent reads: nothing is started or stopped until it is (`uncloud-metadata store migrate`)');
      }
      return;
    }
    const desired = new Map<string, VmView>();
    for (const v of this.registry.allVms()) if (v.vm.host === this.opts.host) desired.set(v.key, v);

    // 1. Retire what is no longer ours: isolate at once (tap down), power down in the background.
    const retired = await this.retirer.retire(new Set(desired.keys()), this.managed);
    for (const key of retired) this.managed.delete(key);
    // Taps under a name a VM no longer uses (older naming, changed MAC) go down before the rules
    // that covered them are replaced.
    for (const v of desired.values()) this.track(v);
    const staleTaps = await this.retirer.retireStaleTaps(new Map([...desired.keys()].map((k) => [k, this.managed.get(k)!])));

    // 2. Links for every desired VM.
    const ready: VmView[] = [];
    for (const v of desired.values()) {
      const m = this.track(v);
      try {
        // The VM's directory records its tap before the tap exists: a tap created before its
        // alias label (an agent killed in between) is still known to be ours, found and removed.
        mkdirSync(m.dir, { recursive: true });
        await this.ensureBridge(v);
        await this.links.ensureTap(m.tap, bridgeName(v.network), v.key, {
          uid: this.qemuUid, mac: tapHostMac(v.vm.mac), recorded: recordedTap(m.dir) === m.tap,
          beforeCreate: () => writeFileSync(vmFiles(m.dir).tap, m.tap),
        });
        ready.push(v);
      } catch (err) {
        await this.lifecycle.fail(m, `network setup: ${(err as Error).message}`);
      }
    }

    // 3. Rules before any VM starts: a VM never runs unprotected.
    const rules = this.rules.render(ready.map((v) => ({ view: v, tap: this.managed.get(v.key)!.tap })), (name) => this.registry.network(name));
    if (rules !== this.appliedRules) {
      try {
        await applyRuleset(rules, this.opts.nft);
        this.appliedRules = rules;
        this.opts.log.info({ vms: ready.length }, 'nftables rules applied');
        this.actions?.inc({ action: 'rules_applied' });
      } catch (err) {
        for (const v of ready) await this.lifecycle.fail(this.managed.get(v.key)!, `nftables: ${(err as Error).message}`);
        return;
      }
    }

    // 4. qemu.
    for (const v of ready) {
      const m = this.managed.get(v.key)!;
      if (this.retirer.isStopping(m.key)) continue; // re-added while stopping: started when the stop is done
      await this.lifecycle.ensureRunning(m, this.spec(v, m));
    }
    await this.heartbeat.setVmCount([...this.managed.values()].filter((m) => m.state === 'running').length);
    if (staleTaps) this.schedule(); // the VMs moved to their new taps: delete the old ones
  }

  /** The network's bridge, created with a fixed MAC; one warning for an existing bridge without one. */
  private async ensureBridge(v: VmView): Promise<void> {
    const name = bridgeName(v.network);
    const how = await this.links.ensureBridge(name, bridgeMac(this.opts.host, v.network.name), this.opts.bridges);
    if (how === 'floating' && !this.floatingWarned.has(name)) {
      this.floatingWarned.add(name);
      this.opts.log.warn({ bridge: name, network: v.network.name },
        'bridge has no fixed MAC: it takes its lowest port\'s MAC, which can change and leave guests\' neighbour entries for the metadata address stale; set one (ip link set dev BRIDGE address ...)');
    }
  }

  private track(v: VmView): Managed {
    let m = this.managed.get(v.key);
    if (!m) {
      const prev = this.registry.vmState(v.key);
      m = {
        key: v.key, network: v.vm.network, name: v.vm.name,
        dir: vmDir(this.opts.stateDir, v.vm.network, v.vm.name),
        tap: tapName(v.vm.mac),
        state: 'starting', since: new Date().toISOString(),
        restarts: prev?.host === this.opts.host ? prev.restarts : 0,
        failures: 0, notBefore: 0, startedAt: 0,
      };
      this.managed.set(v.key, m);
    }
    m.tap = tapName(v.vm.mac); // a changed MAC means a new tap (the old one is retired)
    return m;
  }

  private spec(v: VmView, m: Managed): QemuSpec {
    const r = v.vm.resources;
    return {
      key: v.key, id: v.vm.id, dir: m.dir, tap: m.tap, mac: v.vm.mac, memoryMiB: r.memoryMiB, cpus: r.cpus,
      // A record from before --disk-format: the format its name says, never probed from its bytes.
      disk: r.disk, diskFormat: r.disk ? r.diskFormat ?? (/\.qcow2$/i.test(r.disk) ? 'qcow2' : 'raw') : undefined,
      kernel: r.kernel, initrd: r.initrd, cmdline: r.cmdline,
      metadata6: v.network.metadata6, user: this.opts.user,
    };
  }

  // ---- the slow sweep: dead qemus, unwritten state ----

  private sweep(): void {
    if (this.stopped) return;
    let dead = false;
    for (const m of this.managed.values()) {
      if (this.lifecycle.diedUnseen(m)) {
        dead = true;
        void this.lifecycle.fail(m, 'qemu exited');
      } else if (!this.states.upToDate(m)) {
        void this.states.write(m);
      }
    }
    if (dead) this.schedule();
  }
}
