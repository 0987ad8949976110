// Who is asking: the VM behind a request's source address, and nothing else (never a header).
//   1. exact match on a VM's addresses (EUI-64 derived and explicit);
//   2. inside a served prefix, the MAC in an EUI-64 interface id, if that VM is on that network;
//   3. inside a served prefix, the MAC the host's neighbour table holds for the address.
import type { Registry, VmView } from '../../registry/registry.js';
import { isIPv6, parseAddress } from '../../model/ip.js';
import { macFromEui64 } from '../../model/eui64.js';
import type { NeighbourTable } from './neighbours.js';

export type IdentityFailure = 'no-address' | 'outside' | 'unknown';
export type Identity = { view: VmView; by: 'address' | 'eui64' | 'neighbour' } | { view?: undefined; failure: IdentityFailure };

export class Identifier {
  constructor(private readonly registry: Registry, private readonly neighbours?: NeighbourTable) {}

  /** Synchronous for the common cases; a promise only when the neighbour table must be read. */
  identify(remoteAddress: string | undefined): Identity | Promise<Identity> {
    if (!remoteAddress) return { failure: 'no-address' };
    // The registry indexes canonical text; Node's canonical form usually matches as is, and
    // vmByAddress parses (IPv4-mapped, zones, case) on a miss.
    const exact = this.registry.vmByAddress(remoteAddress);
    if (exact) return { view: exact, by: 'address' };
    const addr = parseAddress(remoteAddress);
    if (!addr) return { failure: 'no-address' };
    const net = this.registry.networkForAddress(addr);
    if (!net) return { failure: 'outside' };
    if (isIPv6(addr)) {
      const mac = macFromEui64(addr);
      const view = mac ? this.registry.vmByMac(mac) : undefined;
      if (view && view.vm.network === net.network.name) return { view, by: 'eui64' };
    }
    if (!this.neighbours) return { failure: 'unknown' };
    return this.neighbours.macFor(addr.toString()).then((mac): Identity => {
      const view = mac ? this.registry.vmByMac(mac) : undefined;
      // The registry may have changed while we waited: check the network again.
      if (view && view.vm.network === this.registry.networkForAddress(addr)?.network.name) return { view, by: 'neighbour' };
      return { failure: 'unknown' };
    }, (): Identity => ({ failure: 'unknown' }));
  }
}
