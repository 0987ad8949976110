// Request guards that run before any lookup: proxy headers, Host, URL shape and size. One pass
// over the raw headers collects what every later step needs (screen), on the fast path too.
import { plain } from './render/rendered.js';
import { hostAllowed, type ServedDomain } from './host.js';

export const MAX_TARGET = 2048;

/**
 * Headers a proxy adds. A request relayed by a proxy inside a VM would borrow that VM's identity
 * for someone else (a confused deputy): anything that says it was forwarded is refused.
 */
const PROXY_HEADERS = new Set([
  'via', 'forwarded', 'x-real-ip', 'client-ip', 'true-client-ip', 'x-client-ip', 'x-cluster-client-ip',
  'x-originating-ip', 'cf-connecting-ip',
]);

export function isProxyHeader(lowerName: string): boolean {
  return PROXY_HEADERS.has(lowerName) || lowerName.startsWith('x-forwarded-');
}

/** What the guards and handlers read from the headers, gathered in one pass. */
export interface Screen {
  /** Why the request is refused before identity, if it is. */
  refusal?: 'proxy-header' | 'bad-host';
  /** "Metadata-Flavor: Google" (or GCE's legacy "X-Google-Metadata-Request: True"). */
  google: boolean;
  /** The IMDSv2 token header, when sent. */
  token?: string;
  /** The TTL header of a token request. */
  tokenTtl?: string;
}

/** Screens node:http's rawHeaders ([name, value, name, value, ...]). */
export function screen(raw: readonly string[], served: ServedDomain): Screen {
  const s: Screen = { google: false };
  let host: string | undefined;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const value = raw[i + 1];
    const l = name.length;
    // Cheap length and first-letter tests first: most headers are none of these.
    if (l === 4 && (name === 'Host' || name.toLowerCase() === 'host')) { host = value; hosts++; continue; }
    // The spellings clients send, before the general case-insensitive tests.
    if (name === 'Metadata-Flavor') { if (value === 'Google') s.google = true; continue; }
    if (name === 'User-Agent' || name === 'Accept' || name === 'Connection') continue;
    const lower = name.toLowerCase();
    if (lower === 'metadata-flavor') { if (value === 'Google') s.google = true; continue; }
    if (lower === 'x-aws-ec2-metadata-token') { s.token = value; continue; }
    if (lower === 'x-aws-ec2-metadata-token-ttl-seconds') { s.tokenTtl = value; continue; }
    if (lower === 'x-google-metadata-request') { if (value.toLowerCase() === 'true') s.google = true; continue; }
    if (isProxyHeader(lower)) { s.refusal = 'proxy-header'; return s; }
  }
  if (hosts > 1 || !hostAllowed(host, served)) s.refusal = 'bad-host';
  return s;
}

/** A Fetch Headers object as node's rawHeaders (app.request in tests). */
export function rawOf(headers: Headers): string[] {
  const out: string[] = [];
  headers.forEach((v, k) => { out.push(k, v); });
  return out;
}

// Segments of unreserved characters only: no "%" (so no encoded NUL, slash or dot), no empty
// segment, and dot segments refused separately.
const PATH_RE = /^(?=\/)(?:\/[A-Za-z0-9_~:@=+,.-]+)*\/?$/;
const DOT_SEGMENT_RE = /(?:^|\/)\.\.?(?:\/|$)/;

export interface Target { path: string; query: string }

/** Splits and checks a raw request target; a Response (carrying `extra`) when it is refused. */
export function checkTarget(raw: string, extra?: Record<string, string>): Target | Response {
  if (raw.length > MAX_TARGET) return plain(414, 'URI too long\n', extra);
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const query = q < 0 ? '' : raw.slice(q + 1);
  if (!PATH_RE.test(path) || DOT_SEGMENT_RE.test(path)) return plain(400, 'bad request\n', extra);
  if (query && (query.includes('\0') || /%00/.test(query) || query.includes('#'))) return plain(400, 'bad request\n', extra);
  return { path, query };
}

export const notFound = (extra?: Record<string, string>) => plain(404, 'not found\n', extra);
export const forbidden = (extra?: Record<string, string>) => plain(403, 'forbidden\n', extra);
export const badRequest = (extra?: Record<string, string>) => plain(400, 'bad request\n', extra);
export const unauthorized = (extra?: Record<string, string>) => plain(401, 'unauthorized\n', extra);
