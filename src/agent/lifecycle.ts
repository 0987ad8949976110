// One VM's lifecycle on this host: adopt the qemu already running it (same configuration),
// restart it when its configuration changed, start it (after any backoff), and record failures
// with a doubling delay before the next try.
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { Registry } from '../registry/registry.js';
import type { VmStateWriter } from './state-writer.js';
import { backoffDelay, type Managed } from './managed.js';
import { isOurQemu, launchQemu, readPid, readSpec, specText, stopQemu, type Accel, type QemuSpec } from './qemu.js';
import { ImageRefused, planLaunch } from './images.js';

export interface LifecycleOptions {
  host: string;
  qemu: string;
  accel: Accel;
  registry: Registry;
  /** Resolved agent.imageDirs: where disks, kernels and initrds may come from. */
  imageDirs: string[];
  qemuImg?: string;
  states: VmStateWriter;
  log: Logger;
  stopTimeoutMs: number;
  backoffMs: number;
  actions?: Counter<'action'>;
  /** Asks for a reconcile pass at `at` (ms since the epoch): a backoff ran out. */
  wakeAt(at: number): void;
}

export class VmLifecycle {
  constructor(private readonly opts: LifecycleOptions) {}

  async ensureRunning(m: Managed, spec: QemuSpec): Promise<void> {
    const { log, actions, registry, host } = this.opts;
    // A qemu that died since the last look goes through the backoff, whoever notices first: a
    // pass triggered by some other change must not relaunch it at once (nor uncounted).
    if (this.diedUnseen(m)) {
      await this.fail(m, 'qemu exited');
      return;
    }
    const pid = m.pid ?? readPid(m.dir);
    if (pid && isOurQemu(pid, m.key)) {
      if (readSpec(m.dir) === specText(spec)) {
        if (m.pid !== pid) {
          // Adopted after an agent restart: keep the recorded `since` when it is this very process.
          const prev = registry.vmState(m.key);
          m.pid = pid;
          m.since = prev?.pid === pid && prev.host === host ? prev.since : new Date().toISOString();
          m.startedAt = Date.now();
          log.info({ vm: m.key, pid }, 'adopted running VM');
          actions?.inc({ action: 'adopted' });
        }
        m.state = 'running';
        await this.opts.states.write(m);
        return;
      }
      log.info({ vm: m.key, pid }, 'VM configuration changed; restarting it');
      actions?.inc({ action: 'reconfigured' });
      await stopQemu(m.dir, m.key, this.opts.stopTimeoutMs);
      m.pid = undefined;
    }
    if (Date.now() < m.notBefore) {
      this.opts.wakeAt(m.notBefore);
      return;
    }
    m.state = 'starting';
    let plan;
    try {
      plan = await planLaunch(spec, this.opts.imageDirs, this.opts.qemuImg);
    } catch (err) {
      if (!(err instanceof ImageRefused)) throw err;
      await this.fail(m, err.message);
      return;
    }
    try {
      m.pid = await launchQemu(this.opts.qemu, plan, this.opts.accel);
      m.state = 'running';
      m.since = new Date().toISOString();
      m.startedAt = Date.now();
      log.info({ vm: m.key, pid: m.pid, tap: m.tap, accel: this.opts.accel }, 'VM started');
      actions?.inc({ action: 'started' });
      await this.opts.states.write(m);
    } catch (err) {
      await this.fail(m, `qemu: ${(err as Error).message}`);
    }
  }

  async fail(m: Managed, error: string): Promise<void> {
    m.failures++;
    m.state = 'failed';
    m.pid = undefined;
    m.lastError = error;
    m.since = new Date().toISOString();
    m.notBefore = Date.now() + backoffDelay(this.opts.backoffMs, m.failures);
    this.opts.log.warn({ vm: m.key, error, retryInMs: m.notBefore - Date.now() }, 'VM failed');
    this.opts.actions?.inc({ action: 'failed' });
    this.opts.wakeAt(m.notBefore);
    await this.opts.states.write(m);
  }

  /** True when `m` was running and its qemu is gone (counted as a restart). */
  diedUnseen(m: Managed): boolean {
    if (m.state !== 'running' || !m.pid || isOurQemu(m.pid, m.key)) return false;
    // A VM that ran a while before dying starts its backoff over.
    if (Date.now() - m.startedAt > 60_000) m.failures = 0;
    m.restarts++;
    return true;
  }
}
