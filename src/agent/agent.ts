// The host agent: follows the VMs scheduled to this host (a Registry fed by the store's watch)
// and makes the host match: bridge, tap, nftables, qemu. Reconciliation runs on every registry
// change, one pass at a time, and is idempotent, so the agent is safe to restart at any moment:
// running VMs are adopted by pidfile, never duplicated. A slow sweep only notices dead qemus.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { OpenedStore } from '../store/open.js';
import { Registry, type VmView } from '../registry/registry.js';
import { parsePrefix } from '../model/ip.js';
import { eui64Address } from '../model/eui64.js';
import { VmStateSchema, type VmState } from '../model/schema.js';
import { bridgeName, tapName, vmDir } from './names.js';
import { Links } from './links.js';
import { applyRuleset, renderRuleset, type TapPolicy } from './nft.js';
import {
  isOurQemu, launchQemu, probeAccel, readPid, readSpec, specText, stopQemu, type Accel, type QemuSpec,
} from './qemu.js';
import { Heartbeat } from './heartbeat.js';
import { Counter, Gauge } from 'prom-client';

export interface AgentOptions {
  store: OpenedStore;
  /** This hypervisor's name; the agent manages the VMs whose vm.host === host. */
  host: string;
  /** Per-VM directories (console.log, qmp.sock, qemu.pid) live under it. */
  stateDir: string;
  accel?: Accel;
  qemu?: string;
  nft?: string;
  ip?: string;
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

interface Managed {
  key: string;
  network: string;
  name: string;
  dir: string;
  tap: string;
  pid?: number;
  state: VmState['state'];
  since: string;
  restarts: number;
  lastError?: string;
  /** Consecutive failures, for the backoff. */
  failures: number;
  notBefore: number;
  startedAt: number;
}

const MAX_BACKOFF_MS = 60_000;

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Keeps a removed VM's console log for a post-mortem, out of the way of the reconcile loop. */
function retireDir(stateDir: string, dir: string, network: string, name: string): void {
  if (!existsSync(dir)) return;
  const graveyard = join(stateDir, '.retired');
  mkdirSync(graveyard, { recursive: true });
  renameSync(dir, join(graveyard, `${network}-${name}-${new Date().toISOString().replace(/[:.]/g, '')}`));
}

export async function startAgent(opts: AgentOptions): Promise<Agent> {
  const qemu = opts.qemu ?? 'qemu-system-x86_64';
  const accel = opts.accel ?? await probeAccel(qemu);
  opts.log.info({ host: opts.host, accel }, 'agent starting');
  const registry = new Registry({ prefix: opts.store.keys.prefix, log: opts.log });
  const agent = new HostAgent(opts, registry, qemu, accel);
  registry.on('change', () => agent.schedule());
  const source = opts.store.source(opts.log);
  await source.start(registry);
  await agent.start();
  return {
    ready: () => registry.loaded && source.health().connected,
    async stop() {
      await source.close();
      await agent.stop();
    },
  };
}

class HostAgent {
  private readonly links: Links;
  private readonly heartbeat: Heartbeat;
  private readonly managed = new Map<string, Managed>();
  private readonly stopping = new Map<string, Promise<void>>();
  private readonly written = new Map<string, string>();
  private appliedRules?: string;
  private running?: Promise<void>;
  private again = false;
  private stopped = false;
  private sweepTimer?: NodeJS.Timeout;
  private wakeTimer?: NodeJS.Timeout;

  private readonly actions?: Counter<'action'>;

  constructor(private readonly opts: AgentOptions, private readonly registry: Registry, private readonly qemu: string, private readonly accel: Accel) {
    if (opts.metrics) {
      this.actions = new Counter({ name: 'uncloud_metadata_agent_actions_total', help: 'reconcile actions by kind', labelNames: ['action'], registers: [opts.metrics] });
      const managed = this.managed;
      new Gauge({ name: 'uncloud_metadata_agent_vms', help: 'VMs this agent manages', registers: [opts.metrics], collect() { this.set(managed.size); } });
    }
    this.links = new Links(opts.ip);
    this.heartbeat = new Heartbeat({
      kv: opts.store.kv, keys: opts.store.keys, host: opts.host, version: packageVersion(),
      ttlSeconds: opts.heartbeatTtlSeconds, log: opts.log,
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
    await Promise.all(this.stopping.values());
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
    const desired = new Map<string, VmView>();
    for (const v of this.registry.allVms()) if (v.vm.host === this.opts.host) desired.set(v.key, v);

    // 1. Retire what is no longer ours: isolate at once (tap down), power down in the background.
    await this.retire(desired);

    // 2. Links for every desired VM.
    const ready: VmView[] = [];
    for (const v of desired.values()) {
      const m = this.track(v);
      try {
        // The VM's directory is the durable mark that this host owns its tap: a tap created
        // before its alias label (an agent killed in between) is still found and removed.
        mkdirSync(m.dir, { recursive: true });
        await this.links.ensureBridge(bridgeName(v.network));
        await this.links.ensureTap(m.tap, bridgeName(v.network), v.key);
        ready.push(v);
      } catch (err) {
        await this.fail(m, `network setup: ${(err as Error).message}`);
      }
    }

    // 3. Rules before any VM starts: a VM never runs unprotected.
    const rules = renderRuleset(ready.map((v) => this.policy(v)));
    if (rules !== this.appliedRules) {
      try {
        await applyRuleset(rules, this.opts.nft);
        this.appliedRules = rules;
        this.opts.log.info({ vms: ready.length }, 'nftables rules applied');
        this.actions?.inc({ action: 'rules_applied' });
      } catch (err) {
        for (const v of ready) await this.fail(this.managed.get(v.key)!, `nftables: ${(err as Error).message}`);
        return;
      }
    }

    // 4. qemu.
    for (const v of ready) await this.ensureRunning(v, this.managed.get(v.key)!);
    await this.heartbeat.setVmCount([...this.managed.values()].filter((m) => m.state === 'running').length);
  }

  private track(v: VmView): Managed {
    let m = this.managed.get(v.key);
    if (!m) {
      const prev = this.registry.vmState(v.key);
      m = {
        key: v.key, network: v.vm.network, name: v.vm.name,
        dir: vmDir(this.opts.stateDir, v.vm.network, v.vm.name),
        tap: tapName(v.vm.network, v.vm.name),
        state: 'starting', since: new Date().toISOString(),
        restarts: prev?.host === this.opts.host ? prev.restarts : 0,
        failures: 0, notBefore: 0, startedAt: 0,
      };
      this.managed.set(v.key, m);
    }
    return m;
  }

  private policy(v: VmView): TapPolicy {
    const foreign6 = [v.network.metadata6];
    for (const other of this.registry.allVms()) {
      if (other.key !== v.key && other.vm.network === v.vm.network) foreign6.push(...other.addresses6);
    }
    return {
      tap: tapName(v.vm.network, v.vm.name),
      mac: v.vm.mac,
      linkLocal: eui64Address(parsePrefix('fe80::/64', 6)!, v.vm.mac),
      own6: v.addresses6,
      own4: v.addresses4,
      prefix6: v.network.prefix6,
      foreign6,
    };
  }

  private spec(v: VmView, m: Managed): QemuSpec {
    const r = v.vm.resources;
    return {
      key: v.key, dir: m.dir, tap: m.tap, mac: v.vm.mac, memoryMiB: r.memoryMiB, cpus: r.cpus,
      disk: r.disk, kernel: r.kernel, initrd: r.initrd, cmdline: r.cmdline,
    };
  }

  private async ensureRunning(v: VmView, m: Managed): Promise<void> {
    if (this.stopping.has(m.key)) return; // re-added while stopping: started when the stop is done
    const spec = this.spec(v, m);
    const pid = m.pid ?? readPid(m.dir);
    if (pid && isOurQemu(pid, m.key)) {
      if (readSpec(m.dir) === specText(spec)) {
        if (m.pid !== pid) {
          // Adopted after an agent restart: keep the recorded `since` when it is this very process.
          const prev = this.registry.vmState(m.key);
          m.pid = pid;
          m.since = prev?.pid === pid && prev.host === this.opts.host ? prev.since : new Date().toISOString();
          m.startedAt = Date.now();
          this.opts.log.info({ vm: m.key, pid }, 'adopted running VM');
          this.actions?.inc({ action: 'adopted' });
        }
        m.state = 'running';
        await this.writeState(m);
        return;
      }
      this.opts.log.info({ vm: m.key, pid }, 'VM configuration changed; restarting it');
      this.actions?.inc({ action: 'reconfigured' });
      await stopQemu(m.dir, m.key, this.opts.stopTimeoutMs ?? 30_000);
      m.pid = undefined;
    }
    if (Date.now() < m.notBefore) {
      this.wakeAt(m.notBefore);
      return;
    }
    m.state = 'starting';
    try {
      m.pid = await launchQemu(this.qemu, spec, this.accel);
      m.state = 'running';
      m.since = new Date().toISOString();
      m.startedAt = Date.now();
      this.opts.log.info({ vm: m.key, pid: m.pid, tap: m.tap, accel: this.accel }, 'VM started');
      this.actions?.inc({ action: 'started' });
      await this.writeState(m);
    } catch (err) {
      await this.fail(m, `qemu: ${(err as Error).message}`);
    }
  }

  private async fail(m: Managed, error: string): Promise<void> {
    m.failures++;
    m.state = 'failed';
    m.pid = undefined;
    m.lastError = error;
    m.since = new Date().toISOString();
    m.notBefore = Date.now() + Math.min((this.opts.backoffMs ?? 1000) * 2 ** (m.failures - 1), MAX_BACKOFF_MS);
    this.opts.log.warn({ vm: m.key, error, retryInMs: m.notBefore - Date.now() }, 'VM failed');
    this.actions?.inc({ action: 'failed' });
    this.wakeAt(m.notBefore);
    await this.writeState(m);
  }

  /** VMs this host runs but should not: removed, moved to another host, or left from before. */
  private async retire(desired: Map<string, VmView>): Promise<void> {
    const doomed = new Map<string, { dir: string; tap: string; network: string; name: string }>();
    for (const m of this.managed.values()) if (!desired.has(m.key)) doomed.set(m.key, m);
    for (const [tap, key] of await this.links.agentTaps().catch(() => new Map<string, string>())) {
      const [network, name] = key.split('/');
      if (!desired.has(key) && network && name && !doomed.has(key)) doomed.set(key, { dir: vmDir(this.opts.stateDir, network, name), tap, network, name });
    }
    for (const found of this.vmDirsOnDisk()) {
      if (!desired.has(found.key) && !doomed.has(found.key)) doomed.set(found.key, { ...found, tap: tapName(found.network, found.name) });
    }
    for (const [key, d] of doomed) {
      if (this.stopping.has(key)) continue;
      this.managed.delete(key);
      await this.links.setDown(d.tap).catch(() => undefined);
      const stop = (async () => {
        try {
          const how = await stopQemu(d.dir, key, this.opts.stopTimeoutMs ?? 30_000);
          await this.links.removeTap(d.tap);
          await this.clearState(d.network, d.name);
          retireDir(this.opts.stateDir, d.dir, d.network, d.name);
          this.opts.log.info({ vm: key, how }, 'VM stopped and removed from this host');
          this.actions?.inc({ action: 'removed' });
        } catch (err) {
          this.opts.log.error({ vm: key, err: (err as Error).message }, 'could not retire VM');
        } finally {
          this.stopping.delete(key);
          this.schedule();
        }
      })();
      this.stopping.set(key, stop);
    }
  }

  private vmDirsOnDisk(): { key: string; dir: string; network: string; name: string }[] {
    const found: { key: string; dir: string; network: string; name: string }[] = [];
    try {
      for (const network of readdirSync(this.opts.stateDir)) {
        if (network.startsWith('.')) continue; // .retired
        for (const name of readdirSync(join(this.opts.stateDir, network))) {
          found.push({ key: `${network}/${name}`, dir: vmDir(this.opts.stateDir, network, name), network, name });
        }
      }
    } catch { /* no state yet */ }
    return found;
  }

  // ---- the slow sweep: dead qemus, unwritten state ----

  private sweep(): void {
    if (this.stopped) return;
    let dead = false;
    for (const m of this.managed.values()) {
      if (m.state === 'running' && m.pid && !isOurQemu(m.pid, m.key)) {
        // A VM that ran a while before dying starts its backoff over.
        if (Date.now() - m.startedAt > 60_000) m.failures = 0;
        m.restarts++;
        dead = true;
        void this.fail(m, 'qemu exited');
      } else if (this.written.get(m.key) !== this.stateText(m)) {
        void this.writeState(m);
      }
    }
    if (dead) this.schedule();
  }

  // ---- state back to the store ----

  private stateText(m: Managed): string {
    const s: VmState = VmStateSchema.parse({
      v: 1, host: this.opts.host, state: m.state, pid: m.state === 'running' ? m.pid : undefined,
      since: m.since, restarts: m.restarts, lastError: m.lastError,
    });
    return JSON.stringify(s);
  }

  private async writeState(m: Managed): Promise<void> {
    const text = this.stateText(m);
    if (this.written.get(m.key) === text) return;
    const { kv, keys } = this.opts.store;
    try {
      await kv.txn({ compares: [], puts: [{ key: keys.vmState(m.network, m.name), value: text }], deletes: [] });
      this.written.set(m.key, text);
    } catch (err) {
      this.opts.log.warn({ vm: m.key, err: (err as Error).message }, 'VM state not written; the sweep retries');
    }
  }

  /** Deletes the VM's state only while it still says this host (the VM may run elsewhere now). */
  private async clearState(network: string, name: string): Promise<void> {
    const { kv, keys } = this.opts.store;
    const key = keys.vmState(network, name);
    this.written.delete(`${network}/${name}`);
    const entry = await kv.get(key);
    if (!entry) return;
    try {
      if ((JSON.parse(entry.value) as { host?: string }).host !== this.opts.host) return;
    } catch { /* unreadable: ours to clean */ }
    await kv.txn({ compares: [{ key, modRevision: entry.modRevision }], puts: [], deletes: [key] });
  }
}
