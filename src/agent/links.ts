// The host's links for VMs: the network's bridge (created when missing, an existing one is
// accepted as-is) and one persistent tap per VM, labelled with an alias so the agent can find
// its own taps again after a restart and never touches anybody else's.
import { run, CommandError } from './exec.js';

export const TAP_ALIAS_PREFIX = 'uncloud-agent:';

interface IpLink { ifname: string; ifalias?: string; master?: string; operstate?: string }

export class Links {
  constructor(private readonly ip = 'ip') {}

  async show(name: string): Promise<IpLink | undefined> {
    try {
      const out = JSON.parse(await this.ipRun(['-j', 'link', 'show', 'dev', name])) as IpLink[];
      return out[0];
    } catch (err) {
      if (err instanceof CommandError && /does not exist|Cannot find device/.test(err.stderr)) return undefined;
      throw err;
    }
  }

  async ensureBridge(name: string): Promise<void> {
    if (!(await this.show(name))) {
      await this.ipRun(['link', 'add', 'name', name, 'type', 'bridge']).catch(async (err) => {
        if (!(await this.show(name))) throw err; // lost a race with someone creating it: fine
      });
    }
    await this.ipRun(['link', 'set', 'dev', name, 'up']);
  }

  /** Creates the tap if missing and (re)attaches it to the bridge, up. */
  async ensureTap(tap: string, bridge: string, owner: string): Promise<void> {
    const link = await this.show(tap);
    if (!link) await this.ipRun(['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
    if (link?.ifalias !== `${TAP_ALIAS_PREFIX}${owner}`) await this.ipRun(['link', 'set', 'dev', tap, 'alias', `${TAP_ALIAS_PREFIX}${owner}`]);
    if (link?.master !== bridge) await this.ipRun(['link', 'set', 'dev', tap, 'master', bridge]);
    await this.ipRun(['link', 'set', 'dev', tap, 'up']);
  }

  /** Cuts a VM off the network at once (its qemu may take a while to power down). */
  async setDown(tap: string): Promise<void> {
    if (await this.show(tap)) await this.ipRun(['link', 'set', 'dev', tap, 'down']);
  }

  async removeTap(tap: string): Promise<void> {
    if (await this.show(tap)) await this.ipRun(['link', 'del', 'dev', tap]);
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
