// The host's links for VMs: the network's bridge (created with a fixed MAC when missing; an
// existing one is accepted as-is) and one persistent tap per VM, owned by qemu's user, with a
// fe: MAC, labelled with an alias so the agent finds its own taps again after a restart and
// never touches anybody else's.
import { readFileSync } from 'node:fs';
import { run, CommandError } from './exec.js';

export const TAP_ALIAS_PREFIX = 'uncloud-agent:';
/** The alias of a bridge the agent created: it may always use it again. */
export const BRIDGE_ALIAS = 'uncloud-agent-bridge';

/** A network names an interface the agent must not put guests on. */
export class BridgeRefused extends Error {}

interface IpLink { ifname: string; ifalias?: string; master?: string; operstate?: string; address?: string; linkinfo?: { info_kind?: string } }

/** A tap exists under the name the agent wants, but it is not this VM's: never merged, never deleted. */
export class TapTaken extends Error {}

export interface TapOptions {
  /** Owner of the tap device: qemu's user. */
  uid: number;
  /** The host side's MAC (fe:...). */
  mac: string;
  /**
   * This VM's directory recorded the tap before it was created: an unlabelled tap of that name
   * is one the agent made and was killed before labelling.
   */
  recorded: boolean;
  /** Runs just before the agent creates the tap: records it in the VM's directory. */
  beforeCreate(): void;
}

export class Links {
  /**
   * @param ip the `ip` binary
   * @param cat reads a sysfs file (`cat`); in tests a wrapper that runs it in the namespace
   */
  constructor(private readonly ip = 'ip', private readonly cat?: string) {}

  /** The link, if it exists; with `details`, its kind too (linkinfo). */
  async show(name: string, details = false): Promise<IpLink | undefined> {
    try {
      const out = JSON.parse(await this.ipRun([...(details ? ['-d'] : []), '-j', 'link', 'show', 'dev', name])) as IpLink[];
      return out[0];
    } catch (err) {
      if (err instanceof CommandError && /does not exist|Cannot find device/.test(err.stderr)) return undefined;
      throw err;
    }
  }

  /**
   * Creates the bridge with `mac` when missing; returns 'created', 'fixed' (exists with a MAC set
   * explicitly) or 'floating' (exists and takes its lowest port's MAC: it can change).
   */
  async ensureBridge(name: string, mac: string, adoptable?: string[]): Promise<'created' | 'fixed' | 'floating' | 'unknown'> {
    let how: 'created' | 'fixed' | 'floating' | 'unknown' = 'created';
    const existing = await this.show(name, true);
    if (!existing) {
      await this.ipRun(['link', 'add', 'name', name, 'address', mac, 'type', 'bridge']).then(
        () => this.ipRun(['link', 'set', 'dev', name, 'alias', BRIDGE_ALIAS]),
        async (err) => {
          const raced = await this.show(name, true);
          if (!raced) throw err; // lost a race with someone creating it: judged like any existing link
          this.checkAdoptable(raced, adoptable);
          how = await this.macAssignment(name);
        },
      );
    } else {
      this.checkAdoptable(existing, adoptable);
      how = await this.macAssignment(name);
    }
    await this.ipRun(['link', 'set', 'dev', name, 'up']);
    return how;
  }

  /**
   * The network record names the bridge, and a store writer is not the host's administrator: a
   * link that is no bridge is never used (it would be brought up and given guests), and with
   * agent.bridges set only those bridges and the agent's own may be.
   */
  private checkAdoptable(link: IpLink, adoptable?: string[]): void {
    if (link.linkinfo?.info_kind !== 'bridge') throw new BridgeRefused(`${link.ifname} exists and is not a bridge`);
    if (adoptable && link.ifalias !== BRIDGE_ALIAS && !adoptable.includes(link.ifname)) {
      throw new BridgeRefused(`bridge ${link.ifname} was not made by the agent and is not in agent.bridges`);
    }
  }

  /** addr_assign_type 3 (NET_ADDR_SET): the MAC was set explicitly and no port changes it. */
  async macAssignment(name: string): Promise<'fixed' | 'floating' | 'unknown'> {
    const path = `/sys/class/net/${name}/addr_assign_type`;
    try {
      const text = this.cat ? await run(this.cat, [path]) : readFileSync(path, 'utf8');
      return text.trim() === '3' ? 'fixed' : 'floating';
    } catch {
      return 'unknown'; // not worth failing a VM over: the warning is advice
    }
  }

  /** Creates the tap if missing and (re)attaches it to the bridge, up. Refuses a tap that is not this VM's. */
  async ensureTap(tap: string, bridge: string, owner: string, o: TapOptions): Promise<void> {
    const alias = `${TAP_ALIAS_PREFIX}${owner}`;
    let link = await this.show(tap);
    if (link && link.ifalias !== alias && !(link.ifalias === undefined && o.recorded)) {
      throw new TapTaken(`tap ${tap} already exists and belongs to ${link.ifalias?.startsWith(TAP_ALIAS_PREFIX) ? link.ifalias.slice(TAP_ALIAS_PREFIX.length) : `someone else (alias ${JSON.stringify(link.ifalias ?? '')})`}`);
    }
    if (!link) {
      o.beforeCreate();
      await this.ipRun(['tuntap', 'add', 'dev', tap, 'mode', 'tap', 'user', String(o.uid)]);
      link = await this.show(tap);
    }
    if (link?.ifalias !== alias) await this.ipRun(['link', 'set', 'dev', tap, 'alias', alias]);
    if (link?.address !== o.mac) await this.ipRun(['link', 'set', 'dev', tap, 'address', o.mac]);
    if (link?.master !== bridge) await this.ipRun(['link', 'set', 'dev', tap, 'master', bridge]);
    await this.ipRun(['link', 'set', 'dev', tap, 'up']);
  }

  /** Cuts a VM off the network at once (its qemu may take a while to power down). */
  async setDown(tap: string, owner: string, recorded: boolean): Promise<void> {
    if (await this.ours(tap, owner, recorded)) await this.ipRun(['link', 'set', 'dev', tap, 'down']);
  }

  /**
   * Deletes the tap if it is `owner`'s: labelled so, or unlabelled and `recorded` (the VM's
   * directory says the agent created it, and was killed before labelling it).
   */
  async removeTap(tap: string, owner: string, recorded: boolean): Promise<void> {
    if (await this.ours(tap, owner, recorded)) await this.ipRun(['link', 'del', 'dev', tap]);
  }

  private async ours(tap: string, owner: string, recorded: boolean): Promise<boolean> {
    const link = await this.show(tap);
    return !!link && ((link.ifalias === undefined && recorded) || link.ifalias === `${TAP_ALIAS_PREFIX}${owner}`);
  }

  /** The agent's taps: name -> owner ("<network>/<name>"). */
  async agentTaps(): Promise<Map<string, string>> {
    const out = JSON.parse(await this.ipRun(['-j', 'link', 'show'])) as IpLink[];
    const taps = new Map<string, string>();
    for (const l of out) if (l.ifalias?.startsWith(TAP_ALIAS_PREFIX)) taps.set(l.ifname, l.ifalias.slice(TAP_ALIAS_PREFIX.length));
    return taps;
  }

  private ipRun(args: string[]): Promise<string> {
    return run(this.ip, args);
  }
}
