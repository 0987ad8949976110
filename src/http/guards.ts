// Request guards that run before any lookup: proxies, URL shape and size.
import type { Ctx } from './request.js';
import { header } from './request.js';
import { plain } from './render/rendered.js';

export const MAX_TARGET = 2048;

/**
 * A request relayed by a proxy inside a VM would borrow that VM's identity for someone else
 * (a confused deputy); refuse anything that says it was forwarded.
 */
export function forwarded(c: Ctx): boolean {
  return header(c, 'x-forwarded-for') !== undefined || header(c, 'forwarded') !== undefined;
}

// Segments of unreserved characters only: no "%" (so no encoded NUL, slash or dot), no empty
// segment, and dot segments refused separately.
const PATH_RE = /^(?=\/)(?:\/[A-Za-z0-9_~:@=+,.-]+)*\/?$/;
const DOT_SEGMENT_RE = /(?:^|\/)\.\.?(?:\/|$)/;

export interface Target { path: string; query: string }

/** Splits and checks a raw request target; a Response when it is refused. */
export function checkTarget(raw: string): Target | Response {
  if (raw.length > MAX_TARGET) return plain(414, 'URI too long\n');
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const query = q < 0 ? '' : raw.slice(q + 1);
  if (!PATH_RE.test(path) || DOT_SEGMENT_RE.test(path)) return plain(400, 'bad request\n');
  if (query && (query.includes('\0') || /%00/.test(query) || query.includes('#'))) return plain(400, 'bad request\n');
  return { path, query };
}

export const notFound = () => plain(404, 'not found\n');
export const forbidden = () => plain(403, 'forbidden\n');
