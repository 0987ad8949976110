// The fast EUI-64 text against the slow, obvious construction: bytes through ipaddr.js.
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { parsePrefix, type Prefix } from './ip.js';
import { eui64Address, eui64AddressIn, eui64InterfaceId, eui64Prefix } from './eui64.js';
import { formatMac } from './mac.js';

function reference(prefix: Prefix, mac: string): string {
  return ipaddr.fromByteArray(prefix.address.toByteArray().slice(0, 8).concat(eui64InterfaceId(mac))).toString();
}

describe('eui64Address', () => {
  it('matches the ipaddr.js construction on random and zero-heavy prefixes and MACs', () => {
    const prefixes = ['2001:db8:1::/64', '::/64', 'fd00::/48', '2001:0:0:1::/64', 'fe80::/64', '2001:db8:ffff:ffff::/64', '0:0:1::/64'];
    for (let i = 0; i < 200; i++) {
      const b = randomBytes(8);
      if (i % 3 === 0) b.fill(0, 2, 6);
      prefixes.push(`${[0, 2, 4, 6].map((o) => b.readUInt16BE(o).toString(16)).join(':')}::/64`);
    }
    const macs = ['02:00:00:00:00:00', '00:00:00:00:00:00', '52:54:00:00:00:01', '02:00:00:ff:00:00', 'fe:ff:ff:ff:ff:ff'];
    for (let i = 0; i < 200; i++) {
      const m = randomBytes(6);
      m[0] &= 0xfe;
      if (i % 4 === 0) m.fill(0, 3, 6);
      if (i % 5 === 0) { m[0] = 0x02; m[1] = 0; }
      macs.push(formatMac(m));
    }
    let n = 0;
    for (const text of prefixes) {
      const p = parsePrefix(text, 6)!;
      for (const mac of macs.slice(0, 60)) {
        expect(eui64AddressIn(eui64Prefix(p), mac)).toBe(reference(p, mac));
        expect(eui64Address(p, mac)).toBe(reference(p, mac));
        n++;
      }
    }
    expect(n).toBeGreaterThan(10_000);
  });
});
