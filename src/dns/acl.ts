// Who may recurse: a list of prefixes, checked per client address (answers are memoised per
// address by the server). Authoritative answers are for everyone; forwarding is not.
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
    const cidrs = [...LOOPBACK];
    for (const n of registry.networks()) cidrs.push(n.prefix6.text, ...(n.prefix4 ? [n.prefix4.text] : []));
    return Acl.parse(cidrs);
  }

  allows(address: string): boolean {
    const a = parseAddress(address);
    return !!a && this.prefixes.some((p) => prefixContains(p, a));
  }
}
