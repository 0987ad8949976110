// IP address math, on ipaddr.js: parsing, normalising, prefix membership, reverse names.
import ipaddr from 'ipaddr.js';

export type IPAddress = ipaddr.IPv4 | ipaddr.IPv6;

/** Parses an address; IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes IPv4. Returns undefined when invalid. */
export function parseAddress(text: string): IPAddress | undefined {
  const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  const noZone = bare.includes('%') ? bare.slice(0, bare.indexOf('%')) : bare;
  if (!ipaddr.isValid(noZone)) return undefined;
  try {
    const addr = ipaddr.parse(noZone);
    if (addr.kind() === 'ipv4' && !ipaddr.IPv4.isValidFourPartDecimal(noZone)) return undefined;
    return addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()
      ? (addr as ipaddr.IPv6).toIPv4Address()
      : addr;
  } catch {
    return undefined;
  }
}

/** Canonical text form (RFC 5952 for IPv6), the key every address index uses. */
export function normalizeAddress(text: string): string | undefined {
  return parseAddress(text)?.toString();
}

export interface Prefix {
  address: IPAddress;
  length: number;
  text: string;
}

/** Parses a CIDR; the host bits must be zero. */
export function parsePrefix(text: string, family?: 4 | 6): Prefix | undefined {
  try {
    const [address, length] = ipaddr.parseCIDR(text);
    if (family === 4 && address.kind() !== 'ipv4') return undefined;
    if (family === 6 && address.kind() !== 'ipv6') return undefined;
    if (address.kind() === 'ipv4' && !ipaddr.IPv4.isValidFourPartDecimal(text.split('/')[0])) return undefined;
    const network = address.kind() === 'ipv4'
      ? ipaddr.IPv4.networkAddressFromCIDR(text)
      : ipaddr.IPv6.networkAddressFromCIDR(text);
    if (network.toString() !== address.toString()) return undefined;
    return { address, length, text: `${address.toString()}/${length}` };
  } catch {
    return undefined;
  }
}

export function prefixContains(prefix: Prefix, addr: IPAddress): boolean {
  if (prefix.address.kind() !== addr.kind()) return false;
  return addr.match(prefix.address as never, prefix.length);
}

export function isIPv6(addr: IPAddress): addr is ipaddr.IPv6 {
  return addr.kind() === 'ipv6';
}

/** The PTR owner name of an address, without the trailing dot. */
export function reverseName(addr: IPAddress): string {
  if (isIPv6(addr)) {
    const nibbles = addr.toByteArray().flatMap((b) => [b >> 4, b & 15]);
    return `${nibbles.reverse().map((n) => n.toString(16)).join('.')}.ip6.arpa`;
  }
  return `${addr.octets.slice().reverse().join('.')}.in-addr.arpa`;
}

/**
 * The reverse zones that exactly cover a prefix: cut at the nibble (IPv6) or octet (IPv4)
 * boundary at or *below* the prefix length, so a /20 is sixteen /24 zones and a /62 four /64
 * zones. Rounding up instead would claim addresses outside the prefix (and the zone of a
 * neighbouring network). At most 8 (IPv6) or 128 (IPv4) zones.
 */
export function reverseZones(prefix: Prefix): string[] {
  const v6 = isIPv6(prefix.address);
  const step = v6 ? 4 : 8;
  const labels = Math.ceil(prefix.length / step);
  const spare = labels * step - prefix.length;
  const full = reverseName(prefix.address).split('.');
  const total = v6 ? 32 : 4;
  // The last label inside the zone cut is the only one that varies; the host bits are zero.
  if (!labels) return [full.slice(total).join('.')];
  const suffix = full.slice(total - labels + 1);
  const base = parseInt(full[total - labels], v6 ? 16 : 10);
  const out: string[] = [];
  for (let i = 0; i < 1 << spare; i++) out.push([(base | i).toString(v6 ? 16 : 10), ...suffix].join('.'));
  return out;
}

/** True when `a` equals `b` or one lies under the other (zone apexes, no trailing dots). */
export function namesNest(a: string, b: string): boolean {
  return a === b || a.endsWith(`.${b}`) || b.endsWith(`.${a}`);
}

/** Splits "ADDR:PORT" or "[V6]:PORT"; a bare address takes the default port. */
export function parseHostPort(text: string, defaultPort?: number): { host: string; port: number } | undefined {
  let host: string;
  let portText: string | undefined;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracket) {
    host = bracket[1];
    portText = bracket[2];
  } else if ((text.match(/:/g) ?? []).length === 1) {
    [host, portText] = text.split(':');
  } else {
    host = text;
  }
  const addr = parseAddress(host);
  if (!addr) return undefined;
  const port = portText === undefined ? defaultPort : Number(portText);
  if (port === undefined || !Number.isInteger(port) || port < 0 || port > 65535) return undefined;
  return { host: addr.toString(), port };
}

export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
