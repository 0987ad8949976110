// Host-side names and addresses for a VM. Linux interface names are at most 15 characters.
// A tap is named after the VM's MAC (unique store-wide), so no two VMs can share one; the agent
// still checks the tap's alias before using it. Bridges and taps get fixed MACs: a Linux bridge
// without one takes the lowest MAC of its ports, and a bridge whose MAC changes leaves every
// guest's neighbour entry for the metadata address stale.
import { createHash } from 'node:crypto';
import { join } from 'node:path';

export const IFNAMSIZ = 15;

/** `uc` + the 12 hex digits of the VM's MAC, e.g. uc525400e2e001. */
export function tapName(mac: string): string {
  return `uc${mac.toLowerCase().replace(/[^0-9a-f]/g, '')}`;
}

export { bridgeName } from '../model/bridge.js';

const macOf = (first: number, seed: string): string => {
  const h = createHash('sha256').update(seed).digest();
  return [first, ...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0')).join(':');
};

/**
 * The MAC the agent gives a bridge it creates: locally administered (02:), derived from this
 * host and the network, so it is the same after every reboot and differs between hypervisors
 * whose bridges share the network's segment.
 */
export function bridgeMac(host: string, network: string): string {
  return macOf(0x02, `uncloud-bridge:${host}/${network}`);
}

/**
 * The host side of a VM's tap: fe: (as libvirt does), so it is never the lowest port of a bridge
 * without a fixed MAC. The rest is a hash of the VM's MAC, so it can never equal a guest's MAC.
 */
export function tapHostMac(vmMac: string): string {
  return macOf(0xfe, `uncloud-tap:${vmMac.toLowerCase()}`);
}

/** Where one VM's console.log, qmp.sock and qemu.pid live. */
export function vmDir(stateDir: string, network: string, name: string): string {
  return join(stateDir, network, name);
}

/** The nft chain of one tap (identifiers may not contain '-'). */
export function chainName(tap: string): string {
  return `vm_${tap.replace(/[^A-Za-z0-9_]/g, '_')}`;
}
