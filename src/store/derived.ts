// The records a VM implies besides itself, each written in the same transaction as the VM so the
// two never disagree: its store-wide claims (MAC, addresses), its owner reference, and its launch
// spec on its host (the agent's only view of it: no user-data, vendor-data, meta or keys).
import type { Keys } from './keys.js';
import type { Network, Vm } from '../model/schema.js';
import { parsePrefix } from '../model/ip.js';
import { eui64Address } from '../model/eui64.js';

export interface Put { key: string; value: string }

/** The VM fields an agent needs to run it: what `-uuid`, the tap, the disk and the nft rules use. */
const LAUNCH_FIELDS = ['v', 'id', 'name', 'network', 'mac', 'addresses', 'host', 'resources', 'createdAt'] as const;

export function launchSpec(vm: Vm): string {
  const spec: Record<string, unknown> = {};
  for (const f of LAUNCH_FIELDS) if (vm[f] !== undefined) spec[f] = vm[f];
  return JSON.stringify(spec);
}

/**
 * The index keys a VM holds: its MAC first, then its EUI-64 address and each explicit one, so
 * that no two VMs can ever answer to the same address (the metadata service's identity rests on it).
 */
export function claims(keys: Keys, vm: Vm, network: Network): Put[] {
  const owner = `${vm.network}/${vm.name}`;
  const derived = eui64Address(parsePrefix(network.prefix6, 6)!, vm.mac);
  return [
    { key: keys.mac(vm.mac), value: owner },
    ...[derived, ...vm.addresses].map((a) => ({ key: keys.address(a), value: owner })),
  ];
}

/** Everything a VM implies but its owner's key copy (which is shared with the owner's other VMs). */
export function derivedRecords(keys: Keys, vm: Vm, network: Network): Put[] {
  return [
    ...claims(keys, vm, network),
    ...(vm.owner ? [{ key: keys.owned(vm.owner, vm.network, vm.name), value: '' }] : []),
    ...(vm.host ? [{ key: keys.launch(vm.host, vm.network, vm.name), value: launchSpec(vm) }] : []),
  ];
}
