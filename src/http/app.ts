// The VM-facing metadata app (Hono): guards (proxy headers, Host, target), identity, the VM's
// token requirement, then one flavour's rendered answer.
// Every route matches exactly one handler and the common path returns a ready Response without
// awaiting anything, which keeps @hono/node-server on its fast path.
import { Hono } from 'hono';
import type { Logger } from 'pino';
import type { Registry as PromRegistry } from 'prom-client';
import type { Registry, RegistryChange, VmView } from '../registry/registry.js';
import type { Ctx, Env } from './request.js';
import { after, remoteAddress, target } from './request.js';
import { badRequest, checkTarget, forbidden, notFound, rawOf, screen, unauthorized, type Screen } from './guards.js';
import { plain } from './render/rendered.js';
import { RenderCache } from './render/cache.js';
import { Identifier } from './identity/identify.js';
import { HttpMetrics } from './metrics.js';
import { SpoofLog } from './spoof.js';
import { Waiters } from './routes/gce-waiters.js';
import { trimSlashes } from './render/tree.js';
import type { GuardOptions, RouteDeps, VmHandler } from './routes/deps.js';
import { verifyToken } from './routes/ec2-token.js';
import { nativeRoutes } from './routes/native.js';
import { openstackRoutes } from './routes/openstack.js';
import { ec2Routes } from './routes/ec2.js';
import { nocloudRoutes } from './routes/nocloud.js';
import { gceRoutes, GOOGLE } from './routes/gce.js';
import { fastPath } from './fast.js';
import { identityRoutes } from './routes/identity.js';
import { guestAttributeRoutes, type GuestAttributeLimits, type GuestAttributeSink } from './routes/guest-attributes.js';
import type { InstanceIdentity } from '../identity/signer.js';

export interface MetadataAppOptions {
  registry: Registry;
  tokenSecret: Buffer;
  log: Logger;
  /** A prom-client registry to register on, or metrics already made. */
  metrics?: PromRegistry | HttpMetrics;
  /** IP TTL / IPv6 hop limit of a token response's connection (AWS's http-put-response-hop-limit). */
  tokenHopLimit?: number;
  maxWaitersPerVm?: number;
  maxWaiters?: number;
  identity?: InstanceIdentity;
  /** Where guest-attribute PUTs go (none: 503) and their limits. */
  guestAttributes?: { sink?: GuestAttributeSink; limits?: GuestAttributeLimits };
}

export interface MetadataApp {
  app: Hono<Env>;
  metrics: HttpMetrics;
  waiters: Waiters;
  cache: RenderCache;
  /** Answers the common request directly on node:http; false means "give it to `app`". */
  fast: ReturnType<typeof fastPath>;
  /** Stops following the registry and answers every long-poll with what it has now. */
  close(): void;
}

const ALLOWED = new Set(['GET', 'HEAD', 'PUT']);

export const DEFAULT_TOKEN_HOP_LIMIT = 1;

/** The VM's data needs a token, or a header a browser cannot be made to send, when it says so. */
function tokenRefusal(tokenSecret: Buffer, s: Screen, view: VmView): boolean {
  if (s.token !== undefined) return !verifyToken(tokenSecret, view, s.token);
  return view.vm.requireToken === true && !s.google;
}

export function createMetadataApp(opts: MetadataAppOptions): MetadataApp {
  const { registry, log } = opts;
  const metrics = opts.metrics instanceof HttpMetrics ? opts.metrics : new HttpMetrics(opts.metrics);
  const identifier = new Identifier(registry);
  const spoofs = new SpoofLog(log, metrics);
  const served = (domain: string) => registry.networkByDomain(domain) !== undefined;
  const cache = new RenderCache({ ec2: { accountId: opts.identity?.accountId, signed: opts.identity?.certificate !== undefined } });
  const waiters = new Waiters(opts.maxWaitersPerVm ?? 16, opts.maxWaiters ?? 4096, (n) => { metrics.waiters = n; });
  const onChange = (change: RegistryChange) => {
    cache.invalidate(change);
    waiters.wake(change);
  };
  registry.on('change', onChange);

  // Not strict: "/keys/" is "/keys", as on the fast path.
  const app = new Hono<Env>({ strict: false });

  /** The proxy-header and Host refusals, logged as spoofs; undefined when the request may go on. */
  const screened = (c: Ctx, route: string, extra?: Record<string, string>): Screen | Response => {
    const s = screen(c.env?.incoming?.rawHeaders ?? rawOf(c.req.raw.headers), served);
    if (!s.refusal) return s;
    spoofs.refused(s.refusal, remoteAddress(c), route);
    return s.refusal === 'proxy-header' ? forbidden(extra) : badRequest(extra);
  };

  const guarded = (route: string, mount: string, handler: VmHandler, o: GuardOptions = {}) => {
    const run = (c: Ctx): Response | Promise<Response> => {
      const s = screened(c, route, o.headers);
      if (s instanceof Response) return s;
      const t = checkTarget(target(c), o.headers);
      if (t instanceof Response) return t;
      const refused = o.pre?.(c, s);
      if (refused) return refused;
      const address = remoteAddress(c);
      const id = identifier.identify(address);
      if (!id.view) {
        metrics.identityFailure(id.failure);
        if (id.failure === 'unknown') spoofs.refused('unknown-source', address, route);
        return notFound(o.headers);
      }
      metrics.identified(id.by);
      if (!o.tokenFree && tokenRefusal(opts.tokenSecret, s, id.view)) return unauthorized(o.headers);
      return handler(c, id.view, trimSlashes(t.path.slice(mount.length)), t.query, s);
    };
    return (c: Ctx) => after(run(c), (res: Response) => {
      metrics.request(route, res.status);
      return res;
    });
  };

  const deps: RouteDeps = {
    app, registry, cache, waiters, tokenSecret: opts.tokenSecret, identity: opts.identity, log, guarded,
    tokenHopLimit: opts.tokenHopLimit ?? DEFAULT_TOKEN_HOP_LIMIT,
  };
  // Before the flavours' wildcard routes, which would otherwise take these paths.
  identityRoutes(deps);
  guestAttributeRoutes(deps, opts.guestAttributes?.sink, opts.guestAttributes?.limits);
  nativeRoutes(deps);
  openstackRoutes(deps);
  ec2Routes(deps);
  nocloudRoutes(deps);
  gceRoutes(deps);

  app.notFound((c) => {
    const path = target(c);
    const extra = path === '/' || path.startsWith('/computeMetadata') ? GOOGLE : undefined;
    let res: Response;
    if (!ALLOWED.has(c.req.method) || c.req.method === 'PUT') res = plain(405, 'method not allowed\n', { allow: 'GET, HEAD', ...extra });
    else {
      const s = screened(c, 'none', extra);
      res = s instanceof Response ? s : notFound(extra);
    }
    metrics.request('none', res.status);
    return res;
  });
  // Anything thrown came from a request we could not handle: answer 400 (never 5xx) and log it.
  app.onError((err, c) => {
    log.warn({ err: err.message, method: c.req.method }, 'metadata request failed');
    metrics.request('error', 400);
    return plain(400, 'bad request\n');
  });

  return {
    app, metrics, waiters, cache,
    fast: fastPath(registry, cache, metrics, served),
    close() {
      registry.off('change', onChange);
      waiters.flush();
    },
  };
}
