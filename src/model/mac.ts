// MAC addresses: canonical form, random locally administered unicast allocation.
import { randomBytes } from 'node:crypto';

const MAC_RE = /^([0-9a-f]{2})([:-]?)([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})$/i;

/** Canonical lower-case colon form, or undefined when malformed. Multicast MACs are rejected. */
export function normalizeMac(text: string): string | undefined {
  const m = MAC_RE.exec(text.trim());
  if (!m) return undefined;
  const bytes = [m[1], m[3], m[4], m[5], m[6], m[7]].map((b) => b.toLowerCase());
  if (parseInt(bytes[0], 16) & 1) return undefined;
  return bytes.join(':');
}

export function macBytes(mac: string): number[] {
  return mac.split(':').map((b) => parseInt(b, 16));
}

export function formatMac(bytes: ArrayLike<number>): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(':');
}

/**
 * A random locally administered unicast MAC (first octet xxxxxx10). Uniqueness is not decided
 * here but by the store's transaction that claims the MAC's index key.
 */
export function randomLocalMac(): string {
  const bytes = randomBytes(6);
  bytes[0] = (bytes[0] & 0xfc) | 0x02;
  return formatMac(bytes);
}
