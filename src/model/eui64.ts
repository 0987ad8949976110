// Modified EUI-64 (RFC 4291 appendix A): the SLAAC address a MAC takes in a /64, and back.
import ipaddr from 'ipaddr.js';
import { formatMac, macBytes } from './mac.js';
import type { Prefix } from './ip.js';

/** The interface identifier of a MAC: flip the U/L bit, insert ff:fe in the middle. */
export function eui64InterfaceId(mac: string): number[] {
  const m = macBytes(mac);
  return [m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]];
}

/** The SLAAC address of `mac` in an IPv6 prefix of length 64 or shorter (upper 64 bits taken). */
export function eui64Address(prefix: Prefix, mac: string): string {
  const bytes = prefix.address.toByteArray().slice(0, 8).concat(eui64InterfaceId(mac));
  return ipaddr.fromByteArray(bytes).toString();
}

/** The MAC encoded in an address's interface id, or undefined when it is not EUI-64 shaped. */
export function macFromEui64(addr: ipaddr.IPv6): string | undefined {
  const b = addr.toByteArray();
  if (b[11] !== 0xff || b[12] !== 0xfe) return undefined;
  return formatMac([b[8] ^ 0x02, b[9], b[10], b[13], b[14], b[15]]);
}
