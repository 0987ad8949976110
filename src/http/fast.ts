// The hot path, straight on node:http: a plain GET for a pre-rendered answer (native, OpenStack,
// EC2, NoCloud, and GCE reads without wait_for_change) from a VM known by exact address is written without building
// a Fetch Request, a Hono context or a Response; that machinery costs more per request than the
// lookup itself (bench/http). Anything else, or anything in doubt, declines and goes to the Hono
// app, which applies the same guards and answers the same bytes (fast.test.ts compares them).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from '../registry/registry.js';
import type { RenderCache, FlatFlavour } from './render/cache.js';
import type { HttpMetrics } from './metrics.js';
import { checkTarget } from './guards.js';
import { trimSlashes } from './render/tree.js';
import { EC2_VERSIONS } from './render/ec2.js';
import type { GceAlt } from './render/gce.js';
import type { Rendered } from './render/rendered.js';

interface Mount { mount: string; flavour: FlatFlavour | 'gce'; route: string }

const MOUNTS = new Map<string, Mount>([
  ['/instance', { mount: '/', flavour: 'native', route: 'native' }],
  ['/keys', { mount: '/', flavour: 'native', route: 'native' }],
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

const HOST_RE = /^[A-Za-z0-9._:[\]-]*$/;

/**
 * Headers that send a request to the slow path: refusals and token checks live there, and so
 * does the judgement of an odd Host (the app refuses what cannot make a URL).
 */
function needsSlowPath(raw: string[], gce: boolean): boolean {
  let flavor = !gce;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i];
    const l = n.length;
    if (l === 4 && n.toLowerCase() === 'host' && !HOST_RE.test(raw[i + 1])) return true;
    if ((l === 15 || l === 9 || l === 24) && /^(?:x-forwarded-for|forwarded|x-aws-ec2-metadata-token)$/i.test(n)) return true;
    if (gce && l === 15 && raw[i + 1] === 'Google' && n.toLowerCase() === 'metadata-flavor') flavor = true;
  }
  return !flavor;
}

export function fastPath(registry: Registry, cache: RenderCache, metrics: HttpMetrics) {
  return (req: IncomingMessage, res: ServerResponse): boolean => {
    if (req.method !== 'GET' || !req.url) return false;
    const t = checkTarget(req.url);
    if (t instanceof Response) return false;
    const cut = t.path.indexOf('/', 1);
    const m = MOUNTS.get(cut < 0 ? t.path : t.path.slice(0, cut));
    const gce = m?.flavour === 'gce';
    if (!m || (t.query && !gce) || needsSlowPath(req.rawHeaders, gce)) return false;
    const address = req.socket.remoteAddress;
    const view = address ? registry.vmByAddress(address) : undefined;
    if (!view || (m.flavour === 'ec2' && view.vm.requireToken)) return false;
    let r: Rendered | undefined;
    if (m.flavour === 'gce') {
      const q = gceQuery(t.query);
      if (!q || !(t.path === m.mount || t.path.startsWith(`${m.mount}/`))) return false;
      r = cache.gce(view).answer(trimSlashes(t.path.slice(m.mount.length)), q.recursive, q.alt);
    } else {
      r = cache.flat(view, m.flavour).get(trimSlashes(t.path.slice(m.mount.length)));
    }
    if (!r) return false;
    res.writeHead(r.status, r.headers);
    res.end(r.body);
    metrics.request(m.route, r.status);
    return true;
  };
}
