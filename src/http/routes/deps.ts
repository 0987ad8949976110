// What every flavour's routes get: the registry-fed render cache and the guarded-route builder.
import type { Hono } from 'hono';
import type { Registry, VmView } from '../../registry/registry.js';
import type { Logger } from 'pino';
import type { Ctx, Env } from '../request.js';
import type { RenderCache } from '../render/cache.js';
import type { Waiters } from './gce-waiters.js';
import type { InstanceIdentity } from '../../identity/signer.js';

/** A handler sees only a request that passed the guards, the VM it came from, and the path below its mount. */
export type VmHandler = (c: Ctx, view: VmView, path: string, query: string) => Response | Promise<Response>;

export interface RouteDeps {
  app: Hono<Env>;
  registry: Registry;
  cache: RenderCache;
  waiters: Waiters;
  tokenSecret: Buffer;
  /** Signs identity tokens and EC2 documents; none configured: those paths answer 404. */
  identity?: InstanceIdentity;
  log: Logger;
  /** Wraps a handler with the guards and identity; `mount` is stripped from the path it gets. */
  guarded(route: string, mount: string, handler: VmHandler, pre?: (c: Ctx) => Response | undefined): (c: Ctx) => Response | Promise<Response>;
}
