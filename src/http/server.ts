// The VM-facing HTTP listeners: node:http with tight limits (header size and count, header and
// request timeouts) in front of the metadata app. Admin endpoints live elsewhere (daemon).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import type { Logger } from 'pino';
import type { Registry as PromRegistry } from 'prom-client';
import type { Registry } from '../registry/registry.js';
import { createMetadataApp, DEFAULT_TOKEN_HOP_LIMIT } from './app.js';
import { plain } from './render/rendered.js';
import { withoutZone } from './host.js';
import { loadHopLimit } from './hop-limit.js';
import { ConnectionLimit } from './connection-limit.js';

export { createMetadataApp, type MetadataApp, type MetadataAppOptions } from './app.js';

export interface HttpServerOptions {
  registry: Registry;
  /** VM-facing listeners (IPv6 and IPv4). */
  listen: { host: string; port: number }[];
  /** HMAC key for IMDSv2 tokens; replicas share it. */
  tokenSecret: Buffer;
  /** Never given user-data or keys. */
  log: Logger;
  metrics?: PromRegistry;
  /** IP TTL / IPv6 hop limit of IMDSv2 token responses (default 1, as AWS). */
  tokenHopLimit?: number;
  maxWaitersPerVm?: number;
  maxWaiters?: number;
  /** Answer plain GETs of pre-rendered documents without Hono (default true; tests compare both). */
  fastPath?: boolean;
  /** Signs identity tokens and EC2 documents (none: those paths answer 404). */
  identity?: import('../identity/signer.js').InstanceIdentity;
  guestAttributes?: import('./app.js').MetadataAppOptions['guestAttributes'];
  /** Overrides of LIMITS (tests use short timeouts). */
  limits?: Partial<typeof LIMITS>;
}

export interface HttpServer {
  close(): Promise<void>;
  /** The bound addresses (port 0 resolved), in the order of `listen`. */
  readonly addresses: { host: string; port: number }[];
}

export const LIMITS = {
  maxHeaderSize: 8 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 15_000,
  keepAliveTimeoutMs: 5_000,
  /** How often node:http looks for connections past those timeouts (its default is 30 s). */
  checkIntervalMs: 1_000,
  /** Open connections one client address may hold (long-polls included: maxWaitersPerVm is 16). */
  maxConnectionsPerAddress: 64,
  /** Open connections in all, well below the unit's LimitNOFILE (65536). */
  maxConnections: 16_384,
};

export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServer> {
  const { log } = opts;
  // Fail at start-up, not on a guest's first token request, if tokens cannot be hop-limited.
  loadHopLimit();
  const meta = createMetadataApp({
    registry: opts.registry, tokenSecret: opts.tokenSecret, log, metrics: opts.metrics,
    tokenHopLimit: opts.tokenHopLimit ?? DEFAULT_TOKEN_HOP_LIMIT,
    maxWaitersPerVm: opts.maxWaitersPerVm, maxWaiters: opts.maxWaiters, identity: opts.identity, guestAttributes: opts.guestAttributes,
  });
  const listener = getRequestListener(meta.app.fetch, {
    // HTTP/1.0 clients may send no Host; the name does not matter, the route does.
    hostname: 'metadata',
    // Malformed Host or target: the request never reached the app.
    errorHandler: () => plain(400, 'bad request\n'),
  });
  const limits = { ...LIMITS, ...opts.limits };
  // AWS's SDK joins its endpoint's "/" and the path into "//latest/..."; real IMDS accepts
  // that, so empty path segments are squeezed before routing (dot segments stay refused).
  const fast = opts.fastPath === false ? undefined : meta.fast;
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url;
    if (url !== undefined && url.includes('//') && url.charCodeAt(0) === 47) req.url = squeezeSlashes(url);
    if (fast?.(req, res)) return;
    // A zone id ("[fe80::1%eth0]", as Python's http.client and Node send) cannot be part of a
    // WHATWG URL: drop it from the copy the URL is built from. The guards read rawHeaders, which
    // keep the Host as sent, and judge that.
    const host = req.headers.host;
    if (host !== undefined && host.includes('%')) req.headers.host = withoutZone(host);
    void listener(req, res);
  };
  const connections = new ConnectionLimit(limits.maxConnectionsPerAddress, limits.maxConnections);
  const servers: Server[] = [];
  const addresses: { host: string; port: number }[] = [];
  try {
    for (const l of opts.listen) {
      const server = createServer({
        maxHeaderSize: limits.maxHeaderSize,
        headersTimeout: limits.headersTimeoutMs,
        requestTimeout: limits.requestTimeoutMs,
        keepAliveTimeout: limits.keepAliveTimeoutMs,
        connectionsCheckingInterval: limits.checkIntervalMs,
      }, handle);
      // No count limit (maxHeaderSize bounds the bytes): node drops headers past the count
      // silently, which would let a client push a proxy's X-Forwarded-For out of sight.
      server.maxHeadersCount = 0;
      connections.attach(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: l.host, port: l.port, ipv6Only: ipv6OnlyFor(l, opts.listen) }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      server.on('error', (err) => log.error({ err: err.message }, 'metadata listener error'));
      servers.push(server);
      const a = server.address();
      addresses.push({ host: l.host, port: typeof a === 'object' && a ? a.port : l.port });
      log.info({ host: l.host, port: addresses.at(-1)!.port }, 'metadata HTTP listening');
    }
  } catch (err) {
    meta.close();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    throw err;
  }
  return {
    addresses,
    async close() {
      meta.close();
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeIdleConnections();
        setTimeout(() => s.closeAllConnections(), 1000).unref();
      })));
    },
  };
}

/**
 * "::" alone serves IPv4 too (as mapped addresses, which identity normalises); beside an IPv4
 * listener on the same port it must be IPv6-only or the two would collide.
 */
function ipv6OnlyFor(l: { host: string; port: number }, all: { host: string; port: number }[]): boolean {
  return l.host.includes(':') && l.port !== 0 && all.some((o) => !o.host.includes(':') && o.port === l.port);
}

/** "//a//b/?x=//y" -> "/a/b/?x=//y": only the path part. */
export function squeezeSlashes(target: string): string {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  return path.replace(/\/{2,}/g, '/') + (q < 0 ? '' : target.slice(q));
}
