// GCE guest attributes: a guest reports values back (Google's guest agent publishes its SSH host
// keys as hostkeys/<type>), under /computeMetadata/v1/instance/guest-attributes/NS/KEY. PUT stores
// a value for the requesting VM only (its identity is the source address, as for every read);
// GET reads back the namespaces, a namespace's keys, or one value, as GCE answers. Writes are
// bounded in size, count and rate per VM and go to the store through the daemon's writer; reads
// come from the registry.
import { plain } from '../render/rendered.js';
import { header, type Ctx } from '../request.js';
import { verifyToken } from './ec2-token.js';
import type { RouteDeps, VmHandler } from './deps.js';
import { flavourCheck, GOOGLE } from './gce.js';
import type { VmView } from '../../registry/registry.js';
import { TokenBuckets } from '../../rate.js';

const FLAVOR = GOOGLE;
export const GUEST_ATTRIBUTES_PATH = '/computeMetadata/v1/instance/guest-attributes';
/** GCE's own rule for namespace and key names. */
const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;
/** Matches NAME_RE but is no plain object key: JSON and the store's schema drop it silently. */
const RESERVED = '__proto__';
const validName = (name: string) => NAME_RE.test(name) && name !== RESERVED;
/** A stored name only: never what every object inherits (toString, constructor, ...). */
const own = <V>(o: Record<string, V>, name: string): V | undefined => (Object.hasOwn(o, name) ? o[name] : undefined);

export interface GuestAttributeLimits {
  maxValueBytes: number;
  /** Keys per VM, over all namespaces (the store enforces it in the write's transaction). */
  maxKeys: number;
  /** Sustained writes per VM per minute; a burst of up to 10 is allowed. */
  writesPerMinute: number;
}

export const DEFAULT_GUEST_ATTRIBUTE_LIMITS: GuestAttributeLimits = { maxValueBytes: 4096, maxKeys: 64, writesPerMinute: 30 };

/** Why a write was refused by the store: the guest gets a 4xx saying so. */
export class GuestAttributeRefused extends Error {
  constructor(readonly status: 404 | 409 | 413, message: string) { super(message); }
}

/** Where accepted writes go (the daemon wires the store's writer here; the HTTP code never sees etcd). */
export interface GuestAttributeSink {
  /** Resolves once stored; GuestAttributeRefused for limits, anything else means the store is away. */
  put(view: VmView, namespace: string, key: string, value: string, limits: GuestAttributeLimits): Promise<void>;
}

const BURST = 10;
const MAX_IN_FLIGHT = 64;

/** The body, at most `max` bytes (null when longer), without buffering more than that. */
async function boundedBody(c: Ctx, max: number): Promise<Uint8Array | null> {
  const declared = header(c, 'content-length');
  if (declared !== undefined && Number(declared) > max) return null;
  const body = c.req.raw.body;
  if (!body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      return null;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export function guestAttributeRoutes(d: RouteDeps, sink: GuestAttributeSink | undefined, limits = DEFAULT_GUEST_ATTRIBUTE_LIMITS): void {
  const rate = new TokenBuckets({ burst: BURST, perSecond: limits.writesPerMinute / 60 });
  let inFlight = 0;

  const read: VmHandler = (_c, view, path, query) => {
    const attrs = d.registry.guestAttributes(view.key) ?? {};
    const recursive = new URLSearchParams(query).get('recursive')?.toLowerCase() === 'true';
    const parts = path === '' ? [] : path.split('/');
    if (parts.length === 0) {
      if (recursive) return plain(200, `${JSON.stringify(attrs)}\n`, { ...FLAVOR, 'content-type': 'application/json' });
      return plain(200, Object.keys(attrs).sort().map((ns) => `${ns}/\n`).join(''), FLAVOR);
    }
    const ns = own(attrs, parts[0]);
    if (!ns || parts.length > 2) return plain(404, 'not found\n', FLAVOR);
    if (parts.length === 1) {
      if (recursive) return plain(200, `${JSON.stringify(ns)}\n`, { ...FLAVOR, 'content-type': 'application/json' });
      return plain(200, Object.keys(ns).sort().map((k) => `${k}\n`).join(''), FLAVOR);
    }
    const value = own(ns, parts[1]);
    return value === undefined ? plain(404, 'not found\n', FLAVOR) : plain(200, value, { ...FLAVOR, 'content-type': 'application/text' });
  };

  const write: VmHandler = async (c, view, path) => {
    const parts = path.split('/');
    if (parts.length !== 2 || !validName(parts[0]) || !validName(parts[1])) {
      return plain(400, `guest attributes are written at NAMESPACE/KEY (each 1-64 of A-Z a-z 0-9 _ -, not ${RESERVED})\n`, FLAVOR);
    }
    // A write is more than a read: a VM that requires IMDSv2 tokens must show one here.
    if (view.vm.requireToken) {
      const token = header(c, 'x-aws-ec2-metadata-token');
      if (token === undefined || !verifyToken(d.tokenSecret, view, token)) return plain(401, 'unauthorized\n', FLAVOR);
    }
    if (!sink) return plain(503, 'guest attributes are not stored by this appliance\n', FLAVOR);
    if (!rate.take(view.key)) return plain(429, 'too many guest attribute writes\n', { ...FLAVOR, 'retry-after': '10' });
    if (inFlight >= MAX_IN_FLIGHT) return plain(503, 'busy\n', { ...FLAVOR, 'retry-after': '1' });
    const body = await boundedBody(c, limits.maxValueBytes);
    if (body === null) return plain(413, `a guest attribute value is at most ${limits.maxValueBytes} bytes\n`, FLAVOR);
    let value: string;
    try {
      value = strictUtf8.decode(body);
    } catch {
      return plain(400, 'a guest attribute value must be UTF-8 text\n', FLAVOR);
    }
    if (value.includes('\0')) return plain(400, 'a guest attribute value must not contain NUL\n', FLAVOR);
    inFlight++;
    try {
      await sink.put(view, parts[0], parts[1], value, limits);
      return plain(200, '', FLAVOR);
    } catch (err) {
      if (err instanceof GuestAttributeRefused) return plain(err.status, `${err.message}\n`, FLAVOR);
      d.log.warn({ vm: view.key, err: (err as Error).message }, 'guest attribute not stored');
      return plain(503, 'the store is unavailable; try again\n', { ...FLAVOR, 'retry-after': '5' });
    } finally {
      inFlight--;
    }
  };

  const mount = GUEST_ATTRIBUTES_PATH;
  const o = { pre: flavourCheck, headers: FLAVOR };
  d.app.get(mount, d.guarded('gce-guest-attributes', mount, read, o));
  d.app.get(`${mount}/*`, d.guarded('gce-guest-attributes', mount, read, o));
  d.app.put(`${mount}/*`, d.guarded('gce-guest-attributes', mount, write, o));
}
