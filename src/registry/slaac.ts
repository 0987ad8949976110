// A VM's SLAAC (modified EUI-64) address as canonical RFC 5952 text, without the generic
// byte-array and ipaddr.js round trip of model/eui64.ts: the same result (slaac.test.ts
// compares them), built 100,000 times at every cold start.
import type { Prefix } from '../model/ip.js';

/** The upper 64 bits of a prefix as four hextets. */
export type SlaacPrefix = readonly [number, number, number, number];

export function slaacPrefix(prefix: Prefix): SlaacPrefix {
  const b = prefix.address.toByteArray();
  return [(b[0] << 8) | b[1], (b[2] << 8) | b[3], (b[4] << 8) | b[5], (b[6] << 8) | b[7]];
}

/** `mac` is canonical (lower-case, colon-separated), as the schema leaves it. */
export function slaacAddress(p: SlaacPrefix, mac: string): string {
  const byte = (i: number) => parseInt(mac.slice(i * 3, i * 3 + 2), 16);
  const h = [
    p[0], p[1], p[2], p[3],
    ((byte(0) ^ 0x02) << 8) | byte(1), (byte(2) << 8) | 0xff, 0xfe00 | byte(3), (byte(4) << 8) | byte(5),
  ];
  return formatIPv6(h);
}

/** RFC 5952: lower-case hex without leading zeros, the first longest run (2+) of zero hextets as "::". */
export function formatIPv6(h: number[]): string {
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (h[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && h[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (from: number, to: number) => h.slice(from, to).map((x) => x.toString(16)).join(':');
  return best < 0 ? hex(0, 8) : `${hex(0, best)}::${hex(best + bestLen, 8)}`;
}
