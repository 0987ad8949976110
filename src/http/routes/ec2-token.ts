// IMDSv2 session tokens: "<expiry ms>.<mac>", an HMAC over the VM's key and id and the expiry.
// Stateless, so any replica holding the same secret verifies what another issued; bound to
// the VM, so a token taken from one VM is worthless on another (or on a VM re-created later).
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { VmView } from '../../registry/registry.js';

export const TOKEN_TTL_MIN = 1;
export const TOKEN_TTL_MAX = 21600;

/** The TTL header's value as seconds, or undefined when it is missing or out of range. */
export function parseTtl(header: string | undefined): number | undefined {
  if (header === undefined || !/^\d{1,5}$/.test(header)) return undefined;
  const n = Number(header);
  return n >= TOKEN_TTL_MIN && n <= TOKEN_TTL_MAX ? n : undefined;
}

function mac(secret: Buffer, view: VmView, expiry: number): Buffer {
  return createHmac('sha256', secret).update(`imdsv2\0${view.key}\0${view.vm.id}\0${expiry}`).digest();
}

export function issueToken(secret: Buffer, view: VmView, ttlSeconds: number, nowMs = Date.now()): string {
  // Milliseconds, so a TTL of 1 s means a full second whenever in the second it was asked.
  const expiry = Math.floor(nowMs) + ttlSeconds * 1000;
  return `${expiry}.${mac(secret, view, expiry).toString('base64url')}`;
}

export function verifyToken(secret: Buffer, view: VmView, token: string, nowMs = Date.now()): boolean {
  const m = /^(\d{1,15})\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (!m) return false;
  const expiry = Number(m[1]);
  if (expiry <= nowMs) return false;
  // Compare the text, not decoded bytes: base64's last character carries spare bits, and a
  // token must have exactly one spelling.
  return timingSafeEqual(Buffer.from(m[2]), Buffer.from(mac(secret, view, expiry).toString('base64url')));
}
