// Host-side names for a VM: Linux interface names are at most 15 characters, so the tap is a
// readable stem of the VM name plus a short hash of "<network>/<name>" that keeps it unique.
import { createHash } from 'node:crypto';
import { join } from 'node:path';

export const IFNAMSIZ = 15;

export function tapName(network: string, name: string): string {
  const hash = createHash('sha256').update(`${network}/${name}`).digest('hex').slice(0, 6);
  const stem = name.replace(/[^a-z0-9]/g, '').slice(0, IFNAMSIZ - 2 - 1 - hash.length);
  return `uc${stem}-${hash}`;
}

export { bridgeName } from '../model/bridge.js';

/** Where one VM's console.log, qmp.sock and qemu.pid live. */
export function vmDir(stateDir: string, network: string, name: string): string {
  return join(stateDir, network, name);
}

/** The nft chain of one tap (identifiers may not contain '-'). */
export function chainName(tap: string): string {
  return `vm_${tap.replace(/[^A-Za-z0-9_]/g, '_')}`;
}
