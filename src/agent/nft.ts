// The agent's nftables table, rendered whole from the desired state and swapped in one `nft -f`
// transaction (create-if-missing, delete, re-create), so a VM is never half-protected.
//
// Per VM tap, in the bridge's prerouting hook (before forwarding and before the host sees it):
//  - the source MAC must be the VM's; only IPv6, IPv4 and ARP frames pass (no VLAN tags to hide in);
//  - no router advertisements, redirects, DHCPv6 or DHCPv4 server messages;
//  - neighbour advertisements only for the VM's own addresses;
//  - IPv6 sources: the VM's link-local or inside the network's prefix, but never an address that
//    belongs to another VM or to the metadata service (that is what makes identity by source
//    address safe); `::` only for DAD and MLD;
//  - IPv4 sources: the VM's own IPv4 addresses (0.0.0.0 for DHCP discovery and ARP probes).
import ipaddr from 'ipaddr.js';
import { run } from './exec.js';
import { chainName } from './names.js';

export const TABLE = 'uncloud_agent';

export interface TapPolicy {
  tap: string;
  mac: string;
  /** fe80::/64 + the MAC's EUI-64 interface id. */
  linkLocal: string;
  /** The VM's IPv6 addresses (EUI-64 first, then explicit). */
  own6: string[];
  own4: string[];
  prefix6: string;
  /** Addresses inside the network this VM must never send from: other VMs', the metadata service's. */
  foreign6: string[];
}

const set = (items: string[]) => `{ ${items.join(', ')} }`;
const hex128 = (addr: string) => `0x${Buffer.from(ipaddr.parse(addr).toByteArray()).toString('hex')}`;

function tapChain(p: TapPolicy): string[] {
  const own6 = [...new Set([p.linkLocal, ...p.own6])].sort();
  const foreign6 = [...new Set(p.foreign6)].filter((a) => !own6.includes(a)).sort();
  const rules = [
    `ether saddr != ${p.mac} counter drop`,
    'ether type != { ip6, ip, arp } counter drop',
    'icmpv6 type { nd-router-advert, nd-redirect } counter drop',
    'meta l4proto udp udp sport { 67, 547 } counter drop',
    // nft 1.0.6 has no `icmpv6 taddr`: the target address is the 128 bits after the 8-byte header.
    `icmpv6 type nd-neighbor-advert @th,64,128 != ${set(own6.map(hex128))} counter drop`,
    ...(foreign6.length ? [`ip6 saddr ${set(foreign6)} counter drop`] : []),
    'ip6 saddr :: icmpv6 type { nd-neighbor-solicit, mld-listener-report, mld2-listener-report } return',
    `ip6 saddr != ${set([p.linkLocal, p.prefix6])} counter drop`,
    `arp saddr ip != ${set(['0.0.0.0', ...[...p.own4].sort()])} counter drop`,
    `ip saddr != ${set(['0.0.0.0', ...[...p.own4].sort()])} counter drop`,
  ];
  return [`  chain ${chainName(p.tap)} {`, ...rules.map((r) => `    ${r}`), '  }'];
}

/** The whole table as an `nft -f` script that replaces any previous version atomically. */
export function renderRuleset(policies: TapPolicy[]): string {
  const sorted = [...policies].sort((a, b) => a.tap.localeCompare(b.tap));
  return [
    `table bridge ${TABLE}`,
    `delete table bridge ${TABLE}`,
    `table bridge ${TABLE} {`,
    '  chain prerouting {',
    '    type filter hook prerouting priority -200; policy accept;',
    ...sorted.map((p) => `    iifname "${p.tap}" jump ${chainName(p.tap)}`),
    '  }',
    ...sorted.flatMap(tapChain),
    '}',
    '',
  ].join('\n');
}

export async function applyRuleset(text: string, nft = 'nft'): Promise<void> {
  await run(nft, ['-f', '-'], { input: text });
}

/** Parses and validates against the kernel without committing (`nft -c`). */
export async function checkRuleset(text: string, nft = 'nft'): Promise<void> {
  await run(nft, ['-c', '-f', '-'], { input: text });
}

export async function removeTable(nft = 'nft'): Promise<void> {
  await run(nft, ['-f', '-'], { input: `table bridge ${TABLE}\ndelete table bridge ${TABLE}\n` });
}
