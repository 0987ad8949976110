// The records a VM implies besides itself, each written in the same transaction as the VM so the
// two never disagree: its store-wide claims (MAC, addresses), its owner reference, and its launch
// spec on its host (the agent's only view of it: no user-data, vendor-data, meta or keys); and the
// copy of its network on its host (shared with the host's other VMs of that network).
import type { Keys } from './keys.js';
import { HOST_NETWORK_FIELDS, type HostNetwork, type Network, type Vm } from '../model/schema.js';
import { parsePrefix } from '../model/ip.js';
import { eui64Address } from '../model/eui64.js';

export interface Put { key: string; value: string }

/** The VM fields an agent needs to run it: what `-uuid`, the tap, the disk and the nft rules use. */
const LAUNCH_FIELDS = ['v', 'id', 'name', 'network', 'mac', 'addresses', 'host', 'resources', 'createdAt'] as const;

export function launchSpec(vm: Vm): string {
  return JSON.stringify(pick(vm, LAUNCH_FIELDS));
}

/** The named fields of a record that are set (a copy for a reader that needs only those). */
function pick<T extends object>(record: T, fields: readonly (keyof T)[]): Partial<T> {
  const out: Partial<T> = {};
  for (const f of fields) if (record[f] !== undefined) out[f] = record[f];
  return out;
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

/** The other networks a network's `forwardTo` names ("*" names none: it means anywhere). */
export function forwardTargets(network: Network): string[] {
  return (network.forwardTo ?? []).filter((n) => n !== '*' && n !== network.name);
}

/**
 * The host copy of a network (hosts/<host>/networks/<network>): what its agent needs, with
 * `forwardTo` resolved against the target networks as they are now (`target` returns undefined
 * for one that does not exist yet; it joins when created).
 */
export function hostNetworkCopy(network: Network, target: (name: string) => Network | undefined): string {
  const anywhere = network.forwardTo?.includes('*') ?? false;
  const targets = anywhere ? [] : forwardTargets(network).map(target).filter((t): t is Network => !!t);
  const copy = {
    v: 1,
    network: pick(network, HOST_NETWORK_FIELDS),
    forward6: anywhere ? ['::/0'] : targets.map((t) => t.prefix6),
    forward4: anywhere ? ['0.0.0.0/0'] : targets.flatMap((t) => (t.prefix4 ? [t.prefix4] : [])),
  } satisfies Omit<HostNetwork, 'network'> & { network: unknown };
  return JSON.stringify(copy);
}
