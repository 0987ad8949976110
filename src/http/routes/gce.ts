// /computeMetadata/v1: GCE-style metadata. Needs "Metadata-Flavor: Google" (as GCE does, so a
// browser or a naive proxy cannot be made to fetch it), answers with it (refusals too), and
// long-polls with ?wait_for_change=true&last_etag=E&timeout_sec=N until the answer's ETag
// differs from E. E is the ETag header as GCE sends it (16 hex digits, bare); Google's guest
// agent copies the header verbatim, so a quoted E is accepted as well.
import { plain, toResponse, type Rendered } from '../render/rendered.js';
import type { GceAlt } from '../render/gce.js';
import type { Screen } from '../guards.js';
import type { RouteDeps, VmHandler } from './deps.js';

/** GCE's answer header, on every response under /computeMetadata and on "/". */
export const GOOGLE = { 'metadata-flavor': 'Google' };
const FLAVOR = GOOGLE;
const gceNotFound = () => plain(404, 'not found\n', FLAVOR);
const gceBad = (why: string) => plain(400, `${why}\n`, FLAVOR);
const ETAG_RE = /^(?:W\/)?("?)([A-Za-z0-9_-]{1,64})\1$/;

export const DEFAULT_WAIT_SEC = 300;
export const MAX_WAIT_SEC = 3600;

export function flavourCheck(_c: unknown, s: Screen): Response | undefined {
  return s.google ? undefined : plain(403, 'missing Metadata-Flavor: Google header\n', FLAVOR);
}

interface GceQuery { recursive: boolean; alt: GceAlt; wait: boolean; lastEtag?: string; timeoutSec: number }

function parseQuery(query: string): GceQuery | string {
  const q = new URLSearchParams(query);
  const bool = (name: string) => q.get(name)?.toLowerCase() === 'true';
  const alt = q.get('alt') ?? undefined;
  if (alt !== undefined && alt !== 'json' && alt !== 'text') return 'alt must be json or text';
  const last = q.get('last_etag') ?? undefined;
  const m = last === undefined ? undefined : ETAG_RE.exec(last);
  if (last !== undefined && !m) return 'bad last_etag';
  const lastEtag = m?.[2];
  const t = q.get('timeout_sec');
  let timeoutSec = DEFAULT_WAIT_SEC;
  if (t !== null) {
    if (!/^\d{1,7}$/.test(t) || Number(t) < 1) return 'timeout_sec must be a positive integer';
    timeoutSec = Math.min(Number(t), MAX_WAIT_SEC);
  }
  return { recursive: bool('recursive'), alt, wait: bool('wait_for_change'), lastEtag, timeoutSec };
}

export function gceRoutes(d: RouteDeps): void {
  /** The waiting VM's answer now; undefined once the name holds another VM (a new id), which the waiter must never see. */
  const answer = (key: string, id: string, path: string, q: GceQuery): Rendered | undefined => {
    const view = d.registry.vmByKey(key);
    return view && view.vm.id === id ? d.cache.gce(view).answer(path, q.recursive, q.alt) : undefined;
  };

  const serve: VmHandler = (c, view, path, query) => {
    if (path === '') return plain(200, 'v1/\n', FLAVOR);
    if (path !== 'v1' && !path.startsWith('v1/')) return gceNotFound();
    const sub = path.slice(3);
    const q = parseQuery(query);
    if (typeof q === 'string') return gceBad(q);
    const now = d.cache.gce(view).answer(sub, q.recursive, q.alt);
    if (!now) return gceNotFound();
    if (!q.wait || (q.lastEtag !== undefined && q.lastEtag !== now.etag)) return toResponse(now);
    const waiting = d.waiters.wait(view.key, now.etag, () => answer(view.key, view.vm.id, sub, q), q.timeoutSec * 1000, (cancel) => {
      c.env?.outgoing?.once('close', cancel);
    });
    if (waiting === 'full') return plain(429, 'too many waiting requests\n', FLAVOR);
    return waiting.then((r) => (r ? toResponse(r) : gceNotFound()));
  };

  d.app.get('/computeMetadata/*', d.guarded('gce', '/computeMetadata', serve, { pre: flavourCheck, headers: FLAVOR }));
}
