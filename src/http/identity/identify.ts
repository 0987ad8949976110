// Who is asking: the VM behind a request's source address, and nothing else (never a header).
//   1. exact match on a VM's addresses (its EUI-64 address in the network's /64 and its explicit
//      addresses): what the agent's tap rules let that VM, and only it, send from;
//   2. the VM's EUI-64 link-local address (fe80::/64 + the MAC's interface id), only when the
//      request arrived on the bridge of that VM's network (Node gives link-local peers as
//      "fe80::...%<interface>"); the tap rules pin each VM to its own link-local source.
// Nothing else: an address inside a served prefix that matches no VM (stable-privacy, temporary,
// or someone else's) is refused and reported as a possible spoof.
import type { Registry, VmView } from '../../registry/registry.js';
import { parseAddress, isIPv6 } from '../../model/ip.js';
import { macFromEui64 } from '../../model/eui64.js';
import { bridgeName } from '../../model/bridge.js';

export type IdentityStep = 'address' | 'linklocal';
/** no-address: none or unparsable; outside: in no served prefix; unknown: in one, but no VM's. */
export type IdentityFailure = 'no-address' | 'outside' | 'unknown';
export type Identity = { view: VmView; by: IdentityStep } | { view?: undefined; failure: IdentityFailure };

export class Identifier {
  constructor(private readonly registry: Registry) {}

  identify(remoteAddress: string | undefined): Identity {
    if (!remoteAddress) return { failure: 'no-address' };
    const pct = remoteAddress.indexOf('%');
    if (pct < 0) {
      // The registry indexes canonical text; Node's canonical form usually matches as is, and
      // vmByAddress parses (IPv4-mapped, case) on a miss.
      const exact = this.registry.vmByAddress(remoteAddress);
      if (exact) return { view: exact, by: 'address' };
    }
    const addr = parseAddress(remoteAddress);
    if (!addr) return { failure: 'no-address' };
    if (pct >= 0 && isIPv6(addr) && isLinkLocal64(addr.parts)) {
      const mac = macFromEui64(addr);
      const view = mac ? this.registry.vmByMac(mac) : undefined;
      const zone = remoteAddress.slice(pct + 1);
      if (view && bridgeName(view.network) === zone) return { view, by: 'linklocal' };
      // On a served network's bridge but no VM's: a spoof; on any other link: not ours.
      return this.registry.networks().some((n) => bridgeName(n.network) === zone) ? { failure: 'unknown' } : { failure: 'outside' };
    }
    return this.registry.networkForAddress(addr) ? { failure: 'unknown' } : { failure: 'outside' };
  }
}

/** fe80::/64 exactly (the rest of fe80::/10 is not what SLAAC makes). */
function isLinkLocal64(parts: number[]): boolean {
  return parts[0] === 0xfe80 && parts[1] === 0 && parts[2] === 0 && parts[3] === 0;
}
