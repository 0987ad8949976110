// What the agent's nftables rules must say for the VMs this host runs, worked out from the
// registry: each tap's own addresses (port security) and each network's metadata addresses and
// forwarding (destinations). A network whose prefix6 is not a /64 (an older record) is not served:
// its taps drop everything, and the agent says so once.
import type { Logger } from 'pino';
import type { NetworkView, VmView } from '../registry/registry.js';
import { isSlaac64, metadataAddresses } from '../model/schema.js';
import { parsePrefix } from '../model/ip.js';
import { eui64Address } from '../model/eui64.js';
import { bridgeName } from './names.js';
import { renderRuleset, type NetworkPolicy, type TapPolicy } from './nft.js';

const LINK_LOCAL = parsePrefix('fe80::/64', 6)!;

export function tapPolicy(v: VmView, tap: string): TapPolicy {
  return {
    tap,
    mac: v.vm.mac,
    linkLocal: eui64Address(LINK_LOCAL, v.vm.mac),
    own6: v.addresses6,
    own4: v.addresses4,
    served: isSlaac64(v.network),
  };
}

/** A network's metadata addresses and where its guests may be routed (resolved by the writer in the host copy). */
export function networkPolicy(view: NetworkView): NetworkPolicy {
  const n = view.network;
  return {
    name: n.name,
    bridge: bridgeName(n),
    metadata6: metadataAddresses(n).v6,
    metadata4: metadataAddresses(n).v4,
    forward6: view.forward?.v6 ?? [],
    forward4: view.forward?.v4 ?? [],
  };
}

export class HostRules {
  private readonly warned = new Set<string>();

  constructor(private readonly log: Logger) {}

  /** The ruleset for these VMs (each with the tap it is plugged into); `network` finds a network's view by name. */
  render(vms: { view: VmView; tap: string }[], network: (name: string) => NetworkView | undefined): string {
    const nets = new Map<string, NetworkView>();
    for (const { view } of vms) {
      const net = network(view.network.name);
      if (net) nets.set(view.network.name, net);
      if (!isSlaac64(view.network) && !this.warned.has(view.network.name)) {
        this.warned.add(view.network.name);
        this.log.warn({ network: view.network.name, prefix6: view.network.prefix6 }, 'prefix6 is not a /64: this network is not served, its VMs\' taps drop everything');
      }
    }
    return renderRuleset(
      vms.map(({ view, tap }) => tapPolicy(view, tap)),
      [...nets.values()].filter((n) => isSlaac64(n.network)).map(networkPolicy),
    );
  }
}
