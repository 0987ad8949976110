// The admin listener: /healthz, /readyz, /metrics, and the identity keys for verifiers. Never on a VM-facing address: by default it
// listens on [::1]:9153 only.
import { createServer, type Server } from 'node:http';
import type { Registry as Metrics } from 'prom-client';
import type { Registry } from '../registry/registry.js';
import type { StateSource } from '../store/kv.js';
import type { InstanceIdentity } from '../identity/signer.js';

export interface AdminOptions {
  listen: { host: string; port: number }[];
  /** What /readyz reports; "loading" and "waiting" answer 503, anything else 200. */
  readiness: () => { status: 'loading' | 'waiting' | 'ready' | 'degraded' } & Record<string, unknown>;
  metrics: Metrics;
  /** Publishes /.well-known/jwks.json and /.well-known/openid-configuration for token verifiers. */
  identity?: InstanceIdentity;
}

/**
 * ready: loaded and following; degraded: serving the last known state while the store is away;
 * waiting: following, but a network it was asked to serve is not in the store (yet).
 */
export function readiness(registry: Registry, source: StateSource | undefined, missingNetworks: string[] = []): {
  status: 'loading' | 'waiting' | 'ready' | 'degraded'; revision: number; vms: number; store?: string; waitingFor?: string[];
} {
  const h = source?.health();
  if (!registry.loaded || !h) return { status: 'loading', revision: 0, vms: 0 };
  const following = h.connected && h.live;
  return {
    status: !following ? 'degraded' : missingNetworks.length ? 'waiting' : 'ready',
    revision: registry.revision,
    vms: registry.vmCount,
    ...(missingNetworks.length ? { waitingFor: missingNetworks } : {}),
    ...(h.lastError && !h.connected ? { store: h.lastError } : {}),
  };
}

export async function startAdmin(opts: AdminOptions): Promise<{ close(): Promise<void> }> {
  const handler = async (path: string): Promise<{ status: number; type: string; body: string }> => {
    if (path === '/healthz') return { status: 200, type: 'text/plain', body: 'ok\n' };
    if (path === '/readyz') {
      const r = opts.readiness();
      return { status: r.status === 'loading' || r.status === 'waiting' ? 503 : 200, type: 'application/json', body: `${JSON.stringify(r)}\n` };
    }
    if (opts.identity && path === '/.well-known/jwks.json') return { status: 200, type: 'application/jwk-set+json', body: `${JSON.stringify(opts.identity.jwks())}\n` };
    if (opts.identity && path === '/.well-known/openid-configuration') return { status: 200, type: 'application/json', body: `${JSON.stringify(opts.identity.openidConfiguration())}\n` };
    if (path === '/metrics') return { status: 200, type: opts.metrics.contentType, body: await opts.metrics.metrics() };
    return { status: 404, type: 'text/plain', body: 'not found\n' };
  };
  const servers: Server[] = [];
  for (const l of opts.listen) {
    const server = createServer((req, res) => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      handler(new URL(req.url ?? '/', 'http://admin').pathname).then(
        // No keep-alive: probes and scrapes come seconds apart, and a client reusing a connection
        // the server is just timing out gets "other side closed" (seen with fetch under load).
        (r) => res.writeHead(r.status, { 'content-type': r.type, connection: 'close' }).end(req.method === 'HEAD' ? undefined : r.body),
        () => res.writeHead(500).end(),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(l.port, l.host, () => resolve());
    });
    servers.push(server);
  }
  return {
    close: async () => {
      await Promise.all(servers.map((s) => new Promise((r) => { s.closeAllConnections(); s.close(r); })));
    },
  };
}
