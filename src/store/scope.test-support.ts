// What the scope, host-copy and migration tests check: the writer's copy invariants (keys.ts).
import type { Keys } from './keys.js';
import type { Kv } from './kv.js';
import { NetworkSchema, type Network } from '../model/schema.js';
import { hostNetworkCopy } from './derived.js';

/** Every owner copy exists exactly while owned/ refs exist for it, and equals the user record. */
export async function ownerCopiesConsistent(kv: Kv, keys: Keys): Promise<string[]> {
  const problems: string[] = [];
  const all = (await kv.range(keys.root)).entries;
  const users = new Map(all.filter((e) => keys.parse(e.key)?.kind === 'user').map((e) => [keys.parse(e.key)!.parts[0], e.value]));
  const refs = new Set<string>();
  const vmOwners = new Set<string>();
  for (const e of all) {
    const k = keys.parse(e.key);
    if (k?.kind === 'owned') refs.add(`${k.parts[1]}/${k.parts[0]}`);
    if (k?.kind === 'vm') {
      const vm = JSON.parse(e.value) as { owner?: string; network: string; name: string };
      if (vm.owner) {
        vmOwners.add(`${vm.network}/${vm.owner}`);
        if (!all.some((x) => x.key === keys.owned(vm.owner!, vm.network, vm.name))) problems.push(`no ref for ${vm.network}/${vm.name}`);
      }
    }
  }
  const copies = new Map<string, string>();
  for (const e of all) {
    const k = keys.parse(e.key);
    if (k?.kind === 'owner') copies.set(`${k.parts[0]}/${k.parts[1]}`, e.value);
  }
  for (const r of refs) if (!vmOwners.has(r)) problems.push(`ref without VM: ${r}`);
  for (const r of vmOwners) if (!copies.has(r)) problems.push(`missing copy ${r}`);
  for (const [c, value] of copies) {
    if (!vmOwners.has(c)) problems.push(`stale copy ${c}`);
    else if (JSON.stringify(JSON.parse(value)) !== JSON.stringify(JSON.parse(users.get(c.split('/')[1]) ?? 'null'))) problems.push(`copy ${c} differs from its user`);
  }
  return problems;
}

/**
 * Every host network copy (and its placed/ marker) exists exactly while its host has a launch spec
 * in that network, and equals what the writer makes from the network records as they are now.
 */
export async function hostCopiesConsistent(kv: Kv, keys: Keys): Promise<string[]> {
  const problems: string[] = [];
  const all = (await kv.range(keys.root)).entries;
  const networks = new Map<string, Network>();
  for (const e of all) if (keys.parse(e.key)?.kind === 'network') { const n = NetworkSchema.parse(JSON.parse(e.value)); networks.set(n.name, n); }
  const used = new Set<string>();
  const copies = new Map<string, string>();
  const placed = new Set<string>();
  for (const e of all) {
    const k = keys.parse(e.key);
    if (k?.kind === 'launch') used.add(`${k.parts[0]}/${k.parts[1]}`);
    if (k?.kind === 'host-network') copies.set(`${k.parts[0]}/${k.parts[1]}`, e.value);
    if (k?.kind === 'placed') placed.add(`${k.parts[1]}/${k.parts[0]}`);
  }
  for (const u of used) {
    if (!copies.has(u)) problems.push(`missing copy ${u}`);
    if (!placed.has(u)) problems.push(`missing placed marker ${u}`);
  }
  for (const p of placed) if (!used.has(p)) problems.push(`stale placed marker ${p}`);
  for (const [c, value] of copies) {
    const network = networks.get(c.split('/')[1]);
    if (!used.has(c)) problems.push(`stale copy ${c}`);
    else if (!network) problems.push(`copy ${c} of a network that does not exist`);
    else if (value !== hostNetworkCopy(network, (name) => networks.get(name))) problems.push(`copy ${c} differs from its network: ${value}`);
  }
  return problems;
}
