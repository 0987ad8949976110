// The hot path, straight on node:http: a plain GET for a pre-rendered answer (native, OpenStack,
// EC2, NoCloud, and GCE reads without wait_for_change) from a VM known by exact address is
// written without building a Fetch Request, a Hono context or a Response; that machinery costs
// more per request than the lookup itself (bench/http). It screens the headers exactly as the
// app does (proxy headers, Host, tokens, Metadata-Flavor); anything refused, anything needing a
// token, or anything in doubt declines and goes to the Hono app, which refuses or answers the
// same bytes (fast.test.ts compares them).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from '../registry/registry.js';
import type { RenderCache, FlatFlavour } from './render/cache.js';
import type { HttpMetrics } from './metrics.js';
import { checkTarget, screen } from './guards.js';
import type { ServedDomain } from './host.js';
import { trimSlashes } from './render/tree.js';
import { EC2_VERSIONS, isEc2Version } from './render/ec2.js';
import type { GceAlt } from './render/gce.js';
import type { Rendered } from './render/rendered.js';

interface Mount { mount: string; flavour: FlatFlavour | 'gce'; route: string }

const MOUNTS = new Map<string, Mount>([
  ...['/instance', '/keys', '/user-data', '/vendor-data'].map((p): [string, Mount] => [p, { mount: '/', flavour: 'native', route: 'native' }]),
  ['/openstack', { mount: '/openstack', flavour: 'openstack', route: 'openstack' }],
  ['/nocloud', { mount: '/nocloud', flavour: 'nocloud', route: 'nocloud' }],
  ...EC2_VERSIONS.map((v): [string, Mount] => [`/${v}`, { mount: `/${v}`, flavour: 'ec2', route: 'ec2' }]),
  ['/computeMetadata', { mount: '/computeMetadata/v1', flavour: 'gce', route: 'gce' }],
]);

/** GCE queries the fast path takes: only recursive and alt, spelt plainly; undefined declines. */
function gceQuery(query: string): { recursive: boolean; alt: GceAlt } | undefined {
  let recursive = false;
  let alt: GceAlt;
  if (query === '') return { recursive, alt };
  for (const part of query.split('&')) {
    const [k, v] = part.split('=');
    if (k === 'recursive' && (v === 'true' || v === 'false')) recursive = v === 'true';
    else if (k === 'alt' && (v === 'json' || v === 'text')) alt = v;
    else return undefined;
  }
  return { recursive, alt };
}

/** The mount of a path's first segment: a fixed one, or any dated EC2 version. */
function mountOf(first: string): Mount | undefined {
  const m = MOUNTS.get(first);
  if (m || !isEc2Version(first.slice(1))) return m;
  return { mount: first, flavour: 'ec2', route: 'ec2' };
}

/** What a request target means to the fast path, worked out once per distinct target. */
interface FastTarget { route: string; flavour: FlatFlavour | 'gce'; sub: string; recursive: boolean; alt: GceAlt }

/** null: not a target the fast path takes (the app answers or refuses it). */
function parseTarget(url: string): FastTarget | null {
  const t = checkTarget(url);
  if (t instanceof Response) return null;
  const cut = t.path.indexOf('/', 1);
  const m = mountOf(cut < 0 ? t.path : t.path.slice(0, cut));
  if (!m) return null;
  if (m.flavour !== 'gce') {
    if (t.query) return null;
    return { route: m.route, flavour: m.flavour, sub: trimSlashes(t.path.slice(m.mount.length)), recursive: false, alt: undefined };
  }
  const q = gceQuery(t.query);
  if (!q || !(t.path === m.mount || t.path.startsWith(`${m.mount}/`))) return null;
  return { route: m.route, flavour: 'gce', sub: trimSlashes(t.path.slice(m.mount.length)), recursive: q.recursive, alt: q.alt };
}

/** Distinct targets remembered; a guest sending endless new ones only clears it now and then. */
const TARGETS_MAX = 4096;

export function fastPath(registry: Registry, cache: RenderCache, metrics: HttpMetrics, served: ServedDomain) {
  const targets = new Map<string, FastTarget | null>();
  return (req: IncomingMessage, res: ServerResponse): boolean => {
    const url = req.url;
    if (req.method !== 'GET' || !url) return false;
    let ft = targets.get(url);
    if (ft === undefined) {
      ft = parseTarget(url);
      if (targets.size >= TARGETS_MAX) targets.clear();
      targets.set(url, ft);
    }
    if (!ft) return false;
    const s = screen(req.rawHeaders, served);
    if (s.refusal || s.token !== undefined || (ft.flavour === 'gce' && !s.google)) return false;
    const address = req.socket.remoteAddress;
    // Link-local peers ("fe80::...%if") go through identity's interface check in the app.
    const view = address && !address.includes('%') ? registry.vmByAddress(address) : undefined;
    if (!view || view.vm.requireToken) return false;
    const r: Rendered | undefined = ft.flavour === 'gce'
      ? cache.gce(view).answer(ft.sub, ft.recursive, ft.alt)
      : cache.flat(view, ft.flavour).get(ft.sub);
    if (!r) return false;
    res.writeHead(r.status, r.headers);
    res.end(r.body);
    metrics.byAddress++;
    metrics.request(ft.route, r.status);
    return true;
  };
}
