// The agent's nftables rules, rendered whole from the desired state and swapped in one `nft -f`
// transaction (create-if-missing, delete, re-create, for both tables), so a VM is never
// half-protected. Two tables, each at the layer that knows what it decides:
//
// `bridge uncloud_agent` — port security, an allow list per tap (what OpenStack Neutron does), in
// the bridge's prerouting hook: before the frame is forwarded to another port and before the
// host's IP stack (its neighbour cache, its sockets) sees it. Only here is the tap, the VM's
// port, still known. A frame passes only if everything it says about its sender is the VM's own:
//  - Ethernet source = the VM's MAC; only IPv6 (and IPv4/ARP if the VM has IPv4 addresses);
//  - IPv6 source ∈ {its link-local, its EUI-64 address, its explicit addresses}; `::` only for
//    DAD (a solicitation for one of its own addresses, no option but Linux's nonce) and MLD;
//  - NS/NA/RS link-layer address options = its MAC, checked on the raw ICMPv6 payload (nft 1.0.6
//    cannot parse ND options): a message is accepted only in the exact shapes a Linux guest sends
//    (no options, or exactly one source/target link-layer option), without extension headers;
//    an NA only for its own addresses;
//  - no router advertisement, redirect, MLD query, router renumbering, fragmented ICMPv6, and no
//    DHCPv4/DHCPv6 server traffic, judged by message direction (anything to UDP 68 or 546),
//    whatever the source port;
//  - ARP: request/reply only, sender MAC and IP its own (0.0.0.0 only to probe its own address);
//    IPv4 source its own (0.0.0.0 only for DHCP discovery to 255.255.255.255:67).
// Every frame from a VM tap also gets the mark bit GUEST_MARK (kept as the frame goes up into the
// host's IP stack), so the IP layer can tell guest traffic from anything else on the bridge.
//
// `inet uncloud_agent` — destinations, in the input and forward hooks, where the kernel has
// already decided whether a packet is for this host (any of its addresses, on any interface) or
// to be routed. From guests (the mark), the host accepts only DNS (UDP/TCP 53) and HTTP (80) on
// the guest's own network's metadata addresses (and the host's link-local ones on its bridge), ICMPv6 ND/MLD, ICMP/ICMPv6 echo, and replies to
// connections the host opened; it routes only to the networks the guest's network names in
// `forwardTo` (or anywhere with "*"). Everything else is counted and dropped.
import ipaddr from 'ipaddr.js';
import { run } from './exec.js';
import { chainName } from './names.js';

export const TABLE = 'uncloud_agent';
/** The skb mark bit set on every frame from a VM tap (documented in SECURITY.md). */
export const GUEST_MARK = 0x00750000;
const MARK = `0x${GUEST_MARK.toString(16).padStart(8, '0')}`;

export interface TapPolicy {
  tap: string;
  mac: string;
  /** fe80::/64 + the MAC's EUI-64 interface id. */
  linkLocal: string;
  /** The VM's IPv6 addresses (EUI-64 first, then explicit). */
  own6: string[];
  own4: string[];
  /** False when its network cannot be served safely (prefix6 not a /64): every frame is dropped. */
  served: boolean;
}

export interface NetworkPolicy {
  name: string;
  bridge: string;
  /** Where its guests reach this host's DNS and HTTP: the metadata addresses (replicas too). */
  metadata6: string[];
  metadata4: string[];
  /** Prefixes its guests may be routed to ("::/0" and "0.0.0.0/0" for anywhere). */
  forward6: string[];
  forward4: string[];
}

const set = (items: string[]) => (items.length === 1 ? items[0] : `{ ${items.join(', ')} }`);
const hex128 = (addr: string) => `0x${Buffer.from(ipaddr.parse(addr).toByteArray()).toString('hex')}`;
const macHex = (mac: string) => mac.split(':').join('');
const sorted = (items: Iterable<string>) => [...new Set(items)].sort();

// ICMPv6 ND message sizes (RFC 4861), which are also the IPv6 payload length once extension
// headers are refused: NS/NA = 8-byte header + 16-byte target, RS = 8-byte header; each
// link-layer address option on Ethernet is 8 bytes (type, length 1, 6-byte MAC).
const NS_NA = 24;
const RS = 8;
const OPT = 8;
const ND_OPT_SLLA = '01';
const ND_OPT_TLLA = '02';
const ND_OPT_NONCE = '0e'; // RFC 7527, sent by Linux in its DAD probes (enhanced DAD)

function portSecurity(p: TapPolicy): string[] {
  if (!p.served) return ['counter drop'];
  const own6 = sorted([p.linkLocal, ...p.own6]);
  const own4 = sorted(p.own4);
  const mac = macHex(p.mac);
  const opt = (type: string) => `0x${type}01${mac}`;
  const rules = [
    `ether saddr != ${p.mac} counter drop`,
    `ether type != ${set(own4.length ? ['ip6', 'ip', 'arp'] : ['ip6'])} counter drop`,

    // IPv6: the source is its own, or :: for DAD and MLD.
    `ip6 saddr != ${set(['::', ...own6])} counter drop`,
    'icmpv6 type { nd-router-advert, nd-redirect, mld-listener-query, router-renumbering } counter drop',
    'meta l4proto udp udp dport 546 counter drop',
    'exthdr frag exists meta l4proto ipv6-icmp counter drop',
    'ip6 saddr :: meta l4proto != ipv6-icmp counter drop',
    'ip6 saddr :: icmpv6 type != { nd-neighbor-solicit, nd-router-solicit, mld-listener-report, mld2-listener-report } counter drop',
    // ND: no extension headers, so the payload length is the ICMPv6 length and options sit at fixed offsets.
    'icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } ip6 nexthdr != ipv6-icmp counter drop',
    // DAD: only for its own addresses, with no option but the nonce.
    `ip6 saddr :: icmpv6 type nd-neighbor-solicit @th,64,128 != ${set(own6.map(hex128))} counter drop`,
    `ip6 saddr :: icmpv6 type nd-neighbor-solicit ip6 length != { ${NS_NA}, ${NS_NA + OPT} } counter drop`,
    `ip6 saddr :: icmpv6 type nd-neighbor-solicit ip6 length ${NS_NA + OPT} @th,${NS_NA * 8},16 != 0x${ND_OPT_NONCE}01 counter drop`,
    `ip6 saddr :: icmpv6 type nd-router-solicit ip6 length != ${RS} counter drop`,
    // Solicitations from its addresses: no option, or its own MAC as the source link-layer address.
    `ip6 saddr != :: icmpv6 type nd-neighbor-solicit ip6 length != { ${NS_NA}, ${NS_NA + OPT} } counter drop`,
    `ip6 saddr != :: icmpv6 type nd-neighbor-solicit ip6 length ${NS_NA + OPT} @th,${NS_NA * 8},64 != ${opt(ND_OPT_SLLA)} counter drop`,
    `ip6 saddr != :: icmpv6 type nd-router-solicit ip6 length != { ${RS}, ${RS + OPT} } counter drop`,
    `ip6 saddr != :: icmpv6 type nd-router-solicit ip6 length ${RS + OPT} @th,${RS * 8},64 != ${opt(ND_OPT_SLLA)} counter drop`,
    // Advertisements: only for its own addresses, no option or its own MAC as the target link-layer address.
    `icmpv6 type nd-neighbor-advert @th,64,128 != ${set(own6.map(hex128))} counter drop`,
    `icmpv6 type nd-neighbor-advert ip6 length != { ${NS_NA}, ${NS_NA + OPT} } counter drop`,
    `icmpv6 type nd-neighbor-advert ip6 length ${NS_NA + OPT} @th,${NS_NA * 8},64 != ${opt(ND_OPT_TLLA)} counter drop`,
  ];
  if (own4.length) {
    rules.push(
      'arp operation != { request, reply } counter drop',
      `arp saddr ether != ${p.mac} counter drop`,
      `arp saddr ip != ${set(['0.0.0.0', ...own4])} counter drop`,
      `arp saddr ip 0.0.0.0 arp daddr ip != ${set(own4)} counter drop`,
      `ip saddr != ${set(['0.0.0.0', ...own4])} counter drop`,
      'meta l4proto udp udp dport 68 counter drop',
      'ip saddr 0.0.0.0 ip daddr != 255.255.255.255 counter drop',
      'ip saddr 0.0.0.0 meta l4proto != udp counter drop',
      'ip saddr 0.0.0.0 udp dport != 67 counter drop',
    );
  }
  return rules;
}

const LINK_LOCAL_METADATA4 = '169.254.169.254';

function hostInput(n: NetworkPolicy): string[] {
  // The metadata address, and the host's link-local addresses on the bridge (fe80::a9fe:a9fe,
  // which `serve` takes by default; the appliance also knows a guest by its EUI-64 link-local
  // source when the request arrives on its bridge).
  const to6 = set([...sorted(n.metadata6), 'fe80::/64']);
  const rules = [`iifname "${n.bridge}" ip6 daddr ${to6} udp dport 53 accept`, `iifname "${n.bridge}" ip6 daddr ${to6} tcp dport { 53, 80 } accept`];
  // IPv4: the metadata address, and 169.254.169.254 where the appliance holds it on the bridge.
  const to4 = set([...sorted(n.metadata4), LINK_LOCAL_METADATA4]);
  rules.push(`iifname "${n.bridge}" ip daddr ${to4} udp dport 53 accept`, `iifname "${n.bridge}" ip daddr ${to4} tcp dport { 53, 80 } accept`);
  return rules;
}

function hostForward(n: NetworkPolicy): string[] {
  // With br_netfilter loaded (Docker and Kubernetes hosts load it), frames bridged between two
  // ports of the network's bridge also pass this hook, in and out on the bridge: that is the
  // network's own L2 traffic, not routing.
  const rules = [`iifname "${n.bridge}" oifname "${n.bridge}" accept`];
  if (n.forward6.length) rules.push(`iifname "${n.bridge}" ip6 daddr ${set(sorted(n.forward6))} accept`);
  if (n.forward4.length) rules.push(`iifname "${n.bridge}" ip daddr ${set(sorted(n.forward4))} accept`);
  return rules;
}

const indent = (rules: string[], depth = 4) => rules.map((r) => `${' '.repeat(depth)}${r}`);

/** Creates each table if missing, then deletes it: what follows starts from nothing, in the same transaction. */
const CLEAR = [`table bridge ${TABLE}`, `delete table bridge ${TABLE}`, `table inet ${TABLE}`, `delete table inet ${TABLE}`];

/** Both tables as one `nft -f` script that replaces any previous version atomically. */
export function renderRuleset(taps: TapPolicy[], networks: NetworkPolicy[] = []): string {
  const byTap = [...taps].sort((a, b) => a.tap.localeCompare(b.tap));
  const byName = [...networks].sort((a, b) => a.name.localeCompare(b.name));
  const guest = `meta mark and ${MARK} != ${MARK} return`;
  return [
    ...CLEAR,
    `table bridge ${TABLE} {`,
    '  chain prerouting {',
    '    type filter hook prerouting priority -200; policy accept;',
    ...indent(byTap.map((p) => `iifname "${p.tap}" meta mark set meta mark or ${MARK} jump ${chainName(p.tap)}`)),
    '  }',
    ...byTap.flatMap((p) => [`  chain ${chainName(p.tap)} {`, ...indent(portSecurity(p)), '  }']),
    '}',
    `table inet ${TABLE} {`,
    '  chain input {',
    '    type filter hook input priority 0; policy accept;',
    ...indent([
      guest,
      'ct state established,related accept',
      ...byName.flatMap(hostInput),
      'icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, mld-listener-report, mld2-listener-report, mld-listener-done, echo-request, echo-reply } accept',
      'icmp type { echo-request, echo-reply } accept',
      'counter drop',
    ]),
    '  }',
    '  chain forward {',
    '    type filter hook forward priority 0; policy accept;',
    ...indent([guest, 'ct state established,related accept', ...byName.flatMap(hostForward), 'counter drop']),
    '  }',
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
  await run(nft, ['-f', '-'], { input: `${CLEAR.join('\n')}\n` });
}
