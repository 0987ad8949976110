// Agent scenario helpers: the qemus of a network found through /proc (whoever started them),
// and the agent's links and rules in a namespace.
import { readdirSync, readFileSync } from 'node:fs';
import type { Netns } from '../e2e/netns.js';

/** pid -> VM key of every live qemu named `uncloud:<network>/...`. */
export function qemusOf(network: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      const i = argv.indexOf('-name');
      if (i >= 0 && argv[i + 1]?.startsWith(`uncloud:${network}/`)) out.set(Number(d), argv[i + 1].slice('uncloud:'.length));
    } catch { /* gone */ }
  }
  return out;
}

export function killQemusOf(network: string): void {
  for (const pid of qemusOf(network).keys()) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
}

export interface TunLink { ifname: string; ifalias?: string; master?: string; operstate?: string; flags?: string[] }

/** Every tun/tap device in the namespace. */
export async function taps(ns: Netns): Promise<TunLink[]> {
  return JSON.parse(await ns.ip(['-j', 'link', 'show', 'type', 'tun'])) as TunLink[];
}
