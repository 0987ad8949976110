// The appliance's own shape: one JSON document of the VM, and /keys as authorized_keys text
// (usable as sshd's AuthorizedKeysCommand, so key changes apply without touching the guest).
import type { VmView } from '../../registry/registry.js';
import { BYTES, JSON_TYPE, TEXT, rendered, type Rendered } from './rendered.js';
import { placementOf } from '../../model/placement.js';
import { dataBytes } from '../../model/user-data.js';

export function renderNative(view: VmView): Map<string, Rendered> {
  const { vm } = view;
  const doc = {
    id: vm.id,
    name: vm.name,
    fqdn: view.fqdn,
    network: vm.network,
    domain: view.network.domain,
    mac: vm.mac,
    addresses: { ipv6: view.addresses6, ipv4: view.addresses4 },
    owner: vm.owner ?? null,
    sshKeys: view.authorizedKeys,
    meta: vm.meta,
    metadata: { ipv6: view.network.metadata6, ipv4: view.network.metadata4 ?? null },
    placement: placementOf(view.network),
  };
  const keys = view.authorizedKeys.length ? `${view.authorizedKeys.join('\n')}\n` : '';
  const out = new Map([
    ['instance', rendered(`${JSON.stringify(doc, null, 2)}\n`, JSON_TYPE)],
    ['keys', rendered(keys, TEXT)],
  ]);
  // The bytes exactly as given; absent (404) when the VM has none.
  for (const [path, kind] of [['user-data', 'userData'], ['vendor-data', 'vendorData']] as const) {
    const bytes = dataBytes(vm, kind);
    if (bytes) out.set(path, rendered(bytes, BYTES));
  }
  return out;
}
