// Lists of prefixes checked per client address (answers are memoised per address by the
// server): who may recurse (the recursion ACL), and who may see authoritative data (the served
// networks plus that ACL; a network with dnsPublic is open to everyone).
import { parseAddress, parsePrefix, prefixContains, type Prefix } from '../model/ip.js';
import type { Registry } from '../registry/registry.js';

export const LOOPBACK = ['127.0.0.0/8', '::1/128'];

export class Acl {
  constructor(readonly prefixes: Prefix[]) {}

  /** Parses CIDRs (a bare address means just that host); throws on nonsense so config errors surface at start. */
  static parse(cidrs: string[]): Acl {
    return new Acl(cidrs.map((c) => {
      const text = c.includes('/') ? c : `${c}/${parseAddress(c)?.kind() === 'ipv4' ? 32 : 128}`;
      const p = parsePrefix(text);
      if (!p) throw new Error(`recursion ACL entry "${c}" is not an address or a CIDR prefix with zero host bits`);
      return p;
    }));
  }

  /** The default: every served network's prefixes, and loopback. */
  static forNetworks(registry: Registry): Acl {
    return Acl.union(Acl.parse(LOOPBACK), Acl.servedPrefixes(registry));
  }

  /** Every served network's prefixes. */
  static servedPrefixes(registry: Registry): Acl {
    const cidrs: string[] = [];
    for (const n of registry.networks()) cidrs.push(n.prefix6.text, ...(n.prefix4 ? [n.prefix4.text] : []));
    return Acl.parse(cidrs);
  }

  /** Both lists' prefixes. */
  static union(a: Acl, b: Acl): Acl {
    return new Acl([...a.prefixes, ...b.prefixes]);
  }

  allows(address: string): boolean {
    const a = parseAddress(address);
    return !!a && this.prefixes.some((p) => prefixContains(p, a));
  }
}
