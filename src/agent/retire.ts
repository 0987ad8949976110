// Retiring VMs this host runs but should not (removed, moved to another host, or left from
// before): cut off at once (tap down), then powered down in the background, tap and state
// removed, and the VM's directory kept under .retired for a post-mortem.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { Links } from './links.js';
import type { VmStateWriter } from './state-writer.js';
import { vmDir } from './names.js';
import { readSpec, stopQemu, vmFiles } from './qemu.js';

/** What is known about a VM to retire: enough to find its qemu, tap and state. */
export interface Doomed { dir: string; tap?: string; network: string; name: string }

/** The tap a VM directory recorded (written before the tap was created). */
export function recordedTap(dir: string): string | undefined {
  try {
    return readFileSync(vmFiles(dir).tap, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export interface RetirerOptions {
  stateDir: string;
  links: Links;
  states: VmStateWriter;
  log: Logger;
  stopTimeoutMs: number;
  actions?: Counter<'action'>;
  /** Called when a retire finished (a VM re-added meanwhile can start now). */
  done(): void;
}

export class Retirer {
  private readonly stopping = new Map<string, Promise<void>>();

  constructor(private readonly opts: RetirerOptions) {}

  /** A VM whose retire is still running is not started again until it is done. */
  isStopping(key: string): boolean {
    return this.stopping.has(key);
  }

  /** Waits for every retire in progress. */
  async settle(): Promise<void> {
    await Promise.all(this.stopping.values());
  }

  /**
   * Everything this host runs for a key not in `desired`: the VMs the agent tracks (`tracked`),
   * its labelled taps, and VM directories on disk (a tap left unlabelled by a killed agent is
   * found through its directory). Each is isolated now and stopped in the background.
   */
  async retire(desired: ReadonlySet<string>, tracked: Map<string, Doomed>): Promise<string[]> {
    const doomed = new Map<string, Doomed>();
    for (const [key, d] of tracked) if (!desired.has(key)) doomed.set(key, d);
    for (const [tap, key] of await this.opts.links.agentTaps().catch(() => new Map<string, string>())) {
      const [network, name] = key.split('/');
      if (!desired.has(key) && network && name && !doomed.has(key)) doomed.set(key, { dir: vmDir(this.opts.stateDir, network, name), tap, network, name });
    }
    for (const found of vmDirsOnDisk(this.opts.stateDir)) {
      if (!desired.has(found.key) && !doomed.has(found.key)) doomed.set(found.key, { ...found, tap: recordedTap(found.dir) });
    }
    const started: string[] = [];
    for (const [key, d] of doomed) {
      if (this.stopping.has(key)) continue;
      started.push(key);
      if (d.tap) await this.opts.links.setDown(d.tap, key, recordedTap(d.dir) === d.tap).catch(() => undefined);
      this.stopping.set(key, this.stopInBackground(key, d));
    }
    return started;
  }

  /**
   * Taps of VMs this host still runs, under a name the VM no longer uses (an upgrade from the
   * old naming, or a changed MAC): down at once (no rules cover them any more), deleted once the
   * VM's qemu no longer uses them (it restarts on its new tap, as its spec changed). Returns
   * true while some are still waiting.
   */
  async retireStaleTaps(wanted: ReadonlyMap<string, { tap: string; dir: string }>): Promise<boolean> {
    let waiting = false;
    for (const [tap, key] of await this.opts.links.agentTaps().catch(() => new Map<string, string>())) {
      const w = wanted.get(key);
      if (!w || w.tap === tap) continue;
      const { links, log } = this.opts;
      try {
        const spec = readSpec(w.dir);
        const inUse = spec !== undefined && (JSON.parse(spec) as { tap?: string }).tap === tap;
        if (inUse) {
          await links.setDown(tap, key, false);
          waiting = true;
        } else {
          await links.removeTap(tap, key, false);
          log.info({ vm: key, tap, now: w.tap }, 'removed the VM\'s old tap');
        }
      } catch (err) {
        log.warn({ vm: key, tap, err: (err as Error).message }, 'could not retire an old tap');
      }
    }
    return waiting;
  }

  private async stopInBackground(key: string, d: Doomed): Promise<void> {
    const { links, states, log } = this.opts;
    try {
      const how = await stopQemu(d.dir, key, this.opts.stopTimeoutMs);
      if (d.tap) await links.removeTap(d.tap, key, recordedTap(d.dir) === d.tap);
      await states.clear(d.network, d.name);
      retireDir(this.opts.stateDir, d.dir, d.network, d.name);
      log.info({ vm: key, how }, 'VM stopped and removed from this host');
      this.opts.actions?.inc({ action: 'removed' });
    } catch (err) {
      log.error({ vm: key, err: (err as Error).message }, 'could not retire VM');
    } finally {
      this.stopping.delete(key);
      this.opts.done();
    }
  }
}

/** Keeps a removed VM's console log for a post-mortem, out of the way of the reconcile loop. */
export function retireDir(stateDir: string, dir: string, network: string, name: string): void {
  if (!existsSync(dir)) return;
  const graveyard = join(stateDir, '.retired');
  mkdirSync(graveyard, { recursive: true });
  renameSync(dir, join(graveyard, `${network}-${name}-${new Date().toISOString().replace(/[:.]/g, '')}`));
}

/** The VM directories under the state dir: `<network>/<name>`, skipping `.retired`. */
export function vmDirsOnDisk(stateDir: string): { key: string; dir: string; network: string; name: string }[] {
  const found: { key: string; dir: string; network: string; name: string }[] = [];
  try {
    for (const network of readdirSync(stateDir)) {
      if (network.startsWith('.')) continue; // .retired
      for (const name of readdirSync(join(stateDir, network))) {
        found.push({ key: `${network}/${name}`, dir: vmDir(stateDir, network, name), network, name });
      }
    }
  } catch { /* no state yet */ }
  return found;
}
