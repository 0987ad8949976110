// The deployment's certificate: what `openssl smime -verify` checks an EC2 identity document's
// PKCS#7 signature against. An operator may give one (issued by their own CA) for the newest RSA
// key; otherwise it is self-signed, made deterministically from that key (fixed serial, names and
// validity; RSA PKCS#1 v1.5 signatures are deterministic), so replicas sharing the key file
// publish the very same certificate without sharing anything else.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as asn1js from 'asn1js';
import { pem, pkijs, rsaPublicKey, rsaSigningKey } from './pki.js';
import { IdentityKeyError, type SigningKey } from './keys.js';

export const SELF_SIGNED_CN = 'uncloud-metadata instance identity';

export interface DeploymentCertificate {
  /** PEM text, as `identity cert` prints it. */
  pem: string;
  /** Issuer and serial, which name the signer inside a PKCS#7 SignerInfo. */
  issuer: pkijs.RelativeDistinguishedNames;
  serialNumber: asn1js.Integer;
}

function fromDer(der: ArrayBuffer): DeploymentCertificate {
  const cert = pkijs.Certificate.fromBER(der);
  return { pem: pem('CERTIFICATE', der), issuer: cert.issuer, serialNumber: cert.serialNumber };
}

export async function selfSignedCertificate(key: SigningKey): Promise<DeploymentCertificate> {
  const cert = new pkijs.Certificate();
  cert.version = 2;
  // A positive serial from the key's thumbprint: the same key always gives the same certificate.
  const serial = Buffer.from(key.kid, 'base64url').subarray(0, 16);
  serial[0] &= 0x7f;
  cert.serialNumber = new asn1js.Integer({ valueHex: serial });
  const name = new pkijs.AttributeTypeAndValue({ type: '2.5.4.3', value: new asn1js.Utf8String({ value: SELF_SIGNED_CN }) });
  cert.issuer.typesAndValues.push(name);
  cert.subject.typesAndValues.push(name);
  cert.notBefore.value = new Date(Date.UTC(2020, 0, 1));
  cert.notAfter.value = new Date(Date.UTC(2049, 11, 31, 23, 59, 59));
  cert.extensions = [
    new pkijs.Extension({ extnID: '2.5.29.19', critical: true, extnValue: new pkijs.BasicConstraints({ cA: false }).toSchema().toBER(false) }),
    // digitalSignature only.
    new pkijs.Extension({ extnID: '2.5.29.15', critical: true, extnValue: new asn1js.BitString({ valueHex: new Uint8Array([0x80]).buffer, unusedBits: 7 }).toBER(false) }),
  ];
  await cert.subjectPublicKeyInfo.importKey(await rsaPublicKey(key.publicKey));
  await cert.sign(await rsaSigningKey(key.privateKey), 'SHA-256');
  return fromDer(cert.toSchema(true).toBER(false));
}

/** An operator's certificate must be for the signing key, or every signature would fail to verify. */
export function readCertificate(path: string, key: SigningKey): DeploymentCertificate {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(readFileSync(path));
  } catch (err) {
    throw new IdentityKeyError(`identity certificate ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!x509.publicKey.equals(key.publicKey)) throw new IdentityKeyError(`identity certificate ${path} is not for the newest RSA key (kid ${key.kid})`);
  const der = x509.raw;
  return fromDer(der.buffer.slice(der.byteOffset, der.byteOffset + der.byteLength) as ArrayBuffer);
}
