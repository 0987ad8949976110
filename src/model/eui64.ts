// Modified EUI-64 (RFC 4291 appendix A): the SLAAC address a MAC takes in a /64, and back.
import ipaddr from 'ipaddr.js';
import { formatMac, macBytes } from './mac.js';
import type { Prefix } from './ip.js';

/** The interface identifier of a MAC: flip the U/L bit, insert ff:fe in the middle. */
export function eui64InterfaceId(mac: string): number[] {
  const m = macBytes(mac);
  return [m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]];
}

/** The upper 64 bits of a prefix as four hextets: computed once per network, reused per VM. */
export type Eui64Prefix = readonly [number, number, number, number];

export function eui64Prefix(prefix: Prefix): Eui64Prefix {
  const b = prefix.address.toByteArray();
  return [(b[0] << 8) | b[1], (b[2] << 8) | b[3], (b[4] << 8) | b[5], (b[6] << 8) | b[7]];
}

/**
 * The SLAAC address of a canonical (lower-case, colon-separated) MAC, as RFC 5952 text. Built
 * without a parser round trip: the registry makes one per VM, 100,000 at a cold start.
 */
export function eui64AddressIn(p: Eui64Prefix, mac: string): string {
  const byte = (i: number) => parseInt(mac.slice(i * 3, i * 3 + 2), 16);
  return formatIPv6([
    p[0], p[1], p[2], p[3],
    ((byte(0) ^ 0x02) << 8) | byte(1), (byte(2) << 8) | 0xff, 0xfe00 | byte(3), (byte(4) << 8) | byte(5),
  ]);
}

/** The SLAAC address of `mac` in an IPv6 prefix of length 64 or shorter (upper 64 bits taken). */
export function eui64Address(prefix: Prefix, mac: string): string {
  return eui64AddressIn(eui64Prefix(prefix), mac);
}

/** RFC 5952: lower-case hex without leading zeros, the first longest run (2+) of zero hextets as "::". */
function formatIPv6(h: number[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (h[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && h[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (from: number, to: number) => h.slice(from, to).map((x) => x.toString(16)).join(':');
  // join, not a template: it makes one flat string, where a template keeps a rope of three
  // (a registry holds one of these per VM).
  return best < 0 ? hex(0, 8) : [hex(0, best), hex(best + bestLen, 8)].join('::');
}

/** The MAC encoded in an address's interface id, or undefined when it is not EUI-64 shaped. */
export function macFromEui64(addr: ipaddr.IPv6): string | undefined {
  const b = addr.toByteArray();
  if (b[11] !== 0xff || b[12] !== 0xfe) return undefined;
  return formatMac([b[8] ^ 0x02, b[9], b[10], b[13], b[14], b[15]]);
}
