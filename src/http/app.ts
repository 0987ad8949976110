// The VM-facing metadata app (Hono): guards, identity, then one flavour's rendered answer.
// Every route matches exactly one handler and the common path returns a ready Response without
// awaiting anything, which keeps @hono/node-server on its fast path.
import { Hono } from 'hono';
import type { Logger } from 'pino';
import type { Registry as PromRegistry } from 'prom-client';
import type { Registry, RegistryChange } from '../registry/registry.js';
import type { Ctx, Env } from './request.js';
import { after, remoteAddress, target } from './request.js';
import { checkTarget, forbidden, forwarded, notFound } from './guards.js';
import { plain } from './render/rendered.js';
import { RenderCache } from './render/cache.js';
import { Identifier, type Identity } from './identity/identify.js';
import type { NeighbourTable } from './identity/neighbours.js';
import { HttpMetrics } from './metrics.js';
import { Waiters } from './routes/gce-waiters.js';
import { trimSlashes } from './render/tree.js';
import type { RouteDeps, VmHandler } from './routes/deps.js';
import { nativeRoutes } from './routes/native.js';
import { openstackRoutes } from './routes/openstack.js';
import { ec2Routes } from './routes/ec2.js';
import { nocloudRoutes } from './routes/nocloud.js';
import { gceRoutes } from './routes/gce.js';
import { fastPath } from './fast.js';
import { identityRoutes } from './routes/identity.js';
import type { InstanceIdentity } from '../identity/signer.js';

export interface MetadataAppOptions {
  registry: Registry;
  tokenSecret: Buffer;
  log: Logger;
  /** A prom-client registry to register on, or metrics already made. */
  metrics?: PromRegistry | HttpMetrics;
  neighbours?: NeighbourTable;
  maxWaitersPerVm?: number;
  maxWaiters?: number;
  identity?: InstanceIdentity;
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

export function createMetadataApp(opts: MetadataAppOptions): MetadataApp {
  const { registry, log } = opts;
  const metrics = opts.metrics instanceof HttpMetrics ? opts.metrics : new HttpMetrics(opts.metrics);
  const identifier = new Identifier(registry, opts.neighbours);
  const cache = new RenderCache({ ec2: { accountId: opts.identity?.accountId, signed: opts.identity?.certificate !== undefined } });
  const waiters = new Waiters(opts.maxWaitersPerVm ?? 16, opts.maxWaiters ?? 4096, (n) => { metrics.waiters = n; });
  const onChange = (change: RegistryChange) => {
    cache.invalidate(change);
    waiters.wake(change);
  };
  registry.on('change', onChange);

  // Not strict: "/keys/" is "/keys", as on the fast path.
  const app = new Hono<Env>({ strict: false });

  const guarded = (route: string, mount: string, handler: VmHandler, pre?: (c: Ctx) => Response | undefined) => {
    const run = (c: Ctx): Response | Promise<Response> => {
      if (forwarded(c)) return forbidden();
      const t = checkTarget(target(c));
      if (t instanceof Response) return t;
      const refused = pre?.(c);
      if (refused) return refused;
      const path = trimSlashes(t.path.slice(mount.length));
      return after(identifier.identify(remoteAddress(c)), (id: Identity) => {
        if (!id.view) {
          metrics.identityFailure(id.failure);
          return notFound();
        }
        return handler(c, id.view, path, t.query);
      });
    };
    return (c: Ctx) => after(run(c), (res: Response) => {
      metrics.request(route, res.status);
      return res;
    });
  };

  const deps: RouteDeps = { app, registry, cache, waiters, tokenSecret: opts.tokenSecret, identity: opts.identity, log, guarded };
  // Before the flavours' wildcard routes, which would otherwise take these paths.
  identityRoutes(deps);
  nativeRoutes(deps);
  openstackRoutes(deps);
  ec2Routes(deps);
  nocloudRoutes(deps);
  gceRoutes(deps);

  app.notFound((c) => {
    const res = !ALLOWED.has(c.req.method) || c.req.method === 'PUT'
      ? plain(405, 'method not allowed\n', { allow: 'GET, HEAD' })
      : forwarded(c) ? forbidden() : notFound();
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
    fast: fastPath(registry, cache, metrics),
    close() {
      registry.off('change', onChange);
      waiters.flush();
    },
  };
}
