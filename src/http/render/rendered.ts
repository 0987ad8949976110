// One ready answer: body, status and headers (ETag included), built once per VM revision and
// sent as is, so the hot path does no formatting or hashing.
import { createHash } from 'node:crypto';

export interface Rendered {
  status: number;
  /** Text, or bytes where the data is bytes (user-data and vendor-data). */
  body: string | Buffer<ArrayBuffer>;
  etag: string;
  /** Plain object: @hono/node-server writes it straight to node:http. */
  headers: Record<string, string>;
}

export const TEXT = 'text/plain; charset=utf-8';
export const JSON_TYPE = 'application/json';
/** Opaque bytes: user-data and vendor-data, as AWS serves user-data. */
export const BYTES = 'application/octet-stream';

export function etagOf(body: string | Buffer<ArrayBuffer>): string {
  return createHash('sha256').update(body).digest('hex').slice(0, 16);
}

export function rendered(body: string | Buffer<ArrayBuffer>, contentType: string, extra: Record<string, string> = {}, status = 200): Rendered {
  const etag = etagOf(body);
  // Content-Length up front: node:http would otherwise chunk a body written after writeHead.
  return { status, body, etag, headers: { 'content-type': contentType, 'content-length': String(Buffer.byteLength(body)), etag: `"${etag}"`, ...extra } };
}

/**
 * GCE's form of the header: the 16 hex digits without quotes. Google's guest agent copies the
 * header verbatim into ?last_etag=, so the header must be exactly what GCE sends.
 */
export function bareEtag(r: Rendered): Rendered {
  r.headers.etag = r.etag;
  return r;
}

export function toResponse(r: Rendered): Response {
  return new Response(r.body, { status: r.status, headers: r.headers });
}

/** Short generic answers: they say nothing about which VMs exist. */
export function plain(status: number, body: string, extra: Record<string, string> = {}): Response {
  return new Response(body, { status, headers: { 'content-type': TEXT, ...extra } });
}
