// The appliance's one write: a guest attribute of one VM, in one compare-and-swap transaction that
// also requires the VM record to be unchanged, so an attribute can never outlive its VM (removing
// the VM deletes the record in the same transaction) nor land on a VM re-created under the name.
import type { Kv } from './kv.js';
import type { Keys } from './keys.js';
import { GuestAttributesSchema, type GuestAttributes } from '../model/schema.js';
import { parseJson } from './json.js';

export type GuestAttributeRefusal = { status: 404 | 409 | 413; message: string };

const ATTEMPTS = 5;
/**
 * The most one VM's record may weigh. Every write stores the whole record again, and etcd keeps
 * each version until it is compacted: without this, 64 keys of 4 KiB made every write 256 KiB,
 * and one guest writing at its allowed rate filled an 8 MiB quota in 90 s (2 GiB in hours).
 */
export const MAX_RECORD_BYTES = 64 * 1024;

const idOf = (vmText: string) => (parseJson(vmText) as { id?: unknown } | undefined)?.id;


/**
 * Stores namespace/key = value for the VM `network/name` whose id is `vmId`. Returns a refusal
 * (nothing written) when the VM is gone or re-created, or the VM would hold more than `maxKeys`.
 */
export async function putGuestAttribute(
  kv: Kv, keys: Keys, vm: { network: string; name: string; id: string }, namespace: string, key: string, value: string, maxKeys: number,
): Promise<GuestAttributeRefusal | undefined> {
  const vmKey = keys.vm(vm.network, vm.name);
  const attrKey = keys.guestAttributes(vm.network, vm.name);
  for (let i = 0; i < ATTEMPTS; i++) {
    const [vmEntry, attrEntry] = await Promise.all([kv.get(vmKey), kv.get(attrKey)]);
    if (!vmEntry || idOf(vmEntry.value) !== vm.id) return { status: 404, message: 'no such VM' };
    let current: GuestAttributes = { v: 1, vmId: vm.id, namespaces: {} };
    if (attrEntry) {
      const parsed = GuestAttributesSchema.safeParse(parseJson(attrEntry.value));
      // Another VM's leftovers or an unreadable record: start over (the compare below still holds).
      if (parsed.success && parsed.data.vmId === vm.id) current = parsed.data;
    }
    if (namespace === '__proto__' || key === '__proto__') return { status: 409, message: '__proto__ is no guest attribute name' };
    const ns = { ...(Object.hasOwn(current.namespaces, namespace) ? current.namespaces[namespace] : {}), [key]: value };
    const next: GuestAttributes = { ...current, namespaces: { ...current.namespaces, [namespace]: ns } };
    const count = Object.values(next.namespaces).reduce((n, k) => n + Object.keys(k).length, 0);
    if (count > maxKeys) return { status: 409, message: `a VM holds at most ${maxKeys} guest attributes` };
    // The same value again is no new version (a guest agent re-publishing at every boot).
    if (attrEntry && current.namespaces[namespace]?.[key] === value && Object.hasOwn(current.namespaces[namespace], key)) return undefined;
    const text = JSON.stringify(GuestAttributesSchema.parse(next));
    if (Buffer.byteLength(text) > MAX_RECORD_BYTES) return { status: 413, message: `a VM's guest attributes are at most ${MAX_RECORD_BYTES} bytes in all` };
    const r = await kv.txn({
      compares: [{ key: vmKey, modRevision: vmEntry.modRevision }, { key: attrKey, modRevision: attrEntry?.modRevision ?? 0 }],
      puts: [{ key: attrKey, value: text }],
      deletes: [],
    });
    if (r.succeeded) return undefined;
  }
  return { status: 409, message: 'guest attributes kept changing; try again' };
}

export async function readGuestAttributes(kv: Kv, keys: Keys, vm: { network: string; name: string; id: string }): Promise<GuestAttributes['namespaces']> {
  const entry = await kv.get(keys.guestAttributes(vm.network, vm.name));
  if (!entry) return {};
  const parsed = GuestAttributesSchema.safeParse(parseJson(entry.value));
  return parsed.success && parsed.data.vmId === vm.id ? parsed.data.namespaces : {};
}
