// EC2's signed instance-identity document: /signature is a base64 RSA-SHA256 signature of the
// document's bytes; /pkcs7 and /rsa2048 are CMS SignedData with the content detached (the
// verifier supplies the document) and no certificate inside, so a verifier must bring the
// deployment's certificate — as AWS documents: openssl smime -verify -inform PEM -content
// document -certfile cert -noverify. No signing time is included: every replica signs a document
// to the same bytes.
import { createSign } from 'node:crypto';
import * as asn1js from 'asn1js';
import { base64Lines, pkijs, rsaSigningKey, sha256 } from './pki.js';
import type { SigningKey } from './keys.js';
import type { DeploymentCertificate } from './certificate.js';

const OID_DATA = '1.2.840.113549.1.7.1';
const OID_CONTENT_TYPE = '1.2.840.113549.1.9.3';
const OID_MESSAGE_DIGEST = '1.2.840.113549.1.9.4';

/** Base64 RSA-SHA256 (PKCS#1 v1.5) over the document's bytes, on one line. */
export function rsaSignature(key: SigningKey, document: Uint8Array): string {
  return createSign('sha256').update(document).sign(key.privateKey).toString('base64');
}

/** Base64 DER of a detached CMS SignedData over the document, in 64-character lines and no final newline (AWS's form). */
export async function pkcs7Signature(key: SigningKey, cert: DeploymentCertificate, document: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = await sha256(document);
  const signed = new pkijs.SignedData({
    version: 1,
    encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: OID_DATA }),
    signerInfos: [new pkijs.SignerInfo({
      version: 1,
      sid: new pkijs.IssuerAndSerialNumber({ issuer: cert.issuer, serialNumber: cert.serialNumber }),
      signedAttrs: new pkijs.SignedAndUnsignedAttributes({
        type: 0,
        attributes: [
          new pkijs.Attribute({ type: OID_CONTENT_TYPE, values: [new asn1js.ObjectIdentifier({ value: OID_DATA })] }),
          new pkijs.Attribute({ type: OID_MESSAGE_DIGEST, values: [new asn1js.OctetString({ valueHex: digest })] }),
        ],
      }),
    })],
  });
  await signed.sign(await rsaSigningKey(key.privateKey), 0, 'SHA-256', document);
  const info = new pkijs.ContentInfo({ contentType: pkijs.ContentInfo.SIGNED_DATA, content: signed.toSchema(true) });
  return base64Lines(info.toSchema().toBER(false)).trimEnd();
}
