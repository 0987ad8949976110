// The Host header a guest may send (DNS rebinding defence): an IP literal (IPv6 in brackets,
// with or without a zone id, raw "%" or encoded "%25", with or without port), "metadata",
// "metadata.<domain of a served network>" or "metadata.google.internal". A page loaded from
// attacker.example and rebound to the metadata address still sends "attacker.example".
import ipaddr from 'ipaddr.js';

const PORT_RE = /^(?::\d{1,5})?$/;
const ZONE_RE = /^[A-Za-z0-9_.~-]{1,64}$/;
const IPV4_RE = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;
const GCE_NAME = 'metadata.google.internal';

/** Is `domain` (lower case, no trailing dot) the domain of a network served here? */
export type ServedDomain = (domain: string) => boolean;

/** Splits "[v6%zone]:port" / "v4:port" / "name:port"; undefined when the shape is wrong. */
function splitHost(value: string): { host: string; literal6: boolean } | undefined {
  if (value.charCodeAt(0) === 91 /* [ */) {
    const close = value.indexOf(']');
    if (close < 0 || !PORT_RE.test(value.slice(close + 1))) return undefined;
    return { host: value.slice(1, close), literal6: true };
  }
  const colon = value.indexOf(':');
  if (colon >= 0 && !PORT_RE.test(value.slice(colon))) return undefined;
  return { host: colon < 0 ? value : value.slice(0, colon), literal6: false };
}

function ipv6Literal(text: string): boolean {
  const pct = text.indexOf('%');
  const addr = pct < 0 ? text : text.slice(0, pct);
  if (pct >= 0) {
    const zone = text.startsWith('%25', pct) ? text.slice(pct + 3) : text.slice(pct + 1);
    if (!ZONE_RE.test(zone)) return false;
  }
  return addr.includes(':') && ipaddr.IPv6.isValid(addr);
}

/** Address literals judged so far (their answer never changes), bounded. */
const literals = new Map<string, boolean>();
const LITERALS_MAX = 256;

function remember(value: string, ok: boolean): boolean {
  if (literals.size >= LITERALS_MAX) literals.clear();
  literals.set(value, ok);
  return ok;
}

/** Whether a Host header value names this service; undefined (no Host, as HTTP/1.0 may) passes. */
export function hostAllowed(value: string | undefined, served: ServedDomain): boolean {
  if (value === undefined) return true;
  // The spelling most guests use, without parsing; then literals seen before.
  if (value === 'metadata') return true;
  const known = literals.get(value);
  if (known !== undefined) return known;
  const split = splitHost(value);
  if (!split) return false;
  const { host } = split;
  if (split.literal6) return remember(value, ipv6Literal(host));
  if (IPV4_RE.test(host)) return remember(value, ipaddr.IPv4.isValidFourPartDecimal(host));
  const name = (host.endsWith('.') ? host.slice(0, -1) : host).toLowerCase();
  if (name === 'metadata' || name === GCE_NAME) return true;
  return name.startsWith('metadata.') && served(name.slice('metadata.'.length));
}

/**
 * A Host @hono/node-server can build a URL from: the zone id dropped from an IPv6 literal
 * (WHATWG URLs have no zones). Only called for a Host that hostAllowed accepted.
 */
export function withoutZone(value: string): string {
  const pct = value.indexOf('%');
  const close = value.indexOf(']');
  return pct < 0 || close < pct ? value : value.slice(0, pct) + value.slice(close);
}
