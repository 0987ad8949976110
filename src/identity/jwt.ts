// GCE-style instance identity tokens: a compact JWS a VM hands to a third party (Vault's JWT
// auth, any OIDC library) to prove which VM it is. The claims follow GCE's (iss, aud, sub, azp,
// iat, exp); format=full adds what we know of the VM under `uncloud`.
import { SignJWT } from 'jose';
import type { SigningKey } from './keys.js';

export const TOKEN_LIFETIME_SEC = 3600;

/** Printable ASCII without spaces, as GCE's audience strings are (URLs or plain names). */
const AUDIENCE_RE = /^[\x21-\x7e]{1,512}$/;

export function checkAudience(audience: string | undefined | null): string | undefined {
  if (audience === undefined || audience === null || audience === '') return 'audience is required';
  if (!AUDIENCE_RE.test(audience)) return 'audience must be 1-512 printable characters without spaces';
  return undefined;
}

export interface TokenSubject {
  id: string;
  name: string;
  network: string;
  owner?: string;
  host?: string;
  createdAt: string;
  zone?: string;
}

export interface TokenRequest {
  issuer: string;
  audience: string;
  full: boolean;
  /** Seconds since the epoch. */
  now: number;
}

export function identityClaims(vm: TokenSubject, req: TokenRequest): Record<string, unknown> {
  const claims: Record<string, unknown> = {
    iss: req.issuer, aud: req.audience, sub: vm.id, azp: vm.id,
    iat: req.now, exp: req.now + TOKEN_LIFETIME_SEC,
  };
  if (req.full) {
    claims.uncloud = {
      vm: { id: vm.id, name: vm.name, network: vm.network, ...(vm.owner ? { owner: vm.owner } : {}), ...(vm.host ? { host: vm.host } : {}), created_at: vm.createdAt },
      ...(vm.zone ? { zone: vm.zone } : {}),
    };
  }
  return claims;
}

export function signIdentityToken(key: SigningKey, claims: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' }).sign(key.privateKey);
}
