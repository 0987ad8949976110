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

/**
 * VM key -> how many distinct qemus run it. A qemu that is daemonizing shows as a parent and a
 * child with the same command line for a moment: the child is not counted as a second one.
 */
export function qemuInstancesOf(network: string): Map<string, number> {
  const all = qemusOf(network);
  const counts = new Map<string, number>();
  for (const [pid, key] of all) {
    let ppid = 0;
    try { ppid = Number(/PPid:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0); } catch { continue; }
    if (all.get(ppid) === key) continue;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
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
