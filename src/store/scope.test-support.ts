// What both the scope and the migration tests check: the writer's owner-copy invariant (keys.ts).
import type { Keys } from './keys.js';
import type { Kv } from './kv.js';

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
