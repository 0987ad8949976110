// What every flavour's routes get: the registry-fed render cache and the guarded-route builder.
import type { Hono } from 'hono';
import type { Registry, VmView } from '../../registry/registry.js';
import type { Logger } from 'pino';
import type { Ctx, Env } from '../request.js';
import type { Screen } from '../guards.js';
import type { RenderCache } from '../render/cache.js';
import type { Waiters } from './gce-waiters.js';
import type { InstanceIdentity } from '../../identity/signer.js';

/**
 * A handler sees only a request that passed the guards (proxy headers, Host, target, the VM's
 * token requirement), the VM it came from, the path below its mount and the screened headers.
 */
export type VmHandler = (c: Ctx, view: VmView, path: string, query: string, s: Screen) => Response | Promise<Response>;

export interface GuardOptions {
  /** A flavour's own check before identity (GCE's Metadata-Flavor). */
  pre?: (c: Ctx, s: Screen) => Response | undefined;
  /** Headers every refusal carries too (GCE's Metadata-Flavor on every answer). */
  headers?: Record<string, string>;
  /** The token request itself needs no token. */
  tokenFree?: boolean;
}

export interface RouteDeps {
  app: Hono<Env>;
  registry: Registry;
  cache: RenderCache;
  waiters: Waiters;
  tokenSecret: Buffer;
  /** Signs identity tokens and EC2 documents; none configured: those paths answer 404. */
  identity?: InstanceIdentity;
  tokenHopLimit: number;
  log: Logger;
  /** Wraps a handler with the guards and identity; `mount` is stripped from the path it gets. */
  guarded(route: string, mount: string, handler: VmHandler, o?: GuardOptions): (c: Ctx) => Response | Promise<Response>;
}
