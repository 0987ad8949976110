// PKIjs on Node's WebCrypto, and Node KeyObjects turned into the CryptoKeys it signs with.
import { webcrypto, type KeyObject } from 'node:crypto';
import * as pkijs from 'pkijs';

const crypto = webcrypto as unknown as Crypto;
pkijs.setEngine('node', new pkijs.CryptoEngine({ name: 'node', crypto }));

export { pkijs };

export const RSA_SHA256 = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;

export function rsaSigningKey(key: KeyObject): Promise<CryptoKey> {
  return crypto.subtle.importKey('pkcs8', key.export({ type: 'pkcs8', format: 'der' }), RSA_SHA256, false, ['sign']);
}

export function rsaPublicKey(key: KeyObject): Promise<CryptoKey> {
  return crypto.subtle.importKey('spki', key.export({ type: 'spki', format: 'der' }), RSA_SHA256, true, ['verify']);
}

export async function sha256(data: Uint8Array<ArrayBuffer>): Promise<ArrayBuffer> {
  return crypto.subtle.digest('SHA-256', data);
}

/** DER as PEM with 64-character lines. */
export function pem(label: string, der: ArrayBuffer | Uint8Array): string {
  return `-----BEGIN ${label}-----\n${base64Lines(der)}-----END ${label}-----\n`;
}

/** Base64 in 64-character lines, each ended by a newline (PEM's body; AWS serves PKCS#7 this way). */
export function base64Lines(der: ArrayBuffer | Uint8Array): string {
  const b64 = Buffer.from(der instanceof Uint8Array ? der : new Uint8Array(der)).toString('base64');
  return `${b64.match(/.{1,64}/g)!.join('\n')}\n`;
}
