// The deployment's signing keys: one PEM file holding one or more private keys (PKCS#8, PKCS#1 or
// SEC1), oldest first. The newest key of the configured algorithm signs; every key is published,
// so rotation is a config change: append a key, roll the file out to every replica, later drop
// the oldest (tokens it signed expire within the hour).
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { calculateJwkThumbprint, exportJWK, type JWK } from 'jose';

export type SigningAlg = 'RS256' | 'ES256' | 'EdDSA';
export const SIGNING_ALGS: readonly SigningAlg[] = ['RS256', 'ES256', 'EdDSA'];

/** A key file that cannot be used: the daemon refuses to start with this one line. */
export class IdentityKeyError extends Error {}

export interface SigningKey {
  /** RFC 7638 thumbprint of the public key: stable across replicas and restarts. */
  kid: string;
  alg: SigningAlg;
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The public JWK as published (kid, alg, use included). */
  jwk: JWK;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

function algOf(key: KeyObject): SigningAlg | string {
  const d = key.asymmetricKeyDetails;
  switch (key.asymmetricKeyType) {
    case 'rsa': return (d?.modulusLength ?? 0) >= 2048 ? 'RS256' : `an RSA key of ${d?.modulusLength} bits (at least 2048 needed)`;
    case 'ec': return d?.namedCurve === 'prime256v1' ? 'ES256' : `an EC key on ${d?.namedCurve} (P-256 needed)`;
    case 'ed25519': return 'EdDSA';
    default: return `a ${key.asymmetricKeyType} key (RSA, P-256 or Ed25519 needed)`;
  }
}

/** Every private key block of a PEM text, oldest first; certificates in the same file are skipped. */
export async function parseKeys(text: string, source: string): Promise<SigningKey[]> {
  const keys: SigningKey[] = [];
  let n = 0;
  for (const m of text.matchAll(PEM_BLOCK)) {
    if (!/PRIVATE KEY$/.test(m[1])) continue;
    n++;
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey(m[0]);
    } catch (err) {
      throw new IdentityKeyError(`${source}: key ${n} does not parse: ${(err as Error).message}`);
    }
    const alg = algOf(privateKey);
    if (!SIGNING_ALGS.includes(alg as SigningAlg)) throw new IdentityKeyError(`${source}: key ${n} is ${alg}`);
    const publicKey = createPublicKey(privateKey);
    const base = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(base, 'sha256');
    keys.push({ kid, alg: alg as SigningAlg, privateKey, publicKey, jwk: { ...base, kid, alg, use: 'sig' } });
  }
  if (!keys.length) throw new IdentityKeyError(`${source}: no private key in the file`);
  return keys;
}

export async function readKeyFile(path: string): Promise<SigningKey[]> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new IdentityKeyError(`cannot read identity key file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseKeys(text, path);
}

/** The keys of one deployment: who signs what, and what verifiers are given. */
export class KeySet {
  constructor(readonly keys: SigningKey[]) {}

  /** The newest key of `alg`, or undefined when the file has none. */
  newest(alg: SigningAlg): SigningKey | undefined {
    for (let i = this.keys.length - 1; i >= 0; i--) if (this.keys[i].alg === alg) return this.keys[i];
    return undefined;
  }

  byKid(kid: string): SigningKey | undefined {
    return this.keys.find((k) => k.kid === kid);
  }

  /** RFC 7517 key set: every key, oldest first, so tokens of a key being rotated out still verify. */
  jwks(): { keys: JWK[] } {
    return { keys: this.keys.map((k) => k.jwk) };
  }
}
