// User-data and vendor-data are bytes (gzip, MIME multipart, scripts, anything), served exactly as
// given. A record keeps them as text when they are UTF-8 (readable in etcd, and what versions
// before byte support read) and as base64 in a second field otherwise; never both.
import type { Vm } from './schema.js';

/** The size limit of each, in bytes. */
export const MAX_DATA_BYTES = 1024 * 1024;

export type DataKind = 'userData' | 'vendorData';
export const BASE64_FIELD = { userData: 'userDataBase64', vendorData: 'vendorDataBase64' } as const;

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Standard padded base64 with one spelling only (no spare bits set), of at most `maxBytes`. */
export function isCanonicalBase64(s: string, maxBytes = MAX_DATA_BYTES): boolean {
  if (s.length > Math.ceil(maxBytes / 3) * 4 || !BASE64_RE.test(s)) return false;
  const bytes = Buffer.from(s, 'base64');
  return bytes.length <= maxBytes && bytes.toString('base64') === s;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** How a record stores these bytes: text when they are UTF-8 and survive the round trip, else base64. */
export function encodeData(bytes: Uint8Array): { text: string } | { base64: string } {
  try {
    const text = utf8.decode(bytes);
    if (Buffer.from(text, 'utf8').equals(bytes)) return { text };
  } catch {
    // not UTF-8: binary
  }
  return { base64: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64') };
}

/** The bytes a VM record holds for user-data or vendor-data, or undefined when it has none. */
export function dataBytes(vm: Vm, kind: DataKind): Buffer<ArrayBuffer> | undefined {
  const text = vm[kind];
  if (text !== undefined) return Buffer.from(text, 'utf8');
  const b64 = vm[BASE64_FIELD[kind]];
  return b64 === undefined ? undefined : Buffer.from(b64, 'base64');
}

/** True when the record holds them as base64: they are not UTF-8 text. */
export function isBinaryData(vm: Vm, kind: DataKind): boolean {
  return vm[BASE64_FIELD[kind]] !== undefined;
}
